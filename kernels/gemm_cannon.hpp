#pragma once
/// \file
/// GemmCannon: C = A·B (fp32) with Cannon's algorithm on a p × p square of PEs, using only
/// neighbour shifts of at most two hops on a mesh without wrap-around links (the interleaved
/// ring placement of WaferLLM's MeshGEMM). Freestanding kernel (pe + fabric layers only).
///
/// Logical grid. Cannon works on a logical p × p torus: logical PE (i, j) (row i, column j)
/// starts with the skewed blocks A(i, (i+j) mod p) and B((i+j) mod p, j) and accumulates
/// C(i, j) += A·B of the blocks it holds, p times; between two steps every A block moves one
/// logical column left (j -> j-1 mod p) and every B block one logical row up (i -> i-1 mod p).
/// The skew is done by the host when it places the blocks (cannon_a_block / cannon_b_block
/// say which block goes where); the kernel never moves a block further than one ring step.
///
/// Placement. Logical index l of a ring of p sits at physical index cannon_physical(p, l):
///   l < p/2 (2l < p):  2l                 (the even slots, going out left to right)
///   otherwise:         2(p-1-l) + 1       (the odd slots, coming back right to left)
/// e.g. p = 6: physical 0..5 hold logical 0, 5, 1, 4, 2, 3; p = 5: 0, 4, 1, 3, 2. Ring
/// neighbours l and l-1 are then at most two physical hops apart, including the ring's
/// wrap-around (logical 0 <-> p-1 is physical 0 <-> 1), so the torus needs no long link.
/// The same map places logical columns along x and logical rows along y: logical (i, j) is
/// the PE at (x, y) = (cannon_physical(p, j), cannon_physical(p, i)) of the area.
///
/// Communication. One shift along a row is p point-to-point transfers (logical l -> l-1),
/// each a routes::path of 1 or 2 hops; the PE in the middle of a 2-hop transfer only forwards
/// it in its router. Transfers heading west (toward lower x) use row_colors[0] or [1], those
/// heading east row_colors[2] or [3], alternating along the row (cannon_shift_color_slot), so
/// that at every PE a color has a single role (send, receive, or forward): 4 colors for the
/// A shifts, 4 more (col_colors, north/south) for the B shifts; routes are fixed, no
/// switches. Every link direction carries at most one block per shift.
///
/// Synchronisation. A step issues four asynchronous ops: send the A and B blocks it holds,
/// receive the next ones into the other half of a double buffer, then accumulates C with the
/// current blocks (kb rank-1 updates, each ONE fused multiply-add DSD op over the whole
/// mb·nb block, gemm_common.hpp). Each op's completion activates its own task id; when all
/// four have fired the next step starts. A neighbour that is a step ahead leaves its next
/// block waiting in this PE's input queue (back-pressure), so any timing gives the same
/// result; every PE adds the same products in the same order, bit-reproducibly.
///
/// Use (host side):
///   wse::kernels::CannonParams p{.area = {{0, 0}, P, P}, .mb = 32, .nb = 32, .kb = 32};
///   wse::kernels::cannon_channels(prog, p);  // colors and task ids from the program's allocator
///   // check wse::kernels::cannon_params_error(p) == nullptr
///   prog.add_region<wse::kernels::GemmCannon>(p.area, p);
///   wse::kernels::cannon_routes(prog.route_sink(), p);
///   // PE (x, y) of the area gets A block (i, cannon_a_block(P, i, j)), B block
///   // (cannon_b_block(P, i, j), j) with i = cannon_logical(P, y), j = cannon_logical(P, x):
///   rt.memcpy_h2d<float>("A", a_blocks, p.area, p.mb * p.kb);
///   rt.memcpy_h2d<float>("B", b_blocks, p.area, p.kb * p.nb);
///   rt.launch("gemm"); rt.run();
///   c_blocks = rt.read<float>("C", p.area, p.mb * p.nb);   // C block (i, j) at that PE
///
/// Exports: symbols "A" (mb, kb) and "B" (kb, nb), column-major, the skewed blocks; "C"
/// (mb, nb) column-major; function "gemm": C = A·B (or C += A·B with Params::accumulate).
/// With keep_inputs (the default) a launch makes p shifts instead of p-1, so every block is
/// back where the host put it ("A" and "B" unchanged, the kernel can be launched again);
/// without it, "A" and "B" hold shifted blocks afterwards.
///
/// Requirements (cannon_params_error checks them; init asserts them):
///   - a square area (p = width = height), mb, nb, kb >= 1;
///   - the 4 row_colors and 4 col_colors are distinct usable colors (0..20) (none are used
///     when p = 1); the 4 task ids are distinct local ids valid on WSE-2 and WSE-3 (8..30)
///     and none equals a color (cannon_channels picks such values);
///   - PE memory: cannon_floats_per_pe(p) floats (2 A + 2 B + 1 C blocks) plus the kernel
///     object (112 bytes) fit 48 KiB. 32×32×32 blocks: 5 blocks = 20 KiB;
///   - the routes come from cannon_routes with the same Params.
/// Resources per PE: 8 colors routed (per axis: 1 sent, 1 received, at most 1 forwarded),
/// 4 local task ids, 4 asynchronous ops in flight.
#include <cstdint>
#include <wse/kernel.hpp>

#include "channels.hpp"
#include "gemm_common.hpp"

namespace wse::kernels {

/// Parameters of GemmCannon (the same for every PE of the region).
struct CannonParams {
  Rect area{};              ///< p × p PEs running the kernel
  std::uint32_t mb = 1;     ///< rows of the A and C blocks
  std::uint32_t nb = 1;     ///< columns of the B and C blocks
  std::uint32_t kb = 1;     ///< columns of the A blocks = rows of the B blocks (K = p·kb)
  bool accumulate = false;  ///< "gemm" computes C += A·B instead of C = A·B
  bool keep_inputs = true;  ///< shift p times (not p-1) so A and B end where they started
  /// Colors of the A shifts along rows: [0], [1] westward transfers, [2], [3] eastward.
  Color row_colors[4] = {Color{0}, Color{1}, Color{2}, Color{3}};
  /// Colors of the B shifts along columns: [0], [1] northward transfers, [2], [3] southward.
  Color col_colors[4] = {Color{4}, Color{5}, Color{6}, Color{7}};
  /// Local task ids completing: [0] A sent, [1] A received, [2] B sent, [3] B received.
  TaskId tasks[4] = {TaskId{24}, TaskId{25}, TaskId{26}, TaskId{27}};
};

/// Physical index (0..p-1, along x or y) of logical ring index l (see the file comment).
constexpr std::uint32_t cannon_physical(std::uint32_t p, std::uint32_t l) { return 2 * l < p ? 2 * l : 2 * (p - 1 - l) + 1; }
/// Logical ring index of physical index q: the inverse of cannon_physical.
constexpr std::uint32_t cannon_logical(std::uint32_t p, std::uint32_t q) { return q % 2 == 0 ? q / 2 : p - 1 - (q - 1) / 2; }
/// Column of A (and row of B) of the block logical PE (i, j) starts with: (i + j) mod p.
/// It holds A(i, cannon_a_block(p, i, j)) and B(cannon_b_block(p, i, j), j).
constexpr std::uint32_t cannon_a_block(std::uint32_t p, std::uint32_t i, std::uint32_t j) { return (i + j) % p; }
constexpr std::uint32_t cannon_b_block(std::uint32_t p, std::uint32_t i, std::uint32_t j) { return (i + j) % p; }

/// Slot (0..3, into row_colors or col_colors) of the transfer from physical index `src` to
/// physical index `dst` (1 or 2 hops): toward lower indices slots 0/1, higher 2/3,
/// alternating so no PE has two roles on one color.
constexpr unsigned cannon_shift_color_slot(std::uint32_t src, std::uint32_t dst) {
  return dst < src ? ((src + 1) / 2) % 2 : 2 + ((src + 1) / 2 + 1) % 2;
}

/// Floats of PE memory GemmCannon allocates per PE: A and B double-buffered, and C.
constexpr std::uint64_t cannon_floats_per_pe(const CannonParams& p) {
  return 2 * std::uint64_t{p.mb} * p.kb + 2 * std::uint64_t{p.kb} * p.nb + std::uint64_t{p.mb} * p.nb;
}

/// nullptr when `p` is usable by GemmCannon and cannon_routes, else a message saying why.
/// Host code may call it before building a program; GemmCannon::init asserts it.
constexpr const char* cannon_params_error(const CannonParams& p) {
  if (p.area.width == 0 || p.area.height == 0) return "GemmCannon: area is empty";
  if (p.area.width != p.area.height) return "GemmCannon: the area must be square (p x p PEs)";
  if (p.mb == 0 || p.nb == 0 || p.kb == 0) return "GemmCannon: mb, nb and kb must be at least 1";
  if (cannon_floats_per_pe(p) * 4 > arch::max_pe_memory_bytes)
    return "GemmCannon: the blocks (2 A, 2 B, 1 C) do not fit the 48 KiB PE memory";
  Color used[8]{};
  for (unsigned i = 0; i < 4; ++i) {
    used[i] = p.row_colors[i];
    used[4 + i] = p.col_colors[i];
  }
  if (const char* e = gemm_detail::check_ids(used, p.area.width > 1 ? 8 : 0, p.tasks, 4)) return e;
  return nullptr;
}

/// Routes of GemmCannon over `p.area`: in every row, the p transfers logical l -> l-1 of the
/// A shift on row_colors; in every column, those of the B shift on col_colors (see the file
/// comment). A 1×1 area needs none.
template <class Sink> constexpr void cannon_routes(Sink&& sink, const CannonParams& p) {
  const std::uint32_t n = p.area.width;
  if (n < 2) return;
  for (std::uint32_t line = 0; line < n; ++line)
    for (std::uint32_t l = 0; l < n; ++l) {
      const std::uint32_t src = cannon_physical(n, l), dst = cannon_physical(n, (l + n - 1) % n);
      const unsigned slot = cannon_shift_color_slot(src, dst);
      const auto hops = static_cast<std::uint16_t>(dst > src ? dst - src : src - dst);
      // Along the row `line` (A), then along the column `line` (B).
      const Coord row_from{static_cast<std::uint16_t>(p.area.origin.x + src), static_cast<std::uint16_t>(p.area.origin.y + line)};
      routes::path(sink, p.row_colors[slot], row_from, dst > src ? Port::east : Port::west, static_cast<std::uint16_t>(hops + 1));
      const Coord col_from{static_cast<std::uint16_t>(p.area.origin.x + line), static_cast<std::uint16_t>(p.area.origin.y + src)};
      routes::path(sink, p.col_colors[slot], col_from, dst > src ? Port::south : Port::north, static_cast<std::uint16_t>(hops + 1));
    }
}

/// Fills the 8 colors and 4 task ids of `p` from the program's channel allocator
/// (wse::Program, or anything with allocate_color / allocate_task). Set the area first.
/// Each color is asked over the bounding rectangle of its transfers' paths, or over the hull
/// of all of them when that rectangle misses another of the kernel's colors (see
/// channels.hpp); a color no transfer uses (slots 0 and 2 at p = 2, all at p = 1) gets no
/// grant. The task ids are asked over p.area. Askers read "<name> row_colors[0]", ...
template <class Channels> void cannon_channels(Channels& prog, CannonParams& p, const char* name = "cannon") {
  static constexpr const char* names[8] = {"row_colors[0]", "row_colors[1]", "row_colors[2]", "row_colors[3]",
                                           "col_colors[0]", "col_colors[1]", "col_colors[2]", "col_colors[3]"};
  static constexpr const char* task_names[4] = {"tasks[0]", "tasks[1]", "tasks[2]", "tasks[3]"};
  CannonParams probe = p;
  for (unsigned i = 0; i < 4; ++i) {
    probe.row_colors[i] = Color{i};
    probe.col_colors[i] = Color{4 + i};
  }
  const channels_detail::Footprints fp = channels_detail::footprints([&](auto&& sink) { cannon_routes(sink, probe); });
  channels_detail::ColorSlot colors[8]{};
  for (unsigned i = 0; i < 8; ++i) colors[i] = {i < 4 ? &p.row_colors[i] : &p.col_colors[i - 4], names[i], fp.box[i]};
  channels_detail::TaskSlot tasks[4]{};
  for (unsigned t = 0; t < 4; ++t) tasks[t] = {&p.tasks[t], task_names[t]};
  channels_detail::fill(prog, name, colors, 8, tasks, 4, p.area);
}

/// The Cannon GEMM kernel (see the file comment).
template <class PE> struct GemmCannon {
  using Params = CannonParams;
  Params p{};
  std::uint32_t n = 1;           // grid side p
  std::uint32_t shifts = 0;      // shifts per launch: p (keep_inputs) or p-1; none when p = 1
  Color a_send{}, a_recv{};      // A leaves toward logical column j-1, arrives from j+1
  Color b_send{}, b_recv{};      // B leaves toward logical row i-1, arrives from i+1
  Array<float> A;                // (2, mb*kb): two (mb, kb) column-major A blocks; half 0 exported "A"
  Array<float> B;                // (2, kb*nb): two (kb, nb) column-major B blocks; half 0 exported "B"
  Array<float> C;                // (mb, nb) block of C, column-major; exported "C"
  std::uint32_t step = 0;        // steps started in this launch
  std::uint32_t cur = 0;         // half of A and B holding this step's blocks
  std::uint32_t done = 0;        // completions of this step's four ops so far

  void init(PE& pe, const Params& params) {
    p = params;
    WSE_ASSERT(cannon_params_error(p) == nullptr, "GemmCannon: bad Params (see cannon_params_error)");
    const Coord c = pe.coord();
    WSE_ASSERT(p.area.contains(c), "GemmCannon: PE outside Params::area");
    n = p.area.width;
    shifts = n < 2 ? 0 : (p.keep_inputs ? n : n - 1);
    if (n > 1) {
      // Physical x (y) of this PE and of its ring neighbours along the row (column).
      const std::uint32_t x = c.x - p.area.origin.x, y = c.y - p.area.origin.y;
      const std::uint32_t j = cannon_logical(n, x), i = cannon_logical(n, y);
      const std::uint32_t x_prev = cannon_physical(n, (j + n - 1) % n), x_next = cannon_physical(n, (j + 1) % n);
      const std::uint32_t y_prev = cannon_physical(n, (i + n - 1) % n), y_next = cannon_physical(n, (i + 1) % n);
      a_send = p.row_colors[cannon_shift_color_slot(x, x_prev)];
      a_recv = p.row_colors[cannon_shift_color_slot(x_next, x)];
      b_send = p.col_colors[cannon_shift_color_slot(y, y_prev)];
      b_recv = p.col_colors[cannon_shift_color_slot(y_next, y)];
    }
    A = alloc<float>(pe, 2 * p.mb * p.kb);
    B = alloc<float>(pe, 2 * p.kb * p.nb);
    C = alloc<float>(pe, p.mb * p.nb);
    export_symbol(pe, "A", half_a(0));
    export_symbol(pe, "B", half_b(0));
    export_symbol(pe, "C", C);
    export_function<&GemmCannon::gemm>(pe, "gemm");
    for (TaskId t : p.tasks) bind_local_task<&GemmCannon::on_done>(pe, t);
  }

  // Half h of the A (B) double buffer: one (mb, kb) ((kb, nb)) column-major block.
  Array<float> half_a(std::uint32_t h) const { return Array<float>{A.data() + h * p.mb * p.kb, p.mb * p.kb}; }
  Array<float> half_b(std::uint32_t h) const { return Array<float>{B.data() + h * p.kb * p.nb, p.kb * p.nb}; }

  // Exported "gemm": C = A·B (or C += A·B).
  void gemm(PE& pe) {
    if (!p.accumulate) mov(pe, mem1d(C), 0.0f);
    step = cur = 0;
    run_step(pe);
  }

  // Starts this step's shift (if any) and accumulates C with the blocks of this step (if
  // it is one of the first p). Without a shift the launch is over.
  void run_step(PE& pe) {
    const bool shift = step < shifts;
    if (shift) {
      done = 0;
      mov(pe, fabout<float>(a_send, p.mb * p.kb), mem1d(half_a(cur)), then_activate(p.tasks[0]));
      mov(pe, mem1d(half_a(cur ^ 1)), fabin<float>(a_recv, p.mb * p.kb), then_activate(p.tasks[1]));
      mov(pe, fabout<float>(b_send, p.kb * p.nb), mem1d(half_b(cur)), then_activate(p.tasks[2]));
      mov(pe, mem1d(half_b(cur ^ 1)), fabin<float>(b_recv, p.kb * p.nb), then_activate(p.tasks[3]));
    }
    if (step < n) gemm_detail::accumulate_panel(pe, C, p.mb, p.nb, half_a(cur), 0, half_b(cur), p.kb, 0, p.kb);
    if (!shift && cur != 0) {  // the last blocks arrived in half 1: move them to the exported half 0
      mov(pe, mem1d(half_a(0)), mem1d(half_a(1)));
      mov(pe, mem1d(half_b(0)), mem1d(half_b(1)));
    }
  }

  // Bound to all four task ids: after the fourth completion the shift is done.
  void on_done(PE& pe) {
    if (++done < 4) return;
    ++step;
    cur ^= 1;
    run_step(pe);
  }
};

}  // namespace wse::kernels
