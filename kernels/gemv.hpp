#pragma once
/// \file
/// Gemv: the streaming matrix-vector product y = A·x (+ b) on a px × py rectangle of PEs.
/// GemvKernel<PE, T, Acc> is templated on the element type T of A and x and the accumulator
/// type Acc of the sums, y and b; use it through the aliases at the end of the file:
///   Gemv       T = Acc = float      (fp32)
///   GemvMixed  T = f16, Acc = float (the mixed mac: f16 × f16 products accumulated in f32)
///   GemvF16    T = Acc = f16        (pure fp16: every mac and add rounds to f16)
/// Freestanding kernel (pe + fabric layers only).
///
/// Layout. A is m × n. The rows are split over the py PE rows and the columns over the px PE
/// columns in balanced uneven blocks: PE row j holds gemv_rows(p, j) = m/py or m/py + 1 rows
/// starting at gemv_row_begin(p, j) (the first m % py rows get one more), and likewise PE
/// column i holds gemv_cols(p, i) columns starting at gemv_col_begin(p, i). No padding is
/// added to A, x or y, and no PE computes on padding. Every PE stores its block in a slot of
/// the same size, mb × nb with mb = gemv_mb(p) = ceil(m/py) and nb = gemv_nb(p) =
/// ceil(n/px), column-major with leading dimension mb:
///   symbol "A" (mb·nb elements of T): A[row_begin + r, col_begin + c] at r + c·mb, for
///              r < gemv_rows(p, j), c < gemv_cols(p, i); the rest of the slot is not read.
/// So one memcpy_h2d of mb·nb elements per PE fills the whole rectangle.
/// When m < py (n < px) the rows j >= m (columns i >= n) hold nothing: those PEs are idle
/// (no memory, no routes), and y ends in column min(px, n) - 1 (gemv_y_area).
///
/// Data flow of one launch of "gemv" (i, j relative to area.origin):
///  1. x enters each active column i at the north side of the area on x_color: the
///     gemv_cols(p, i) values x[col_begin .. col_begin + cols), in order, from a host input
///     stream when the area touches the north edge of the fabric (gemv_x_streams lists where),
///     or from whatever sits north of it. The route carries them south down the column and
///     delivers every value to every PE of the column (cut-through multicast, no forwarding
///     by PEs). Each PE receives them into "x" with one async mov.
///  2. Local product: Y = A_block · x_block with w = min(acc_cols, cols) running sums per row:
///     Y (rows × w, Acc) = 0; then for each group of w columns g = 0, w, 2w, ... one fused
///     multiply-add DSD op over a 2-D (rows × w) view:
///       Y[r, k] = Y[r, k] + A[r, g + k] · x[g + k]          (k < min(w, cols - g))
///     (A's view has strides {1, mb}; x's {0, 1}: one x value per column, repeated down it.)
///     Then the w columns of Y are summed by a fixed pairwise tree of contiguous adds: with
///     c = w, while c > 1: h = c/2, Y[:, 0..h) += Y[:, c-h..c), c -= h. Y[:, 0] is the local
///     product. ceil(cols/w) + ceil(log2 w) + 1 ops of up to rows·w elements each, and no op's
///     result depends on the order the engine visits its elements.
///  3. Reduction along each row, west to east, on two alternating colors (PE i sends on
///     sum_colors[i % 2] and receives on sum_colors[(i + 1) % 2]: routes::checkerboard_chain):
///       column 0:         sends s0 = Y0 (+ b)                   async mov / add -> fabout
///       column 0 < i < e: sends s_i = s_(i-1) + Y0, streaming: one async add fabin -> fabout
///       column e:         y = s_(e-1) + Y0 into its own Y0        async add fabin -> memory
///     (e = min(px, n) - 1). Every element is passed on as soon as it is added, so the row
///     reduction is a pipeline, not px store-and-forward steps. With one active column,
///     y = Y0 (+ b) in place.
///  The host reads y from "y" in the PEs of gemv_y_area(p): the first gemv_rows(p, j) of the
///  mb elements of each.
///
/// Rounding (what a host model must do to reproduce y bit for bit): per row r of a PE, the w
/// chains of step 2 (each Acc-rounded mac in ascending g), the pairwise tree, then column by
/// column from west to east: ((Y0_0 + b) + Y0_1) + Y0_2 + ... . The result does not depend on
/// timing, jitter or thread count.
///
/// Use (host side):
///   wse::kernels::GemvParams p{.area = prog.grid(), .m = 250, .n = 300};
///   wse::kernels::gemv_channels(prog, p);  // colors and task id from the program's allocator
///   // check wse::kernels::gemv_params_error(p) == nullptr  (gemv_params_error<T, Acc> for others)
///   prog.add_region<wse::kernels::Gemv>(p.area, p);
///   wse::kernels::gemv_routes(prog.route_sink(), p);
///   wse::kernels::gemv_x_streams(p, [&](std::uint32_t i, wse::Coord c, wse::Color col, wse::Port edge) {
///     prog.add_input_stream("x" + std::to_string(i), col, c, edge);
///   });
///   rt.memcpy_h2d<float>("A", a_slots, wse::kernels::gemv_active_area(p), mb * nb);  // layout above
///   rt.stream_in<float>("x" + std::to_string(i), x_slice_i);         // for every active column i
///   rt.launch("gemv"); rt.run();
///   y_slots = rt.read<float>("y", wse::kernels::gemv_y_area(p), mb);
///
/// Exports (active PEs): symbols "A" (mb·nb T), "x" (nb T), "y" (mb Acc: the local product
/// at every PE; y on gemv_y_area after a run), "b" (mb Acc, only on gemv_b_area, the west
/// column, when Params::bias); function "gemv". A and b are unchanged by a launch, so "gemv"
/// may be launched again with another x (gemv_cols(p, i) more values on each column's stream).
///
/// Requirements (gemv_params_error checks them; init asserts them):
///   - area non-empty; m, n >= 1; acc_cols >= 1;
///   - PE memory: gemv_bytes_per_pe<T, Acc>(p) <= 48 KiB. The A slot dominates; with
///     acc_cols = 8 and no bias the largest square slot is 106 × 106 for fp32, 148 × 148 for
///     GemvMixed and 152 × 152 for GemvF16;
///   - x_color, sum_colors[0], sum_colors[1] distinct and usable (0..20); tasks[0] a local
///     task id valid on WSE-2 and WSE-3 (8..30) equal to none of the colors (gemv_channels
///     picks such values; the defaults 0, 1, 2 and 24 are one such choice);
///   - the routes come from gemv_routes with the same Params.
/// Resources per PE: 3 colors (x: 1 receive route; sums: at most one send and one receive
/// route), 1 local task id, at most 2 asynchronous ops in flight.
#include <cstdint>
#include <wse/kernel.hpp>

#include "channels.hpp"

namespace wse::kernels {

/// Parameters of Gemv (the same for every PE of the region).
struct GemvParams {
  Rect area{};               ///< the PEs running the kernel: px = area.width, py = area.height
  std::uint32_t m = 1;       ///< rows of A (and of y, b)
  std::uint32_t n = 1;       ///< columns of A (and elements of x)
  bool bias = false;         ///< y = A·x + b, b held in symbol "b" on the west column
  std::uint32_t acc_cols = 8;  ///< running sums per row in the local product (w); min(acc_cols, cols) is used
  Color x_color = Color{0};  ///< x enters each column from the north and is multicast down it
  /// The two colors of the west -> east reduction; PE column i sends on sum_colors[i % 2].
  Color sum_colors[2] = {Color{1}, Color{2}};
  /// Local task id: [0] this PE's x has arrived (runs the local product and the reduction).
  TaskId tasks[1] = {TaskId{24}};
};

/// Elements of part k when `total` is split over `parts` as evenly as possible (the first
/// total % parts parts get one more).
constexpr std::uint32_t gemv_part_size(std::uint32_t total, std::uint32_t parts, std::uint32_t k) {
  return parts == 0 ? 0u : total / parts + (k < total % parts ? 1u : 0u);
}
/// First element of part k of that split.
constexpr std::uint32_t gemv_part_begin(std::uint32_t total, std::uint32_t parts, std::uint32_t k) {
  if (parts == 0) return 0;
  const std::uint32_t rem = total % parts;
  return k * (total / parts) + (k < rem ? k : rem);
}

/// Rows of A (and of y) held by the PEs of row j of the area (0 when j >= m).
constexpr std::uint32_t gemv_rows(const GemvParams& p, std::uint32_t j) { return gemv_part_size(p.m, p.area.height, j); }
/// First row of A held by PE row j.
constexpr std::uint32_t gemv_row_begin(const GemvParams& p, std::uint32_t j) { return gemv_part_begin(p.m, p.area.height, j); }
/// Columns of A (elements of x) held by the PEs of column i of the area (0 when i >= n).
constexpr std::uint32_t gemv_cols(const GemvParams& p, std::uint32_t i) { return gemv_part_size(p.n, p.area.width, i); }
/// First column of A held by PE column i.
constexpr std::uint32_t gemv_col_begin(const GemvParams& p, std::uint32_t i) { return gemv_part_begin(p.n, p.area.width, i); }
/// Rows of every PE's A slot, the leading dimension: ceil(m / py).
constexpr std::uint32_t gemv_mb(const GemvParams& p) { return gemv_rows(p, 0); }
/// Columns of every PE's A slot: ceil(n / px).
constexpr std::uint32_t gemv_nb(const GemvParams& p) { return gemv_cols(p, 0); }
/// Columns that take part: min(px, n).
constexpr std::uint16_t gemv_active_width(const GemvParams& p) {
  return static_cast<std::uint16_t>(p.n < p.area.width ? p.n : p.area.width);
}
/// Rows that take part: min(py, m).
constexpr std::uint16_t gemv_active_height(const GemvParams& p) {
  return static_cast<std::uint16_t>(p.m < p.area.height ? p.m : p.area.height);
}
/// The PEs that take part (hold a block of A): the first min(px, n) columns and min(py, m)
/// rows of the area. Copy "A" into this rectangle.
constexpr Rect gemv_active_area(const GemvParams& p) { return Rect{p.area.origin, gemv_active_width(p), gemv_active_height(p)}; }
/// The PEs that hold y after a run: the last active column, active rows. Read "y" there.
constexpr Rect gemv_y_area(const GemvParams& p) {
  const std::uint16_t w = gemv_active_width(p);
  return Rect{Coord{static_cast<std::uint16_t>(p.area.origin.x + (w ? w - 1 : 0)), p.area.origin.y}, 1,
              gemv_active_height(p)};
}
/// The PEs that hold b (with Params::bias): the west column, active rows. Write "b" there.
constexpr Rect gemv_b_area(const GemvParams& p) { return Rect{p.area.origin, 1, gemv_active_height(p)}; }

/// Calls f(i, pe, color, edge) for every active column i: x[gemv_col_begin(p, i) ..] enters
/// at PE `pe` (the column's north PE) through `edge` (north) on `color`. Host code passes
/// each to Program::add_input_stream when the area touches the fabric's north edge.
template <class F> constexpr void gemv_x_streams(const GemvParams& p, F&& f) {
  for (std::uint16_t i = 0; i < gemv_active_width(p); ++i)
    f(std::uint32_t{i}, Coord{static_cast<std::uint16_t>(p.area.origin.x + i), p.area.origin.y}, p.x_color, Port::north);
}

namespace gemv_detail {
constexpr std::uint64_t round4(std::uint64_t bytes) { return (bytes + 3) / 4 * 4; }
/// Accumulator columns every PE allocates: min(acc_cols, nb), at least 1.
constexpr std::uint32_t acc_width(const GemvParams& p) {
  const std::uint32_t nb = gemv_nb(p);
  const std::uint32_t w = p.acc_cols < nb ? p.acc_cols : nb;
  return w ? w : 1u;
}
constexpr bool color_ok(Color c) { return arch::wse2.color_usable(c) && arch::wse3.color_usable(c); }
constexpr bool task_ok(TaskId t) {
  return t.value >= arch::wse2.local_task_first && t.value <= arch::wse2.local_task_last &&
         t.value >= arch::wse3.local_task_first && t.value <= arch::wse3.local_task_last;
}
}  // namespace gemv_detail

/// Bytes of PE memory the PE with the most (the north-west PE) uses, kernel object included:
/// the A slot (mb·nb T), x (nb T), the accumulator (mb·min(acc_cols, nb) Acc), b (mb Acc,
/// with bias), each rounded up to 4 bytes as the emulator counts them.
template <class T = float, class Acc = T> constexpr std::uint64_t gemv_bytes_per_pe(const GemvParams& p);

/// nullptr when `p` is usable by the Gemv kernel with element type T and accumulator Acc
/// (and by gemv_routes), else a message naming the field and the allowed range. Host code
/// may call it before building a program; the kernel's init asserts it.
template <class T = float, class Acc = T> constexpr const char* gemv_params_error(const GemvParams& p);

/// Routes of Gemv over `p.area`: for every active column, x_color from the north edge of the
/// area down to the last active row, delivered to every PE on the way
/// (routes::broadcast_line); for every active row, the west -> east checkerboard chain on
/// sum_colors over the active columns (none with one active column).
template <class Sink> constexpr void gemv_routes(Sink&& sink, const GemvParams& p) {
  const std::uint16_t w = gemv_active_width(p), h = gemv_active_height(p);
  for (std::uint16_t i = 0; i < w; ++i)
    routes::broadcast_line(sink, p.x_color, Coord{static_cast<std::uint16_t>(p.area.origin.x + i), p.area.origin.y},
                           Port::south, h, Port::north, true);
  for (std::uint16_t j = 0; j < h; ++j)
    routes::checkerboard_chain(sink, p.sum_colors, Coord{p.area.origin.x, static_cast<std::uint16_t>(p.area.origin.y + j)},
                               Port::east, w);
}

/// Fills x_color, sum_colors and tasks[0] of `p` from the program's channel allocator
/// (wse::Program, or anything with allocate_color / allocate_task), so the kernel shares the
/// fabric with others without hand-picked numbers. Set area, m and n first. Each color is
/// asked over the bounding rectangle of its routes: x_color over gemv_active_area(p), a sum
/// color over the columns that send or receive on it; with one active column the sum colors
/// are not routed and get no grant (see channels.hpp). The task id is asked over
/// gemv_active_area(p). Askers read "<name> x_color", "<name> sum_colors[0]", ...
/// x_color is granted only inside the area: when the area does not touch the north edge, the
/// kernel north of it that feeds x must send on p.x_color.
template <class Channels> void gemv_channels(Channels& prog, GemvParams& p, const char* name = "gemv") {
  GemvParams probe = p;
  probe.x_color = Color{0};
  probe.sum_colors[0] = Color{1};
  probe.sum_colors[1] = Color{2};
  const channels_detail::Footprints fp = channels_detail::footprints([&](auto&& sink) { gemv_routes(sink, probe); });
  channels_detail::ColorSlot colors[3] = {{&p.x_color, "x_color", fp.box[0]},
                                          {&p.sum_colors[0], "sum_colors[0]", fp.box[1]},
                                          {&p.sum_colors[1], "sum_colors[1]", fp.box[2]}};
  channels_detail::TaskSlot tasks[1] = {{&p.tasks[0], "tasks[0]"}};
  channels_detail::fill(prog, name, colors, 3, tasks, 1, gemv_active_area(p));
}

/// The Gemv kernel (see the file comment). Use it through the aliases below.
template <class PE, class T, class Acc> struct GemvKernel {
  using Params = GemvParams;
  Params p{};
  std::uint32_t col = 0, row = 0;  // this PE's column and row in the area
  std::uint32_t rows = 0, cols = 0;  // extent of this PE's block of A
  std::uint32_t mb = 0;            // leading dimension of the A slot
  std::uint32_t w = 0;             // accumulator columns: min(acc_cols, cols)
  std::uint16_t last_col = 0;      // index of the last active column (holds y)
  bool active = false;             // the PE holds part of A
  Array<T> A;                      // (mb, nb) slot, column-major; exported "A"
  Array<T> X;                      // (nb) this column's slice of x; exported "x"
  Array<Acc> Y;                    // (rows, w) column-major running sums; Y[0, rows) = local product / y; "y"
  Array<Acc> B;                    // (mb) b, west column with bias only; exported "b"

  void init(PE& pe, const Params& params) {
    p = params;
    WSE_ASSERT((gemv_params_error<T, Acc>(p) == nullptr), "Gemv: bad Params (see gemv_params_error)");
    const Coord c = pe.coord();
    WSE_ASSERT(p.area.contains(c), "Gemv: PE outside Params::area");
    col = c.x - p.area.origin.x;
    row = c.y - p.area.origin.y;
    rows = gemv_rows(p, row);
    cols = gemv_cols(p, col);
    active = rows > 0 && cols > 0;
    if (!active) return;  // beyond m rows or n columns: idle
    mb = gemv_mb(p);
    const std::uint32_t nb = gemv_nb(p);
    w = p.acc_cols < cols ? p.acc_cols : cols;
    last_col = static_cast<std::uint16_t>(gemv_active_width(p) - 1);
    A = alloc<T>(pe, mb * nb);
    X = alloc<T>(pe, nb);
    Y = alloc<Acc>(pe, mb * gemv_detail::acc_width(p));
    export_symbol(pe, "A", A);
    export_symbol(pe, "x", X);
    export_symbol(pe, "y", Array<Acc>{Y.data(), mb});
    if (p.bias && col == 0) {
      B = alloc<Acc>(pe, mb);
      export_symbol(pe, "b", B);
    }
    export_function<&GemvKernel::gemv>(pe, "gemv");
    bind_local_task<&GemvKernel::on_x>(pe, p.tasks[0]);
  }

  // Exported "gemv": receive this column's slice of x, then on_x.
  void gemv(PE& pe) {
    if (!active) return;
    mov(pe, mem1d(X).with_length(cols), fabin<T>(p.x_color, cols), then_activate(p.tasks[0]));
  }

  // x is here: local product, then this PE's part of the row reduction.
  void on_x(PE& pe) {
    local_product(pe);
    const Mem1d<Acc> y0 = mem1d(Y).with_length(rows);
    if (last_col == 0) {  // one active column: y = Y0 (+ b)
      if (p.bias) add(pe, y0, y0, mem1d(B).with_length(rows));
      return;
    }
    const Color send = routes::checkerboard_send_color(p.sum_colors, col);
    const Color recv = routes::checkerboard_recv_color(p.sum_colors, col);
    if (col == 0) {
      if (p.bias) add(pe, fabout<Acc>(send, rows), y0, mem1d(B).with_length(rows), then_nothing());
      else mov(pe, fabout<Acc>(send, rows), y0, then_nothing());
    } else if (col < last_col) {
      add(pe, fabout<Acc>(send, rows), fabin<Acc>(recv, rows), y0, then_nothing());
    } else {
      add(pe, y0, fabin<Acc>(recv, rows), y0, then_nothing());
    }
  }

  // Y[:, 0] = A_block · x_block (rows elements), as in the file comment.
  void local_product(PE& pe) {
    mov(pe, mem1d(Y).with_length(rows * w), Acc{});
    const std::int32_t ld = static_cast<std::int32_t>(mb), r = static_cast<std::int32_t>(rows);
    for (std::uint32_t g = 0; g < cols; g += w) {
      const std::uint32_t k = cols - g < w ? cols - g : w;  // columns in this group
      const Mem4d<Acc> y = mem4d(Y, {rows, k}, {1, r});
      const Mem4d<T> a = mem4d(A, {rows, k}, {1, ld}, g * mb);
      const Mem4d<T> x = mem4d(X, {rows, k}, {0, 1}, g);
      mac(pe, y, y, a, x);
    }
    const Mem1d<Acc> all = mem1d(Y);
    for (std::uint32_t c = w; c > 1;) {  // pairwise tree over the w columns
      const std::uint32_t h = c / 2;
      const Mem1d<Acc> lo = all.with_length(rows * h);
      add(pe, lo, lo, all.with_offset((c - h) * rows).with_length(rows * h));
      c -= h;
    }
  }
};

/// y = A·x (+ b) in fp32.
template <class PE> using Gemv = GemvKernel<PE, float, float>;
/// Mixed precision: A and x f16, the products and sums in f32 (the mixed mac: each f16
/// product is exact in f32, one rounding per accumulation); b and y f32.
template <class PE> using GemvMixed = GemvKernel<PE, f16, float>;
/// Pure fp16: A, x, b, y f16; every mac and add rounds to f16.
template <class PE> using GemvF16 = GemvKernel<PE, f16, f16>;

template <class T, class Acc> constexpr std::uint64_t gemv_bytes_per_pe(const GemvParams& p) {
  using gemv_detail::round4;
  const std::uint64_t mb = gemv_mb(p), nb = gemv_nb(p), w = gemv_detail::acc_width(p);
  return round4(sizeof(GemvKernel<ProbeBackend, T, Acc>)) + round4(mb * nb * sizeof(T)) + round4(nb * sizeof(T)) +
         round4(mb * w * sizeof(Acc)) + (p.bias ? round4(mb * sizeof(Acc)) : 0);
}

template <class T, class Acc> constexpr const char* gemv_params_error(const GemvParams& p) {
  if (p.area.width == 0 || p.area.height == 0) return "Gemv: area is empty (area.width and area.height must be >= 1)";
  if (p.m == 0) return "Gemv: m (rows of A) must be >= 1";
  if (p.n == 0) return "Gemv: n (columns of A) must be >= 1";
  if (p.acc_cols == 0) return "Gemv: acc_cols must be >= 1 (default 8; values above ceil(n/px) act as ceil(n/px))";
  if (gemv_bytes_per_pe<T, Acc>(p) > arch::max_pe_memory_bytes)
    return "Gemv: the per-PE block does not fit the 48 KiB PE memory: gemv_bytes_per_pe (A slot ceil(m/py) x "
           "ceil(n/px), x, acc_cols accumulator columns, b) must be <= 49152 bytes; use a larger area or a smaller "
           "acc_cols";
  if (!gemv_detail::color_ok(p.x_color)) return "Gemv: x_color is not usable (allowed 0..20; 21..23 are reserved)";
  if (!gemv_detail::color_ok(p.sum_colors[0])) return "Gemv: sum_colors[0] is not usable (allowed 0..20; 21..23 are reserved)";
  if (!gemv_detail::color_ok(p.sum_colors[1])) return "Gemv: sum_colors[1] is not usable (allowed 0..20; 21..23 are reserved)";
  if (p.x_color == p.sum_colors[0] || p.x_color == p.sum_colors[1] || p.sum_colors[0] == p.sum_colors[1])
    return "Gemv: x_color, sum_colors[0] and sum_colors[1] must be three different colors";
  if (!gemv_detail::task_ok(p.tasks[0])) return "Gemv: tasks[0] is not a local task id on every arch (allowed 8..30)";
  if (p.tasks[0].value == p.x_color.value || p.tasks[0].value == p.sum_colors[0].value ||
      p.tasks[0].value == p.sum_colors[1].value)
    return "Gemv: tasks[0] equals one of the colors (a color's data-task id on WSE-2)";
  return nullptr;
}

}  // namespace wse::kernels
