// Self-test of the reference bare-metal backend (wse::target::Pe over LoopbackFabric): picker
// order, one-bit activation, block/unblock, back-pressure from a blocked data task, async ops
// on one color in issue order, stalled sends, the memory budget, launches, and faults (each
// naming op, context and value). tools/check-cross.sh runs it on the host and, built for
// bare-metal ARM, under qemu-system-arm. Prints one line per failed check and a summary.
#include <cstdint>
#include <cstdio>
#include <wse/kernel.hpp>
#include <wse/target.hpp>

namespace {

int checks = 0, failures = 0;
#define CHECK(cond)                                                    \
  do {                                                                 \
    ++checks;                                                          \
    if (!(cond)) {                                                     \
      ++failures;                                                      \
      std::printf("FAILED line %d: %s\n", __LINE__, #cond);            \
    }                                                                  \
  } while (false)

struct SmallConfig : wse::target::DefaultConfig {
  static constexpr std::uint32_t memory_bytes = 2048;
};
using Fabric = wse::target::LoopbackFabric<4, 64>;
using Pe = wse::target::Pe<Fabric, SmallConfig>;
using wse::Color;
using wse::TaskId;
using wse::Wavelet;
using wse::target::RunStatus;

struct NoParams {};
constexpr Color in{1}, out{2}, loop_tx{3}, loop_rx{4};

// Local tasks 3, 5, 7; a blocked task 9; a data task on `in` that starts blocked; a control task.
template <class PE> struct Tasks {
  using Params = NoParams;
  std::uint32_t order[32] = {};
  std::uint32_t runs = 0;
  std::uint32_t got[16] = {};
  std::uint32_t received = 0;
  void init(PE& pe, const Params&) {
    wse::bind_local_task<&Tasks::t3>(pe, TaskId{3});
    wse::bind_local_task<&Tasks::t5>(pe, TaskId{5});
    wse::bind_local_task<&Tasks::t7>(pe, TaskId{7});
    wse::bind_local_task<&Tasks::t9>(pe, TaskId{9});
    wse::bind_data_task<&Tasks::data>(pe, in);
    wse::bind_control_task<&Tasks::ctrl>(pe, TaskId{40});
    wse::export_function<&Tasks::go>(pe, "go");
    wse::export_symbol(pe, "order", order);
    pe.block(TaskId{9});
    pe.block(wse::data_task_id(in));
  }
  void note(unsigned id) { order[runs++ % 32] = id; }
  void go(PE& pe) {
    pe.activate(TaskId{7});
    pe.activate(TaskId{5});
    pe.activate(TaskId{3});
    pe.activate(TaskId{3});  // one bit: still one run
    pe.activate(TaskId{9});  // blocked
  }
  void t3(PE&) { note(3); }
  void t5(PE&) { note(5); }
  void t7(PE& pe) {
    note(7);
    pe.send(out, wse::ControlPayload{.activate = true, .task = TaskId{40}, .user = 7}.wavelet());
  }
  void t9(PE&) { note(9); }
  void data(PE&, Wavelet w) {
    note(1);
    got[received++ % 16] = w.data;
  }
  void ctrl(PE&, Wavelet w) { note(40 + wse::ControlPayload::decode(w.data).user); }
};

void picker_and_blocking() {
  static Fabric fabric;
  static Pe pe(fabric);
  fabric.add_input(in);
  fabric.connect(out, loop_rx);  // t7's control wavelet comes back on loop_rx ...
  fabric.add_output(loop_tx);
  auto* k = pe.load<Tasks>(NoParams{});
  CHECK(k != nullptr);
  if (k == nullptr) return;
  CHECK(pe.is_blocked(TaskId{9}));
  CHECK(pe.launch("go"));
  CHECK(!pe.launch("no such function"));
  for (std::uint32_t i = 0; i < 10; ++i) CHECK(fabric.feed(in, Wavelet::from_u32(100 + i)));
  // Data task and task 9 blocked: 3, 5, 7 run in id order, then the control wavelet runs 40.
  CHECK(pe.run_until_idle() == RunStatus::stalled);
  CHECK(k->runs == 4);
  CHECK(k->order[0] == 3 && k->order[1] == 5 && k->order[2] == 7 && k->order[3] == 47);
  CHECK(k->received == 0);
  CHECK(pe.is_active(TaskId{9}));
  // Back-pressure: the fabric holds what the blocked data task has not taken.
  CHECK(!fabric.quiet());
  pe.unblock(wse::data_task_id(in));
  pe.unblock(TaskId{9});
  CHECK(pe.run_until_idle() == RunStatus::completed);
  CHECK(k->received == 10);
  bool in_order = true;
  for (std::uint32_t i = 0; i < 10; ++i) in_order = in_order && k->got[i] == 100 + i;
  CHECK(in_order);
  CHECK(k->order[4] == 1 && k->order[14] == 9);  // data task id 1 before local task 9
  CHECK(pe.stats().tasks_run == 1 + 4 + 10 + 1);
}

// Async ops on one output color run in issue order; a burst of sends to a full queue stalls
// (waits in order) while microthreads keep draining it.
constexpr Color loop_rx2{5};
template <class PE> struct Streams {
  using Params = NoParams;
  std::uint32_t a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {11, 12, 13, 14, 15, 16};
  std::uint32_t back[12] = {}, sent[20] = {};
  std::uint32_t done = 0, stalled = 0;
  void init(PE& pe, const Params&) {
    wse::bind_local_task<&Streams::fin>(pe, TaskId{20});
    wse::bind_local_task<&Streams::fin>(pe, TaskId{21});  // two ids: two activations may coincide
    wse::export_function<&Streams::go>(pe, "go");
  }
  void go(PE& pe) {
    wse::mov(pe, wse::fabout<std::uint32_t>(loop_tx, 6), wse::mem1d(a), wse::then_nothing());
    wse::mov(pe, wse::fabout<std::uint32_t>(loop_tx, 6), wse::mem1d(b), wse::then_nothing());
    wse::mov(pe, wse::mem1d(back), wse::fabin<std::uint32_t>(loop_rx, 12), wse::then_activate(TaskId{20}));
    wse::mov(pe, wse::mem1d(sent), wse::fabin<std::uint32_t>(loop_rx2, 20), wse::then_activate(TaskId{21}));
    for (std::uint32_t i = 0; i < 20; ++i) pe.send(out, Wavelet::from_u32(500 + i));
    stalled = pe.stalled_sends();  // target-only inspection
  }
  void fin(PE&) { ++done; }
};

void async_order_and_stalls() {
  static Fabric fabric;
  static Pe pe(fabric);
  fabric.connect(loop_tx, loop_rx);
  fabric.connect(out, loop_rx2);
  auto* k = pe.load<Streams>(NoParams{});
  CHECK(k != nullptr);
  if (k == nullptr) return;
  CHECK(pe.launch("go"));
  CHECK(pe.run_until_idle() == RunStatus::completed);
  CHECK(k->done == 2);
  // RX register + wire queue (4) + TX register hold 6; the other 14 sends waited in order.
  CHECK(k->stalled == 14);
  bool ordered = true;
  for (std::uint32_t i = 0; i < 6; ++i) ordered = ordered && k->back[i] == 1 + i && k->back[6 + i] == 11 + i;
  CHECK(ordered);
  bool in_order = true;
  for (std::uint32_t i = 0; i < 20; ++i) in_order = in_order && k->sent[i] == 500 + i;
  CHECK(in_order);
  CHECK(pe.stalled_sends() == 0 && pe.async_in_flight() == 0);
}

// Faults: over budget, out-of-range DSD, unrouted fabric color, duplicate symbol, a task bound
// after init, bad control.
struct FaultParams {
  std::uint32_t which = 0;
};
template <class PE> struct Faulty {
  using Params = FaultParams;
  float x[8] = {};
  void init(PE& pe, const Params& p) {
    wse::bind_local_task<&Faulty::work>(pe, TaskId{6});
    switch (p.which) {
      case 0: (void)wse::alloc<float>(pe, 1024); break;  // 4096 bytes > 2048
      case 1: pe.activate(TaskId{6}); break;
      case 2: wse::mov(pe, wse::fabout<float>(out, 8), wse::mem1d(x), wse::then_nothing()); break;
      case 3: wse::export_symbol(pe, "x", x), wse::export_symbol(pe, "x", x); break;
      case 4: wse::export_function<&Faulty::late>(pe, "late"); break;
      default: break;
    }
  }
  void work(PE& pe) { wse::mul(pe, wse::mem1d(x).with_length(9), wse::mem1d(x).with_length(9), 2.0f); }
  void late(PE& pe) { wse::bind_local_task<&Faulty::work>(pe, TaskId{7}); }  // after init: a fault
};

void faults() {
  {
    static Fabric fabric;
    static Pe pe(fabric);
    CHECK(pe.load<Faulty>(FaultParams{0}) == nullptr);
    CHECK(pe.fault().set && pe.fault().context == wse::target::FaultContext::init && pe.fault().value == 4096);
  }
  {
    static Fabric fabric;
    static Pe pe(fabric);
    CHECK(pe.load<Faulty>(FaultParams{1}) != nullptr);
    CHECK(pe.run_until_idle() == RunStatus::faulted);
    CHECK(pe.fault().context == wse::target::FaultContext::task && pe.fault().task == 6 && pe.fault().value == 8);
  }
  {
    static Fabric fabric;  // `out` is not routed here
    static Pe pe(fabric);
    CHECK(pe.load<Faulty>(FaultParams{2}) == nullptr);
    CHECK(pe.fault().value == out.value);
  }
  {
    static Fabric fabric;
    static Pe pe(fabric);
    CHECK(pe.load<Faulty>(FaultParams{3}) == nullptr);
    CHECK(pe.fault().set);
  }
  {
    static Fabric fabric;  // binding a task after init, as the emulator refuses it too
    static Pe pe(fabric);
    CHECK(pe.load<Faulty>(FaultParams{4}) != nullptr);
    CHECK(pe.launch("late"));
    CHECK(pe.run_until_idle() == RunStatus::faulted);
    CHECK(pe.fault().context == wse::target::FaultContext::function && pe.fault().value == 7);
  }
  {
    static Fabric fabric;  // a control wavelet asking for a task nobody bound
    static Pe pe(fabric);
    fabric.add_input(in);
    CHECK(pe.load<Faulty>(FaultParams{9}) != nullptr);
    CHECK(fabric.feed(in, wse::ControlPayload{.activate = true, .task = TaskId{33}}.wavelet()));
    CHECK(pe.run_until_idle() == RunStatus::faulted);
    CHECK(pe.fault().context == wse::target::FaultContext::fabric && pe.fault().value == 33);
  }
}

}  // namespace

int main() {
  picker_and_blocking();
  async_order_and_stalls();
  faults();
  std::printf("target self-test: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
