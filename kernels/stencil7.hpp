#pragma once
/// \file
/// Stencil7: the 3-D 7-point stencil SpMV y = A·x on an nx × ny × nz grid, one z-pencil per PE.
/// Freestanding kernel (pe + fabric layers only).
///
/// Layout. The kernel runs on a rectangle `area` of nx × ny PEs; PE (i, j) (column i, row j,
/// counted from the rectangle's north-west corner) holds x[i][j][0..nz) and y[i][j][0..nz).
///
/// Operator (Dirichlet: values outside the grid are 0):
///   y[i][j][k] = c0·x[i][j][k]
///              + cxm·x[i-1][j][k] + cxp·x[i+1][j][k]     (i-1: west PE,  i+1: east PE)
///              + cym·x[i][j-1][k] + cyp·x[i][j+1][k]     (j-1: north PE, j+1: south PE)
///              + czm·x[i][j][k-1] + czp·x[i][j][k+1]     (k±1: the PE's own pencil)
/// The seven coefficients are constant over the grid (they come in Params). Per-PE parameters
/// (Program::add_region with a function of the coordinate) may give each pencil its own seven
/// coefficients; they are still constant along z.
///
/// Evaluation order (fixed, so results are bit-reproducible): y = c0·x; y += czm·x(k-1);
/// y += czp·x(k+1); then y += c·(neighbour pencil) for west, east, north, south, each one fused
/// multiply-add per element. Missing neighbours (grid boundary) are skipped.
///
/// Communication: halo exchange with one multicast per PE. Every PE sends its pencil once, on
/// its own color, and the router fans it out to all four neighbours (N, E, S, W) at once. PE
/// (i, j) sends on colors[(i + 2j) mod 5]; the five colors of a PE and of its four neighbours
/// are then all different (the map is a perfect distance-2 colouring of the mesh), so each PE
/// has one route that sends (RAMP -> its neighbours) and four that receive (one port ->
/// RAMP), and no color is ever received from two ports. Five colors in all, instead of the
/// eight of two-color-per-direction exchanges, and each PE sends nz wavelets instead of 4·nz;
/// every link direction still carries exactly one pencil per SpMV. `stencil7_routes` writes
/// these routes.
///
/// Synchronisation. A sweep issues five asynchronous ops at once: the send of x, and one
/// receive per neighbour into its own halo buffer (so arrival order cannot change the
/// result). Each op's completion activates its own task id (five ids bound to one counting
/// method, so no completion is lost to the one-bit activation); when all have fired, the PE
/// computes y. The send is part of the join, so x is never overwritten while it is still
/// being sent. A neighbour that is already one sweep ahead just leaves its next pencil waiting
/// in this PE's input queue (and the routers behind it) until the next receive is issued.
/// Deadlock-free for any timing: the oldest unfinished (sweep, pencil) is always being
/// received by all its receivers.
///
/// Use (host side):
///   wse::kernels::Stencil7Params p{.area = rect, .nz = 64, .sweeps = 1, .c0 = ..., ...};
///   wse::kernels::stencil7_channels(prog, p);  // colors and task ids from the program's allocator
///   // check wse::kernels::stencil7_params_error(p) == nullptr
///   prog.add_region<wse::kernels::Stencil7>(p.area, p);
///   wse::kernels::stencil7_routes(prog.route_sink(), p);
///   rt.memcpy_h2d<float>("x", x, p.area, p.nz); rt.launch("spmv"); rt.run();
///   y = rt.read<float>("y", p.area, p.nz);
///
/// Exports: symbols "x" (nz floats) and "y" (nz floats); function "spmv", which runs `sweeps`
/// SpMVs: y = A·x, and between two sweeps x <- y. After a launch y = A^sweeps · x0 and
/// x = A^(sweeps-1) · x0 (x is unchanged when sweeps = 1, so repeated launches repeat the
/// same SpMV: the communication-dense benchmark workload).
///
/// Requirements (stencil7_params_error checks them; init asserts them):
///   - nz >= 1; memory: 6·nz floats (x, y, 4 halo pencils) + the kernel object must fit the
///     48 KiB of a PE: nz <= 2042 (checked at load, which names the PE);
///   - the five colors are distinct and usable (not 21..23); the five task ids are distinct
///     local task ids valid on the arch (24..30 fit WSE-2 and WSE-3) and none equals one of the
///     colors (on WSE-2 a color's data-task id is the color number); stencil7_channels picks
///     such values;
///   - the PE lies inside `area`; the routes come from stencil7_routes with the same Params.
/// Resources per PE: 5 colors routed (1 send, up to 4 receive), 5 local task ids, at most 5
/// asynchronous ops in flight.
#include <cstdint>
#include <wse/kernel.hpp>

#include "channels.hpp"
#include "elementwise.hpp"

namespace wse::kernels {

/// Parameters of Stencil7 (the same for every PE of the region).
struct Stencil7Params {
  Rect area{};               ///< the PEs running the kernel: nx = area.width, ny = area.height
  std::uint32_t nz = 1;      ///< pencil length (z-values per PE)
  std::uint32_t sweeps = 1;  ///< SpMVs per launch of "spmv"
  float c0 = 0;              ///< centre
  float cxm = 0, cxp = 0;    ///< west (i-1), east (i+1)
  float cym = 0, cyp = 0;    ///< north (j-1), south (j+1)
  float czm = 0, czp = 0;    ///< k-1, k+1
  /// Halo colors; PE (i, j) sends on colors[(i + 2j) % 5] (i, j relative to area.origin).
  Color colors[5] = {Color{0}, Color{1}, Color{2}, Color{3}, Color{4}};
  /// Local task ids: tasks[0..3] complete the receives from W, E, N, S; tasks[4] the send.
  TaskId tasks[5] = {TaskId{24}, TaskId{25}, TaskId{26}, TaskId{27}, TaskId{28}};
};

/// Floats of PE memory Stencil7 allocates per PE (x, y and four halo pencils).
constexpr std::uint32_t stencil7_floats_per_pe(std::uint32_t nz) { return 6 * nz; }

/// Index into Stencil7Params::colors of the color PE `c` sends on.
constexpr unsigned stencil7_color_slot(Rect area, Coord c) {
  return (unsigned(c.x - area.origin.x) + 2u * unsigned(c.y - area.origin.y)) % 5u;
}

namespace stencil_detail {
/// The four halo sides in the order Stencil7 adds them: W, E, N, S.
inline constexpr Port stencil_sides[4] = {Port::west, Port::east, Port::north, Port::south};

/// The PE one hop from `c` through `p` (off-grid coordinates wrap to 65535, outside any Rect).
constexpr Coord neighbor(Coord c, Port p, int hops = 1) {
  return Coord{static_cast<std::uint16_t>(c.x + port_dx(p) * hops), static_cast<std::uint16_t>(c.y + port_dy(p) * hops)};
}

/// True when a color is routable and not reserved on any known arch (0..20).
constexpr bool color_usable_everywhere(Color c) { return arch::wse2.color_usable(c) && arch::wse3.color_usable(c); }
/// True when a local task id is valid on every known arch (8..30).
constexpr bool local_task_usable_everywhere(TaskId t) {
  return t.value >= arch::wse3.local_task_first && t.value <= arch::wse2.local_task_last &&
         t.value >= arch::wse2.local_task_first && t.value <= arch::wse3.local_task_last;
}
/// nullptr when the n colors and m task ids are all usable, pairwise distinct, and no task id
/// equals a color number; otherwise what is wrong.
constexpr const char* check_ids(const Color* colors, unsigned n, const TaskId* tasks, unsigned m) {
  for (unsigned i = 0; i < n; ++i) {
    if (!color_usable_everywhere(colors[i])) return "a color is not usable (allowed 0..20; 21..23 are reserved)";
    for (unsigned j = 0; j < i; ++j)
      if (colors[i] == colors[j]) return "two colors are equal";
  }
  for (unsigned i = 0; i < m; ++i) {
    if (!local_task_usable_everywhere(tasks[i])) return "a task id is not a local task id on every arch (allowed 8..30)";
    for (unsigned j = 0; j < i; ++j)
      if (tasks[i] == tasks[j]) return "two task ids are equal";
    for (unsigned j = 0; j < n; ++j)
      if (tasks[i].value == colors[j].value) return "a task id equals one of the colors (its data-task id on WSE-2)";
  }
  return nullptr;
}
}  // namespace stencil_detail

/// nullptr when `p` is usable by Stencil7 and stencil7_routes, else a message saying why.
/// Host code may call it before building a program; Stencil7::init asserts it.
constexpr const char* stencil7_params_error(const Stencil7Params& p);

/// Routes of Stencil7 over `p.area`: at every PE, its own color goes RAMP -> every neighbour
/// inside the area, and each neighbour's color comes in from that neighbour's side -> RAMP.
/// A 1x1 area needs no routes.
template <class Sink> constexpr void stencil7_routes(Sink&& sink, const Stencil7Params& p) {
  for (std::uint16_t dy = 0; dy < p.area.height; ++dy)
    for (std::uint16_t dx = 0; dx < p.area.width; ++dx) {
      const Coord c{static_cast<std::uint16_t>(p.area.origin.x + dx), static_cast<std::uint16_t>(p.area.origin.y + dy)};
      PortSet tx;
      for (Port side : stencil_detail::stencil_sides) {
        const Coord n = stencil_detail::neighbor(c, side);
        if (!p.area.contains(n)) continue;
        tx = tx | side;
        sink(c, p.colors[stencil7_color_slot(p.area, n)], ColorRoute{side, Port::ramp});
      }
      if (!tx.empty()) sink(c, p.colors[stencil7_color_slot(p.area, c)], ColorRoute{Port::ramp, tx});
    }
}

/// Fills the 5 colors and 5 task ids of `p` from the program's channel allocator
/// (wse::Program, or anything with allocate_color / allocate_task). Set the area first.
/// Each color is asked over the bounding rectangle of its routes, or over the hull of all of
/// them when that rectangle misses another of the kernel's colors (see channels.hpp); a
/// color with no route (in a 1x1, 2x1, ... area) gets no grant. The task ids are asked over
/// p.area. Askers read "<name> colors[0]", ...
template <class Channels> void stencil7_channels(Channels& prog, Stencil7Params& p, const char* name = "stencil7") {
  static constexpr const char* names[5] = {"colors[0]", "colors[1]", "colors[2]", "colors[3]", "colors[4]"};
  static constexpr const char* task_names[5] = {"tasks[0]", "tasks[1]", "tasks[2]", "tasks[3]", "tasks[4]"};
  Stencil7Params probe = p;
  for (unsigned i = 0; i < 5; ++i) probe.colors[i] = Color{i};
  const channels_detail::Footprints fp = channels_detail::footprints([&](auto&& sink) { stencil7_routes(sink, probe); });
  channels_detail::ColorSlot colors[5]{};
  channels_detail::TaskSlot tasks[5]{};
  for (unsigned i = 0; i < 5; ++i) {
    colors[i] = {&p.colors[i], names[i], fp.box[i]};
    tasks[i] = {&p.tasks[i], task_names[i]};
  }
  channels_detail::fill(prog, name, colors, 5, tasks, 5, p.area);
}

/// The 7-point stencil SpMV kernel (see the file comment).
template <class PE> struct Stencil7 {
  using Params = Stencil7Params;
  Params p{};
  Array<float> x;     // (nz) pencil of x at this PE; exported "x"
  Array<float> y;     // (nz) pencil of y = A·x at this PE; exported "y"
  Array<float> halo;  // (4, nz) row-major: pencils of x from the W, E, N, S neighbours
  bool has[4] = {};   // neighbour W, E, N, S exists
  Color recv[4]{};    // color each neighbour's pencil arrives on
  Color send{};       // color this PE's pencil leaves on
  bool sends = false; // the PE has at least one neighbour
  float coef[4] = {}; // cxm, cxp, cym, cyp in W, E, N, S order
  std::uint32_t expected = 0;  // completions per sweep: receives + send
  std::uint32_t done = 0;      // completions so far in this sweep
  std::uint32_t sweep = 0;     // sweeps finished in this launch

  void init(PE& pe, const Params& params) {
    p = params;
    WSE_ASSERT(stencil7_params_error(p) == nullptr, "Stencil7: bad Params (see stencil7_params_error)");
    const Coord c = pe.coord();
    WSE_ASSERT(p.area.contains(c), "Stencil7: PE outside Params::area");
    x = alloc<float>(pe, p.nz);
    y = alloc<float>(pe, p.nz);
    halo = alloc<float>(pe, 4 * p.nz);
    export_symbol(pe, "x", x);
    export_symbol(pe, "y", y);
    export_function<&Stencil7::spmv>(pe, "spmv");
    for (TaskId t : p.tasks) bind_local_task<&Stencil7::on_done>(pe, t);
    const float cs[4] = {p.cxm, p.cxp, p.cym, p.cyp};
    for (unsigned s = 0; s < 4; ++s) {
      const Coord n = stencil_detail::neighbor(c, stencil_detail::stencil_sides[s]);
      has[s] = p.area.contains(n);
      recv[s] = p.colors[stencil7_color_slot(p.area, n)];
      coef[s] = cs[s];
      if (has[s]) ++expected;
    }
    sends = expected > 0;
    send = p.colors[stencil7_color_slot(p.area, c)];
    if (sends) ++expected;
  }

  // Exported "spmv": runs p.sweeps SpMVs.
  void spmv(PE& pe) {
    sweep = 0;
    begin_sweeps(pe);
  }

  // Starts the next sweep: issues the receives of the four halos and the send of x, which
  // on_done joins. Without neighbours (a 1x1 area) there is nothing to wait for.
  void begin_sweeps(PE& pe) {
    while (sweep < p.sweeps) {
      if (expected > 0) {
        done = 0;
        for (unsigned s = 0; s < 4; ++s)
          if (has[s])
            mov(pe, mem1d(halo).with_offset(s * p.nz).with_length(p.nz), fabin<float>(recv[s], p.nz),
                then_activate(p.tasks[s]));
        if (sends) mov(pe, fabout<float>(send, p.nz), mem1d(x), then_activate(p.tasks[4]));
        return;
      }
      compute(pe);
    }
  }

  // Bound to all five task ids: counts completions; after the last one, computes y and
  // starts the next sweep.
  void on_done(PE& pe) {
    if (++done < expected) return;
    compute(pe);
    begin_sweeps(pe);
  }

  // y = A·x from x and the halos, in the documented order; x <- y when a sweep follows.
  void compute(PE& pe) {
    const std::uint32_t n = p.nz;
    const Mem1d<float> X = mem1d(x), Y = mem1d(y);
    scale(pe, Y, X, p.c0);
    if (n > 1) {
      axpy(pe, Y.with_offset(1).with_length(n - 1), p.czm, X.with_length(n - 1));  // y[k] += czm·x[k-1], k >= 1
      axpy(pe, Y.with_length(n - 1), p.czp, X.with_offset(1).with_length(n - 1));  // y[k] += czp·x[k+1], k < nz-1
    }
    for (unsigned s = 0; s < 4; ++s)
      if (has[s]) axpy(pe, Y, coef[s], mem1d(halo).with_offset(s * n).with_length(n));
    if (++sweep < p.sweeps) copy(pe, X, Y);
  }
};

constexpr const char* stencil7_params_error(const Stencil7Params& p) {
  if (p.area.width == 0 || p.area.height == 0) return "Stencil7: area is empty";
  if (p.nz == 0) return "Stencil7: nz must be at least 1";
  if (std::uint64_t{stencil7_floats_per_pe(p.nz)} * 4 + sizeof(Stencil7<ProbeBackend>) > arch::max_pe_memory_bytes)
    return "Stencil7: 6*nz floats do not fit the 48 KiB PE memory (nz <= 2042)";
  if (const char* e = stencil_detail::check_ids(p.colors, 5, p.tasks, 5)) return e;
  return nullptr;
}

}  // namespace wse::kernels
