#pragma once
/// \file
/// StreamLinear: the weight-streaming linear layer, Y = X·W (+ b), with its backward pass,
/// on a w × h rectangle of PEs. Activations stay in PE memory; the weights (and b) enter as
/// wavelets at the north edge of the area, one host input stream per PE column; the weight
/// gradients (and db) leave as wavelets at the south edge, one host output stream per column.
/// fp32. Freestanding kernel (pe + fabric layers only). docs/kernels-stream-linear.md explains
/// the choices; this comment is the reference.
///
/// The data flow lives in StreamLinearUnit<PE>, a component a kernel owns: bind() one layer's
/// shape and blocks (StreamLinearBinding), run a pass, get a Completion when it is over; several
/// layers of different shapes share one unit (kernels/transformer_train.hpp). StreamLinear is
/// the kernel holding one unit and one layer's blocks.
///
/// Shapes. T tokens (Params::tokens), IN input features (Params::in), OUT output features
/// (Params::out); W is IN × OUT, row-major (W[i, o] at i·OUT + o), X is T × IN, Y is T × OUT.
/// T must divide by h, IN and OUT by w. With Tb = T/h, INb = IN/w, OUTb = OUT/w, PE (x, y)
/// (relative to area.origin) holds, each block row-major:
///   "x"  (Tb × INb)   X[y·Tb + t, x·INb + i]        written by the host before "forward"
///   "y"  (Tb × OUTb)  Y[y·Tb + t, x·OUTb + o]       the result of "forward"
///   "dy" (Tb × OUTb)  dY in Y's layout             written by the host before "backward"
///   "dx" (Tb × INb)   dX in X's layout             the result of "backward" / "backward_data"
/// so Y (and dX) come out in exactly the layout X (and dY) went in: the output of one layer is
/// the next layer's input where it stands.
///
/// Functions (launch them on the whole area; each needs its stream data, see below):
///   "forward"           Y = X·W (+ b)
///   "backward_data"     dX = dY·Wᵀ  (W is streamed again)
///   "backward_weights"  dW = Xᵀ·dY (and db = column sums of dY), streamed out at the south
///   "backward"          backward_data, then backward_weights, in one launch
/// A launch must complete (the run is quiescent) before the next one.
///
/// Streams. Column x has input stream stream_linear_weight_streams(p, ...) (at its north PE,
/// from the north, on w_color) and output stream stream_linear_grad_streams(p, ...) (at its
/// south PE, to the south, on south_colors[(h-1) % 2]). The order of the values:
///   forward, column x  (stream_linear_forward_order):  [b[x·OUTb + o] for o < OUTb, with bias]
///       then for each block x' = 0..w-1, for i < INb, for o < OUTb: W[x·INb + i, x'·OUTb + o]
///       (the rows of W of in-feature band x, cut into w blocks of INb × OUTb);
///   backward_data, column x (stream_linear_backward_order): for each block x' = 0..w-1,
///       for o < OUTb, for i < INb: W[x'·INb + i, x·OUTb + o]  (Wᵀ's rows of out-feature band x);
///   backward_weights output, column x (stream_linear_grad_order): for each block
///       x' = 0..w-1, for i < INb, for o < OUTb: dW[x·INb + i, x'·OUTb + o] (the order W came
///       in), then with bias: db[x·OUTb + o] for o < OUTb.
/// IN·OUT/w + (bias ? OUT/w : 0) values per column each way.
///
/// Data flow of "forward" (backward_data is the same with X→dY, W→Wᵀ, Y→dX, IN↔OUT, no b).
/// The column's stream is multicast down the column by the router (cut-through; no PE
/// forwards). Every PE receives block x' into one of two weight buffers with one async mov;
/// the next block's receive is issued before the current block is multiplied, so the fabric
/// fills one buffer while the PE computes on the other. For block x' it computes the partial
///   P[t, o] = Σ_i X_blk[t, i] · W[x·INb + i, x'·OUTb + o]      (Tb × OUTb, one of two P buffers)
/// with INb 2-D DSD ops (a mul, then fused macs; X's operand broadcasts one column, W's one
/// row). Then the row reduces the partials of block x' into PE x' (the target), pipelined:
///   PEs west of x' form a west→east chain on east_colors (PE k sends east_colors[k % 2]):
///     the west end sends P; the others add what arrives to P and pass it on (one async add
///     fabout ← fabin + P);
///   PEs east of x' form an east→west chain on west_colors (PE k sends
///     west_colors[(w-1-k) % 2]) the same way;
///   PE x': P += b (with bias), P += (sum from the east), Y = P + (sum from the west).
/// The reduction of block x' runs on microthreads while block x'+1 is multiplied into the other
/// P buffer. A PE has at most one reduction and one receive in flight.
///
/// Data flow of "backward_weights". dW[i, o] = Σ_t X[t, i]·dY[t, o] needs every dY block of
/// the PE's row, so first an allgather of dY along each row: the row gathers its w blocks into
/// the PE at x = 0 on west_colors (PE k sends its own block, then passes on those from beyond
/// it), which broadcasts all w blocks back east on row_color (a multicast route; every PE
/// receives them into its scratch buffer D, Tb × OUT). Then for each block x' = 0..w-1:
///   G = X_blkᵀ · D[x']                       (INb × OUTb, Tb 2-D DSD ops, in the weight buffers)
/// and the column sums G north → south on south_colors (a chain like the row chains); the
/// south PE's add sends straight out of the area into the column's output stream. With bias,
/// one more step: each PE sums its dY block's rows (OUTb) and the column chain reduces those
/// into db. Steps are double-buffered as in forward.
///
/// Rounding (a host model reproducing the kernel bit for bit): the partial P of a PE is the
/// fma chain over i in ascending order (first term a plain product). The row reduction into
/// target x' gives (((P_x' + b) + E) + Wst) with E = P_x'+1 + (P_x'+2 + (... + P_w-1)) added
/// from the east end inwards, i.e. ((P_w-1 + P_w-2) + P_w-3) + ... + P_x'+1, and
/// Wst = ((P_0 + P_1) + P_2) + ... + P_x'-1. dW: per PE the fma chain over t ascending, then
/// ((G_0 + G_1) + G_2) + ... down the column (y ascending). db: per PE ((dY_0 + dY_1) + ...)
/// over its rows, then down the column the same way. The order never depends on timing or on
/// the thread count.
///
/// Use (host side):
///   wse::kernels::StreamLinearParams p{.area = prog.grid(), .tokens = 8, .in = 16, .out = 12, .bias = true};
///   wse::kernels::stream_linear_channels(prog, p);   // colors and task ids from the allocator
///   // check wse::kernels::stream_linear_params_error(p) == nullptr
///   prog.add_region<wse::kernels::StreamLinear>(p.area, p);
///   wse::kernels::stream_linear_routes(prog.route_sink(), p);
///   wse::kernels::stream_linear_weight_streams(p, [&](std::uint32_t x, wse::Coord c, wse::Color col, wse::Port e) {
///     prog.add_input_stream("w" + std::to_string(x), col, c, e); });
///   wse::kernels::stream_linear_grad_streams(p, [&](std::uint32_t x, wse::Coord c, wse::Color col, wse::Port e) {
///     prog.add_output_stream("g" + std::to_string(x), col, c, e); });
///
/// Requirements (stream_linear_params_error checks them; init asserts them): area non-empty;
/// tokens, in, out >= 1 with tokens % h == 0, in % w == 0, out % w == 0; PE memory
/// stream_linear_bytes_per_pe(p) <= 48 KiB; eight distinct usable colors (0..20); three
/// distinct local task ids valid on WSE-2 and WSE-3 (8..30) that are none of the colors; the
/// routes from stream_linear_routes with the same Params.
/// Resources per PE: 8 colors (w_color; east_colors, west_colors, row_color along rows;
/// south_colors down columns), 3 local task ids, at most 3 async ops in flight.
#include <cstdint>
#include <wse/kernel.hpp>

#include "channels.hpp"

namespace wse::kernels {

/// Parameters of StreamLinear (the same for every PE of the region).
struct StreamLinearParams {
  Rect area{};               ///< the PEs: w = area.width columns (feature bands), h = area.height rows (token bands)
  std::uint32_t tokens = 1;  ///< T: rows of X, Y, dY, dX
  std::uint32_t in = 1;      ///< IN: columns of X and dX, rows of W
  std::uint32_t out = 1;     ///< OUT: columns of W, Y and dY, elements of b
  bool bias = false;         ///< Y = X·W + b (b streams in ahead of W; backward also gives db)
  Color w_color = Color{0};  ///< weights enter each column from the north, multicast down it
  /// West → east row chain; PE column k sends on east_colors[k % 2].
  Color east_colors[2] = {Color{1}, Color{2}};
  /// East → west row chain; PE column k sends on west_colors[(w - 1 - k) % 2].
  Color west_colors[2] = {Color{3}, Color{4}};
  Color row_color = Color{5};  ///< row broadcast from column 0 (the dY allgather of backward_weights)
  /// North → south column chain; PE row j sends on south_colors[j % 2]; the south row sends
  /// out of the area into the column's gradient stream.
  Color south_colors[2] = {Color{6}, Color{7}};
  /// Local task ids: [0] a receive finished, [1] the target's first reduction op finished,
  /// [2] this PE's part of a reduction finished.
  TaskId tasks[3] = {TaskId{24}, TaskId{25}, TaskId{26}};
};

/// Token rows per PE: T / h.
constexpr std::uint32_t stream_linear_tb(const StreamLinearParams& p) { return p.area.height ? p.tokens / p.area.height : 0; }
/// Input features per PE column: IN / w.
constexpr std::uint32_t stream_linear_inb(const StreamLinearParams& p) { return p.area.width ? p.in / p.area.width : 0; }
/// Output features per PE column: OUT / w.
constexpr std::uint32_t stream_linear_outb(const StreamLinearParams& p) { return p.area.width ? p.out / p.area.width : 0; }
/// Values on each column's weight stream per forward launch, and per backward launch (and
/// on each gradient stream per backward launch): IN·OUT/w (+ OUT/w with bias, forward and
/// gradients only).
constexpr std::uint64_t stream_linear_forward_stream_length(const StreamLinearParams& p) {
  return std::uint64_t{stream_linear_inb(p)} * p.out + (p.bias ? stream_linear_outb(p) : 0u);
}
constexpr std::uint64_t stream_linear_backward_stream_length(const StreamLinearParams& p) {
  return std::uint64_t{stream_linear_outb(p)} * p.in;
}
constexpr std::uint64_t stream_linear_grad_stream_length(const StreamLinearParams& p) {
  return stream_linear_forward_stream_length(p);
}

/// Calls f(x, pe, color, edge) for every column x: its weight stream enters PE `pe` (the
/// column's north PE) through `edge` (north) on `color`. Host code passes each to
/// Program::add_input_stream (the area must touch the fabric's north edge).
template <class F> constexpr void stream_linear_weight_streams(const StreamLinearParams& p, F&& f) {
  for (std::uint16_t x = 0; x < p.area.width; ++x)
    f(std::uint32_t{x}, Coord{static_cast<std::uint16_t>(p.area.origin.x + x), p.area.origin.y}, p.w_color, Port::north);
}
/// Calls f(x, pe, color, edge) for every column x: its gradient stream leaves PE `pe` (the
/// column's south PE) through `edge` (south) on `color`. For Program::add_output_stream (the
/// area must touch the fabric's south edge).
template <class F> constexpr void stream_linear_grad_streams(const StreamLinearParams& p, F&& f) {
  const std::uint16_t h = p.area.height;
  for (std::uint16_t x = 0; x < p.area.width; ++x)
    f(std::uint32_t{x}, Coord{static_cast<std::uint16_t>(p.area.origin.x + x), static_cast<std::uint16_t>(p.area.origin.y + h - 1)},
      p.south_colors[(h - 1) % 2], Port::south);
}

/// The forward weight stream of column x, in order: f(is_bias, i, o) names b[o] (is_bias) or
/// W[i, o] for each value.
template <class F> constexpr void stream_linear_forward_order(const StreamLinearParams& p, std::uint32_t x, F&& f) {
  const std::uint32_t w = p.area.width, inb = stream_linear_inb(p), outb = stream_linear_outb(p);
  if (p.bias)
    for (std::uint32_t o = 0; o < outb; ++o) f(true, 0u, x * outb + o);
  for (std::uint32_t b = 0; b < w; ++b)
    for (std::uint32_t i = 0; i < inb; ++i)
      for (std::uint32_t o = 0; o < outb; ++o) f(false, x * inb + i, b * outb + o);
}
/// The backward (data) weight stream of column x, in order: f(i, o) names W[i, o].
template <class F> constexpr void stream_linear_backward_order(const StreamLinearParams& p, std::uint32_t x, F&& f) {
  const std::uint32_t w = p.area.width, inb = stream_linear_inb(p), outb = stream_linear_outb(p);
  for (std::uint32_t b = 0; b < w; ++b)
    for (std::uint32_t o = 0; o < outb; ++o)
      for (std::uint32_t i = 0; i < inb; ++i) f(b * inb + i, x * outb + o);
}
/// The gradient stream of column x, in order: f(is_bias, i, o) names db[o] (is_bias) or
/// dW[i, o]. dW comes in the order W went in; db last.
template <class F> constexpr void stream_linear_grad_order(const StreamLinearParams& p, std::uint32_t x, F&& f) {
  const std::uint32_t w = p.area.width, inb = stream_linear_inb(p), outb = stream_linear_outb(p);
  for (std::uint32_t b = 0; b < w; ++b)
    for (std::uint32_t i = 0; i < inb; ++i)
      for (std::uint32_t o = 0; o < outb; ++o) f(false, x * inb + i, b * outb + o);
  if (p.bias)
    for (std::uint32_t o = 0; o < outb; ++o) f(true, 0u, x * outb + o);
}

namespace stream_linear_detail {
constexpr std::uint64_t max64(std::uint64_t a, std::uint64_t b) { return a > b ? a : b; }
/// Elements of the scratch buffer: two P buffers (forward / backward_data) or the gathered
/// dY of the row (backward_weights), whichever is larger.
constexpr std::uint64_t scratch_elems(const StreamLinearParams& p) {
  const std::uint64_t tb = stream_linear_tb(p), inb = stream_linear_inb(p), outb = stream_linear_outb(p);
  return max64(2 * tb * max64(inb, outb), std::uint64_t{p.area.width} * tb * outb);
}
constexpr bool color_ok(Color c) { return arch::wse2.color_usable(c) && arch::wse3.color_usable(c); }
constexpr bool task_ok(TaskId t) {
  return t.value >= arch::wse2.local_task_first && t.value <= arch::wse2.local_task_last &&
         t.value >= arch::wse3.local_task_first && t.value <= arch::wse3.local_task_last;
}
}  // namespace stream_linear_detail

/// Bytes of PE memory every PE uses, kernel object included: X and dX (Tb·INb each), Y and dY
/// (Tb·OUTb each), two weight buffers (INb·OUTb each), the scratch max(2·Tb·max(INb, OUTb),
/// Tb·OUT), and with bias b and a db accumulator (OUTb each); fp32.
constexpr std::uint64_t stream_linear_bytes_per_pe(const StreamLinearParams& p);

/// nullptr when `p` is usable by StreamLinear and stream_linear_routes, else a message naming
/// the field and the allowed range. Host code calls it before building a program; init asserts it.
constexpr const char* stream_linear_params_error(const StreamLinearParams& p);

/// Routes of StreamLinear over p.area: per column, w_color from the north edge down the
/// column, delivered to every PE (routes::broadcast_line); per column, the north → south
/// checkerboard chain on south_colors whose south end leaves the area southwards; per row
/// (when w > 1), the west → east chain on east_colors, the east → west chain on west_colors,
/// and the broadcast from column 0 eastwards on row_color.
template <class Sink> constexpr void stream_linear_routes(Sink&& sink, const StreamLinearParams& p) {
  const std::uint16_t w = p.area.width, h = p.area.height;
  const Coord o = p.area.origin;
  for (std::uint16_t x = 0; x < w; ++x) {
    const Coord top{static_cast<std::uint16_t>(o.x + x), o.y};
    routes::broadcast_line(sink, p.w_color, top, Port::south, h, Port::north, true);
    routes::checkerboard_chain(sink, p.south_colors, top, Port::south, h, false, true);
  }
  if (w < 2) return;
  for (std::uint16_t y = 0; y < h; ++y) {
    const Coord west{o.x, static_cast<std::uint16_t>(o.y + y)};
    const Coord east{static_cast<std::uint16_t>(o.x + w - 1), static_cast<std::uint16_t>(o.y + y)};
    routes::checkerboard_chain(sink, p.east_colors, west, Port::east, w);
    routes::checkerboard_chain(sink, p.west_colors, east, Port::west, w);
    routes::broadcast_line(sink, p.row_color, west, Port::east, w);
  }
}

/// Fills the eight colors and three task ids of `p` from the program's channel allocator
/// (wse::Program or anything with allocate_color / allocate_task), each color over the
/// bounding rectangle of its routes (see channels.hpp), the task ids over p.area. Set area
/// (and the shapes) first. Askers read "<name> w_color", "<name> east_colors[0]", ...
template <class Channels>
void stream_linear_channels(Channels& prog, StreamLinearParams& p, const char* name = "stream_linear") {
  StreamLinearParams probe = p;
  probe.w_color = Color{0};
  probe.east_colors[0] = Color{1};
  probe.east_colors[1] = Color{2};
  probe.west_colors[0] = Color{3};
  probe.west_colors[1] = Color{4};
  probe.row_color = Color{5};
  probe.south_colors[0] = Color{6};
  probe.south_colors[1] = Color{7};
  const channels_detail::Footprints fp =
      channels_detail::footprints([&](auto&& sink) { stream_linear_routes(sink, probe); });
  channels_detail::ColorSlot colors[8] = {
      {&p.w_color, "w_color", fp.box[0]},           {&p.east_colors[0], "east_colors[0]", fp.box[1]},
      {&p.east_colors[1], "east_colors[1]", fp.box[2]}, {&p.west_colors[0], "west_colors[0]", fp.box[3]},
      {&p.west_colors[1], "west_colors[1]", fp.box[4]}, {&p.row_color, "row_color", fp.box[5]},
      {&p.south_colors[0], "south_colors[0]", fp.box[6]}, {&p.south_colors[1], "south_colors[1]", fp.box[7]}};
  channels_detail::TaskSlot tasks[3] = {{&p.tasks[0], "tasks[0]"}, {&p.tasks[1], "tasks[1]"}, {&p.tasks[2], "tasks[2]"}};
  channels_detail::fill(prog, name, colors, 8, tasks, 3, p.area);
}

/// One linear layer's shape and PE-memory blocks, bound to a StreamLinearUnit before a
/// launch: IN, OUT (global), bias, and this PE's blocks x (Tb × IN/w), y (Tb × OUT/w),
/// dy (Tb × OUT/w), dx (Tb × IN/w), b and db (OUT/w, with bias), row-major.
struct StreamLinearBinding {
  std::uint32_t in = 1, out = 1;
  bool bias = false;
  Array<float> x{}, y{}, dy{}, dx{}, b{}, db{};
};

/// The streamed linear layer as a component a kernel owns (the data flow, streams, rounding
/// and resources of the file comment; StreamLinear is a kernel holding one). Several linear
/// layers of different shapes share one unit: bind() a layer's shape and blocks, then run
/// forward / backward_data / backward_weights / backward; `done` fires when the pass is over
/// (its last reduction op finished). The kernel binds Params::tasks[0..2] to one-line methods
/// calling on_recv / on_half / on_reduced. p.tokens must be the same for every layer; p.in
/// and p.out are not used (the binding's are).
template <class PE> struct StreamLinearUnit {
  StreamLinearParams p{};
  std::uint32_t col = 0, row = 0;      // this PE in the area
  std::uint32_t w = 1, h = 1;          // area width and height
  std::uint32_t tb = 0, inb = 0, outb = 0;
  bool bias = false;
  Array<float> X, Y, DY, DX;           // activation blocks of the bound layer
  Array<float> WB;                     // two weight buffers of INb·OUTb (backward_weights: two G buffers)
  Array<float> S;                      // scratch: two P buffers, or the row's dY (Tb × OUT, block-major)
  Array<float> B, DB;                  // b (OUTb) and the db partial (OUTb), with bias
  std::uint32_t wb_cap = 0, s_cap = 0;
  Completion done_{};

  // The step machine shared by every function (see advance()).
  enum class Phase : std::uint8_t { idle, product, weights };
  Phase phase = Phase::idle;
  bool forward_pass = false;   // product phase: forward (X, W, Y) or backward_data (dY, Wᵀ, dX)
  bool then_weights = false;   // "backward": start backward_weights when backward_data is over
  bool arrived = false;        // the input of step `computed` is in memory
  bool red_busy = false;       // a reduction op of this PE is in flight
  std::uint32_t kb = 0, nb = 0;  // product phase: inner and outer block dims
  std::uint32_t steps = 0, computed = 0, red_issued = 0, red_done = 0;

  /// Elements of the two buffers for layers of up to `max_inb_outb` = INb·OUTb weights per
  /// block and a scratch of max(2·Tb·max(INb, OUTb), w·Tb·OUTb) over the layers.
  void init(PE& pe, const StreamLinearParams& params, std::uint32_t max_inb_outb, std::uint32_t scratch) {
    p = params;
    const Coord c = pe.coord();
    WSE_ASSERT(p.area.contains(c), "StreamLinearUnit: PE outside Params::area");
    col = c.x - p.area.origin.x;
    row = c.y - p.area.origin.y;
    w = p.area.width;
    h = p.area.height;
    tb = stream_linear_tb(p);
    wb_cap = max_inb_outb;
    s_cap = scratch;
    WB = alloc<float>(pe, 2 * max_inb_outb);
    S = alloc<float>(pe, scratch);
  }

  /// The layer the next launch works on (the unit must be idle).
  void bind(const StreamLinearBinding& l) {
    WSE_ASSERT(phase == Phase::idle, "StreamLinearUnit: bind while a pass is running");
    WSE_ASSERT(l.in % w == 0 && l.out % w == 0, "StreamLinearUnit: in and out must be multiples of the area width");
    inb = l.in / w;
    outb = l.out / w;
    bias = l.bias;
    WSE_ASSERT(inb * outb <= wb_cap, "StreamLinearUnit: weight block larger than the buffers init() sized");
    WSE_ASSERT(2 * tb * (inb > outb ? inb : outb) <= s_cap && w * tb * outb <= s_cap,
               "StreamLinearUnit: scratch smaller than the layer needs");
    X = l.x, Y = l.y, DY = l.dy, DX = l.dx, B = l.b, DB = l.db;
  }

  void forward(PE& pe, Completion done) { start_product(pe, true, false, done); }
  void backward_data(PE& pe, Completion done) { start_product(pe, false, false, done); }
  void backward(PE& pe, Completion done) { start_product(pe, false, true, done); }
  void backward_weights(PE& pe, Completion done) {
    WSE_ASSERT(phase == Phase::idle, "StreamLinear: launched while a previous launch is still running");
    done_ = done;
    start_weights(pe);
  }

  // ---- tasks (bound by the kernel to p.tasks[0], [1], [2]) ----
  // A receive finished: a weight block (product phase), or the row's dY (weights phase).
  void on_recv(PE& pe) {
    if (phase == Phase::weights && col == 0 && w > 1)  // the gathered row goes back east to every PE
      mov(pe, fabout<float>(p.row_color, w * tb * outb), mem1d(S).with_length(w * tb * outb), then_nothing());
    arrived = true;
    advance(pe);
  }
  // The target's sum from the east is in P: add the sum from the west into the result.
  void on_half(PE& pe) {
    add(pe, mem1d(out_block()), p_slot(red_issued - 1), fabin<float>(east_recv(), tb * nb), then_activate(p.tasks[2]));
  }
  void on_reduced(PE& pe) {
    red_busy = false;
    ++red_done;
    advance(pe);
  }

  // Colors of this PE in the row chains and the column chain.
  Color east_send() const { return routes::checkerboard_send_color(p.east_colors, col); }
  Color east_recv() const { return routes::checkerboard_recv_color(p.east_colors, col); }
  Color west_send() const { return routes::checkerboard_send_color(p.west_colors, w - 1 - col); }
  Color west_recv() const { return routes::checkerboard_recv_color(p.west_colors, w - 1 - col); }
  Color south_send() const { return routes::checkerboard_send_color(p.south_colors, row); }
  Color south_recv() const { return routes::checkerboard_recv_color(p.south_colors, row); }

 private:
  Array<float> in_block() const { return forward_pass ? X : DY; }
  Array<float> out_block() const { return forward_pass ? Y : DX; }
  // P buffer of product step s (tb × nb).
  Mem1d<float> p_slot(std::uint32_t s) const { return mem1d(S).with_offset((s % 2) * tb * nb).with_length(tb * nb); }
  // Weight (or G) buffer of step s.
  Mem1d<float> w_slot(std::uint32_t s) const { return mem1d(WB).with_offset((s % 2) * inb * outb).with_length(inb * outb); }

  void reset(std::uint32_t n) {
    steps = n;
    computed = red_issued = red_done = 0;
    red_busy = false;
    arrived = false;
  }

  // forward (fwd) or backward_data; `weights_next`: continue with backward_weights.
  void start_product(PE& pe, bool fwd, bool weights_next, Completion done) {
    WSE_ASSERT(phase == Phase::idle, "StreamLinear: launched while a previous launch is still running");
    done_ = done;
    phase = Phase::product;
    forward_pass = fwd;
    then_weights = weights_next;
    kb = fwd ? inb : outb;
    nb = fwd ? outb : inb;
    reset(w);
    if (fwd && bias) mov(pe, mem1d(B).with_length(outb), fabin<float>(p.w_color, outb), then_nothing());
    mov(pe, w_slot(0), fabin<float>(p.w_color, kb * nb), then_activate(p.tasks[0]));
  }

  void start_weights(PE& pe) {
    phase = Phase::weights;
    then_weights = false;
    reset(w + (bias ? 1u : 0u));
    const std::uint32_t n = tb * outb;
    const Mem1d<float> own = mem1d(DY).with_length(n);
    if (w == 1) {
      mov(pe, mem1d(S).with_length(n), own);
      arrived = true;
      advance(pe);
    } else if (col == 0) {  // gather the row's blocks 1..w-1 behind our own
      mov(pe, mem1d(S).with_length(n), own);
      mov(pe, mem1d(S).with_offset(n).with_length((w - 1) * n), fabin<float>(west_recv(), (w - 1) * n),
          then_activate(p.tasks[0]));
    } else {  // send ours west, pass on those from beyond, then take the whole row from column 0
      mov(pe, fabout<float>(west_send(), n), own, then_nothing());
      if (col + 1 < w) {
        const std::uint32_t beyond = (w - 1 - col) * n;
        mov(pe, fabout<float>(west_send(), beyond), fabin<float>(west_recv(), beyond), then_nothing());
      }
      mov(pe, mem1d(S).with_length(w * n), fabin<float>(p.row_color, w * n), then_activate(p.tasks[0]));
    }
  }

  // Issues what can be issued: the next reduction when none is in flight, the next compute
  // when its input is here and its buffer is free (the reduction two steps back is done).
  void advance(PE& pe) {
    for (;;) {
      if (!red_busy && red_issued < computed) {
        reduce(pe, red_issued++);
        continue;
      }
      if (computed < steps && arrived && red_done + 1 >= computed) {
        compute(pe, computed++);
        continue;
      }
      break;
    }
    if (phase != Phase::idle && red_done == steps) {
      phase = Phase::idle;
      if (then_weights) start_weights(pe);
      else if (done_.action == Completion::Action::activate) pe.activate(done_.task);
      else if (done_.action == Completion::Action::unblock) pe.unblock(done_.task);
    }
  }

  void compute(PE& pe, std::uint32_t s) {
    if (phase == Phase::product) {
      arrived = false;
      if (s + 1 < steps) mov(pe, w_slot(s + 1), fabin<float>(p.w_color, kb * nb), then_activate(p.tasks[0]));
      // P[t, o] = Σ_k In[t, k] · M[k, o], M = block s (kb × nb, row-major) in w_slot(s).
      const std::int32_t n = static_cast<std::int32_t>(nb), k = static_cast<std::int32_t>(kb);
      const Mem4d<float> P = mem4d(S, {nb, tb}, {1, n}, (s % 2) * tb * nb);
      const Array<float> in = in_block();
      for (std::uint32_t i = 0; i < kb; ++i) {
        const Mem4d<float> M = mem4d(WB, {nb, tb}, {1, 0}, (s % 2) * inb * outb + i * nb);
        const Mem4d<float> A = mem4d(in, {nb, tb}, {0, k}, i);
        if (i == 0) mul(pe, P, M, A);
        else mac(pe, P, P, M, A);
      }
    } else if (s < w) {
      // G[i, o] = Σ_t X[t, i] · D_s[t, o]  (inb × outb) into w_slot(s).
      const std::int32_t ob = static_cast<std::int32_t>(outb);
      const Mem4d<float> G = mem4d(WB, {outb, inb}, {1, ob}, (s % 2) * inb * outb);
      for (std::uint32_t t = 0; t < tb; ++t) {
        const Mem4d<float> D = mem4d(S, {outb, inb}, {1, 0}, (s * tb + t) * outb);
        const Mem4d<float> A = mem4d(X, {outb, inb}, {0, 1}, t * inb);
        if (t == 0) mul(pe, G, D, A);
        else mac(pe, G, G, D, A);
      }
    } else {  // db partial: the sum of this PE's dY rows
      mov(pe, mem1d(DB).with_length(outb), mem1d(DY).with_length(outb));
      for (std::uint32_t t = 1; t < tb; ++t)
        add(pe, mem1d(DB).with_length(outb), mem1d(DB).with_length(outb), mem1d(DY).with_offset(t * outb).with_length(outb));
    }
  }

  void reduce(PE& pe, std::uint32_t s) {
    const Completion done = then_activate(p.tasks[2]);
    red_busy = true;
    if (phase == Phase::weights) {  // down the column, out at the south edge
      const Mem1d<float> src = s < w ? w_slot(s) : mem1d(DB).with_length(outb);
      const std::uint32_t n = s < w ? inb * outb : outb;
      if (row == 0) mov(pe, fabout<float>(south_send(), n), src, done);
      else add(pe, fabout<float>(south_send(), n), fabin<float>(south_recv(), n), src, done);
      return;
    }
    // Product phase: reduce the partials of block s along the row into column s.
    const Mem1d<float> P = p_slot(s);
    const std::uint32_t n = tb * nb;
    const Mem1d<float> out = mem1d(out_block()).with_length(n);
    if (col == s) {
      if (forward_pass && bias) {
        const Mem4d<float> P2 = mem4d(S, {nb, tb}, {1, static_cast<std::int32_t>(nb)}, (s % 2) * tb * nb);
        add(pe, P2, P2, mem4d(B, {nb, tb}, {1, 0}));
      }
      const bool from_west = col > 0, from_east = col + 1 < w;
      if (from_east && from_west) add(pe, P, P, fabin<float>(west_recv(), n), then_activate(p.tasks[1]));
      else if (from_east) add(pe, out, P, fabin<float>(west_recv(), n), done);
      else if (from_west) add(pe, out, P, fabin<float>(east_recv(), n), done);
      else {  // one column: no fabric
        mov(pe, out, P);
        red_busy = false;
        ++red_done;
      }
    } else if (col < s) {
      if (col == 0) mov(pe, fabout<float>(east_send(), n), P, done);
      else add(pe, fabout<float>(east_send(), n), fabin<float>(east_recv(), n), P, done);
    } else {
      if (col + 1 == w) mov(pe, fabout<float>(west_send(), n), P, done);
      else add(pe, fabout<float>(west_send(), n), fabin<float>(west_recv(), n), P, done);
    }
  }
};

/// The StreamLinear kernel (see the file comment): one StreamLinearUnit and the blocks of one layer.
template <class PE> struct StreamLinear {
  using Params = StreamLinearParams;

  Params p{};
  StreamLinearUnit<PE> unit;
  Array<float> X, Y, DY, DX, B, DB;    // activation blocks, row-major (exported x, y, dy, dx)

  void init(PE& pe, const Params& params) {
    p = params;
    WSE_ASSERT(stream_linear_params_error(p) == nullptr, "StreamLinear: bad Params (see stream_linear_params_error)");
    const std::uint32_t tb = stream_linear_tb(p), inb = stream_linear_inb(p), outb = stream_linear_outb(p);
    X = alloc<float>(pe, tb * inb);
    Y = alloc<float>(pe, tb * outb);
    DY = alloc<float>(pe, tb * outb);
    DX = alloc<float>(pe, tb * inb);
    unit.init(pe, p, inb * outb, static_cast<std::uint32_t>(stream_linear_detail::scratch_elems(p)));
    if (p.bias) {
      B = alloc<float>(pe, outb);
      DB = alloc<float>(pe, outb);
    }
    unit.bind({.in = p.in, .out = p.out, .bias = p.bias, .x = X, .y = Y, .dy = DY, .dx = DX, .b = B, .db = DB});
    export_symbol(pe, "x", X);
    export_symbol(pe, "y", Y);
    export_symbol(pe, "dy", DY);
    export_symbol(pe, "dx", DX);
    export_function<&StreamLinear::forward>(pe, "forward");
    export_function<&StreamLinear::backward_data>(pe, "backward_data");
    export_function<&StreamLinear::backward_weights>(pe, "backward_weights");
    export_function<&StreamLinear::backward>(pe, "backward");
    bind_local_task<&StreamLinear::on_recv>(pe, p.tasks[0]);
    bind_local_task<&StreamLinear::on_half>(pe, p.tasks[1]);
    bind_local_task<&StreamLinear::on_reduced>(pe, p.tasks[2]);
  }

  // ---- launched functions ----
  void forward(PE& pe) { unit.forward(pe, then_nothing()); }
  void backward_data(PE& pe) { unit.backward_data(pe, then_nothing()); }
  void backward(PE& pe) { unit.backward(pe, then_nothing()); }
  void backward_weights(PE& pe) { unit.backward_weights(pe, then_nothing()); }

  // ---- tasks ----
  void on_recv(PE& pe) { unit.on_recv(pe); }
  void on_half(PE& pe) { unit.on_half(pe); }
  void on_reduced(PE& pe) { unit.on_reduced(pe); }
};

constexpr std::uint64_t stream_linear_bytes_per_pe(const StreamLinearParams& p) {
  const std::uint64_t tb = stream_linear_tb(p), inb = stream_linear_inb(p), outb = stream_linear_outb(p);
  const std::uint64_t floats = 2 * tb * inb + 2 * tb * outb + 2 * inb * outb + stream_linear_detail::scratch_elems(p) +
                               (p.bias ? 2 * outb : 0);
  return (sizeof(StreamLinear<ProbeBackend>) + 3) / 4 * 4 + 4 * floats;
}

constexpr const char* stream_linear_params_error(const StreamLinearParams& p) {
  using stream_linear_detail::color_ok;
  if (p.area.width == 0 || p.area.height == 0) return "StreamLinear: area is empty (area.width and area.height must be >= 1)";
  if (p.tokens == 0 || p.in == 0 || p.out == 0) return "StreamLinear: tokens, in and out must be >= 1";
  if (p.tokens % p.area.height != 0) return "StreamLinear: tokens must be a multiple of area.height (token bands)";
  if (p.in % p.area.width != 0) return "StreamLinear: in must be a multiple of area.width (input-feature bands)";
  if (p.out % p.area.width != 0) return "StreamLinear: out must be a multiple of area.width (output-feature bands)";
  if (stream_linear_bytes_per_pe(p) > arch::max_pe_memory_bytes)
    return "StreamLinear: the per-PE blocks do not fit the 48 KiB PE memory: stream_linear_bytes_per_pe (X, Y, dY, dX "
           "blocks, two weight buffers INb x OUTb, scratch max(2 Tb max(INb, OUTb), Tb OUT)) must be <= 49152 bytes; use "
           "a larger area";
  const Color colors[8] = {p.w_color, p.east_colors[0], p.east_colors[1], p.west_colors[0],
                           p.west_colors[1], p.row_color, p.south_colors[0], p.south_colors[1]};
  for (const Color c : colors)
    if (!color_ok(c)) return "StreamLinear: a color is not usable (allowed 0..20; 21..23 are reserved)";
  for (unsigned a = 0; a < 8; ++a)
    for (unsigned b = a + 1; b < 8; ++b)
      if (colors[a] == colors[b]) return "StreamLinear: the eight colors must be distinct";
  for (unsigned t = 0; t < 3; ++t) {
    if (!stream_linear_detail::task_ok(p.tasks[t])) return "StreamLinear: tasks[] must be local task ids valid on every arch (8..30)";
    for (unsigned u = t + 1; u < 3; ++u)
      if (p.tasks[t] == p.tasks[u]) return "StreamLinear: the three task ids must be distinct";
    for (const Color c : colors)
      if (p.tasks[t].value == c.value) return "StreamLinear: a task id equals one of the colors (a color's data-task id on WSE-2)";
  }
  return nullptr;
}

}  // namespace wse::kernels
