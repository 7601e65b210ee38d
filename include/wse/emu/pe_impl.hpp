#pragma once
/// \file
/// The per-PE step functions of the emulator: router, microthreads, task picker, DSD
/// execution, stuck-PE description. Emulator internal (definitions of Pe's engine side).
#include <bit>
#include <string>

#include "../program/program.hpp"
#include "pe.hpp"
#include "simd_dsd.hpp"

namespace wse::emu {

inline void Pe::dsd(const DsdInstr& ins) {
  if (fault_) return;
  const char* op = op_name(ins.op);
  const std::uint32_t length = ins.dst.length();
  const Operand* srcs[3] = {&ins.a, &ins.b, &ins.c};
  const int nsrc = detail::source_count(ins.op);
  static const char* const names[3] = {"a", "b", "c"};
  bool fabric = ins.dst.kind == OperandKind::fabout;
  std::uint32_t fabin_colors = 0;
  std::string why;
  if (!detail::within_bounds(ins.dst, why)) return fault_at(op, "destination DSD runs past its array: " + why);
  for (int k = 0; k < nsrc; ++k) {
    const Operand& s = *srcs[k];
    if (s.kind == OperandKind::scalar) continue;
    if (s.length() != length)
      return fault_at(op, "length mismatch: destination has " + std::to_string(length) + " elements, source " + names[k] +
                              " has " + std::to_string(s.length()));
    if (!detail::within_bounds(s, why)) return fault_at(op, std::string("source DSD ") + names[k] + " runs past its array: " + why);
    if (s.kind == OperandKind::fabin) {
      fabric = true;
      const ColorState* cs = color_state(s.color);
      if (cs == nullptr || !cs->has_iq())
        return fault_at(op, "fabric input on color " + std::to_string(s.color.value) +
                                ", but no route at this PE delivers that color to RAMP");
      if (fabin_colors & (1u << s.color.value))
        return fault_at(op, "two fabric inputs on color " + std::to_string(s.color.value) + " in one op");
      fabin_colors |= 1u << s.color.value;
    }
  }
  if (ins.dst.kind == OperandKind::fabout) {
    const ColorState* cs = color_state(ins.dst.color);
    if (cs == nullptr || !cs->has_oq())
      return fault_at(op, "fabric output on color " + std::to_string(ins.dst.color.value) +
                              ", but no route at this PE receives that color from RAMP");
  }
  if (!fabric) {
    execute_now(ins, length);
    if (timed_ && ctx_ != Ctx::init) {
      // Timed mode: the op occupies the compute element (sync) or a microthread (async) for
      // its element cycles; the data is written now either way, so results do not change.
      clock_->task_clock += shared_->arch->cycles.dsd_issue;
      const std::uint64_t end = clock_->task_clock + timing::element_cycles(shared_->arch->cycles, ins, length);
      if (!ins.async) {
        clock_->task_clock = end;
        return;
      }
      if (end > clock_->horizon) clock_->horizon = end;
      if (ins.done.action != Completion::Action::none) {  // fires at `end`, from advance_async
        AsyncOp a;
        a.ins = ins;
        a.length = a.next = length;
        a.done_at = end;
        a.memory_only = true;
        a.issuer_kind = static_cast<std::uint8_t>(ctx_);
        a.issuer_id = ctx_id_;
        a.issuer_fn = ctx_fn_;
        async_.push_back(a);
      }
      return;
    }
    if (ins.async) {
      if (ins.done.action == Completion::Action::activate) activate(ins.done.task);
      if (ins.done.action == Completion::Action::unblock) unblock(ins.done.task);
    }
    return;
  }
  if (!ins.async) return fault_at(op, "an op with a fabric operand must be asynchronous");
  if (fabric_ops_in_flight() >= shared_->arch->microthreads)
    return fault_at(op, "more than " + std::to_string(shared_->arch->microthreads) + " asynchronous ops in flight on this PE");
  AsyncOp a;
  a.ins = ins;
  a.length = length;
  a.issuer_kind = static_cast<std::uint8_t>(ctx_);
  a.issuer_id = ctx_id_;
  a.issuer_fn = ctx_fn_;
  for (int k = 0; k < nsrc; ++k)
    if (srcs[k]->kind == OperandKind::fabin) {
      a.in_slot[k] = static_cast<std::int8_t>(slot_of(srcs[k]->color.value));
      a.in_mask |= 1ull << srcs[k]->color.value;
    }
  if (ins.dst.kind == OperandKind::fabout) {
    a.out_slot = static_cast<std::int8_t>(slot_of(ins.dst.color.value));
    a.out_mask = 1ull << ins.dst.color.value;
  }
  if (timed_ && ctx_ != Ctx::init) {
    clock_->task_clock += shared_->arch->cycles.dsd_issue;
    a.start = clock_->task_clock;
  }
  async_.push_back(a);
}

inline unsigned Pe::fabric_ops_in_flight() const {
  unsigned n = 0;
  for (const auto& a : async_) n += !a.memory_only;
  return n;
}

inline std::uint64_t Pe::next_time_event() const {
  std::uint64_t next = ~0ull;
  auto consider = [&](std::uint64_t t) {
    if (t > clock_->now && t < next) next = t;
  };
  consider(clock_->ce_free_at);
  if (stalled_head_ < stalled_sends_.size()) consider(stalled_sends_[stalled_head_].ready);
  for (const auto& a : async_) {
    consider(a.start);
    consider(a.done_at);
  }
  return next;
}

inline void Pe::execute_now(const DsdInstr& ins, std::uint32_t length) {
  if (shared_->use_simd && simd::try_execute(ins, length)) return;
  const Operand* srcs[3] = {&ins.a, &ins.b, &ins.c};
  const int nsrc = detail::source_count(ins.op);
  for (std::uint32_t i = 0; i < length; ++i) {
    std::uint32_t v[3] = {0, 0, 0};
    for (int k = 0; k < nsrc; ++k)
      v[k] = srcs[k]->kind == OperandKind::scalar ? srcs[k]->scalar_bits : detail::load(*srcs[k], i);
    detail::store(ins.dst, i, detail::compute(ins, v[0], v[1], v[2]));
  }
}

inline bool Pe::step_async(AsyncOp& a, std::uint64_t& claimed_in, std::uint64_t& claimed_out) {
  if (a.next >= a.length) return false;  // done (a timed memory-only op waits for its completion)
  auto claim = [&] {
    claimed_in |= a.in_mask;
    claimed_out |= a.out_mask;
  };
  // Ops on one color run in issue order: wait while an earlier op still holds the color.
  if ((a.in_mask & claimed_in) != 0 || (a.out_mask & claimed_out) != 0 || clock_->now < a.start) {
    claim();
    return false;
  }
  const DsdInstr& ins = a.ins;
  const Operand* srcs[3] = {&ins.a, &ins.b, &ins.c};
  const int nsrc = detail::source_count(ins.op);
  ColorState* in_cs[3] = {nullptr, nullptr, nullptr};
  for (int k = 0; k < nsrc; ++k)
    if (a.in_slot[k] >= 0) in_cs[k] = &colors_[static_cast<std::size_t>(a.in_slot[k])];
  ColorState* out_cs = a.out_slot >= 0 ? &colors_[static_cast<std::size_t>(a.out_slot)] : nullptr;
  bool progress = false;
  while (a.next < a.length) {
    bool ready = true;
    for (int k = 0; k < nsrc && ready; ++k)
      if (in_cs[k] && iq(*in_cs[k]).empty()) ready = false;
    if (ready && out_cs && oq(*out_cs).full()) {
      stalled_now_ = true;  // back-pressure: the op waits for output-queue space
      ready = false;
    }
    if (!ready) break;
    std::uint32_t v[3] = {0, 0, 0};
    for (int k = 0; k < nsrc; ++k) {
      const Operand& s = *srcs[k];
      if (s.kind == OperandKind::scalar) {
        v[k] = s.scalar_bits;
      } else if (s.kind == OperandKind::fabin) {
        const Wavelet w = iq(*in_cs[k]).front();
        iq(*in_cs[k]).pop();
        counters_.add(c_received);
        v[k] = elem_size(s.type) == 2 ? (w.data & 0xffffu) : w.data;
      } else {
        v[k] = detail::load(s, a.next);
      }
    }
    // mov is most fabric traffic: skip the general element function for it.
    const std::uint32_t r = ins.op == DsdOpCode::mov ? v[0] : detail::compute(ins, v[0], v[1], v[2]);
    if (out_cs) {
      std::uint32_t bits = r;
      if (elem_size(ins.dst.type) == 2) {
        bits = (r & 0xffffu) | (ins.dst.indexed ? static_cast<std::uint32_t>(static_cast<std::uint16_t>(ins.dst.index_base + a.next)) << 16 : 0u);
      }
      oq(*out_cs).push(Wavelet{bits, ins.dst.control});
      counters_.add(c_sent);
    } else {
      detail::store(ins.dst, a.next, r);
    }
    ++a.next;
    progress = true;
    if (timed_) break;  // fabric operands move one wavelet per cycle
  }
  if (a.next < a.length) claim();
  return progress;
}

inline bool Pe::advance_async() {
  if (async_.empty()) return false;
  std::uint64_t claimed_in = 0, claimed_out = 0;
  bool progress = false;
  bool any_done = false;
  for (auto& a : async_) {
    progress |= step_async(a, claimed_in, claimed_out);
    any_done |= a.next >= a.length && clock_->now >= a.done_at;
  }
  if (!any_done) return progress;
  // Retire finished ops in issue order and fire their completions.
  std::size_t keep = 0;
  for (std::size_t i = 0; i < async_.size(); ++i) {
    AsyncOp& a = async_[i];
    if (a.next < a.length || clock_->now < a.done_at) {
      if (keep != i) async_[keep] = a;
      ++keep;
      continue;
    }
    const Completion done = a.ins.done;
    ctx_ = static_cast<Ctx>(a.issuer_kind) == Ctx::task ? Ctx::async : static_cast<Ctx>(a.issuer_kind);
    ctx_id_ = a.issuer_id;
    ctx_fn_ = a.issuer_fn;
    if (done.action == Completion::Action::activate) activate(done.task);
    if (done.action == Completion::Action::unblock) unblock(done.task);
  }
  async_.resize_down(keep);
  return progress;
}

inline std::uint64_t Pe::fabin_busy_mask() const {
  std::uint64_t m = 0;
  for (const auto& a : async_)
    for (const Operand* s : {&a.ins.a, &a.ins.b, &a.ins.c})
      if (s->kind == OperandKind::fabin) m |= 1ull << s->color.value;
  return m;
}

inline bool Pe::drain_stalled_sends() {
  bool progress = false;
  while (stalled_head_ < stalled_sends_.size()) {
    const StalledSend& s = stalled_sends_[stalled_head_];
    ColorState& cs = *color_state(Color{s.color});
    if (s.ready > clock_->now) break;  // timed mode: the task has not reached this send yet
    if (oq(cs).full() || fabout_busy(s.color)) {
      stalled_now_ = true;
      break;
    }
    oq(cs).push(s.w);
    counters_.add(c_sent);
    ++stalled_head_;
    progress = true;
  }
  if (stalled_head_ == stalled_sends_.size()) {
    stalled_sends_.clear();
    stalled_head_ = 0;
  }
  return progress;
}

inline bool Pe::run_tasks(unsigned max_runs) {
  bool progress = false;
  for (unsigned runs = 0; runs < max_runs && !fault_ && stalled_sends_.empty() && ce_free(); ++runs) {
    std::uint64_t ready = 0;
    for (const auto& cs : colors_)
      if (cs.has_iq() && !iq(cs).empty()) ready |= 1ull << cs.color.value;
    const std::uint64_t runnable =
        ((active_ | (data_bound_ & ready & ~fabin_busy_mask())) & ~blocked_);
    if (runnable == 0) break;
    // Picker order: the lowest runnable task id runs first (documented in docs/semantics.md).
    const unsigned t = static_cast<unsigned>(std::countr_zero(runnable));
    TaskSlot& slot = tasks_.bound(t);  // runnable implies bound
    ctx_ = Ctx::task;
    ctx_id_ = static_cast<std::uint8_t>(t);
    if (timed_) begin_timed_task();
    if (slot.kind == TaskKind::data && (data_bound_ >> t & 1u) && !(active_ >> t & 1u)) {
      ColorState& cs = *color_state(Color{static_cast<std::uint8_t>(t)});
      const Wavelet w = iq(cs).front();
      iq(cs).pop();
      counters_.add(c_received);
      shared_->task_fns[slot.fn](kernel_, *this, w);
    } else {
      active_ &= ~(1ull << t);
      shared_->task_fns[slot.fn](kernel_, *this, Wavelet{slot.last, slot.last_control});
    }
    if (timed_) end_timed_task();
    counters_.add(c_tasks_run);
    progress = true;
  }
  return progress;
}

inline bool Pe::deliver_control(Wavelet w) {
  const ControlPayload p = ControlPayload::decode(w.data);
  if (!p.activate) return true;
  ctx_ = Ctx::router;
  if (p.task.value > shared_->arch->control_task_last || tasks_[p.task.value].kind != TaskKind::control) {
    fault_at("control wavelet", "asks to activate task " + std::to_string(p.task.value) + ", which is not a bound control task");
    return false;
  }
  TaskSlot& slot = tasks_.bound(p.task.value);
  slot.last = w.data;
  slot.last_control = w.control;
  active_ |= bit(p.task);
  return true;
}

inline bool Pe::route_step() {
  bool progress = false;
  for (auto& cs : colors_) {
    const ColorPlan& pl = plan(cs);
    for (;;) {
      const RoutePosition& p = pl.route.positions[cs.pos];
      if (p.rx.empty()) break;
      const Port src = static_cast<Port>(std::countr_zero(static_cast<unsigned>(p.rx.bits)));
      Ring& from = src == Port::ramp ? oq(cs) : in(cs, static_cast<unsigned>(src));
      if (from.empty()) break;
      const Wavelet w = from.front();
      const bool to_ramp = p.tx.has(Port::ramp);
      const bool deliver = to_ramp && !w.control && (!pl.filtered || pl.filter.passes(w.index()));
      bool room = !(deliver && iq(cs).full());
      for (unsigned d = 0; d < 4 && room; ++d)
        if (p.tx.has(static_cast<Port>(d)) && out(cs, d).full()) room = false;
      if (!room) break;  // back-pressure: the wavelet waits where it is
      from.pop();
      for (unsigned d = 0; d < 4; ++d)
        if (p.tx.has(static_cast<Port>(d))) {
          out(cs, d).push(w);
          counters_.add(c_forwarded);
        }
      if (deliver) {
        iq(cs).push(w);
        counters_.add(c_delivered);
      }
      progress = true;
      if (w.control) {
        if (to_ramp && !deliver_control(w)) return true;
        const ControlPayload c = ControlPayload::decode(w.data);
        if (c.advance_switch) {
          if (cs.pos + 1u < pl.route.count) ++cs.pos;
          else if (pl.route.ring) cs.pos = 0;
        }
        if (c.reset_switch) cs.pos = 0;
      }
      if (timed_) break;  // timed mode: one wavelet per color per cycle
    }
  }
  return progress;
}

inline bool Pe::has_local_work() const {
  if (active_ != 0 || !async_.empty() || !pending_launches_.empty() || !stalled_sends_.empty()) return true;
  if (timed_ && wire_busy()) return true;
  for (const auto& cs : colors_) {
    if (!iq(cs).empty() || !oq(cs).empty()) return true;
    for (unsigned d = 0; d < 4; ++d)
      if (!in(cs, d).empty()) return true;
  }
  return false;
}

inline bool Pe::has_outgoing() const {
  for (const auto& cs : colors_)
    for (unsigned d = 0; d < 4; ++d)
      if (!out(cs, d).empty()) return true;
  return false;
}

inline bool Pe::has_work() const { return has_local_work() || has_outgoing(); }

inline StuckPe Pe::describe_stuck() const {
  StuckPe s;
  s.pe = coord_;
  s.kernel = std::string(kernel_name());
  for (unsigned t = 0; t < max_task_ids; ++t) {
    const bool active = (active_ >> t) & 1u, blocked = (blocked_ >> t) & 1u;
    if (active)
      s.tasks.push_back(std::string(task_kind_name(tasks_[t].kind)) + " task " + std::to_string(t) + " activated" +
                        (blocked ? " but blocked" : ""));
  }
  std::uint64_t colors_waiting = 0;
  for (const auto& cs : colors_) {
    const std::string c = "color " + std::to_string(cs.color.value);
    if (!iq(cs).empty()) {
      const unsigned t = cs.color.value;
      std::string why;
      if (tasks_[t].kind != TaskKind::data) why = "no data task bound";
      else if ((blocked_ >> t) & 1u) why = "data task " + std::to_string(t) + " blocked";
      s.queues.push_back(c + " input queue: " + std::to_string(iq(cs).size()) + "/" + std::to_string(iq(cs).capacity()) +
                         " wavelets" + (why.empty() ? "" : " (" + why + ")"));
      colors_waiting |= 1ull << cs.color.value;
    }
    if (!oq(cs).empty()) {
      s.queues.push_back(c + " output queue: " + std::to_string(oq(cs).size()) + "/" + std::to_string(oq(cs).capacity()) + " wavelets");
      colors_waiting |= 1ull << cs.color.value;
    }
    for (unsigned d = 0; d < 4; ++d) {
      if (!in(cs, d).empty()) {
        s.queues.push_back(c + " router input from " + port_name(static_cast<Port>(d)) + ": " +
                           std::to_string(in(cs, d).size()) + " wavelets (switch position " + std::to_string(cs.pos) +
                           " receives from " + wse::to_string(plan(cs).route.positions[cs.pos].rx) + ")");
        colors_waiting |= 1ull << cs.color.value;
      }
      if (!out(cs, d).empty()) {
        s.queues.push_back(c + " router output to " + port_name(static_cast<Port>(d)) + ": " +
                           std::to_string(out(cs, d).size()) + " wavelets");
        colors_waiting |= 1ull << cs.color.value;
      }
    }
  }
  if (!stalled_sends_.empty()) {
    const StalledSend& f = stalled_sends_[stalled_head_];
    s.waiting.push_back("compute element stalled on a send to color " + std::to_string(f.color) + " (" +
                        std::to_string(stalled_sends_.size() - stalled_head_) + " wavelets waiting for output-queue space)");
  }
  for (const PendingLaunch& launch : pending_launches_)
    s.waiting.push_back(std::string("launched function '") + launch.name + "' waits for the compute element");
  for (const auto& a : async_) {
    std::string w = std::string("async ") + op_name(a.ins.op) + " at element " + std::to_string(a.next) + " of " +
                    std::to_string(a.length);
    for (const Operand* o : {&a.ins.a, &a.ins.b, &a.ins.c})
      if (o->kind == OperandKind::fabin) w += ", reads color " + std::to_string(o->color.value);
    if (a.ins.dst.kind == OperandKind::fabout) w += ", writes color " + std::to_string(a.ins.dst.color.value);
    s.waiting.push_back(w);
  }
  for (unsigned c = 0; c < max_colors; ++c)
    if ((colors_waiting >> c) & 1u) s.colors.push_back(static_cast<std::uint8_t>(c));
  return s;
}

}  // namespace wse::emu
