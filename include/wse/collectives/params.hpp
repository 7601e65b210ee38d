#pragma once
/// \file
/// Collectives: what each one does, its Params (filled by the host builder in
/// program/collectives.hpp, read by the kernel-side Collective), the geometry every algorithm
/// shares, and the timing model that chooses an algorithm. Freestanding.
///
/// Geometry. A collective runs over a rectangle `area` of w × h PEs (a row is h = 1, a column
/// w = 1). Its root is the area's north-west PE. Every algorithm works along lines: first
/// along each row (toward column 0), then along column 0 (toward the root); scatters run the
/// other way. The PE at (x, y) of the area has index y·w + x.
#include <cstdint>

#include "../arch/arch.hpp"
#include "../core/elem_type.hpp"
#include "../core/types.hpp"

namespace wse::collectives {

/// What a collective does. n is Params::count, P the number of PEs (w·h), buf the buffer
/// each PE passes to Collective::start.
enum class Kind : std::uint8_t {
  broadcast,       ///< the root's buf[0, n) -> buf[0, n) of every PE
  reduce,          ///< op over every PE's buf[0, n) -> the root's buf[0, n)
  allreduce,       ///< op over every PE's buf[0, n) -> buf[0, n) of every PE
  scatter,         ///< the root's buf[i·n, (i+1)·n) -> buf[i·n, (i+1)·n) of PE i (buf: P·n)
  gather,          ///< buf[i·n, (i+1)·n) of PE i -> the same place in the root's buf (buf: P·n)
  allgather,       ///< gather, then every PE holds all P·n elements (buf: P·n)
  reduce_scatter,  ///< op over every PE's buf[0, P·n); PE i ends with chunk i at buf[i·n, (i+1)·n)
};
/// The combining operation of reduce, allreduce and reduce_scatter.
enum class Op : std::uint8_t { sum, max, min };
/// How reductions travel along a line of L PEs. All move n elements per message, streaming.
enum class Algorithm : std::uint8_t {
  automatic,  ///< the host builder picks the fastest by the timing model (predict_cycles)
  chain,      ///< one pipelined chain: each PE adds what arrives to its own and passes it on
  tree,       ///< binary tree: log2(L) rounds of pairs, distances 1, 2, 4, ...; one color per round
  two_phase,  ///< chains within groups of ceil(sqrt(L)) PEs, then a chain over the group roots
};

constexpr const char* kind_name(Kind k) {
  constexpr const char* names[] = {"broadcast", "reduce", "allreduce", "scatter", "gather", "allgather", "reduce_scatter"};
  return names[static_cast<unsigned>(k)];
}
constexpr const char* op_name(Op o) {
  constexpr const char* names[] = {"sum", "max", "min"};
  return names[static_cast<unsigned>(o)];
}
constexpr const char* algorithm_name(Algorithm a) {
  constexpr const char* names[] = {"automatic", "chain", "tree", "two_phase"};
  return names[static_cast<unsigned>(a)];
}
/// True for the kinds whose buffers hold one chunk of n per PE (P·n elements).
constexpr bool chunked(Kind k) {
  return k == Kind::scatter || k == Kind::gather || k == Kind::allgather || k == Kind::reduce_scatter;
}
constexpr bool reduces(Kind k) { return k == Kind::reduce || k == Kind::allreduce || k == Kind::reduce_scatter; }
/// The kinds that end with a broadcast from the root (its one multicast color).
constexpr bool broadcasts(Kind k) { return k == Kind::broadcast || k == Kind::allreduce || k == Kind::allgather; }
/// The chunked kinds whose chains run toward the root (the others scatter away from it).
constexpr bool gathers(Kind k) { return k == Kind::gather || k == Kind::allgather; }

/// Rounds of a line reduction with groups of g: the least r with g^r >= L (0 when L <= 1).
inline constexpr unsigned max_levels = 12;  // 2^11 = 2048 > 1176, the tallest fabric

/// How one dimension (the rows, or column 0) is reduced, gathered or scattered.
struct LinePlan {
  std::uint16_t length = 1;   ///< PEs on the line (w for rows, h for column 0)
  std::uint16_t group = 2;    ///< participants per group at each reduction level
  std::uint8_t levels = 0;    ///< reduction levels
  /// Colors of reduction level l: a participant k > 0 of a group sends on reduce[l][k % 2].
  Color reduce[max_levels][2]{};
  /// Gather/scatter chain: position p sends on move[p % 2].
  Color move[2]{};
};

/// Everything a PE needs to take part in one collective. Built by the host (build.hpp);
/// identical on every PE of the area.
struct Params {
  Kind kind = Kind::allreduce;
  Op op = Op::sum;
  ElemType type = ElemType::f32;
  Algorithm algorithm = Algorithm::chain;  ///< as chosen (never automatic here)
  Rect area{};
  std::uint32_t count = 0;  ///< n: elements per PE (reduce, broadcast) or per chunk (chunked kinds)
  LinePlan row{}, col{};
  Color bcast{};            ///< the broadcast color (broadcast, allreduce, allgather)
  TaskId task{};            ///< the local task that moves the collective from step to step
};

/// Elements of the buffer every PE passes to start(): n, or P·n for chunked kinds.
constexpr std::uint32_t buffer_elements(const Params& p) {
  return chunked(p.kind) ? p.count * p.area.width * p.area.height : p.count;
}

// ---- line geometry ---------------------------------------------------------------------

/// g^l, saturating at 65535.
constexpr std::uint32_t stride_at(std::uint32_t g, unsigned l) {
  std::uint32_t s = 1;
  for (unsigned i = 0; i < l && s < 65536; ++i) s *= g;
  return s;
}
constexpr unsigned levels_for(std::uint32_t length, std::uint32_t g) {
  unsigned l = 0;
  while (stride_at(g, l) < length) ++l;
  return l;
}
/// Participants of level l (PEs whose position is a multiple of g^l).
constexpr std::uint32_t participants(std::uint32_t length, std::uint32_t g, unsigned l) {
  const std::uint32_t s = stride_at(g, l);
  return (length + s - 1) / s;
}
/// Group size for an algorithm on a line of `length` PEs.
constexpr std::uint16_t group_for(Algorithm a, std::uint32_t length) {
  if (length <= 2) return 2;
  if (a == Algorithm::tree) return 2;
  if (a == Algorithm::two_phase) {
    std::uint32_t g = 2;
    while (g * g < length) ++g;
    return static_cast<std::uint16_t>(g);
  }
  return static_cast<std::uint16_t>(length);  // chain: one group
}
/// Does level l use reduce[l][1] (a group with 2+ participants) / reduce[l][0] (3+)?
constexpr bool level_uses_color(std::uint32_t length, std::uint32_t g, unsigned l, unsigned which) {
  const std::uint32_t p = participants(length, g, l);
  const std::uint32_t m = p < g ? p : g;  // the first group is the largest
  return which == 1 ? m >= 2 : m >= 3;
}

// ---- timing model ------------------------------------------------------------------------
// Cycles the timed emulator charges (docs/timing.md), simplified: each message element moves
// one hop per cycle and streams at one element per cycle; each PE on a chain adds the latency
// of its streaming op; each level or stage starts with a task switch and an op issue.

/// Fixed cost of starting one step at a PE: task switch, op issue, queue hand-offs.
constexpr std::uint32_t step_cycles(const arch::Arch& a) { return a.cycles.task_switch + a.cycles.dsd_issue + 2u; }
/// Latency a streaming combine adds per PE it passes (input queue, op, output queue).
constexpr std::uint32_t pass_cycles(const arch::Arch& a) { return a.hop_latency_cycles + 1u; }

/// Predicted cycles of a reduction of n elements along a line of `length` PEs, group g.
constexpr std::uint64_t line_reduce_cycles(const arch::Arch& a, std::uint32_t length, std::uint32_t g, std::uint32_t n) {
  std::uint64_t t = 0;
  for (unsigned l = 0; l < levels_for(length, g); ++l) {
    const std::uint32_t p = participants(length, g, l), m = p < g ? p : g, s = stride_at(g, l);
    t += step_cycles(a) + std::uint64_t{m - 1} * (pass_cycles(a) + std::uint64_t{s - 1} * a.hop_latency_cycles) + n;
  }
  return t;
}
/// Predicted cycles of moving `total` elements along a chain of `length` PEs (gather/scatter).
constexpr std::uint64_t line_move_cycles(const arch::Arch& a, std::uint32_t length, std::uint64_t total) {
  return length <= 1 ? 0 : 2u * step_cycles(a) + std::uint64_t{length - 1} * pass_cycles(a) + total;
}
/// Predicted cycles of a broadcast of n elements over a w × h area from its north-west PE.
constexpr std::uint64_t broadcast_cycles(const arch::Arch& a, Rect r, std::uint64_t n) {
  return r.area() <= 1 ? 0 : step_cycles(a) + std::uint64_t{r.width - 1u + r.height - 1u} * a.hop_latency_cycles + n + 2;
}

/// Predicted cycles of the whole collective described by `p` (after its routes are set).
constexpr std::uint64_t predict_cycles(const arch::Arch& a, const Params& p) {
  const std::uint32_t w = p.area.width, h = p.area.height, n = p.count;
  const std::uint64_t all = std::uint64_t{n} * w * h;
  const std::uint32_t rn = p.kind == Kind::reduce_scatter ? static_cast<std::uint32_t>(all) : n;
  std::uint64_t t = 0;
  if (reduces(p.kind)) t += line_reduce_cycles(a, w, p.row.group, rn) + line_reduce_cycles(a, h, p.col.group, rn);
  switch (p.kind) {
    case Kind::broadcast:
    case Kind::allreduce: t += broadcast_cycles(a, p.area, n); break;
    case Kind::gather:
    case Kind::scatter:
    case Kind::reduce_scatter: t += line_move_cycles(a, w, std::uint64_t{n} * (w - 1)) + line_move_cycles(a, h, all - std::uint64_t{n} * w); break;
    case Kind::allgather:
      t += line_move_cycles(a, w, std::uint64_t{n} * (w - 1)) + line_move_cycles(a, h, all - std::uint64_t{n} * w) +
           broadcast_cycles(a, p.area, all);
      break;
    default: break;
  }
  return t;
}

/// The simple lower bound a collective is measured against: the hop latency to the PE
/// farthest from the root plus the message length n in wavelets. For the chunked kinds the
/// root (gather, scatter) or the farthest PE (allgather) also has to pass (P − 1)·n elements
/// through its links, one per cycle per link (one link on a line, two on a rectangle), which
/// can take longer.
constexpr std::uint64_t lower_bound_cycles(const arch::Arch& a, const Params& p) {
  const std::uint64_t P = std::uint64_t{p.area.width} * p.area.height;
  if (P <= 1) return 0;
  const std::uint64_t hops = std::uint64_t{p.area.width - 1u + p.area.height - 1u} * a.hop_latency_cycles;
  const std::uint64_t far = hops + p.count;
  if (!chunked(p.kind)) return far;
  const std::uint64_t links = p.area.width > 1 && p.area.height > 1 ? 2 : 1;
  const std::uint64_t through = a.hop_latency_cycles + ((P - 1) * p.count + links - 1) / links;
  return far > through ? far : through;
}

}  // namespace wse::collectives
