#pragma once
/// \file
/// GemmSumma: C = A·B (fp32) with SUMMA on a px × py rectangle of PEs. Freestanding kernel
/// (pe + fabric layers only).
///
/// Layout. M = py·mb, N = px·nb, K = k = px·ka = py·kb. PE (x, y) (column x, row y, counted
/// from the rectangle's north-west corner) holds three home blocks, all column-major:
///   A(y, x): rows [y·mb, y·mb+mb) and columns [x·ka, x·ka+ka) of A   (mb, ka), symbol "A"
///   B(y, x): rows [y·kb, y·kb+kb) and columns [x·nb, x·nb+nb) of B   (kb, nb), symbol "B"
///   C(y, x): rows [y·mb, y·mb+mb) and columns [x·nb, x·nb+nb) of C   (mb, nb), symbol "C"
/// On a square grid ka = kb: the usual SUMMA distribution. On a rectangle the K-blocks of A
/// (px of them) and of B (py of them) have different widths; the kernel walks K in panels of
/// g = gcd(ka, kb) columns, so every panel lies inside one A block and one B block.
///
/// Algorithm. For each panel s = 0 .. k/g-1 in ascending order, with a = s·g / ka and
/// b = s·g / kb: every PE of column a sends its A block along its row, every PE of row b
/// sends its B block down/up its column (broadcasts of home blocks; a block is broadcast once
/// and serves all ka/g or kb/g panels inside it), and every PE accumulates
/// C += A(y, a)[:, panel] · B(b, x)[panel, :] as g rank-1 updates, each ONE fused
/// multiply-add DSD op over the whole mb·nb block (gemm_common.hpp). Every PE adds the same
/// products in the same order whatever the timing, so C is bit-reproducible.
///
/// Communication: one multicast per broadcast, cut through by the routers (no PE forwards
/// anything). The row broadcast of root column r runs on color row_colors[r % mr] with
/// mr = ceil(px/4); that color's route at every PE of the row has one switch position per
/// root that uses it (roots r, r+mr, r+2mr, r+3mr: at most 4 positions), in ascending root
/// order, in ring mode:
///   the root:          RAMP -> W|E          (the sides that exist)
///   PEs east of it:    W -> RAMP|E          (deliver, forward east)
///   PEs west of it:    E -> RAMP|W          (deliver, forward west)
/// A root sends its block, then one control wavelet that advances the switch; the control
/// is routed with the current position, so it reaches every router of the row (the root's
/// own included) right behind the block's last wavelet, and each router moves to the next
/// root's position. The next root's data waits in its output queue until its own router has
/// switched, so no PE ever waits for a step number and the broadcasts cannot overtake each
/// other (FIFO order per color and link). After the last root the ring wraps to position 0,
/// ready for the next launch. Columns work the same way with col_colors, N and S.
///
/// Why ceil(px/4) colors and not one: a control wavelet advances every router it passes,
/// and a row broadcast passes every router of the row, so all PEs of a row share one
/// switch index per color; each root needs its own index (its own configuration of the
/// row), and a route has 4 positions. A 32 × 32 grid uses 8 + 8 = 16 colors. (Directional
/// lanes whose roots send before they forward escape that limit, but they deliver the
/// blocks of a row in an order that depends on the column and those of a column in one that
/// depends on the row, so A and B blocks would not pair up without buffering many blocks.)
///
/// Synchronisation. Receives are issued in ascending block order, one per matrix at a time,
/// into two receive buffers per matrix (block n goes to buffer n % 2), and a block is
/// received only when the block two before it is no longer needed. Each op's completion
/// activates its own task id, and only one op per task id is in flight, so no completion is
/// lost to one-bit activation. Deadlock-free for any timing: panel s only needs broadcasts
/// that need panels < s to be done.
///
/// Use (host side):
///   wse::kernels::SummaParams p{.area = prog.grid(), .mb = 32, .nb = 32, .k = 1024};
///   wse::kernels::summa_channels(prog, p);  // colors and task ids from the program's allocator
///   // check wse::kernels::summa_params_error(p) == nullptr
///   prog.add_region<wse::kernels::GemmSumma>(p.area, p);
///   wse::kernels::summa_routes(prog.route_sink(), p);
///   rt.memcpy_h2d<float>("A", a_blocks, p.area, p.mb * ka);   // ka = k / px
///   rt.memcpy_h2d<float>("B", b_blocks, p.area, kb * p.nb);   // kb = k / py
///   rt.launch("gemm"); rt.run();
///   c_blocks = rt.read<float>("C", p.area, p.mb * p.nb);
///
/// Exports: symbols "A", "B" (unchanged by a launch) and "C"; function "gemm", which
/// computes C = A·B (or C += A·B with Params::accumulate). It may be launched again.
///
/// Requirements (summa_params_error checks them; init asserts them):
///   - mb, nb, k >= 1; k divisible by px and by py;
///   - px, py <= 4 · summa_max_colors_per_axis (40); the first ceil(px/4) row_colors and the
///     first ceil(py/4) col_colors (none when px or py is 1) are distinct usable colors
///     (0..20); the 2 task ids are distinct local ids valid on WSE-2 and WSE-3 (8..30) and
///     none equals a used color (summa_channels picks such values);
///   - PE memory: summa_floats_per_pe(p) floats plus the kernel object (192 bytes) fit
///     48 KiB. 32×32×32 blocks: 7 blocks = 28 KiB (3 home + 2 + 2 receive buffers);
///   - the routes come from summa_routes with the same Params.
/// Resources per PE: ceil(px/4) + ceil(py/4) colors routed (each delivered to RAMP), 2 local
/// task ids, at most 6 asynchronous ops in flight (a receive of A and one of B; the PE's own
/// A and B blocks and their control wavelets, until they have left).
#include <cstdint>
#include <wse/kernel.hpp>

#include "channels.hpp"
#include "gemm_common.hpp"

namespace wse::kernels {

/// Colors per axis Params can hold: grids up to 40 PEs wide and tall.
inline constexpr unsigned summa_max_colors_per_axis = 10;

/// Colors the broadcasts along a line of `n` PEs use: ceil(n / 4), none for a single PE.
constexpr unsigned summa_colors_needed(std::uint32_t n) { return n < 2 ? 0u : (n + 3) / 4; }

/// Parameters of GemmSumma (the same for every PE of the region).
struct SummaParams {
  Rect area{};             ///< the PEs running the kernel: px = area.width, py = area.height
  std::uint32_t mb = 1;    ///< rows of the A and C blocks
  std::uint32_t nb = 1;    ///< columns of the B and C blocks
  std::uint32_t k = 1;     ///< inner dimension of the whole product (K = px·ka = py·kb)
  bool accumulate = false; ///< "gemm" computes C += A·B instead of C = A·B
  /// Colors of the A broadcasts along rows; root column r uses row_colors[r % ceil(px/4)].
  Color row_colors[summa_max_colors_per_axis] = {Color{0}, Color{1}, Color{2}, Color{3}, Color{4},
                                                 Color{5}, Color{6}, Color{7}, Color{8}, Color{9}};
  /// Colors of the B broadcasts along columns; root row r uses col_colors[r % ceil(py/4)].
  Color col_colors[summa_max_colors_per_axis] = {Color{10}, Color{11}, Color{12}, Color{13}, Color{14},
                                                 Color{15}, Color{16}, Color{17}, Color{18}, Color{19}};
  /// Local task ids: [0] an A block received, [1] a B block received.
  TaskId tasks[2] = {TaskId{24}, TaskId{25}};
};

/// Floats of PE memory GemmSumma allocates per PE: the three home blocks, and two receive
/// buffers for A (when px > 1) and for B (when py > 1).
constexpr std::uint64_t summa_floats_per_pe(const SummaParams& p) {
  const std::uint64_t px = p.area.width ? p.area.width : 1, py = p.area.height ? p.area.height : 1;
  const std::uint64_t a = std::uint64_t{p.mb} * (p.k / px), b = (p.k / py) * std::uint64_t{p.nb};
  return std::uint64_t{p.mb} * p.nb + (px > 1 ? 3 : 1) * a + (py > 1 ? 3 : 1) * b;
}

/// nullptr when `p` is usable by GemmSumma and summa_routes, else a message saying why.
/// Host code may call it before building a program; GemmSumma::init asserts it.
constexpr const char* summa_params_error(const SummaParams& p) {
  if (p.area.width == 0 || p.area.height == 0) return "GemmSumma: area is empty";
  if (p.mb == 0 || p.nb == 0 || p.k == 0) return "GemmSumma: mb, nb and k must be at least 1";
  if (p.k % p.area.width != 0) return "GemmSumma: k must be divisible by the grid width px";
  if (p.k % p.area.height != 0) return "GemmSumma: k must be divisible by the grid height py";
  const unsigned mr = summa_colors_needed(p.area.width), mc = summa_colors_needed(p.area.height);
  if (mr > summa_max_colors_per_axis || mc > summa_max_colors_per_axis)
    return "GemmSumma: the grid is wider or taller than 40 PEs (4 broadcast roots per color, 10 colors per axis)";
  if (summa_floats_per_pe(p) * 4 > arch::max_pe_memory_bytes)
    return "GemmSumma: the blocks (3 home blocks and 4 receive buffers) do not fit the 48 KiB PE memory";
  Color used[2 * summa_max_colors_per_axis]{};
  for (unsigned i = 0; i < mr; ++i) used[i] = p.row_colors[i];
  for (unsigned i = 0; i < mc; ++i) used[mr + i] = p.col_colors[i];
  if (const char* e = gemm_detail::check_ids(used, mr + mc, p.tasks, 2)) return e;
  return nullptr;
}

namespace gemm_detail {
/// Switch position of PE `i` on a line of `len` PEs (`lo` = port toward i-1, `hi` = toward
/// i+1) while PE `root` broadcasts: the root sends both ways, the others deliver to RAMP and
/// pass the block on away from the root.
constexpr RoutePosition broadcast_position(std::uint32_t i, std::uint32_t root, std::uint32_t len, Port lo, Port hi) {
  if (i == root) {
    PortSet tx;
    if (i > 0) tx = tx | lo;
    if (i + 1 < len) tx = tx | hi;
    return RoutePosition{Port::ramp, tx};
  }
  if (i > root) return RoutePosition{lo, i + 1 < len ? Port::ramp | hi : PortSet{Port::ramp}};
  return RoutePosition{hi, i > 0 ? Port::ramp | lo : PortSet{Port::ramp}};
}

/// Route of color number `ci` (of `m`) at PE `i` of a line of `len`: one position per root
/// r = ci, ci+m, ... < len, in ascending order, ring mode.
constexpr ColorRoute broadcast_route(std::uint32_t i, std::uint32_t ci, std::uint32_t m, std::uint32_t len, Port lo, Port hi) {
  ColorRoute route;
  route.count = 0;
  for (std::uint32_t r = ci; r < len; r += m) {
    route.positions[route.count < max_switch_positions ? route.count : 0] = broadcast_position(i, r, len, lo, hi);
    ++route.count;  // more than 4 is refused by Program::set_route; summa_params_error prevents it
  }
  route.ring = true;
  return route;
}
}  // namespace gemm_detail

/// Routes of GemmSumma over `p.area`: for every row and each of its ceil(px/4) row colors,
/// and every column and each of its ceil(py/4) column colors, the switch positions described
/// in the file comment. A 1-wide (1-tall) area needs no row (column) routes.
template <class Sink> constexpr void summa_routes(Sink&& sink, const SummaParams& p) {
  const std::uint32_t px = p.area.width, py = p.area.height;
  const unsigned mr = summa_colors_needed(px), mc = summa_colors_needed(py);
  for (std::uint16_t dy = 0; dy < py; ++dy)
    for (std::uint16_t dx = 0; dx < px; ++dx) {
      const Coord c{static_cast<std::uint16_t>(p.area.origin.x + dx), static_cast<std::uint16_t>(p.area.origin.y + dy)};
      for (unsigned ci = 0; ci < mr; ++ci)
        sink(c, p.row_colors[ci], gemm_detail::broadcast_route(dx, ci, mr, px, Port::west, Port::east));
      for (unsigned ci = 0; ci < mc; ++ci)
        sink(c, p.col_colors[ci], gemm_detail::broadcast_route(dy, ci, mc, py, Port::north, Port::south));
    }
}

/// Fills the first ceil(px/4) row_colors, the first ceil(py/4) col_colors and both task ids
/// of `p` from the program's channel allocator (wse::Program, or anything with
/// allocate_color / allocate_task); the other colors are unused and keep their values. Set
/// the area first. Every broadcast color is routed at every PE of the area, so each is asked
/// over p.area, as are the task ids. Askers read "<name> row_colors[0]", ... Does nothing
/// for an area wider or taller than 40 PEs (summa_params_error reports it).
template <class Channels> void summa_channels(Channels& prog, SummaParams& p, const char* name = "summa") {
  static constexpr const char* row_names[summa_max_colors_per_axis] = {
      "row_colors[0]", "row_colors[1]", "row_colors[2]", "row_colors[3]", "row_colors[4]",
      "row_colors[5]", "row_colors[6]", "row_colors[7]", "row_colors[8]", "row_colors[9]"};
  static constexpr const char* col_names[summa_max_colors_per_axis] = {
      "col_colors[0]", "col_colors[1]", "col_colors[2]", "col_colors[3]", "col_colors[4]",
      "col_colors[5]", "col_colors[6]", "col_colors[7]", "col_colors[8]", "col_colors[9]"};
  const unsigned mr = summa_colors_needed(p.area.width), mc = summa_colors_needed(p.area.height);
  if (mr > summa_max_colors_per_axis || mc > summa_max_colors_per_axis) return;
  SummaParams probe = p;
  for (unsigned i = 0; i < mr; ++i) probe.row_colors[i] = Color{i};
  for (unsigned i = 0; i < mc; ++i) probe.col_colors[i] = Color{mr + i};
  const channels_detail::Footprints fp = channels_detail::footprints([&](auto&& sink) { summa_routes(sink, probe); });
  channels_detail::ColorSlot colors[2 * summa_max_colors_per_axis]{};
  for (unsigned i = 0; i < mr; ++i) colors[i] = {&p.row_colors[i], row_names[i], fp.box[i]};
  for (unsigned i = 0; i < mc; ++i) colors[mr + i] = {&p.col_colors[i], col_names[i], fp.box[mr + i]};
  channels_detail::TaskSlot tasks[2] = {{&p.tasks[0], "tasks[0]"}, {&p.tasks[1], "tasks[1]"}};
  channels_detail::fill(prog, name, colors, mr + mc, tasks, 2, p.area);
}

/// The SUMMA GEMM kernel (see the file comment).
template <class PE> struct GemmSumma {
  using Params = SummaParams;
  Params p{};
  std::uint32_t x = 0, y = 0;    // this PE's column and row in the area
  std::uint32_t px = 1, py = 1;  // grid width and height
  std::uint32_t ka = 0, kb = 0;  // columns of the A blocks, rows of the B blocks
  std::uint32_t g = 0;           // panel width gcd(ka, kb)
  std::uint32_t panels = 0;      // k / g
  unsigned mr = 0, mc = 0;       // row / column colors in use
  Array<float> A;                // (mb, ka) home block of A, column-major; exported "A"
  Array<float> B;                // (kb, nb) home block of B, column-major; exported "B"
  Array<float> C;                // (mb, nb) block of C, column-major; exported "C"
  Array<float> a_recv;           // (2, mb*ka): two (mb, ka) column-major A blocks from other columns
  Array<float> b_recv;           // (2, kb*nb): two (kb, nb) column-major B blocks from other rows
  std::uint32_t ctrl[1] = {};    // (1) payload of the control wavelet that advances a switch
  std::uint32_t panel = 0;       // next panel to accumulate
  std::uint32_t a_have = 0;      // A blocks 0 .. a_have-1 are available (received or home)
  std::uint32_t b_have = 0;      // B blocks 0 .. b_have-1 are available
  bool a_busy = false;           // the receive of A block a_have is in flight
  bool b_busy = false;           // the receive of B block b_have is in flight

  void init(PE& pe, const Params& params) {
    p = params;
    WSE_ASSERT(summa_params_error(p) == nullptr, "GemmSumma: bad Params (see summa_params_error)");
    const Coord c = pe.coord();
    WSE_ASSERT(p.area.contains(c), "GemmSumma: PE outside Params::area");
    x = c.x - p.area.origin.x;
    y = c.y - p.area.origin.y;
    px = p.area.width;
    py = p.area.height;
    ka = p.k / px;
    kb = p.k / py;
    g = gemm_detail::gcd(ka, kb);
    panels = p.k / g;
    mr = summa_colors_needed(px);
    mc = summa_colors_needed(py);
    A = alloc<float>(pe, p.mb * ka);
    B = alloc<float>(pe, kb * p.nb);
    C = alloc<float>(pe, p.mb * p.nb);
    if (px > 1) a_recv = alloc<float>(pe, 2 * p.mb * ka);
    if (py > 1) b_recv = alloc<float>(pe, 2 * kb * p.nb);
    ctrl[0] = ControlPayload{.advance_switch = true}.encode();
    export_symbol(pe, "A", A);
    export_symbol(pe, "B", B);
    export_symbol(pe, "C", C);
    export_function<&GemmSumma::gemm>(pe, "gemm");
    bind_local_task<&GemmSumma::on_a_received>(pe, p.tasks[0]);
    bind_local_task<&GemmSumma::on_b_received>(pe, p.tasks[1]);
  }

  // Exported "gemm": C = A·B (or C += A·B).
  void gemm(PE& pe) {
    if (!p.accumulate) mov(pe, mem1d(C), 0.0f);
    panel = a_have = b_have = 0;
    a_busy = b_busy = false;
    // Broadcast the home blocks, each followed by the control wavelet that moves every router
    // of the row (column) on to the next root of this color. They wait in the output queue
    // until this PE's router has switched to its own position; ops on one color run in issue
    // order, so the control leaves right behind the block's last wavelet.
    if (px > 1) {
      mov(pe, fabout<float>(row_color(x), p.mb * ka), mem1d(A), then_nothing());
      mov(pe, fabout<std::uint32_t>(row_color(x), 1).as_control(), mem1d(ctrl), then_nothing());
    }
    if (py > 1) {
      mov(pe, fabout<float>(col_color(y), kb * p.nb), mem1d(B), then_nothing());
      mov(pe, fabout<std::uint32_t>(col_color(y), 1).as_control(), mem1d(ctrl), then_nothing());
    }
    pump(pe);
  }

  Color row_color(std::uint32_t root) const { return p.row_colors[root % mr]; }
  Color col_color(std::uint32_t root) const { return p.col_colors[root % mc]; }

  // The (mb, ka) A block number n: the home block or its receive buffer.
  Array<float> a_block(std::uint32_t n) const {
    return n == x ? A : Array<float>{a_recv.data() + (n % 2) * p.mb * ka, p.mb * ka};
  }
  // The (kb, nb) B block number n.
  Array<float> b_block(std::uint32_t n) const {
    return n == y ? B : Array<float>{b_recv.data() + (n % 2) * kb * p.nb, kb * p.nb};
  }

  // Issues the receives that may start and accumulates every panel whose blocks are here.
  void pump(PE& pe) {
    for (bool progress = true; progress;) {
      progress = false;
      // Blocks before these are no longer needed, so their buffers are free.
      const std::uint32_t a_need = panel < panels ? panel * g / ka : px;
      const std::uint32_t b_need = panel < panels ? panel * g / kb : py;
      if (!a_busy && a_have < px) {
        if (a_have == x) {
          ++a_have;  // the home block
          progress = true;
        } else if (a_have <= a_need + 1) {  // buffer a_have % 2 last held block a_have - 2
          mov(pe, mem1d(a_block(a_have)), fabin<float>(row_color(a_have), p.mb * ka), then_activate(p.tasks[0]));
          a_busy = true;
        }
      }
      if (!b_busy && b_have < py) {
        if (b_have == y) {
          ++b_have;
          progress = true;
        } else if (b_have <= b_need + 1) {
          mov(pe, mem1d(b_block(b_have)), fabin<float>(col_color(b_have), kb * p.nb), then_activate(p.tasks[1]));
          b_busy = true;
        }
      }
      while (panel < panels && panel * g / ka < a_have && panel * g / kb < b_have) {
        const std::uint32_t k0 = panel * g;  // first column of A (row of B) in this panel
        gemm_detail::accumulate_panel(pe, C, p.mb, p.nb, a_block(k0 / ka), k0 % ka, b_block(k0 / kb), kb, k0 % kb, g);
        ++panel;
        progress = true;
      }
    }
  }

  void on_a_received(PE& pe) {
    a_busy = false;
    ++a_have;
    pump(pe);
  }
  void on_b_received(PE& pe) {
    b_busy = false;
    ++b_have;
    pump(pe);
  }
};

}  // namespace wse::kernels
