#pragma once
/// \file
/// wse::target::Pe: the reference bare-metal backend. It models wse::Backend, so any kernel
/// (`template <class PE> struct K`) runs on it unchanged, and it shows what a hardware port
/// has to provide: a task table with activate/block/unblock, a task-picker loop, data tasks
/// fed from the fabric's RX registers, DSD ops with the emulator's per-element semantics
/// (pe/elementwise.hpp), async fabric ops on microthreads with completions, a static memory
/// arena for `alloc`, and fixed-capacity tables of exported symbols and functions.
/// Freestanding: no heap, no exceptions, no RTTI, no iostreams; all state is in the object.
///
/// What a real port replaces (see docs/targets.md):
/// - the FabricPort (fabric_regs.hpp): MmioFabric<address> instead of LoopbackFabric;
/// - the arena: place the Pe object (or just its arena) in the PE's SRAM with the linker;
/// - the picker loop's idle exit: on hardware, run_until_idle() returning `stalled` means
///   "wait for the router" (WFE) and call it again; the DSD engine: the per-element loop is
///   where a port issues its vector instructions (results must stay bit-identical);
/// - fault handling: here a fault is recorded and the loop stops; a port may trap instead.
///
/// Rules it follows (docs/semantics.md): a task runs when activated AND unblocked; the
/// lowest runnable id runs first, to completion; activation is one bit; data-task ids of
/// unbound colors start blocked; a data task runs once per data wavelet and leaves it in the
/// RX register while blocked; while an async op reads a color, its data task does not run;
/// async ops on one color run in issue order; a send to a full output queue stalls the
/// compute element (no task starts) while later sends keep their order.
#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#include "../arch/arch.hpp"
#include "../core/elem_type.hpp"
#include "../core/types.hpp"
#include "../core/wavelet.hpp"
#include "../pe/backend.hpp"
#include "../pe/dsd.hpp"
#include "../pe/elementwise.hpp"
#include "../pe/ops.hpp"
#include "../pe/task.hpp"
#include "fabric_regs.hpp"

namespace wse::target {

/// Capacities of a Pe. Derive from it and override what differs; every table is static.
struct DefaultConfig {
  static constexpr const arch::Arch& chip = arch::wse2;          ///< task ranges, microthreads, colors
  static constexpr std::uint32_t memory_bytes = chip.pe_memory_bytes;  ///< kernel object + alloc budget
  static constexpr std::uint32_t arena_slack = 64;  ///< extra arena bytes for alignment padding
  static constexpr unsigned max_symbols = 16;       ///< exported symbols
  static constexpr unsigned max_functions = 8;      ///< exported functions
  static constexpr unsigned max_pending_launches = 8;
  static constexpr unsigned max_stalled_sends = 64; ///< sends waiting behind a full output queue
};

/// Why a run stopped.
enum class RunStatus : std::uint8_t {
  completed,   ///< nothing left: no runnable or activated task, no async op, no wavelet waiting
  stalled,     ///< work remains but nothing can move (on hardware: wait for the fabric and call again)
  faulted,     ///< a fault was recorded; see Pe::fault()
  task_limit,  ///< the max_task_runs given to run_until_idle was reached
};
constexpr const char* run_status_name(RunStatus s) {
  switch (s) {
    case RunStatus::completed: return "completed";
    case RunStatus::stalled: return "stalled";
    case RunStatus::faulted: return "faulted";
    default: return "task limit";
  }
}

/// Where a fault happened: the kernel's init, a task, a launched function, an async op
/// (issued by the task in `task`), or a control wavelet at the RX registers.
enum class FaultContext : std::uint8_t { init, task, function, async, fabric };
constexpr const char* fault_context_name(FaultContext c) {
  switch (c) {
    case FaultContext::init: return "init";
    case FaultContext::task: return "task";
    case FaultContext::function: return "function";
    case FaultContext::async: return "async op of task";
    default: return "fabric";
  }
}

/// A recorded fault: what, where, and one number that names the place (a task id, a color,
/// an element index or a byte count, as `what` says). Static strings only.
struct Fault {
  bool set = false;
  FaultContext context = FaultContext::init;
  std::uint8_t task = 0;           ///< running task id (task / async contexts)
  const char* function = nullptr; ///< running function name (function context)
  const char* op = "";             ///< operation: "activate", "send", "add", ...
  const char* what = "";           ///< message
  std::int64_t value = 0;          ///< the number `what` refers to
};

/// An exported symbol: a typed array the host (or a test) may read and write.
struct Symbol {
  const char* name = nullptr;
  ElemType type = ElemType::f32;
  void* data = nullptr;
  std::uint32_t count = 0;
};

/// Counters over the PE's lifetime.
struct PeStats {
  std::uint64_t tasks_run = 0, received = 0, sent = 0, dsd_ops = 0;
};

namespace detail {
constexpr bool same_name(const char* a, const char* b) {
  if (a == nullptr || b == nullptr) return a == b;
  while (*a != '\0' && *a == *b) ++a, ++b;
  return *a == *b;
}
}  // namespace detail

/// One PE on bare metal, over fabric `Port`. Kernel code sees the wse::Backend operations;
/// the loader side (load, launch, run_until_idle, symbols) replaces the host runtime.
template <FabricPort Port, class Config = DefaultConfig> class Pe {
  static_assert(Config::max_stalled_sends >= 1 && Config::max_pending_launches >= 1 && Config::max_symbols >= 1 &&
                    Config::max_functions >= 1,
                "every table of a target Pe needs room for at least one entry");
  static_assert(Config::chip.microthreads >= 1 && Config::chip.routable_colors <= color_blocks,
                "the arch must have microthreads and at most 24 routable colors");

 public:
  static constexpr const arch::Arch& chip = Config::chip;

  /// A PE at `coord` whose fabric is `port` (which must outlive it).
  explicit Pe(Port& port, Coord coord = {}) : port_(port), regs_(port.registers()), coord_(coord) {
    // Data-task ids of colors with no bound task start blocked (bind_task unblocks).
    blocked_ = chip.routable_colors >= 64 ? ~0ull : (1ull << chip.routable_colors) - 1;
  }
  Pe(const Pe&) = delete;
  Pe& operator=(const Pe&) = delete;

  // ---- wse::Backend (kernel code) --------------------------------------------------------

  /// Sets the activation bit of local or control task `t`.
  void activate(TaskId t) {
    if (fault_.set || !check_task(t, "activate")) return;
    if (tasks_[t.value].kind == TaskKind::none || tasks_[t.value].kind == TaskKind::data)
      return fail("activate", "task is not a bound local or control task", t.value);
    active_ |= bit(t.value);
  }
  /// Blocks task `t` (a data task leaves its wavelets in the RX register).
  void block(TaskId t) {
    if (fault_.set || !check_task(t, "block")) return;
    blocked_ |= bit(t.value);
  }
  /// Unblocks task `t`.
  void unblock(TaskId t) {
    if (fault_.set || !check_task(t, "unblock")) return;
    blocked_ &= ~bit(t.value);
  }
  /// Sends one wavelet on `c`. When the TX register is busy (output queue full) the wavelet
  /// waits in order behind earlier ones and no task starts until all are sent; more than
  /// Config::max_stalled_sends waiting is a queue-overflow fault.
  void send(Color c, Wavelet w) {
    if (fault_.set) return;
    if (!tx_routed(c)) return fail("send", "color has no route taking it from RAMP", c.value);
    ColorRegs& r = regs_[c.value];
    if (stalled_count_ == 0 && (r.tx_status & tx_busy) == 0) {
      tx_push(r, w);
      return;
    }
    if (stalled_count_ == Config::max_stalled_sends)
      return fail("send", "queue overflow: output queue full and max_stalled_sends wavelets wait; color", c.value);
    stalled_[(stalled_head_ + stalled_count_) % Config::max_stalled_sends] = Stalled{c.value, w};
    ++stalled_count_;
  }
  /// Executes a DSD instruction: at once when it has no fabric operand, else on a microthread.
  void dsd(const DsdInstr& ins);
  /// Binds task `t` as `kind`: kernel init only, as in the emulator. Binding unblocks the id.
  void bind_task(TaskId t, TaskKind kind, TaskFn<Pe> fn) {
    if (fault_.set || !check_task(t, "bind_task")) return;
    if (ctx_ != FaultContext::init) return fail("bind_task", "tasks are bound during kernel init only", t.value);
    Task& slot = tasks_[t.value];
    if (slot.kind != TaskKind::none) return fail("bind_task", "task id is already bound", t.value);
    if (kind == TaskKind::data && t.value >= chip.routable_colors)
      return fail("bind_task", "data task id is not a routable color", t.value);
    if (kind == TaskKind::local && (t.value < chip.local_task_first || t.value > chip.local_task_last))
      return fail("bind_task", "local task id outside the arch's local range", t.value);
    if (kind == TaskKind::control && t.value > chip.control_task_last)
      return fail("bind_task", "control task id above the arch's control range", t.value);
    slot.kind = kind;
    slot.fn = fn;
    blocked_ &= ~bit(t.value);
    if (kind == TaskKind::data) data_bound_ |= bit(t.value);
  }
  /// Allocates zeroed bytes from the PE's static arena; nullptr and a fault when the budget
  /// (Config::memory_bytes, counted as in the emulator: sizes rounded up to 4) is exceeded.
  void* allocate(std::uint32_t bytes, std::uint32_t align) {
    if (fault_.set) return nullptr;
    return allocate_impl(bytes, align, "alloc");
  }
  /// Exports `n` elements at `p` as `name` (a string with static storage).
  void export_symbol(const char* name, ElemType t, void* p, std::uint32_t n) {
    if (fault_.set) return;
    if (find_symbol(name) != nullptr) return fail("export_symbol", "symbol exported twice", 0);
    if (symbol_count_ == Config::max_symbols) return fail("export_symbol", "symbol table full (max_symbols)", Config::max_symbols);
    symbols_[symbol_count_++] = Symbol{name, t, p, n};
  }
  /// Exports a launchable function as `name` (a string with static storage).
  void export_function(const char* name, TaskFn<Pe> fn) {
    if (fault_.set) return;
    if (find_function(name) >= 0) return fail("export_function", "function exported twice", 0);
    if (function_count_ == Config::max_functions)
      return fail("export_function", "function table full (max_functions)", Config::max_functions);
    functions_[function_count_++] = Function{name, fn};
  }
  /// This PE's position on the wafer.
  Coord coord() const { return coord_; }

  // ---- loader and runtime side (the port's startup code, or a test) ----------------------

  /// Builds kernel K in the arena (counted against the budget, like the emulator) and runs
  /// its init. Returns the kernel, or nullptr when the arena is too small or init faulted.
  template <template <class> class K> K<Pe>* load(const typename K<Pe>::Params& params) {
    using Kernel = K<Pe>;
    static_assert(Backend<Pe>, "wse::target::Pe must model wse::Backend");
    static_assert(sizeof(Kernel) <= Config::memory_bytes, "the kernel object does not fit the PE memory");
    if (kernel_ != nullptr) {
      fail("load", "a kernel is already loaded on this PE", 0);
      return nullptr;
    }
    void* mem = allocate_impl(static_cast<std::uint32_t>(sizeof(Kernel)), static_cast<std::uint32_t>(alignof(Kernel)),
                              "load");
    if (mem == nullptr) return nullptr;
    Kernel* k = ::new (mem) Kernel();
    kernel_ = k;
    ctx_ = FaultContext::init;
    k->init(*this, params);
    return fault_.set ? nullptr : k;
  }
  /// Queues exported function `name` to run (like a task) at the start of the next
  /// run_until_idle. False when no such function exists or the launch queue is full.
  bool launch(const char* name) {
    const int f = find_function(name);
    if (f < 0 || launch_count_ == Config::max_pending_launches) return false;
    launches_[(launch_head_ + launch_count_) % Config::max_pending_launches] = static_cast<std::uint8_t>(f);
    ++launch_count_;
    return true;
  }
  /// The task picker loop. Repeats: let the fabric move; take control wavelets; push stalled
  /// sends; advance async ops; then (unless a send stalls) run the next launched function or
  /// the lowest runnable task. Returns when nothing can move any more, on a fault, or after
  /// `max_task_runs` task runs.
  RunStatus run_until_idle(std::uint64_t max_task_runs = ~0ull);

  /// The exported symbol `name`, or nullptr.
  const Symbol* find_symbol(const char* name) const {
    for (unsigned i = 0; i < symbol_count_; ++i)
      if (detail::same_name(symbols_[i].name, name)) return &symbols_[i];
    return nullptr;
  }
  /// Typed access to exported symbol `name` holding at least `n` elements of T, or nullptr.
  template <DsdElement T> T* symbol(const char* name, std::uint32_t n) const {
    const Symbol* s = find_symbol(name);
    if (s == nullptr || s->type != elem_type_of<T> || s->count < n) return nullptr;
    return static_cast<T*>(s->data);
  }

  const Fault& fault() const { return fault_; }
  const PeStats& stats() const { return stats_; }
  std::uint32_t memory_used() const { return memory_used_; }
  bool is_active(TaskId t) const { return t.value < 64 && ((active_ >> t.value) & 1u) != 0; }
  bool is_blocked(TaskId t) const { return t.value < 64 && ((blocked_ >> t.value) & 1u) != 0; }
  unsigned async_in_flight() const { return async_count_; }
  unsigned stalled_sends() const { return stalled_count_; }

 private:
  struct Task {
    TaskFn<Pe> fn = nullptr;
    TaskKind kind = TaskKind::none;
    Wavelet last{};  // the control wavelet that activated a control task
  };
  struct Function {
    const char* name = nullptr;
    TaskFn<Pe> fn = nullptr;
  };
  struct Stalled {
    std::uint8_t color = 0;
    Wavelet w{};
  };
  struct AsyncOp {
    DsdInstr ins{};
    std::uint32_t next = 0, length = 0;
    FaultContext issuer = FaultContext::task;
    std::uint8_t issuer_task = 0;
    const char* issuer_fn = nullptr;
  };
  static constexpr unsigned max_async = chip.microthreads;

  static constexpr std::uint64_t bit(unsigned t) { return 1ull << t; }

  bool check_task(TaskId t, const char* op) {
    if (t.value < max_task_ids) return true;
    fail(op, "task id out of range 0..63", t.value);
    return false;
  }
  void fail(const char* op, const char* what, std::int64_t value) {
    if (fault_.set) return;
    fault_ = Fault{true, ctx_, ctx_task_, ctx_fn_, op, what, value};
  }
  int find_function(const char* name) const {
    for (unsigned i = 0; i < function_count_; ++i)
      if (detail::same_name(functions_[i].name, name)) return static_cast<int>(i);
    return -1;
  }

  // Register access. One place pushes and pops, then lets a software fabric react at once
  // (on hardware, service() is a no-op and the router reacts by itself).
  bool rx_routed(Color c) const { return c.value < color_blocks && (regs_[c.value].config & cfg_rx_routed) != 0; }
  bool tx_routed(Color c) const { return c.value < color_blocks && (regs_[c.value].config & cfg_tx_routed) != 0; }
  bool rx_data_ready(unsigned c) const { return (regs_[c].rx_status & (rx_valid | rx_control)) == rx_valid; }
  Wavelet rx_pop(ColorRegs& r) {
    const Wavelet w{r.rx_data, (r.rx_status & rx_control) != 0};
    r.rx_status = 0;
    port_.service();
    return w;
  }
  void tx_push(ColorRegs& r, Wavelet w) {
    r.tx_data = w.data;
    r.tx_status = tx_busy | (w.control ? tx_control : 0u);
    ++stats_.sent;
    port_.service();
  }

  void* allocate_impl(std::uint32_t bytes, std::uint32_t align, const char* op) {
    if (align == 0) align = 1;
    const std::uint32_t rounded = (bytes + 3u) & ~3u;
    if (std::uint64_t{memory_used_} + rounded > Config::memory_bytes) {
      fail(op, "PE memory over budget; bytes requested", bytes);
      return nullptr;
    }
    const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(arena_);
    const std::uintptr_t at = (base + arena_top_ + (align - 1)) & ~static_cast<std::uintptr_t>(align - 1);
    const std::uintptr_t end = at + (bytes ? bytes : 1);
    if (end - base > sizeof(arena_)) {
      fail(op, "arena exhausted by alignment padding (raise Config::arena_slack); bytes requested", bytes);
      return nullptr;
    }
    arena_top_ = static_cast<std::uint32_t>(end - base);
    memory_used_ += rounded;
    void* p = arena_ + (at - base);
    __builtin_memset(p, 0, bytes ? bytes : 1);
    return p;
  }

  void execute_now(const DsdInstr& ins, std::uint32_t length) {
    const Operand* srcs[3] = {&ins.a, &ins.b, &ins.c};
    const int nsrc = elementwise::source_count(ins.op);
    for (std::uint32_t i = 0; i < length; ++i) {
      std::uint32_t v[3] = {0, 0, 0};
      for (int k = 0; k < nsrc; ++k)
        v[k] = srcs[k]->kind == OperandKind::scalar ? srcs[k]->scalar_bits : elementwise::load(*srcs[k], i);
      elementwise::store(ins.dst, i, elementwise::compute(ins, v[0], v[1], v[2]));
    }
  }
  void complete(Completion done) {
    if (done.action == Completion::Action::activate) activate(done.task);
    if (done.action == Completion::Action::unblock) unblock(done.task);
  }
  bool step_async(AsyncOp& a, std::uint64_t& claimed_in, std::uint64_t& claimed_out);
  bool advance_async();
  std::uint64_t fabin_busy_mask() const;
  bool take_control();
  bool drain_stalled_sends();
  bool has_work() const;
  void run_task(unsigned t);

  Port& port_;
  ColorRegs* regs_;
  Coord coord_;

  std::array<Task, max_task_ids> tasks_{};
  std::uint64_t active_ = 0, blocked_ = 0, data_bound_ = 0;

  std::array<AsyncOp, max_async> async_{};
  unsigned async_count_ = 0;
  std::array<Stalled, Config::max_stalled_sends> stalled_{};
  unsigned stalled_head_ = 0, stalled_count_ = 0;

  std::array<Symbol, Config::max_symbols> symbols_{};
  unsigned symbol_count_ = 0;
  std::array<Function, Config::max_functions> functions_{};
  unsigned function_count_ = 0;
  std::array<std::uint8_t, Config::max_pending_launches> launches_{};
  unsigned launch_head_ = 0, launch_count_ = 0;

  void* kernel_ = nullptr;
  std::uint32_t memory_used_ = 0, arena_top_ = 0;
  alignas(16) unsigned char arena_[Config::memory_bytes + Config::arena_slack] = {};

  FaultContext ctx_ = FaultContext::init;
  std::uint8_t ctx_task_ = 0;
  const char* ctx_fn_ = nullptr;
  Fault fault_{};
  PeStats stats_{};
};

// ---- DSD ops ---------------------------------------------------------------------------------

template <FabricPort Port, class Config> void Pe<Port, Config>::dsd(const DsdInstr& ins) {
  if (fault_.set) return;
  const char* op = op_name(ins.op);
  const std::uint32_t length = ins.dst.length();
  const Operand* srcs[3] = {&ins.a, &ins.b, &ins.c};
  const int nsrc = elementwise::source_count(ins.op);
  bool fabric = ins.dst.kind == OperandKind::fabout;
  std::uint32_t fabin_colors = 0;
  if (!elementwise::within_bounds(ins.dst))
    return fail(op, "destination DSD runs past its array; highest element", elementwise::access_range(ins.dst).hi);
  for (int k = 0; k < nsrc; ++k) {
    const Operand& s = *srcs[k];
    if (s.kind == OperandKind::scalar) continue;
    if (s.length() != length) return fail(op, "length mismatch: source length differs from the destination's", s.length());
    if (!elementwise::within_bounds(s))
      return fail(op, "source DSD runs past its array; highest element", elementwise::access_range(s).hi);
    if (s.kind == OperandKind::fabin) {
      fabric = true;
      if (!rx_routed(s.color)) return fail(op, "fabric input on a color not routed to RAMP", s.color.value);
      if (fabin_colors & (1u << s.color.value)) return fail(op, "two fabric inputs on one color", s.color.value);
      fabin_colors |= 1u << s.color.value;
    }
  }
  if (ins.dst.kind == OperandKind::fabout && !tx_routed(ins.dst.color))
    return fail(op, "fabric output on a color not routed from RAMP", ins.dst.color.value);
  ++stats_.dsd_ops;
  if (!fabric) {
    execute_now(ins, length);
    if (ins.async) complete(ins.done);
    return;
  }
  if (!ins.async) return fail(op, "an op with a fabric operand must be asynchronous", 0);
  if (async_count_ == max_async) return fail(op, "too many asynchronous ops in flight (microthreads)", max_async);
  async_[async_count_++] = AsyncOp{ins, 0, length, ctx_ == FaultContext::task ? FaultContext::async : ctx_, ctx_task_, ctx_fn_};
}

// One microthread: as many elements as inputs and output space allow. Ops that touch a color
// an earlier unfinished op holds wait (issue order per color), as in the emulator.
template <FabricPort Port, class Config>
bool Pe<Port, Config>::step_async(AsyncOp& a, std::uint64_t& claimed_in, std::uint64_t& claimed_out) {
  const DsdInstr& ins = a.ins;
  const Operand* srcs[3] = {&ins.a, &ins.b, &ins.c};
  const int nsrc = elementwise::source_count(ins.op);
  std::uint64_t my_in = 0, my_out = 0;
  for (int k = 0; k < nsrc; ++k)
    if (srcs[k]->kind == OperandKind::fabin) my_in |= bit(srcs[k]->color.value);
  ColorRegs* out = nullptr;
  if (ins.dst.kind == OperandKind::fabout) {
    my_out = bit(ins.dst.color.value);
    out = &regs_[ins.dst.color.value];
  }
  bool progress = false;
  if ((my_in & claimed_in) == 0 && (my_out & claimed_out) == 0) {
    while (a.next < a.length) {
      bool ready = out == nullptr || (out->tx_status & tx_busy) == 0;
      for (int k = 0; k < nsrc && ready; ++k)
        if (srcs[k]->kind == OperandKind::fabin && !rx_data_ready(srcs[k]->color.value)) ready = false;
      if (!ready) break;
      std::uint32_t v[3] = {0, 0, 0};
      for (int k = 0; k < nsrc; ++k) {
        const Operand& s = *srcs[k];
        if (s.kind == OperandKind::scalar) {
          v[k] = s.scalar_bits;
        } else if (s.kind == OperandKind::fabin) {
          const Wavelet w = rx_pop(regs_[s.color.value]);
          ++stats_.received;
          v[k] = elem_size(s.type) == 2 ? (w.data & 0xffffu) : w.data;  // 16-bit data: low half
        } else {
          v[k] = elementwise::load(s, a.next);
        }
      }
      const std::uint32_t r = elementwise::compute(ins, v[0], v[1], v[2]);
      if (out != nullptr) {
        std::uint32_t bits = r;
        if (elem_size(ins.dst.type) == 2) {
          const std::uint32_t index = ins.dst.indexed ? static_cast<std::uint16_t>(ins.dst.index_base + a.next) : 0u;
          bits = (r & 0xffffu) | (index << 16);
        }
        tx_push(*out, Wavelet{bits, ins.dst.control});
      } else {
        elementwise::store(ins.dst, a.next, r);
      }
      ++a.next;
      progress = true;
    }
  }
  if (a.next < a.length) {
    claimed_in |= my_in;
    claimed_out |= my_out;
  }
  return progress;
}

template <FabricPort Port, class Config> bool Pe<Port, Config>::advance_async() {
  if (async_count_ == 0) return false;
  std::uint64_t claimed_in = 0, claimed_out = 0;
  bool progress = false;
  for (unsigned i = 0; i < async_count_; ++i) progress |= step_async(async_[i], claimed_in, claimed_out);
  // Retire finished ops in issue order and fire their completions.
  unsigned keep = 0;
  for (unsigned i = 0; i < async_count_; ++i) {
    const AsyncOp a = async_[i];
    if (a.next < a.length) {
      async_[keep++] = a;
      continue;
    }
    ctx_ = a.issuer;
    ctx_task_ = a.issuer_task;
    ctx_fn_ = a.issuer_fn;
    complete(a.ins.done);
  }
  async_count_ = keep;
  return progress;
}

template <FabricPort Port, class Config> std::uint64_t Pe<Port, Config>::fabin_busy_mask() const {
  std::uint64_t m = 0;
  for (unsigned i = 0; i < async_count_; ++i)
    for (const Operand* s : {&async_[i].ins.a, &async_[i].ins.b, &async_[i].ins.c})
      if (s->kind == OperandKind::fabin) m |= bit(s->color.value);
  return m;
}

// ---- fabric side -------------------------------------------------------------------------

// A control wavelet at the head of an RX register is taken at once: with "activate" it
// activates its control task (a fault when that id is not a bound control task); without,
// it is consumed. Control wavelets never reach data tasks or fabric input DSDs.
template <FabricPort Port, class Config> bool Pe<Port, Config>::take_control() {
  bool progress = false;
  for (unsigned c = 0; c < color_blocks; ++c) {
    ColorRegs& r = regs_[c];
    if ((r.config & cfg_rx_routed) == 0 || (r.rx_status & (rx_valid | rx_control)) != (rx_valid | rx_control)) continue;
    const Wavelet w = rx_pop(r);
    progress = true;
    const ControlPayload p = ControlPayload::decode(w.data);
    if (!p.activate) continue;
    if (p.task.value > chip.control_task_last || tasks_[p.task.value].kind != TaskKind::control) {
      ctx_ = FaultContext::fabric;
      fail("control wavelet", "asks to activate a task that is not a bound control task", p.task.value);
      return true;
    }
    tasks_[p.task.value].last = w;
    active_ |= bit(p.task.value);
  }
  return progress;
}

template <FabricPort Port, class Config> bool Pe<Port, Config>::drain_stalled_sends() {
  bool progress = false;
  while (stalled_count_ != 0) {
    const Stalled& s = stalled_[stalled_head_];
    ColorRegs& r = regs_[s.color];
    if ((r.tx_status & tx_busy) != 0) break;
    tx_push(r, s.w);
    stalled_head_ = (stalled_head_ + 1) % Config::max_stalled_sends;
    --stalled_count_;
    progress = true;
  }
  return progress;
}

template <FabricPort Port, class Config> bool Pe<Port, Config>::has_work() const {
  if (active_ != 0 || async_count_ != 0 || stalled_count_ != 0 || launch_count_ != 0 || !port_.quiet()) return true;
  for (unsigned c = 0; c < color_blocks; ++c)
    if ((regs_[c].config & cfg_rx_routed) != 0 && (regs_[c].rx_status & rx_valid) != 0) return true;
  return false;
}

template <FabricPort Port, class Config> void Pe<Port, Config>::run_task(unsigned t) {
  Task& slot = tasks_[t];
  ctx_ = FaultContext::task;
  ctx_task_ = static_cast<std::uint8_t>(t);
  ctx_fn_ = nullptr;
  if (slot.kind == TaskKind::data) {
    const Wavelet w = rx_pop(regs_[t]);
    ++stats_.received;
    slot.fn(kernel_, *this, w);
  } else {
    active_ &= ~bit(t);
    slot.fn(kernel_, *this, slot.last);
  }
  ++stats_.tasks_run;
}

template <FabricPort Port, class Config> RunStatus Pe<Port, Config>::run_until_idle(std::uint64_t max_task_runs) {
  std::uint64_t runs = 0;
  for (;;) {
    if (fault_.set) return RunStatus::faulted;
    bool progress = port_.service();
    progress |= take_control();
    progress |= drain_stalled_sends();
    progress |= advance_async();
    if (fault_.set) return RunStatus::faulted;
    if (stalled_count_ == 0) {
      if (launch_count_ != 0) {
        const Function& f = functions_[launches_[launch_head_]];
        launch_head_ = (launch_head_ + 1) % Config::max_pending_launches;
        --launch_count_;
        ctx_ = FaultContext::function;
        ctx_fn_ = f.name;
        f.fn(kernel_, *this, Wavelet{});
        ++stats_.tasks_run;
        continue;
      }
      std::uint64_t ready = 0;
      for (std::uint64_t m = data_bound_; m != 0; m &= m - 1) {
        const unsigned c = static_cast<unsigned>(std::countr_zero(m));
        if (rx_data_ready(c)) ready |= bit(c);
      }
      const std::uint64_t runnable = (active_ | (ready & ~fabin_busy_mask())) & ~blocked_;
      if (runnable != 0) {
        if (runs == max_task_runs) return RunStatus::task_limit;
        // Picker order: the lowest runnable task id runs first (docs/semantics.md).
        run_task(static_cast<unsigned>(std::countr_zero(runnable)));
        ++runs;
        continue;
      }
    }
    if (!progress) return has_work() ? RunStatus::stalled : RunStatus::completed;
  }
}

}  // namespace wse::target
