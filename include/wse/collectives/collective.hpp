#pragma once
/// \file
/// The kernel side of every collective: a small state machine a kernel keeps as a member.
/// Freestanding.
///
///   template <class PE> struct MyKernel {
///     struct Params { wse::collectives::Params sum; wse::TaskId done; };
///     wse::collectives::Collective<PE, float> sum;   // one per collective the kernel joins
///     void init(PE& pe, const Params& p) {
///       wse::collectives::attach<&MyKernel::sum>(pe, *this, p.sum);
///       bind_local_task<&MyKernel::on_done>(pe, p.done);
///     }
///     void go(PE& pe) { sum.start(pe, buf, wse::then_activate(done)); }   // every PE of the area
///   };
///
/// Every PE of Params::area must call start() once per run with a buffer of
/// buffer_elements(p) elements; the completion fires on each PE when its part is over (for
/// the root of a reduce: when the result is in its buffer; for a receiver: when its data has
/// arrived). A collective may be started again after its completion. Between start and
/// completion the buffer belongs to the collective.
///
/// Roles (the routes come from collectives/routes.hpp):
///  - line reduction, level l, groups of g, stride s = g^l: the PEs at multiples of s take
///    part; participant k of a group (positions base + k·s, k < g) does
///      k = last:      sends its buffer toward the group root              mov  fabout <- buf
///      0 < k < last:  combines what arrives with its own and passes it on op   fabout <- fabin, buf
///      k = 0:         combines what arrives into its buffer, next level   op   buf <- buf, fabin
///    so each group is one pipelined chain (chain: one group of L; tree: pairs; two_phase:
///    groups of ceil(sqrt L), then the group roots). Rows first, then column 0.
///  - gather: PE p sends its chunk, then forwards the chunks from beyond it (two ops issued at
///    once on one color, which run in issue order); the root receives them in order. Rows to column 0, then column 0 to the root, in blocks of w chunks.
///  - scatter: the reverse (column 0 first, then the rows).
///  - broadcast: one color, root -> row 0 -> every column, delivered to every PE on the way.
#include <cstdint>

#include "../core/assert.hpp"
#include "../pe/backend.hpp"
#include "../pe/dsd.hpp"
#include "../pe/ops.hpp"
#include "../pe/task.hpp"
#include "params.hpp"

namespace wse::collectives {

namespace detail {
/// The stages of each Kind, in order; every PE walks them and skips those it has no part in.
enum class Stage : std::uint8_t { row_reduce, col_reduce, bcast, row_gather, col_gather, col_scatter, row_scatter, end };
inline constexpr Stage stage_table[7][5] = {
    {Stage::bcast, Stage::end},                                                               // broadcast
    {Stage::row_reduce, Stage::col_reduce, Stage::end},                                       // reduce
    {Stage::row_reduce, Stage::col_reduce, Stage::bcast, Stage::end},                         // allreduce
    {Stage::col_scatter, Stage::row_scatter, Stage::end},                                     // scatter
    {Stage::row_gather, Stage::col_gather, Stage::end},                                       // gather
    {Stage::row_gather, Stage::col_gather, Stage::bcast, Stage::end},                         // allgather
    {Stage::row_reduce, Stage::col_reduce, Stage::col_scatter, Stage::row_scatter, Stage::end}  // reduce_scatter
};
}  // namespace detail

template <class PE, DsdElement T> class Collective {
 public:
  /// Takes the Params of this collective (from the host builder). Call through attach().
  void init(PE& pe, const Params& p) {
    WSE_ASSERT(p.area.width > 0 && p.area.height > 0, "Collective: Params not built (use collectives::allreduce(prog, ...) etc.)");
    WSE_ASSERT(p.type == elem_type_of<T>, "Collective<PE, T>: Params::type differs from T (build it with the same type)");
    const Coord c = pe.coord();
    WSE_ASSERT(p.area.contains(c), "Collective: this PE is outside Params::area");
    p_ = p;
    attached_ = true;
    x_ = static_cast<std::uint16_t>(c.x - p.area.origin.x);
    y_ = static_cast<std::uint16_t>(c.y - p.area.origin.y);
  }

  /// Starts this PE's part on `buf` (buffer_elements(p) elements, see Kind); `done` fires when
  /// it is over. Kernel code, on every PE of the area.
  void start(PE& pe, Array<T> buf, Completion done) {
    WSE_ASSERT(attached_, "Collective::start before attach: call collectives::attach<&Kernel::member>(pe, *this, params) in init");
    WSE_ASSERT(!running_, "Collective::start: the previous run has not completed");
    WSE_ASSERT(buf.size() >= buffer_elements(p_), "Collective::start: buffer smaller than buffer_elements(params)");
    buf_ = buf;
    done_ = done;
    stage_ = 0;
    step_ = 0;
    running_ = true;
    resume(pe);
  }

  /// True between start() and the completion.
  bool running() const { return running_; }
  const Params& params() const { return p_; }

  /// The collective's own task: issues this PE's next op, or fires the completion. Bound by
  /// attach(); not for kernel code.
  void resume(PE& pe) {
    for (;;) {
      const Stage st = stages(p_.kind)[stage_];
      if (st == Stage::end) {
        running_ = false;
        if (done_.action == Completion::Action::activate) pe.activate(done_.task);
        else if (done_.action == Completion::Action::unblock) pe.unblock(done_.task);
        return;
      }
      const Step r = step(pe, st, step_);
      if (r == Step::end) {
        ++stage_;
        step_ = 0;
        continue;
      }
      ++step_;
      if (r == Step::issued) return;  // its completion activates this task again
    }
  }

 private:
  using Stage = detail::Stage;
  enum class Step : std::uint8_t { issued, skipped, end };

  static constexpr const Stage* stages(Kind k) { return detail::stage_table[static_cast<unsigned>(k)]; }

  Mem1d<T> span(std::uint32_t offset, std::uint32_t length) const {
    return mem1d(buf_).with_offset(offset).with_length(length);
  }
  Completion next() const { return then_activate(p_.task); }
  std::uint32_t all() const { return buffer_elements(p_); }

  template <class D, class A, class B> void combine(PE& pe, const D& d, const A& a, const B& b) {
    switch (p_.op) {
      case Op::sum: wse::add(pe, d, a, b, next()); break;
      case Op::max: wse::max(pe, d, a, b, next()); break;
      case Op::min: wse::min(pe, d, a, b, next()); break;
    }
  }

  Step step(PE& pe, Stage st, unsigned k) {
    const std::uint32_t w = p_.area.width, n = p_.count;
    switch (st) {
      case Stage::row_reduce: return reduce_step(pe, p_.row, x_, k, p_.kind == Kind::reduce_scatter ? all() : n);
      case Stage::col_reduce:
        return x_ != 0 ? Step::end : reduce_step(pe, p_.col, y_, k, p_.kind == Kind::reduce_scatter ? all() : n);
      case Stage::bcast: return k == 0 ? broadcast_step(pe, p_.kind == Kind::allgather ? all() : n) : Step::end;
      case Stage::row_gather: return move_step(pe, p_.row, x_, k, y_ * w * n, n, true);
      case Stage::col_gather: return x_ != 0 ? Step::end : move_step(pe, p_.col, y_, k, 0, w * n, true);
      case Stage::col_scatter: return x_ != 0 ? Step::end : move_step(pe, p_.col, y_, k, 0, w * n, false);
      case Stage::row_scatter: return move_step(pe, p_.row, x_, k, y_ * w * n, n, false);
      default: return Step::end;
    }
  }

  // Level `l` of a line reduction of n elements at position `pos` (roles in the file comment).
  Step reduce_step(PE& pe, const LinePlan& plan, std::uint32_t pos, unsigned l, std::uint32_t n) {
    if (l >= plan.levels || n == 0) return Step::end;
    const std::uint32_t g = plan.group, s = stride_at(g, l);
    if (pos % s != 0) return Step::end;  // sent at an earlier level
    const std::uint32_t k = (pos / s) % g, base = pos - k * s;
    const std::uint32_t beyond = (plan.length - base + s - 1) / s;
    const std::uint32_t m = beyond < g ? beyond : g;  // participants in this group
    if (m == 1) return Step::skipped;                 // alone at this level: carry on up
    const Color* c = plan.reduce[l];
    const Mem1d<T> mine = span(0, n);
    if (k == 0) combine(pe, mine, mine, fabin<T>(c[1], n));
    else if (k + 1 == m) wse::mov(pe, fabout<T>(c[k % 2], n), mine, next());
    else combine(pe, fabout<T>(c[k % 2], n), fabin<T>(c[(k + 1) % 2], n), mine);
    return Step::issued;
  }

  // Gather (toward_root) or scatter along a line: chunk p of `chunk` elements at base + p·chunk.
  // A PE between the root and the far end issues two ops on one color at once: its own chunk
  // and the pass-through for the PEs beyond. Ops on one color run in issue order, so the
  // pass-through streams right after the own chunk with no task switch in between.
  Step move_step(PE& pe, const LinePlan& plan, std::uint32_t p, unsigned k, std::uint32_t base, std::uint32_t chunk,
                 bool toward_root) {
    const std::uint32_t L = plan.length;
    if (L <= 1 || chunk == 0 || k > 0) return Step::end;
    const Color send = plan.move[p % 2], recv = plan.move[(p + 1) % 2];
    if (p == 0) {
      const std::uint32_t rest = (L - 1) * chunk;
      if (toward_root) wse::mov(pe, span(base + chunk, rest), fabin<T>(recv, rest), next());
      else wse::mov(pe, fabout<T>(send, rest), span(base + chunk, rest), next());
      return Step::issued;
    }
    const bool last = p + 1 == L;
    const Completion own_done = last ? next() : then_nothing();
    if (toward_root) wse::mov(pe, fabout<T>(send, chunk), span(base + p * chunk, chunk), own_done);
    else wse::mov(pe, span(base + p * chunk, chunk), fabin<T>(recv, chunk), own_done);
    if (!last) {
      const std::uint32_t beyond = (L - 1 - p) * chunk;  // elements of the PEs past this one
      wse::mov(pe, fabout<T>(send, beyond), fabin<T>(recv, beyond), next());
    }
    return Step::issued;
  }

  Step broadcast_step(PE& pe, std::uint32_t n) {
    if (p_.area.area() <= 1 || n == 0) return Step::end;
    if (x_ == 0 && y_ == 0) wse::mov(pe, fabout<T>(p_.bcast, n), span(0, n), next());
    else wse::mov(pe, span(0, n), fabin<T>(p_.bcast, n), next());
    return Step::issued;
  }

  Params p_{};
  Array<T> buf_{};
  Completion done_{};
  std::uint16_t x_ = 0, y_ = 0;  // this PE in the area
  std::uint8_t stage_ = 0, step_ = 0;
  bool running_ = false;
  bool attached_ = false;
};

namespace detail {
template <class C> inline constexpr bool is_collective = false;
template <class PE, class T> inline constexpr bool is_collective<Collective<PE, T>> = true;
}  // namespace detail

/// Joins the kernel's member collective `Member` (a Collective<PE, T> member of kernel K) to
/// the collective `p` and binds its task. Kernel code, in init():
///   wse::collectives::attach<&MyKernel::sum>(pe, *this, params.sum);
template <auto Member, class K, class PE> void attach(PE& pe, K& kernel, const Params& p) {
  using C = typename wse::detail::MemberObjectTraits<decltype(Member)>::component;
  static_assert(detail::is_collective<C>, "attach<&Kernel::member>: the member must be a wse::collectives::Collective<PE, T>");
  static_assert(std::is_same_v<typename wse::detail::MemberObjectTraits<decltype(Member)>::kernel, K>,
                "attach<&Kernel::member>(pe, *this, params): the member must belong to this kernel");
  (kernel.*Member).init(pe, p);
  bind_member_local_task<Member, &C::resume>(pe, p.task);
}

}  // namespace wse::collectives
