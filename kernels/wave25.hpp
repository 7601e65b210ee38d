#pragma once
/// \file
/// Wave25: time stepping of the 3-D acoustic wave equation with a 25-point stencil (a
/// radius-4 star), one z-pencil per PE. Freestanding kernel (pe + fabric layers only).
///
/// Layout. The kernel runs on a rectangle `area` of nx × ny PEs; PE (i, j) (column i, row j,
/// counted from the rectangle's north-west corner) holds u[i][j][0..nz) at times t and t-1,
/// and a per-cell factor m[i][j][0..nz) (m = v²·dt²/h², the squared Courant number).
///
/// Scheme (second-order leapfrog in time; values outside the grid are 0, Dirichlet):
///   L(u)   = c0·u[i][j][k] + sum_{d=1..4} ( cx[d-1]·(u[i-d][j][k] + u[i+d][j][k])
///                                         + cy[d-1]·(u[i][j-d][k] + u[i][j+d][k])
///                                         + cz[d-1]·(u[i][j][k-d] + u[i][j][k+d]) )
///   u(t+1) = 2·u(t) − u(t−1) + m ⊙ L(u(t))
/// with per-axis coefficients cx, cy, cz (symmetric: the same weight on both sides) and the
/// centre c0; for the 8th-order Laplacian on a grid of spacing h, c0 = 3·(-205/72) and
/// c{x,y,z} = {8/5, -1/5, 8/315, -1/560}. Coefficients are constant (Params); m varies per cell.
///
/// Evaluation order (fixed, so results are bit-reproducible): acc = c0·u; for d = 1..4:
/// acc += cz·u(k-d), acc += cz·u(k+d) (offset DSDs into the PE's own pencil); then the
/// halos: west d = 1..4, east d = 1..4, north d = 1..4, south d = 1..4 (fused multiply-adds,
/// missing neighbours skipped); then acc = m·acc, acc -= u(t−1), acc += 2·u(t) (fused);
/// u(t−1) <- u(t); u(t) <- acc.
///
/// Communication: each PE needs the pencils of the 4 nearest PEs in each of the four
/// directions (16 pencils per step). Every PE sends its pencil twice per step: once on its
/// x-color, which its router multicasts east and west, and once on its y-color, multicast
/// north and south. Each PE on the way delivers the pencil to its own RAMP *and* passes it on,
/// up to 4 hops; the 4th PE only delivers. So a source's x-color is in use on the 9 PEs
/// [i-4, i+4] of its row, and two sources whose segments overlap (|Δi| <= 8) need different
/// colors: PE (i, j) sends on x_colors[i % 9] and y_colors[j % 9]. At any PE the 9 x-colors
/// belong to 9 different sources (itself and the 8 within 4 hops) and likewise the 9 y-colors,
/// so every route has exactly one input port. 18 colors in all (0..17 by default), no switches
/// and no filters; each link direction carries 4 pencils per step, the minimum for radius 4.
/// `wave25_routes` writes these routes.
///
/// Synchronisation. A step issues both sends at once, computes the z part, then receives the
/// halos in four groups in a fixed order, W, E, N, S: the (up to) 4 pencils of a group arrive
/// concurrently into a 4-pencil buffer, each receive completing into its own task id (four
/// ids bound to one counting method, so no completion is lost), and the group is added to acc
/// before the next group is issued. The step finishes when all groups are in and both sends
/// are complete (so u is never overwritten while it is being sent); then the next step
/// starts. Pencils a neighbour sends early wait in queues and routers (back-pressure) until
/// their receive is issued. Deadlock-free for any timing: every PE receives in the same global
/// order (step, then x before y, then the group of lower coordinates first), so the oldest
/// unfinished pencil stream is always being received by every PE it feeds.
///
/// Use (host side):
///   wse::kernels::Wave25Params p{.area = rect, .nz = 64, .steps = 100, .c0 = ..., .cx = {...}, ...};
///   wse::kernels::wave25_channels(prog, p);  // colors and task ids from the program's allocator
///   // check wse::kernels::wave25_params_error(p) == nullptr
///   prog.add_region<wse::kernels::Wave25>(p.area, p);
///   wse::kernels::wave25_routes(prog.route_sink(), p);
///   rt.memcpy_h2d<float>("u", u0, p.area, p.nz); (also "u_prev" and "m")
///   rt.launch("run"); rt.run(); u = rt.read<float>("u", p.area, p.nz);
///
/// Exports: symbols "u", "u_prev", "m" (nz floats each); function "run", which advances
/// `steps` time steps (a second launch continues from where the first stopped).
///
/// Requirements (wave25_params_error checks them; init asserts them):
///   - nz >= 1; memory: 8·nz floats (u, u_prev, m, acc, 4 halo pencils) + the kernel object
///     must fit the 48 KiB of a PE: nz <= 1526 (checked at load, which names the PE);
///   - the 18 colors are distinct and usable (not 21..23); the 6 task ids are distinct local
///     task ids valid on the arch (24..30 fit WSE-2 and WSE-3), none equal to a color
///     (wave25_channels picks such values);
///   - the PE lies inside `area`; the routes come from wave25_routes with the same Params.
/// Resources per PE: 18 colors routed (2 sends, up to 16 receives), 6 local task ids, at most
/// 6 asynchronous ops in flight (2 sends + one group of 4 receives), at most 4 input colors
/// read at once.
#include <cstdint>
#include <wse/kernel.hpp>

#include "channels.hpp"
#include "elementwise.hpp"
#include "stencil7.hpp"  // stencil_detail::neighbor, stencil_detail::check_ids

namespace wse::kernels {

/// Stencil radius along each axis.
inline constexpr unsigned wave25_radius = 4;

/// Parameters of Wave25 (the same for every PE of the region).
struct Wave25Params {
  Rect area{};              ///< the PEs running the kernel: nx = area.width, ny = area.height
  std::uint32_t nz = 1;     ///< pencil length (z-values per PE)
  std::uint32_t steps = 1;  ///< time steps per launch of "run"
  float c0 = 0;             ///< centre weight of L
  float cx[4] = {};         ///< cx[d-1]: weight of u(i-d) and u(i+d)
  float cy[4] = {};         ///< cy[d-1]: weight of u(j-d) and u(j+d)
  float cz[4] = {};         ///< cz[d-1]: weight of u(k-d) and u(k+d)
  /// PE (i, j) sends on x_colors[i % 9] (E and W) and y_colors[j % 9] (N and S); i, j relative
  /// to area.origin.
  Color x_colors[9] = {Color{0}, Color{1}, Color{2}, Color{3}, Color{4}, Color{5}, Color{6}, Color{7}, Color{8}};
  Color y_colors[9] = {Color{9}, Color{10}, Color{11}, Color{12}, Color{13}, Color{14}, Color{15}, Color{16}, Color{17}};
  /// Local task ids: tasks[0..3] complete the receives of distance 1..4 of the current
  /// group; tasks[4] and tasks[5] complete the x- and y-sends.
  TaskId tasks[6] = {TaskId{24}, TaskId{25}, TaskId{26}, TaskId{27}, TaskId{28}, TaskId{29}};
};

/// Floats of PE memory Wave25 allocates per PE (u, u_prev, m, acc and four halo pencils).
constexpr std::uint32_t wave25_floats_per_pe(std::uint32_t nz) { return 8 * nz; }

/// nullptr when `p` is usable by Wave25 and wave25_routes, else a message saying why.
/// Host code may call it before building a program; Wave25::init asserts it.
constexpr const char* wave25_params_error(const Wave25Params& p);

namespace stencil_detail {
/// Routes of one axis of Wave25 at PE `c`: `neg` is the port towards lower coordinates (W or
/// N), `pos` the opposite one; `pos_of` gives a PE's coordinate along the axis relative to the
/// area's origin; `colors` the axis's 9 colors.
template <class Sink>
constexpr void wave25_axis_routes(Sink& sink, Rect area, Coord c, Port neg, Port pos, const Color (&colors)[9],
                                  bool along_x) {
  auto slot = [&](Coord s) { return (along_x ? unsigned(s.x - area.origin.x) : unsigned(s.y - area.origin.y)) % 9u; };
  const bool has_neg = area.contains(neighbor(c, neg)), has_pos = area.contains(neighbor(c, pos));
  // Own pencil: RAMP -> both directions along the axis.
  PortSet own;
  if (has_neg) own = own | neg;
  if (has_pos) own = own | pos;
  if (!own.empty()) sink(c, colors[slot(c)], ColorRoute{Port::ramp, own});
  for (int d = 1; d <= int(wave25_radius); ++d) {
    // The source d hops towards `neg` sends towards `pos`: enters through `neg`, goes on while d < 4.
    const Coord sn = neighbor(c, neg, d);
    if (area.contains(sn)) {
      PortSet tx{Port::ramp};
      if (d < int(wave25_radius) && has_pos) tx = tx | pos;
      sink(c, colors[slot(sn)], ColorRoute{neg, tx});
    }
    const Coord sp = neighbor(c, pos, d);
    if (area.contains(sp)) {
      PortSet tx{Port::ramp};
      if (d < int(wave25_radius) && has_neg) tx = tx | neg;
      sink(c, colors[slot(sp)], ColorRoute{pos, tx});
    }
  }
}
}  // namespace stencil_detail

/// Routes of Wave25 over `p.area` (see the file comment): at every PE, up to 9 routes on the
/// x-colors and up to 9 on the y-colors.
template <class Sink> constexpr void wave25_routes(Sink&& sink, const Wave25Params& p) {
  for (std::uint16_t dy = 0; dy < p.area.height; ++dy)
    for (std::uint16_t dx = 0; dx < p.area.width; ++dx) {
      const Coord c{static_cast<std::uint16_t>(p.area.origin.x + dx), static_cast<std::uint16_t>(p.area.origin.y + dy)};
      stencil_detail::wave25_axis_routes(sink, p.area, c, Port::west, Port::east, p.x_colors, true);
      stencil_detail::wave25_axis_routes(sink, p.area, c, Port::north, Port::south, p.y_colors, false);
    }
}

/// Fills the 18 colors and 6 task ids of `p` from the program's channel allocator
/// (wse::Program, or anything with allocate_color / allocate_task). Set the area first.
/// x_colors[k] is asked over the columns its pencils cross (4 west of column k to 4 east of
/// the last column i = k mod 9, within the area), in every row, so it may get a band
/// narrower than the area; y_colors[k] likewise over rows. A color no PE of the area sends
/// on (x_colors[k] for k >= width; all x_colors in a one-column area) gets no grant (see
/// channels.hpp). The task ids are asked over p.area. Askers read "<name> x_colors[0]", ...
template <class Channels> void wave25_channels(Channels& prog, Wave25Params& p, const char* name = "wave25") {
  static constexpr const char* names[18] = {
      "x_colors[0]", "x_colors[1]", "x_colors[2]", "x_colors[3]", "x_colors[4]", "x_colors[5]",
      "x_colors[6]", "x_colors[7]", "x_colors[8]", "y_colors[0]", "y_colors[1]", "y_colors[2]",
      "y_colors[3]", "y_colors[4]", "y_colors[5]", "y_colors[6]", "y_colors[7]", "y_colors[8]"};
  static constexpr const char* task_names[6] = {"tasks[0]", "tasks[1]", "tasks[2]", "tasks[3]", "tasks[4]", "tasks[5]"};
  Wave25Params probe = p;
  for (unsigned i = 0; i < 9; ++i) {
    probe.x_colors[i] = Color{i};
    probe.y_colors[i] = Color{9 + i};
  }
  const channels_detail::Footprints fp = channels_detail::footprints([&](auto&& sink) { wave25_routes(sink, probe); });
  channels_detail::ColorSlot colors[18]{};
  for (unsigned i = 0; i < 18; ++i) colors[i] = {i < 9 ? &p.x_colors[i] : &p.y_colors[i - 9], names[i], fp.box[i]};
  channels_detail::TaskSlot tasks[6]{};
  for (unsigned t = 0; t < 6; ++t) tasks[t] = {&p.tasks[t], task_names[t]};
  channels_detail::fill(prog, name, colors, 18, tasks, 6, p.area);
}

/// The 25-point wave-equation kernel (see the file comment).
template <class PE> struct Wave25 {
  using Params = Wave25Params;
  Params p{};
  Array<float> u;       // (nz) u(t) at this PE; exported "u"
  Array<float> u_prev;  // (nz) u(t-1) at this PE; exported "u_prev"
  Array<float> m;       // (nz) per-cell m = v²·dt²/h²; exported "m"
  Array<float> acc;     // (nz) L(u(t)), then u(t+1)
  Array<float> halo;    // (4, nz) row-major: the current group's pencils at distance 1..4
  std::uint32_t nrecv[4] = {};  // pencils in group W, E, N, S (neighbours inside the area, <= 4)
  Color recv[4][4]{};           // [group][distance-1]: color the pencil arrives on
  float coef[4][4] = {};        // [group][distance-1]: its weight (cx for W/E, cy for N/S)
  Color send_x{}, send_y{};     // this PE's own colors
  bool sends_x = false, sends_y = false;  // the area is wider / taller than one PE
  std::uint32_t step = 0;        // steps finished in this launch
  std::uint32_t group = 0;       // group being received (4: all in)
  std::uint32_t recv_done = 0;   // receives completed in the current group
  std::uint32_t sends_done = 0;  // sends completed in the current step
  bool in_step = false, group_issued = false;

  void init(PE& pe, const Params& params) {
    p = params;
    WSE_ASSERT(wave25_params_error(p) == nullptr, "Wave25: bad Params (see wave25_params_error)");
    const Coord c = pe.coord();
    WSE_ASSERT(p.area.contains(c), "Wave25: PE outside Params::area");
    u = alloc<float>(pe, p.nz);
    u_prev = alloc<float>(pe, p.nz);
    m = alloc<float>(pe, p.nz);
    acc = alloc<float>(pe, p.nz);
    halo = alloc<float>(pe, 4 * p.nz);
    export_symbol(pe, "u", u);
    export_symbol(pe, "u_prev", u_prev);
    export_symbol(pe, "m", m);
    export_function<&Wave25::run>(pe, "run");
    for (unsigned k = 0; k < 4; ++k) bind_local_task<&Wave25::on_recv>(pe, p.tasks[k]);
    bind_local_task<&Wave25::on_send>(pe, p.tasks[4]);
    bind_local_task<&Wave25::on_send>(pe, p.tasks[5]);

    const Port sides[4] = {Port::west, Port::east, Port::north, Port::south};
    for (unsigned g = 0; g < 4; ++g) {
      const bool along_x = g < 2;
      for (unsigned d = 1; d <= wave25_radius; ++d) {
        const Coord s = stencil_detail::neighbor(c, sides[g], int(d));
        if (!p.area.contains(s)) break;
        recv[g][d - 1] = along_x ? p.x_colors[unsigned(s.x - p.area.origin.x) % 9u]
                                 : p.y_colors[unsigned(s.y - p.area.origin.y) % 9u];
        coef[g][d - 1] = along_x ? p.cx[d - 1] : p.cy[d - 1];
        nrecv[g] = d;
      }
    }
    send_x = p.x_colors[unsigned(c.x - p.area.origin.x) % 9u];
    send_y = p.y_colors[unsigned(c.y - p.area.origin.y) % 9u];
    sends_x = nrecv[0] + nrecv[1] > 0;
    sends_y = nrecv[2] + nrecv[3] > 0;
  }

  // Exported "run": advances p.steps time steps.
  void run(PE& pe) {
    step = 0;
    in_step = false;
    advance(pe);
  }

  // The step state machine: starts steps, issues the next receive group, finishes a step
  // once every group is in and both sends are done. Returns when it must wait for an op.
  void advance(PE& pe) {
    for (;;) {
      if (!in_step) {
        if (step >= p.steps) return;
        begin_step(pe);
      }
      while (group < 4 && nrecv[group] == 0) ++group;
      if (group < 4) {
        if (!group_issued) issue_group(pe);
        return;
      }
      if (sends_done < unsigned(sends_x) + unsigned(sends_y)) return;
      finish_step(pe);
    }
  }

  // Sends u both ways along both axes, and starts acc with the local (centre and z) terms.
  void begin_step(PE& pe) {
    in_step = true;
    group = 0;
    group_issued = false;
    sends_done = 0;
    if (sends_x) mov(pe, fabout<float>(send_x, p.nz), mem1d(u), then_activate(p.tasks[4]));
    if (sends_y) mov(pe, fabout<float>(send_y, p.nz), mem1d(u), then_activate(p.tasks[5]));
    const std::uint32_t n = p.nz;
    const Mem1d<float> A = mem1d(acc), U = mem1d(u);
    scale(pe, A, U, p.c0);
    for (std::uint32_t d = 1; d <= wave25_radius && d < n; ++d) {
      axpy(pe, A.with_offset(d).with_length(n - d), p.cz[d - 1], U.with_length(n - d));  // acc[k] += cz·u[k-d], k >= d
      axpy(pe, A.with_length(n - d), p.cz[d - 1], U.with_offset(d).with_length(n - d));  // acc[k] += cz·u[k+d], k < nz-d
    }
  }

  // Receives the pencils of `group` (distance 1..nrecv) into halo rows 0..nrecv-1.
  void issue_group(PE& pe) {
    group_issued = true;
    recv_done = 0;
    for (unsigned d = 0; d < nrecv[group]; ++d)
      mov(pe, mem1d(halo).with_offset(d * p.nz).with_length(p.nz), fabin<float>(recv[group][d], p.nz),
          then_activate(p.tasks[d]));
  }

  // Bound to tasks[0..3]: after the group's last receive, adds the group to acc in distance
  // order and moves on.
  void on_recv(PE& pe) {
    if (++recv_done < nrecv[group]) return;
    for (unsigned d = 0; d < nrecv[group]; ++d)
      axpy(pe, mem1d(acc), coef[group][d], mem1d(halo).with_offset(d * p.nz).with_length(p.nz));
    ++group;
    group_issued = false;
    advance(pe);
  }

  // Bound to tasks[4] and tasks[5].
  void on_send(PE& pe) {
    ++sends_done;
    advance(pe);
  }

  // u(t+1) = 2·u(t) − u(t−1) + m·L(u(t)), then shift the time levels.
  void finish_step(PE& pe) {
    const Mem1d<float> A = mem1d(acc), U = mem1d(u), Up = mem1d(u_prev);
    mul(pe, A, A, mem1d(m));
    sub(pe, A, A, Up);
    mac(pe, A, A, U, 2.0f);
    copy(pe, Up, U);
    copy(pe, U, A);
    in_step = false;
    ++step;
  }
};

constexpr const char* wave25_params_error(const Wave25Params& p) {
  if (p.area.width == 0 || p.area.height == 0) return "Wave25: area is empty";
  if (p.nz == 0) return "Wave25: nz must be at least 1";
  if (std::uint64_t{wave25_floats_per_pe(p.nz)} * 4 + sizeof(Wave25<ProbeBackend>) > arch::max_pe_memory_bytes)
    return "Wave25: 8*nz floats do not fit the 48 KiB PE memory (nz <= 1526)";
  Color colors[18];
  for (unsigned i = 0; i < 9; ++i) {
    colors[i] = p.x_colors[i];
    colors[9 + i] = p.y_colors[i];
  }
  if (const char* e = stencil_detail::check_ids(colors, 18, p.tasks, 6)) return e;
  return nullptr;
}

}  // namespace wse::kernels
