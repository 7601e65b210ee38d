#pragma once
/// \file
/// wse::emu::Pe: the emulator's per-PE state and the backend kernels run against.
/// Kernels see only the wse::Backend operations (activate, send, dsd, ...); the engine
/// drives the rest. Emulator layer; hosted.
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../arch/arch.hpp"
#include "../core/assert.hpp"
#include "../fabric/route.hpp"
#include "../pe/backend.hpp"
#include "../program/program.hpp"
#include "arena.hpp"
#include "compact_vector.hpp"
#include "counters.hpp"
#include "dsd_exec.hpp"
#include "report.hpp"
#include "ring.hpp"
#include "timing.hpp"

namespace wse::emu {

class Engine;

/// A host input stream's pending wavelets (host writes between runs, the emulator reads).
struct InStream {
  std::vector<Wavelet> data;
  std::size_t next = 0;
  bool pending() const { return next < data.size(); }
};
/// A host output stream's collected wavelets.
struct OutStream {
  std::vector<Wavelet> data;
};

/// Names of exported symbols and functions, stored once per engine however many PEs export
/// them (a full fabric has ~754,000 PEs exporting the same few names). The engine points
/// `name_pool` at its pool while kernels run init.
class NamePool {
 public:
  const char* intern(std::string_view name) {
    for (const auto& n : names_)
      if (*n == name) return n->c_str();
    names_.push_back(std::make_unique<const std::string>(name));
    return names_.back()->c_str();
  }

 private:
  std::vector<std::unique_ptr<const std::string>> names_;  // a program exports a handful
};
inline thread_local NamePool* name_pool = nullptr;

class Pe;
/// The task functions PEs bind, stored once per engine: a PE's task slot holds a 16-bit
/// index (8-byte slots, not 16). Only kernel init binds tasks; the engine points
/// `task_fn_pool` at its pool while init runs.
class TaskFnPool {
 public:
  static constexpr std::size_t max_functions = 1u << 16;
  explicit TaskFnPool(std::vector<TaskFn<Pe>>& fns) : fns_(&fns) {}
  /// Index of `fn` in the table, added when new; false when the table is full.
  bool intern(TaskFn<Pe> fn, std::uint16_t& index) {
    if (fn == last_fn_ && !fns_->empty()) return index = last_index_, true;  // e.g. one handler, many ids
    const auto [it, added] = index_.try_emplace(fn, static_cast<std::uint16_t>(fns_->size()));
    if (added) {
      if (fns_->size() == max_functions) return index_.erase(it), false;
      fns_->push_back(fn);
    }
    last_fn_ = fn;
    last_index_ = it->second;
    index = it->second;
    return true;
  }

 private:
  std::vector<TaskFn<Pe>>* fns_;
  std::unordered_map<TaskFn<Pe>, std::uint16_t> index_;
  TaskFn<Pe> last_fn_ = nullptr;
  std::uint16_t last_index_ = 0;
};
inline thread_local TaskFnPool* task_fn_pool = nullptr;

/// What the PEs of one region share: the name reports give their kernel and how to destroy it.
struct LoadedRegion {
  std::string name;
  void (*destroy_kernel)(void*) = nullptr;  // set by the first PE's kernel creation
};

/// An exported symbol of a PE: a typed array the host may copy into and out of.
struct Symbol {
  const char* name = "";  ///< interned by the engine: valid while the engine lives
  void* data = nullptr;
  std::uint32_t count = 0;
  ElemType type = ElemType::f32;  // last: 24 bytes, not 32 (a full fabric holds millions)
};
static_assert(sizeof(void*) != 8 || sizeof(Symbol) == 24);

/// Host-stream ends at the fabric edge, per direction (only edge PEs with streams have them).
struct StreamEnds {
  InStream* in[4] = {};
  OutStream* out[4] = {};
};

/// What a color does at one PE apart from its switch position: route, filter, host-stream
/// ends. PEs with equal plans share one entry of their engine's table (PeShared::plans): most
/// PEs of a row or column route a color alike, so a routed color costs a PE an 8-byte
/// ColorState instead of 40 bytes (docs/performance.md). A field added here must be added to
/// the key in Engine::intern_plan.
struct ColorPlan {
  ColorRoute route{};
  RangeFilter filter{};
  bool filtered = false;
  StreamEnds* streams = nullptr;  // owned by the engine; unique to one PE and color
};

/// What every PE of an engine reads alike: the arch, the color plans, the config's limits.
struct PeShared {
  const arch::Arch* arch = nullptr;
  std::vector<ColorPlan> plans;
  std::vector<TaskFn<Pe>> task_fns;  // TaskFnPool; a task slot holds an index
  bool use_simd = true;  // EmuConfig::simd
  std::uint32_t send_stall_limit = 1u << 20;  // EmuConfig::max_stalled_sends
};

/// One PE of the emulated fabric: router, queues, task table, microthreads, memory, kernel.
/// Kernel code calls the Backend operations; everything else is for the engine and host.
class Pe {
 public:
  struct TimedClocks;
  // `clocks`: this PE's own in a timed run; one all-zero instance all PEs share otherwise.
  Pe(const PeShared& shared, Coord c, TimedClocks& clocks, bool timed)
      : shared_(&shared), clock_(&clocks), coord_(c), timed_(timed) {
    const arch::Arch& a = *shared.arch;
    // Data-task ids of colors with no bound task start blocked (bind_task unblocks).
    blocked_ = (a.routable_colors >= 64) ? ~0ull : ((1ull << a.routable_colors) - 1);
  }
  Pe(const Pe&) = delete;
  Pe& operator=(const Pe&) = delete;
  ~Pe() {
    if (kernel_ && region_ && region_->destroy_kernel) region_->destroy_kernel(kernel_);
  }

  // ---- Backend operations (kernel code) ------------------------------------------------

  /// Sets the activation bit of task `t`; it runs once it is also unblocked. PE code.
  void activate(TaskId t) {
    if (fault_) return;
    if (!check_task(t, "activate")) return;
    if (tasks_[t.value].kind == TaskKind::none || tasks_[t.value].kind == TaskKind::data)
      return fault_at("activate", "task " + std::to_string(t.value) + " is " +
                                      (tasks_[t.value].kind == TaskKind::none ? "not bound" : "a data task") +
                                      "; only local and control tasks can be activated");
    active_ |= bit(t);
  }
  /// Blocks task `t`: it does not run until unblocked (data tasks leave wavelets queued). PE code.
  void block(TaskId t) {
    if (fault_ || !check_task(t, "block")) return;
    blocked_ |= bit(t);
  }
  /// Unblocks task `t`. PE code.
  void unblock(TaskId t) {
    if (fault_ || !check_task(t, "unblock")) return;
    blocked_ &= ~bit(t);
  }
  /// Puts one wavelet into the output queue of `c`. Synchronous: when the queue is full the
  /// compute element stalls (no other task starts) until the wavelet fits; sends keep their
  /// order. More than EmuConfig::max_stalled_sends waiting wavelets is a queue-overflow fault.
  /// PE code.
  void send(Color c, Wavelet w) {
    if (fault_) return;
    ColorState* s = color_state(c);
    if (s == nullptr || !s->has_oq())
      return fault_at("send", "color " + std::to_string(c.value) + " has no route receiving from RAMP at this PE");
    // Timed mode: the send happens when the task's clock reaches it; until then it waits,
    // in order, with the stalled sends.
    std::uint64_t ready = 0;
    if (timed_ && ctx_ != Ctx::init) {
      ready = clock_->task_clock;
      clock_->task_clock += shared_->arch->cycles.send;
    }
    // A send also waits behind async ops still writing this color, so it never overtakes them.
    if (ready <= clock_->now && stalled_sends_.empty() && !oq(*s).full() && !fabout_busy(c.value)) {
      oq(*s).push(w);
      counters_.add(c_sent);
      return;
    }
    if (stalled_sends_.size() - stalled_head_ >= shared_->send_stall_limit)
      return fault_at("send", "queue overflow: the output queue of color " + std::to_string(c.value) + " is full (depth " +
                                  std::to_string(oq(*s).capacity()) + ") and " + std::to_string(shared_->send_stall_limit) +
                                  " more wavelets wait behind it; stream large data with an async mov to a fabout DSD");
    stalled_sends_.push_back(StalledSend{c.value, w, ready});
  }
  /// Executes a DSD instruction (synchronously, or queues it on a microthread). PE code.
  void dsd(const DsdInstr& ins);
  /// Binds task `t` as `kind` (kernel init). Binding any task unblocks its id.
  void bind_task(TaskId t, TaskKind kind, TaskFn<Pe> fn) {
    if (fault_ || !check_task(t, "bind_task")) return;
    if (task_fn_pool == nullptr || ctx_ != Ctx::init)
      return fault_at("bind_task", "tasks are bound during kernel init only (task id " + std::to_string(t.value) + ")");
    if (const TaskKind bound = tasks_[t.value].kind; bound != TaskKind::none)
      return fault_at("bind_task", "task id " + std::to_string(t.value) + " is already bound as a " +
                                       task_kind_name(bound) + " task");
    if (kind == TaskKind::data && t.value >= shared_->arch->routable_colors)
      return fault_at("bind_task", "data task id " + std::to_string(t.value) + " is not a routable color (0.." +
                                       std::to_string(shared_->arch->routable_colors - 1) + ")");
    if (kind == TaskKind::local && (t.value < shared_->arch->local_task_first || t.value > shared_->arch->local_task_last))
      return fault_at("bind_task", "local task id " + std::to_string(t.value) + " is outside " +
                                       std::to_string(shared_->arch->local_task_first) + ".." +
                                       std::to_string(shared_->arch->local_task_last) + " on " + shared_->arch->name);
    if (kind == TaskKind::control && t.value > shared_->arch->control_task_last)
      return fault_at("bind_task", "control task id " + std::to_string(t.value) + " is above " +
                                       std::to_string(shared_->arch->control_task_last));
    std::uint16_t fn_index = 0;
    if (!task_fn_pool->intern(fn, fn_index))
      return fault_at("bind_task", "the program binds more than " + std::to_string(TaskFnPool::max_functions) +
                                       " distinct task functions");
    TaskSlot& slot = tasks_.bind(t.value);
    slot.kind = kind;
    slot.fn = fn_index;
    blocked_ &= ~bit(t);
    if (kind == TaskKind::data) data_bound_ |= bit(t);
  }
  /// Allocates zeroed PE memory; returns nullptr and faults when over the PE budget. PE code.
  void* allocate(std::uint32_t bytes, std::uint32_t align) {
    if (fault_) return nullptr;
    return allocate_impl(bytes, align, "alloc");
  }
  /// Exports `n` elements at `p` under `name` for host copies. PE code (init).
  void export_symbol(const char* name, ElemType t, void* p, std::uint32_t n) {
    const char* interned = export_name("export_symbol", name);
    if (interned == nullptr) return;
    for (const auto& s : symbols_)
      if (s.name == interned) return fault_at("export_symbol", "symbol '" + std::string(name) + "' is exported twice");
    symbols_.push_back(Symbol{interned, p, n, t});
    symbols_.shrink_to_fit();  // exports are few and fixed after init
  }
  /// Exports a launchable function under `name`. PE code (init).
  void export_function(const char* name, TaskFn<Pe> fn) {
    const char* interned = export_name("export_function", name);
    if (interned == nullptr) return;
    for (const auto& f : functions_)
      if (f.name == interned) return fault_at("export_function", "function '" + std::string(name) + "' is exported twice");
    functions_.push_back(Function{interned, fn});
    functions_.shrink_to_fit();
  }
  /// This PE's position on the grid. PE code.
  Coord coord() const { return coord_; }

  // ---- inspection (host code, between runs) -----------------------------------------------

  /// This PE's counters over the engine's lifetime.
  PeStats stats() const {
    PeStats s;
    s.tasks_run = counters_.get(c_tasks_run);
    s.sent = counters_.get(c_sent);
    s.received = counters_.get(c_received);
    s.forwarded = counters_.get(c_forwarded);
    s.delivered = counters_.get(c_delivered);
    s.busy_cycles = counters_.get(c_busy_cycles);
    s.stall_cycles = counters_.get(c_stall_cycles);
    for (unsigned d = 0; d < 4; ++d) s.link_in[d] = counters_.get(c_link_in + d);
    return s;
  }
  std::string_view kernel_name() const { return region_ ? std::string_view(region_->name) : std::string_view("no kernel"); }
  /// Bytes of PE memory in use (kernel object + allocations).
  std::uint32_t memory_used() const { return memory_used_; }
  bool is_active(TaskId t) const { return t.value < 64 && (active_ & bit(t)) != 0; }
  bool is_blocked(TaskId t) const { return t.value < 64 && (blocked_ & bit(t)) != 0; }
  /// The exported symbol `name`, or nullptr.
  const Symbol* find_symbol(std::string_view name) const {
    for (const auto& s : symbols_)
      if (std::string_view(s.name) == name) return &s;
    return nullptr;
  }
  const CompactVector<Symbol>& symbols() const { return symbols_; }
  bool exports_function(std::string_view name) const {
    for (const auto& f : functions_)
      if (std::string_view(f.name) == name) return true;
    return false;
  }
  /// Bytes of emulator state this PE holds beyond its kernel's memory (EmuMemory): the PE
  /// object, its colors and rings, task slots, export tables and any pending work.
  std::size_t state_bytes() const {
    std::size_t n = sizeof(Pe) + colors_.capacity() * sizeof(ColorState) + tasks_.capacity() * sizeof(TaskSlot);
    for (const auto& cs : colors_) n += cs.ring_count() * sizeof(Ring) + (cs.has_streams() ? sizeof(StreamEnds) : 0);
    n += symbols_.capacity() * sizeof(Symbol) + functions_.capacity() * sizeof(Function);
    n += async_.capacity() * sizeof(AsyncOp) + stalled_sends_.capacity() * sizeof(StalledSend) +
         pending_launches_.capacity() * sizeof(PendingLaunch);
    if (timed_) n += sizeof(TimedClocks) + (clock_->wire ? sizeof(*clock_->wire) : 0);
    if (fault_) n += sizeof(PeFault);
    return n + counters_.extra_bytes();
  }
  /// Queues and link buffers of this PE holding storage (ring.hpp); 0 once the PE is idle.
  unsigned rings_with_storage() const {
    unsigned n = 0;
    for (const auto& cs : colors_) {
      for (unsigned k = 0; k < cs.ring_count(); ++k) n += ring_table_[cs.ring_base + k].holds_storage();
    }
    return n;
  }
  /// Current switch position of `c` at this PE (0 when the color has no route).
  unsigned switch_position(Color c) const {
    const ColorState* s = color_state(c);
    return s ? s->pos : 0;
  }

 private:
  friend class Engine;
  template <template <class> class K, class P> friend void wse::detail::emu_create_kernel(Pe&, const P&);

  struct TaskSlot {
    std::uint16_t fn = 0;  // index in PeShared::task_fns
    TaskKind kind = TaskKind::none;
    bool last_control = false;  // last control wavelet, handed to control tasks
    std::uint32_t last = 0;
  };
  static_assert(sizeof(TaskSlot) == 8);
  // The bound tasks only, in id order (a PE binds a handful of its 64 ids): 16 bytes plus
  // one 8-byte slot per bound task instead of a 64-slot table.
  class TaskTable {
   public:
    const TaskSlot& operator[](unsigned t) const {
      static const TaskSlot unbound{};
      return t < 64 && ((bound_ >> t) & 1u) ? slots_[rank(t)] : unbound;
    }
    TaskSlot& bound(unsigned t) { return slots_[rank(t)]; }  // t must be bound
    TaskSlot& bind(unsigned t) {
      const unsigned at = rank(t);
      bound_ |= 1ull << t;
      slots_.insert(at, TaskSlot{});
      return slots_[at];
    }

    void shrink_to_fit() { slots_.shrink_to_fit(); }
    std::size_t capacity() const { return slots_.capacity(); }

   private:
    unsigned rank(unsigned t) const { return static_cast<unsigned>(std::popcount(bound_ & ((1ull << t) - 1u))); }
    std::uint64_t bound_ = 0;
    CompactVector<TaskSlot> slots_;
  };
  // A color routed at this PE: its switch position, its plan (shared, PeShared::plans) and
  // where its rings are. A route uses 2-4 of a color's 10 queues and link buffers: bit k of
  // ring_mask says ring k exists (0-3 in[N,E,S,W], 4-7 out[N,E,S,W], 8 input queue, 9 output
  // queue) and it is ring_table_[ring_base + popcount of the lower bits]; bit 10 says the
  // plan has host-stream ends. 8 bytes per color (docs/performance.md).
  struct ColorState {
    Color color{};
    std::uint8_t pos = 0;        // switch position
    std::uint8_t ring_base = 0;  // index of its first ring in ring_table_ (24 colors x 10 < 256)
    std::uint8_t plan_hi = 0;    // plan index, bits 16-23
    std::uint16_t plan_lo = 0;   // plan index, bits 0-15
    std::uint16_t ring_mask = 0;
    static constexpr std::uint32_t max_plans = 1u << 24;
    static constexpr std::uint16_t streams_bit = 1u << 10;
    std::uint32_t plan() const { return std::uint32_t{plan_lo} | std::uint32_t{plan_hi} << 16; }
    void set_plan(std::uint32_t i) {
      plan_lo = static_cast<std::uint16_t>(i);
      plan_hi = static_cast<std::uint8_t>(i >> 16);
    }
    bool uses_ring(unsigned k) const { return ((ring_mask >> k) & 1u) != 0; }
    unsigned ring_count() const { return static_cast<unsigned>(std::popcount(static_cast<unsigned>(ring_mask & 0x3ffu))); }
    // Index of ring k among this color's rings.
    unsigned ring_rank(unsigned k) const { return static_cast<unsigned>(std::popcount(static_cast<unsigned>(ring_mask & ((1u << k) - 1u)))); }
    bool has_iq() const { return uses_ring(8); }
    bool has_oq() const { return uses_ring(9); }
    bool has_streams() const { return (ring_mask & streams_bit) != 0; }
  };
  static_assert(sizeof(ColorState) == 8, "a routed color costs a PE 8 bytes");
  static_assert(max_colors * 10 <= 256, "ColorState::ring_base indexes every ring of a PE in 8 bits");

  const ColorPlan& plan(const ColorState& cs) const { return shared_->plans[cs.plan()]; }
  Ring& ring(const ColorState& cs, unsigned k) {
    WSE_ASSERT(cs.uses_ring(k), "emulator: a route touched a queue or link buffer it does not use");
    return ring_table_[cs.ring_base + cs.ring_rank(k)];
  }
  const Ring& ring(const ColorState& cs, unsigned k) const {
    static const Ring unused{};  // empty, room for one: never pushed
    return cs.uses_ring(k) ? ring_table_[cs.ring_base + cs.ring_rank(k)] : unused;
  }
  Ring& in(const ColorState& cs, unsigned d) { return ring(cs, d); }
  Ring& out(const ColorState& cs, unsigned d) { return ring(cs, 4 + d); }
  Ring& iq(const ColorState& cs) { return ring(cs, 8); }
  Ring& oq(const ColorState& cs) { return ring(cs, 9); }
  const Ring& in(const ColorState& cs, unsigned d) const { return ring(cs, d); }
  const Ring& out(const ColorState& cs, unsigned d) const { return ring(cs, 4 + d); }
  const Ring& iq(const ColorState& cs) const { return ring(cs, 8); }
  const Ring& oq(const ColorState& cs) const { return ring(cs, 9); }
  InStream* in_stream(const ColorState& cs, unsigned d) const { return cs.has_streams() ? plan(cs).streams->in[d] : nullptr; }
  OutStream* out_stream(const ColorState& cs, unsigned d) const { return cs.has_streams() ? plan(cs).streams->out[d] : nullptr; }

  // Counters behind stats(), 32 bits each (counters.hpp).
  enum Counter : unsigned {
    c_tasks_run, c_sent, c_received, c_forwarded, c_delivered, c_busy_cycles, c_stall_cycles,
    c_link_in,  // + direction
    counter_count = c_link_in + 4
  };
  struct AsyncOp {
    DsdInstr ins;
    std::uint32_t next = 0;
    std::uint32_t length = 0;
    std::uint8_t issuer_kind = 0, issuer_id = 0;  // context that issued it, for reports
    const char* issuer_fn = nullptr;
    std::uint64_t start = 0;    // timed mode: first cycle an element may move
    std::uint64_t done_at = 0;  // timed mode: cycle the completion may fire
    bool memory_only = false;   // timed mode: a memory-only op kept only for its completion
    // Resolved at issue: color slots of fabric operands (-1: not fabric) and their color masks.
    std::int8_t in_slot[3] = {-1, -1, -1};
    std::int8_t out_slot = -1;
    std::uint64_t in_mask = 0, out_mask = 0;
  };
  struct StalledSend {
    std::uint8_t color;
    Wavelet w;
    std::uint64_t ready = 0;  // timed mode: cycle the send happens
  };
  // Timed mode: a wavelet on its way over the link from one direction (hop latency > 1).
  struct WireSlot {
    std::int8_t slot = -1;  // color slot it is for; -1 = empty
    Wavelet w{};
  };
  static constexpr unsigned max_wire_stages = 3;  // hop latency up to 4 cycles

 public:
  // Timed mode's clocks (EmuConfig::timed; docs/timing.md), kept out of the PE: in a
  // functional run every PE points at one all-zero instance it only reads (32 bytes less).
  struct TimedClocks {
    std::uint64_t now = 0;         // the cycle being simulated, set by the engine before phase A
    std::uint64_t task_clock = 0;  // the cycle the running task has reached
    std::uint64_t ce_free_at = 0;  // the compute element is busy before this cycle
    std::uint64_t horizon = 0;     // the latest cycle any scheduled work of this PE ends
    // [direction][stage]; allocated by the engine only with hop latency > 1.
    std::unique_ptr<std::array<std::array<WireSlot, max_wire_stages>, 4>> wire;
  };

 private:
  struct Function {
    const char* name;  // interned by the engine (NamePool)
    TaskFn<Pe> fn;
  };
  struct PendingLaunch {
    TaskFn<Pe> fn;
    const char* name;
  };
  // What is running now, for fault reports.
  enum class Ctx : std::uint8_t { init, task, function, async, router };

  static constexpr std::uint64_t bit(TaskId t) { return 1ull << t.value; }

  bool check_task(TaskId t, const char* op) {
    if (t.value < max_task_ids) return true;
    fault_at(op, "task id " + std::to_string(t.value) + " is out of range (0..63)");
    return false;
  }
  // The interned copy of an export's name, or nullptr after a fault (exports happen in init).
  const char* export_name(const char* op, const char* name) {
    if (fault_) return nullptr;
    if (ctx_ != Ctx::init || name_pool == nullptr) {
      fault_at(op, std::string("'") + name + "' is exported outside init; exports are made while the kernel loads");
      return nullptr;
    }
    return name_pool->intern(name);
  }
  // Index of color c in colors_ (which is in color order), or -1 when c has no route here.
  int slot_of(unsigned c) const {
    if (c >= max_colors || ((color_mask_ >> c) & 1u) == 0) return -1;
    return std::popcount(color_mask_ & ((1u << c) - 1u));
  }
  ColorState* color_state(Color c) {
    const int s = slot_of(c.value);
    return s >= 0 ? &colors_[static_cast<std::size_t>(s)] : nullptr;
  }
  const ColorState* color_state(Color c) const {
    const int s = slot_of(c.value);
    return s >= 0 ? &colors_[static_cast<std::size_t>(s)] : nullptr;
  }

  std::string context_text() const {
    switch (ctx_) {
      case Ctx::init: return "init";
      case Ctx::function: return std::string("function '") + (ctx_fn_ ? ctx_fn_ : "?") + "'";
      case Ctx::router: return "router";
      case Ctx::async:
      case Ctx::task: {
        std::string s = std::string(task_kind_name(tasks_[ctx_id_].kind)) + " task " + std::to_string(ctx_id_);
        return ctx_ == Ctx::async ? "async op issued by " + s : s;
      }
    }
    return "?";
  }
  void fault_at(const char* op, std::string message) {
    if (fault_) return;
    fault_ = std::make_unique<PeFault>(PeFault{coord_, std::string(kernel_name()), context_text(), op, std::move(message)});
  }

  void* allocate_impl(std::uint32_t bytes, std::uint32_t align, const char* op) {
    if (align == 0) align = 1;
    const std::uint32_t rounded = (bytes + 3u) & ~3u;
    if (std::uint64_t{memory_used_} + rounded > shared_->arch->pe_memory_bytes) {
      fault_at(op, "PE memory over budget: " + std::to_string(memory_used_) + " bytes in use + " + std::to_string(bytes) +
                       " requested > " + std::to_string(shared_->arch->pe_memory_bytes) + " available on " + shared_->arch->name);
      return nullptr;
    }
    void* p = pe_arena->allocate(bytes, align);  // zeroed; lives as long as the engine
    memory_used_ += rounded;
    return p;
  }

  // ---- engine side (defined in engine.hpp) ----------------------------------------------
  bool route_step();
  bool drain_stalled_sends();
  // True while an async op still has elements to write to `color`.
  bool fabout_busy(std::uint8_t color) const {
    for (const auto& a : async_)
      if (a.ins.dst.kind == OperandKind::fabout && a.ins.dst.color.value == color && a.next < a.length) return true;
    return false;
  }
  bool advance_async();
  bool run_tasks(unsigned max_runs);
  // Timed mode: starts/ends the compute element's accounting of one task or function.
  // Only in timed runs: a functional run's PEs share one clock instance they must not write.
  void begin_timed_task() {
    WSE_ASSERT(timed_, "emulator: timed-mode clock written in a functional run");
    clock_->task_clock = clock_->now + shared_->arch->cycles.task_switch;
  }
  void end_timed_task() {
    WSE_ASSERT(timed_, "emulator: timed-mode clock written in a functional run");
    clock_->ce_free_at = clock_->task_clock;
    counters_.add(c_busy_cycles, clock_->task_clock - clock_->now);
    if (clock_->ce_free_at > clock_->horizon) clock_->horizon = clock_->ce_free_at;
  }
  bool ce_free() const { return !timed_ || clock_->now >= clock_->ce_free_at; }
  // Gives the blocks of empty rings back to this thread's pool (ring.hpp) and frees an empty
  // async-op list (368 bytes per op slot); phase A calls it when the PE stops being visited.
  void trim_idle_storage() {
    async_.release_if_empty();
    stalled_sends_.release_if_empty();
    pending_launches_.release_if_empty();
    for (auto& cs : colors_)
      for (unsigned k = 0; k < cs.ring_count(); ++k) ring_table_[cs.ring_base + k].trim();
  }
  bool wire_busy() const {
    if (!clock_->wire) return false;
    for (const auto& dir : *clock_->wire)
      for (const auto& w : dir)
        if (w.slot >= 0) return true;
    return false;
  }
  // Timed mode: the earliest cycle after clock_->now at which something waiting on time may move.
  std::uint64_t next_time_event() const;
  // Async ops holding a microthread (timed mode also lists memory-only ops, which do not).
  unsigned fabric_ops_in_flight() const;
  bool deliver_control(Wavelet w);
  bool has_work() const;
  // Work other than outgoing link buffers (which neighbours drain during phase B).
  bool has_local_work() const;
  bool has_outgoing() const;
  bool has_runnable() const;
  std::uint64_t fabin_busy_mask() const;
  void execute_now(const DsdInstr& ins, std::uint32_t length);
  bool step_async(AsyncOp& op, std::uint64_t& claimed_in, std::uint64_t& claimed_out);
  StuckPe describe_stuck() const;

  // Fields are ordered so that little pads (2 bytes at the end): a full fabric holds 754,000
  // PEs, 240 bytes each on a 64-bit host (tests/test_memory.cpp checks it).
  const PeShared* shared_;  // the engine's
  TimedClocks* clock_;      // see TimedClocks
  Coord coord_;
  std::uint32_t memory_used_ = 0;
  LoadedRegion* region_ = nullptr;  // owned by the engine; shared by the region's PEs
  void* kernel_ = nullptr;

  TaskTable tasks_;
  std::uint64_t active_ = 0, blocked_ = 0, data_bound_ = 0;

  static_assert(max_colors <= 32, "color_mask_ holds one bit per color");
  std::uint32_t color_mask_ = 0;  // bit c: color c has a route here (colors_ slot = rank of the bit)
  std::uint32_t stalled_head_ = 0;    // first of stalled_sends_ not yet sent
  CompactVector<ColorState> colors_;  // in color order
  std::unique_ptr<Ring[]> ring_table_;  // every color's rings, packed (ColorState::ring_base)

  // Lists most PEs leave empty: 8 bytes each until used (compact_vector.hpp).
  CompactVector<AsyncOp> async_;
  CompactVector<StalledSend> stalled_sends_;  // sends waiting for output-queue space, in order
  CompactVector<Function> functions_;
  CompactVector<PendingLaunch> pending_launches_;  // launched functions, in launch order
  CompactVector<Symbol> symbols_;

  const char* ctx_fn_ = nullptr;
  std::unique_ptr<PeFault> fault_;  // set once, by the first fault (rare: kept out of line)
  CompactCounters<counter_count> counters_;

  // Engine bookkeeping: the last epoch stamp this PE was listed in, its index and tile.
  std::uint64_t stamp_b_ = ~0ull;
  std::uint32_t index_ = 0;
  std::uint16_t tile_ = 0;
  Ctx ctx_ = Ctx::init;
  std::uint8_t ctx_id_ = 0;
  bool timed_;                   // EmuConfig::timed
  bool stalled_now_ = false;     // timed mode: a send or async op waited for queue space this cycle
  bool has_out_stream_ = false;  // some color leaves the grid into a host output stream
  // Outgoing buffers were non-empty at the end of this PE's last phase A. Only the owner
  // writes it; phase B reads it instead of the buffers, which neighbours are draining.
  bool out_pending_ = false;
  // Asleep: its last phase A moved nothing and only a wavelet from outside can change that
  // (it waits for input), so phase A skips it until a neighbour or stream delivers to it.
  bool asleep_ = false;
  bool listed_sleeper_ = false;  // in its tile's `sleepers` (checked when the run goes quiet)
};

}  // namespace wse::emu
