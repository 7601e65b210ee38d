#pragma once
/// \file
/// The host side of collectives: builds the Params of a collective over a rectangle of a
/// Program, asking the program for its colors and task id and setting its routes. Hosted.
///
///   auto sum = wse::collectives::allreduce<float>(prog, area, 64, {.op = wse::collectives::Op::sum, .name = "loss"});
///   // pass `sum` to the kernel (its Params), which attaches a Collective<PE, float> to it.
#include <cstdint>
#include <string>

#include "../collectives/params.hpp"
#include "../collectives/routes.hpp"
#include "program.hpp"

namespace wse::collectives {

/// How to build a collective.
struct Options {
  Op op = Op::sum;                            ///< reduce, allreduce, reduce_scatter
  Algorithm algorithm = Algorithm::automatic; ///< reductions; the other kinds have one algorithm
  std::string name = {};                      ///< names its channels in errors and channel_report()
};

namespace detail {
inline LinePlan line_plan(Algorithm a, std::uint16_t length) {
  LinePlan l;
  l.length = length;
  l.group = group_for(a, length);
  l.levels = static_cast<std::uint8_t>(levels_for(length, l.group));
  return l;
}
inline Params shape(Kind kind, ElemType type, Rect area, std::uint32_t count, Op op, Algorithm a) {
  Params p;
  p.kind = kind;
  p.op = op;
  p.type = type;
  p.algorithm = a;
  p.area = area;
  p.count = count;
  p.row = line_plan(a, area.width);
  p.col = line_plan(a, area.height);
  return p;
}
// Calls f(color slot, what, rectangle) for every color the collective `p` routes: the rows'
// colors over the area, column 0's over column 0, the broadcast color over the area. The one
// place that says which colors a plan needs (counted by colors_needed, granted by build).
template <class F> void for_each_color(Params& p, F&& f) {
  auto line = [&](LinePlan& l, const std::string& dim, Rect r) {
    if (reduces(p.kind))
      for (unsigned lv = 0; lv < l.levels; ++lv)
        for (unsigned c : {1u, 0u})
          if (level_uses_color(l.length, l.group, lv, c))
            f(l.reduce[lv][c], dim + " reduce level " + std::to_string(lv) + " color " + std::to_string(c), r);
    if (chunked(p.kind) && l.length > 1) {
      const std::string what = dim + (gathers(p.kind) ? " gather" : " scatter");
      f(l.move[0], what + " color 0", r);
      if (l.length > 2) f(l.move[1], what + " color 1", r);
    }
  };
  line(p.row, "rows", p.area);
  line(p.col, "column 0", Rect{p.area.origin, 1, p.area.height});
  if (broadcasts(p.kind) && p.area.area() > 1)
    f(p.bcast, "broadcast", p.area);
}
inline unsigned colors_needed(Params p) {
  unsigned n = 0;
  for_each_color(p, [&](Color&, const std::string&, Rect) { ++n; });
  return n;
}
}  // namespace detail

/// The algorithm `automatic` picks: the one with the fewest predicted cycles (predict_cycles)
/// among those whose colors fit in `free_colors`; chain when none does (it needs the fewest).
inline Algorithm choose_algorithm(const arch::Arch& arch, Kind kind, Rect area, std::uint32_t count, unsigned free_colors = 21) {
  if (!reduces(kind)) return Algorithm::chain;
  Algorithm best = Algorithm::chain;
  std::uint64_t best_cycles = ~std::uint64_t{0};
  for (Algorithm a : {Algorithm::chain, Algorithm::two_phase, Algorithm::tree}) {
    const Params p = detail::shape(kind, ElemType::f32, area, count, Op::sum, a);
    if (detail::colors_needed(p) > free_colors) continue;
    const std::uint64_t t = predict_cycles(arch, p);
    if (t < best_cycles) best = a, best_cycles = t;
  }
  return best;
}

/// Builds collective `kind` over `area` of `prog` with n = `count` (see Kind), elements of type
/// T: chooses the algorithm, asks the program for its colors and one local task id, sets its
/// routes. Throws ProgramError when the area leaves the grid, count is 0, or the program has no
/// colors left there (the message lists who holds them); a refused build takes nothing.
template <DsdElement T>
Params build(Program& prog, Kind kind, Rect area, std::uint32_t count, const Options& o = {}) {
  const std::string who = std::string(kind_name(kind)) + (o.name.empty() ? "" : " '" + o.name + "'");
  if (area.width == 0 || area.height == 0 || !prog.in_grid(area.origin) ||
      !prog.in_grid(Coord{static_cast<std::uint16_t>(area.origin.x + area.width - 1),
                          static_cast<std::uint16_t>(area.origin.y + area.height - 1)}))
    throw ProgramError(who + ": area " + to_string(area) + " is empty or leaves the program's grid");
  if (count == 0) throw ProgramError(who + ": count (n) must be at least 1");
  const arch::Arch& arch = prog.arch();
  const Algorithm a = o.algorithm != Algorithm::automatic ? o.algorithm
                                                          : choose_algorithm(arch, kind, area, count, prog.free_color_count(area));
  Params p = detail::shape(kind, elem_type_of<T>, area, count, o.op, a);
  const std::size_t granted_before = prog.channel_grants().size();
  try {
    detail::for_each_color(p, [&](Color& c, const std::string& what, Rect r) { c = prog.allocate_color(who + ": " + what, r); });
    p.task = prog.allocate_task(who + ": step task", area);
  } catch (const ProgramError&) {
    prog.release_grants_after(granted_before);  // give back what this build took
    throw;
  }
  // Two PEs on a line move on one color (p = 0 -> 1, or 1 -> 0).
  if (p.row.length == 2) p.row.move[1] = p.row.move[0];
  if (p.col.length == 2) p.col.move[1] = p.col.move[0];
  collective_routes(prog.route_sink(), p);
  return p;
}

/// build() for each kind: broadcast<float>(prog, area, n), allreduce<f16>(prog, area, n, {.op = Op::max}), ...
template <DsdElement T> Params broadcast(Program& prog, Rect area, std::uint32_t n, const Options& o = {}) { return build<T>(prog, Kind::broadcast, area, n, o); }
template <DsdElement T> Params reduce(Program& prog, Rect area, std::uint32_t n, const Options& o = {}) { return build<T>(prog, Kind::reduce, area, n, o); }
template <DsdElement T> Params allreduce(Program& prog, Rect area, std::uint32_t n, const Options& o = {}) { return build<T>(prog, Kind::allreduce, area, n, o); }
template <DsdElement T> Params scatter(Program& prog, Rect area, std::uint32_t n, const Options& o = {}) { return build<T>(prog, Kind::scatter, area, n, o); }
template <DsdElement T> Params gather(Program& prog, Rect area, std::uint32_t n, const Options& o = {}) { return build<T>(prog, Kind::gather, area, n, o); }
template <DsdElement T> Params allgather(Program& prog, Rect area, std::uint32_t n, const Options& o = {}) { return build<T>(prog, Kind::allgather, area, n, o); }
template <DsdElement T> Params reduce_scatter(Program& prog, Rect area, std::uint32_t n, const Options& o = {}) { return build<T>(prog, Kind::reduce_scatter, area, n, o); }

/// One line about a built collective: kind, op, type, area, n, algorithm, colors, predicted
/// cycles and the lower bound on `arch`.
inline std::string describe(const Params& p, const arch::Arch& arch) {
  std::string s = std::string(kind_name(p.kind)) + (reduces(p.kind) ? std::string(" ") + op_name(p.op) : "") + " " +
                  elem_name(p.type) + " over " + to_string(p.area) + ", n=" + std::to_string(p.count) + ": " +
                  (reduces(p.kind) ? algorithm_name(p.algorithm) : "chain");
  if (reduces(p.kind))
    s += " (rows: groups of " + std::to_string(p.row.group) + ", " + std::to_string(p.row.levels) + " levels; column: groups of " +
         std::to_string(p.col.group) + ", " + std::to_string(p.col.levels) + " levels)";
  s += ", " + std::to_string(detail::colors_needed(p)) + " colors, predicted " + std::to_string(predict_cycles(arch, p)) +
       " cycles, lower bound " + std::to_string(lower_bound_cycles(arch, p));
  return s;
}

}  // namespace wse::collectives
