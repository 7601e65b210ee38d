// Tasks (DESIGN.md "PE semantics", Tasks): data, local and control tasks; a task runs only
// when activated AND unblocked; activation is one bit; tasks run to completion; the
// emulator's picker runs the lowest runnable task id first; data-task ids of colors with no
// bound task start blocked; blocking a data task holds its wavelets in the input queue;
// async-op completions activate or unblock a named task; exported functions are launched
// from the host. Every expectation is computed on the host from the documented rule.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <utility>
#include <vector>

#include "support.hpp"

using wse::Color;
using wse::Coord;
using wse::Rect;
using wse::TaskId;
using wse::Wavelet;

namespace {

/// An append-only record a kernel keeps and the host reads back ("log", "log_n").
struct Log {
  static constexpr std::uint32_t cap = 128;
  std::uint32_t at[cap] = {};
  std::uint32_t n[1] = {};
  void push(std::uint32_t v) {
    if (n[0] < cap) at[n[0]] = v;
    ++n[0];
  }
  template <class PE> void export_to(PE& pe) {
    wse::export_symbol(pe, "log", at);
    wse::export_symbol(pe, "log_n", n);
  }
};

std::vector<std::uint32_t> read_log(const wse::host::Runtime& rt, Coord c) {
  const Rect r{c, 1, 1};
  const std::uint32_t n = rt.read<std::uint32_t>("log_n", r, 1)[0];
  REQUIRE(n <= Log::cap);
  const auto all = rt.read<std::uint32_t>("log", r, Log::cap);
  return {all.begin(), all.begin() + n};
}

std::vector<std::uint32_t> iota_from(std::uint32_t first, std::uint32_t n) {
  std::vector<std::uint32_t> v(n);
  for (std::uint32_t i = 0; i < n; ++i) v[i] = first + i;
  return v;
}

// ---- kernels -------------------------------------------------------------------------------

struct NoParams {};

// Sends `count` data wavelets base, base+1, ... on `color` from init.
struct SendParams {
  Color color;
  std::uint32_t count = 0;
  std::uint32_t base = 0;
};
template <class PE> struct Sender {
  using Params = SendParams;
  void init(PE& pe, const Params& p) {
    for (std::uint32_t i = 0; i < p.count; ++i) pe.send(p.color, Wavelet{p.base + i, false});
  }
};

// Logs every wavelet of `color` from its data task. It may start blocked, and may block
// itself after `block_after` wavelets; the exported function "release" unblocks it.
struct RecvParams {
  Color color;
  bool start_blocked = false;
  std::uint32_t block_after = 0;  // 0: never
};
template <class PE> struct Receiver {
  using Params = RecvParams;
  Params p;
  Log log;
  void init(PE& pe, const Params& params) {
    p = params;
    log.export_to(pe);
    wse::bind_data_task<&Receiver::on_data>(pe, p.color);
    if (p.start_blocked) pe.block(wse::data_task_id(p.color));
    wse::export_function<&Receiver::release>(pe, "release");
  }
  void on_data(PE& pe, Wavelet w) {
    log.push(w.data);
    if (p.block_after != 0 && log.n[0] == p.block_after) pe.block(wse::data_task_id(p.color));
  }
  void release(PE& pe) { pe.unblock(wse::data_task_id(p.color)); }
};

// Local tasks 0..30 chosen by a mask; each logs its id when it runs, then activates the
// tasks of its mask (highest id first, so the issue order differs from the run order).
struct PickerParams {
  std::uint32_t bound = 0;          // local task ids to bind
  std::uint32_t init_activate = 0;  // activated in init
  std::uint32_t init_block = 0;     // blocked in init (after binding)
  std::uint32_t activates[31] = {}; // task t activates activates[t] when it runs
};
template <class PE> struct Picker {
  using Params = PickerParams;
  Params p;
  Log log;
  static void activate_mask(PE& pe, std::uint32_t m) {
    for (int t = 30; t >= 0; --t)
      if ((m >> t) & 1u) pe.activate(TaskId{static_cast<std::uint8_t>(t)});
  }
  template <std::size_t I> void task(PE& pe) {
    log.push(static_cast<std::uint32_t>(I));
    activate_mask(pe, p.activates[I]);
  }
  template <std::size_t... I> void bind_all(PE& pe, std::index_sequence<I...>) {
    (((p.bound >> I) & 1u ? wse::bind_local_task<&Picker::template task<I>>(pe, TaskId{static_cast<std::uint8_t>(I)})
                          : void()),
     ...);
  }
  void init(PE& pe, const Params& params) {
    p = params;
    log.export_to(pe);
    bind_all(pe, std::make_index_sequence<31>{});
    for (unsigned t = 0; t < 31; ++t)
      if ((p.init_block >> t) & 1u) pe.block(TaskId{static_cast<std::uint8_t>(t)});
    activate_mask(pe, p.init_activate);
    wse::export_function<&Picker::unblock_all>(pe, "unblock_all");
  }
  void unblock_all(PE& pe) {
    for (unsigned t = 0; t < 31; ++t)
      if ((p.init_block >> t) & 1u) pe.unblock(TaskId{static_cast<std::uint8_t>(t)});
  }
};

/// The documented picker as a host model: one activation bit per task, the lowest active
/// (and unblocked) id runs next, runs to completion, and may activate others.
std::vector<std::uint32_t> reference_order(const PickerParams& p) {
  std::uint32_t active = p.init_activate & p.bound;
  std::vector<std::uint32_t> order;
  while (active != 0 && order.size() <= Log::cap) {
    const unsigned t = static_cast<unsigned>(std::countr_zero(active));
    active &= ~(1u << t);
    order.push_back(t);
    active |= p.activates[t] & p.bound;
  }
  return order;
}

wse::Program one_pe() { return wse::Program(wse::arch::wse2, 1, 1); }

}  // namespace

// ---- picker order, one-bit activation, run to completion -------------------------------------

TEST_CASE("picker: the lowest runnable task id runs first, whatever the activation order") {
  PickerParams p;
  p.bound = (1u << 1) | (1u << 3) | (1u << 5) | (1u << 6) | (1u << 9) | (1u << 20) | (1u << 30);
  p.init_activate = (1u << 20) | (1u << 9) | (1u << 5) | (1u << 3);
  p.activates[3] = 1u << 1;                 // a lower id activated while 5, 9, 20 wait: runs next
  p.activates[9] = (1u << 30) | (1u << 6);  // 6 < 20 < 30
  const auto expected = reference_order(p);
  REQUIRE(expected == std::vector<std::uint32_t>{3, 1, 5, 9, 6, 20, 30});

  wse::Program prog = one_pe();
  prog.add_region<Picker>(prog.grid(), p);
  wse::host::Runtime rt(prog, wse_test::config());
  const auto report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());
  CHECK(read_log(rt, {0, 0}) == expected);
}

TEST_CASE("picker: random activation graphs run in the order of the host model") {
  std::uint32_t seed = 12345;
  auto next = [&] {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
  };
  for (int trial = 0; trial < 12; ++trial) {
    PickerParams p;
    // A random permutation ranks the tasks; a task activates only tasks of higher rank, so
    // the activation graph is acyclic and every run ends.
    std::vector<unsigned> ids(31);
    for (unsigned i = 0; i < 31; ++i) ids[i] = i;
    for (unsigned i = 30; i > 0; --i) std::swap(ids[i], ids[next() % (i + 1)]);
    const unsigned used = 8 + next() % 10;
    for (unsigned r = 0; r < used; ++r) p.bound |= 1u << ids[r];
    for (unsigned r = 0; r < used; ++r)
      for (int k = 0; k < 2; ++k) {
        const unsigned later = r + 1 + next() % 6;
        if (later < used) p.activates[ids[r]] |= 1u << ids[later];
      }
    p.init_activate = (1u << ids[0]) | (1u << ids[1 + next() % 3]);
    const auto expected = reference_order(p);
    REQUIRE(expected.size() <= Log::cap);
    CAPTURE(trial);
    wse::Program prog = one_pe();
    prog.add_region<Picker>(prog.grid(), p);
    wse::host::Runtime rt(prog, wse_test::config());
    const auto report = rt.run();
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    CHECK(read_log(rt, {0, 0}) == expected);
  }
}

TEST_CASE("activation is one bit: activating an active task again does not queue a second run") {
  PickerParams p;
  p.bound = (1u << 2) | (1u << 4) | (1u << 8);
  // 8 is activated in init, then again by 2 and by 4 before it gets to run: it runs once.
  p.init_activate = (1u << 8) | (1u << 2);
  p.activates[2] = (1u << 8) | (1u << 4) | (1u << 8);
  p.activates[4] = 1u << 8;
  wse::Program prog = one_pe();
  prog.add_region<Picker>(prog.grid(), p);
  wse::host::Runtime rt(prog, wse_test::config());
  REQUIRE(rt.run().ok());
  const auto log = read_log(rt, {0, 0});
  CHECK(log == std::vector<std::uint32_t>{2, 4, 8});
  CHECK(std::count(log.begin(), log.end(), 8u) == 1);
}

namespace {
// Local task 6 re-activates itself until it has run `times` times; a second activation
// inside the same run does not add a run.
struct SelfParams {
  std::uint32_t times = 1;
};
template <class PE> struct SelfActivate {
  using Params = SelfParams;
  Params p;
  Log log;
  void init(PE& pe, const Params& params) {
    p = params;
    log.export_to(pe);
    wse::bind_local_task<&SelfActivate::again>(pe, TaskId{6});
    pe.activate(TaskId{6});
    pe.activate(TaskId{6});
  }
  void again(PE& pe) {
    log.push(log.n[0]);
    if (log.n[0] < p.times) {
      pe.activate(TaskId{6});
      pe.activate(TaskId{6});
    }
  }
};
}  // namespace

TEST_CASE("a task that activates itself runs again once per run (the bit is cleared when it starts)") {
  for (std::uint32_t times : {1u, 2u, 17u}) {
    CAPTURE(times);
    wse::Program prog = one_pe();
    prog.add_region<SelfActivate>(prog.grid(), SelfParams{times});
    wse::host::Runtime rt(prog, wse_test::config());
    REQUIRE(rt.run().ok());
    CHECK(read_log(rt, {0, 0}) == iota_from(0, times));
    // The task bit is clear again after a completed run.
    CHECK_FALSE((*rt.emulator()).pe({0, 0})->is_active(TaskId{6}));
  }
}

namespace {
// Task 10 logs, activates task 1 (a lower id), does a long computation and logs again:
// task 1 must not run in between (no preemption).
template <class PE> struct RunToCompletion {
  using Params = NoParams;
  Log log;
  void init(PE& pe, const Params&) {
    log.export_to(pe);
    wse::bind_local_task<&RunToCompletion::long_task>(pe, TaskId{10});
    wse::bind_local_task<&RunToCompletion::short_task>(pe, TaskId{1});
    pe.activate(TaskId{10});
  }
  void long_task(PE& pe) {
    log.push(100);
    pe.activate(TaskId{1});
    std::uint32_t x = 1;
    for (std::uint32_t i = 0; i < 100000; ++i) x = x * 1664525u + 1013904223u;
    log.push(x == 0 ? 0 : 101);
  }
  void short_task(PE&) { log.push(1); }
};
}  // namespace

TEST_CASE("a task runs to completion: a lower id activated mid-task runs only after it returns") {
  wse::Program prog = one_pe();
  prog.add_region<RunToCompletion>(prog.grid(), NoParams{});
  wse::host::Runtime rt(prog, wse_test::config());
  REQUIRE(rt.run().ok());
  CHECK(read_log(rt, {0, 0}) == std::vector<std::uint32_t>{100, 101, 1});
}

// ---- runnable = activated AND unblocked ------------------------------------------------------

TEST_CASE("an activated but blocked task does not run; unblocking it runs it exactly once") {
  PickerParams p;
  p.bound = (1u << 4) | (1u << 7) | (1u << 12);
  p.init_activate = (1u << 7) | (1u << 12);
  p.init_block = (1u << 7) | (1u << 4);  // 4 is blocked but never activated
  wse::Program prog = one_pe();
  prog.add_region<Picker>(prog.grid(), p);
  wse::host::Runtime rt(prog, wse_test::config());

  const auto first = rt.run();
  // 12 runs; 7 is activated but blocked: work remains and nothing can progress.
  CHECK(first.status == wse::host::RunStatus::stalled);
  CHECK(read_log(rt, {0, 0}) == std::vector<std::uint32_t>{12});
  REQUIRE(first.stuck.size() == 1);
  CHECK(first.stuck[0].pe == Coord{0, 0});
  REQUIRE(first.stuck[0].tasks.size() == 1);
  CHECK(wse_test::contains(first.stuck[0].tasks[0], "task 7 activated but blocked"));
  const wse::emu::Pe& pe = *(*rt.emulator()).pe({0, 0});
  CHECK(pe.is_active(TaskId{7}));
  CHECK(pe.is_blocked(TaskId{7}));
  CHECK_FALSE(pe.is_active(TaskId{4}));

  // Unblocking both: 7 (activated) runs once, 4 (only unblocked) does not run.
  const auto second = rt.call("unblock_all");
  REQUIRE_MESSAGE(second.ok(), second.to_string());
  CHECK(read_log(rt, {0, 0}) == std::vector<std::uint32_t>{12, 7});
  CHECK_FALSE(pe.is_active(TaskId{7}));
  CHECK_FALSE(pe.is_blocked(TaskId{7}));
}

namespace {
// Task 3 blocks task 9 while 9 is activated; a launched function unblocks it.
template <class PE> struct BlockFromTask {
  using Params = NoParams;
  Log log;
  void init(PE& pe, const Params&) {
    log.export_to(pe);
    wse::bind_local_task<&BlockFromTask::t3>(pe, TaskId{3});
    wse::bind_local_task<&BlockFromTask::t9>(pe, TaskId{9});
    wse::export_function<&BlockFromTask::go>(pe, "go");
    pe.activate(TaskId{9});
    pe.activate(TaskId{3});
  }
  void t3(PE& pe) {
    log.push(3);
    pe.block(TaskId{9});
  }
  void t9(PE&) { log.push(9); }
  void go(PE& pe) { pe.unblock(TaskId{9}); }
};
}  // namespace

TEST_CASE("a task that blocks an activated task keeps it from running until unblocked") {
  wse::Program prog = one_pe();
  prog.add_region<BlockFromTask>(prog.grid(), NoParams{});
  wse::host::Runtime rt(prog, wse_test::config());
  CHECK(rt.run().status == wse::host::RunStatus::stalled);
  CHECK(read_log(rt, {0, 0}) == std::vector<std::uint32_t>{3});
  CHECK(rt.call("go").ok());
  CHECK(read_log(rt, {0, 0}) == std::vector<std::uint32_t>{3, 9});
}

// ---- data tasks ----------------------------------------------------------------------------

namespace {
// Logs the raw payload of every wavelet on `color`.
struct ColorParams {
  Color color;
};
template <class PE> struct RawLogger {
  using Params = ColorParams;
  Log log;
  void init(PE& pe, const Params& p) {
    log.export_to(pe);
    wse::bind_data_task<&RawLogger::on_data>(pe, p.color);
  }
  void on_data(PE&, Wavelet w) {
    log.push(w.data);
    log.push(w.control ? 1u : 0u);
  }
};
}  // namespace

TEST_CASE("a data task runs once per wavelet, in arrival order, receiving the 32-bit payload unchanged") {
  const Color c{5};
  wse::Program prog(wse::arch::wse2, 1, 1);
  prog.add_region<RawLogger>(prog.grid(), ColorParams{c});
  prog.set_route(Coord{0, 0}, c, wse::ColorRoute{wse::west, wse::ramp});
  prog.add_input_stream("in", c, {0, 0}, wse::west);
  wse::host::Runtime rt(prog, wse_test::config());
  const std::vector<std::uint32_t> payload = {0u,          1u,          0xffffffffu, 0x7fc00001u /* NaN */,
                                              0x80000000u, 0xdeadbeefu, 0x00010000u, 42u};
  rt.stream_in<std::uint32_t>("in", payload);
  REQUIRE(rt.run().ok());
  std::vector<std::uint32_t> expected;
  for (auto v : payload) {
    expected.push_back(v);
    expected.push_back(0);  // data wavelets reach data tasks with the control bit clear
  }
  CHECK(read_log(rt, {0, 0}) == expected);
  const auto* pe = (*rt.emulator()).pe({0, 0});
  CHECK(pe->stats().tasks_run == payload.size());
  CHECK(pe->stats().received == payload.size());
}

namespace {
// Binds the data task of `bound` and a local task on id `local_on_color_id` (an id below 24
// whose color has no data task); activates the local task, which logs.
struct UnboundParams {
  Color bound;
  std::uint8_t local_on_color_id;
};
template <class PE> struct Unbound {
  using Params = UnboundParams;
  Log log;
  void init(PE& pe, const Params& p) {
    log.export_to(pe);
    wse::bind_data_task<&Unbound::on_data>(pe, p.bound);
    wse::bind_local_task<&Unbound::local>(pe, TaskId{p.local_on_color_id});
    pe.activate(TaskId{p.local_on_color_id});
  }
  void on_data(PE&, Wavelet w) { log.push(w.data); }
  void local(PE&) { log.push(777); }
};
}  // namespace

TEST_CASE("data-task ids of colors with no bound task start blocked; binding unblocks") {
  const Color bound{2}, unbound{9};
  const std::uint8_t local_id = 4;
  wse::Program prog(wse::arch::wse2, 1, 1);
  prog.add_region<Unbound>(prog.grid(), UnboundParams{bound, local_id});
  prog.set_route(Coord{0, 0}, bound, wse::ColorRoute{wse::west, wse::ramp});
  prog.set_route(Coord{0, 0}, unbound, wse::ColorRoute{wse::north, wse::ramp});
  prog.add_input_stream("bound", bound, {0, 0}, wse::west);
  prog.add_input_stream("unbound", unbound, {0, 0}, wse::north);
  wse::host::Runtime rt(prog, wse_test::config());

  const wse::emu::Pe& pe = *(*rt.emulator()).pe({0, 0});
  for (unsigned t = 0; t < wse::max_task_ids; ++t) {
    CAPTURE(t);
    const bool color_id = t < wse::arch::wse2.routable_colors;
    const bool has_task = t == bound.value || t == local_id;
    CHECK(pe.is_blocked(TaskId{static_cast<std::uint8_t>(t)}) == (color_id && !has_task));
  }

  rt.stream_in<std::uint32_t>("bound", std::vector<std::uint32_t>{11, 12});
  rt.stream_in<std::uint32_t>("unbound", std::vector<std::uint32_t>{21, 22, 23});
  const auto report = rt.run();
  // The bound color's wavelets and the local task on a color id run; the unbound color's
  // wavelets wait in its input queue, and the run says so.
  CHECK(read_log(rt, {0, 0}) == std::vector<std::uint32_t>{777, 11, 12});
  REQUIRE(report.status == wse::host::RunStatus::stalled);
  REQUIRE(report.stuck.size() == 1);
  CHECK(report.stuck[0].colors == std::vector<std::uint8_t>{unbound.value});
  REQUIRE(report.stuck[0].queues.size() == 1);
  CHECK(wse_test::contains(report.stuck[0].queues[0], "color 9 input queue: 3/"));
  CHECK(wse_test::contains(report.stuck[0].queues[0], "no data task bound"));
}

TEST_CASE("blocking a data task holds its wavelets in the queue; unblocking releases them in order") {
  const Color c{3};
  const std::uint32_t n = 5;  // fits the receiver's input queue (depth 6) with room to spare
  wse::Program prog(wse::arch::wse2, 1, 2);
  prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{c, n, 100});
  prog.add_region<Receiver>(Rect{{0, 1}, 1, 1}, RecvParams{c, true, 0});
  wse::routes::path(prog.route_sink(), c, {0, 0}, wse::south, 2);
  wse::host::Runtime rt(prog, wse_test::config());

  const auto first = rt.run();
  CHECK(first.status == wse::host::RunStatus::stalled);
  CHECK(read_log(rt, {0, 1}).empty());
  const wse::emu::Pe& recv = *(*rt.emulator()).pe({0, 1});
  CHECK(recv.stats().delivered == n);  // all of them reached the input queue ...
  CHECK(recv.stats().received == 0);   // ... and none was taken out
  REQUIRE(first.stuck.size() == 1);
  CHECK(first.stuck[0].pe == Coord{0, 1});
  CHECK(wse_test::contains(first.stuck[0].queues.at(0), "data task 3 blocked"));

  const auto second = rt.call("release");
  REQUIRE_MESSAGE(second.ok(), second.to_string());
  CHECK(read_log(rt, {0, 1}) == iota_from(100, n));
}

TEST_CASE("a data task that blocks itself mid-stream stops taking wavelets until unblocked") {
  const Color c{1};
  const std::uint32_t n = 40;  // more than all queues and buffers on the path hold
  for (std::uint32_t block_after : {1u, 3u, 39u}) {
    CAPTURE(block_after);
    wse::Program prog(wse::arch::wse2, 1, 2);
    prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{c, n, 1000});
    prog.add_region<Receiver>(Rect{{0, 1}, 1, 1}, RecvParams{c, false, block_after});
    wse::routes::path(prog.route_sink(), c, {0, 0}, wse::south, 2);
    wse::host::Runtime rt(prog, wse_test::config());
    CHECK(rt.run().status == wse::host::RunStatus::stalled);
    CHECK(read_log(rt, {0, 1}) == iota_from(1000, block_after));
    CHECK((*rt.emulator()).pe({0, 1})->stats().received == block_after);
    const auto report = rt.call("release");
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    CHECK(read_log(rt, {0, 1}) == iota_from(1000, n));
  }
}

namespace {
// Data task of `color` (blocked in init) and local tasks 3 and 12; "go" activates 12 and 3
// and unblocks the data task, so all three kinds compete in the picker.
template <class PE> struct DataVsLocal {
  using Params = ColorParams;
  Params p;
  Log log;
  void init(PE& pe, const Params& params) {
    p = params;
    log.export_to(pe);
    wse::bind_data_task<&DataVsLocal::on_data>(pe, p.color);
    wse::bind_local_task<&DataVsLocal::t3>(pe, TaskId{3});
    wse::bind_local_task<&DataVsLocal::t12>(pe, TaskId{12});
    pe.block(wse::data_task_id(p.color));
    wse::export_function<&DataVsLocal::go>(pe, "go");
  }
  void on_data(PE&, Wavelet w) { log.push(100 + w.data); }
  void t3(PE&) { log.push(3); }
  void t12(PE&) { log.push(12); }
  void go(PE& pe) {
    pe.activate(TaskId{12});
    pe.activate(TaskId{3});
    pe.unblock(wse::data_task_id(p.color));
  }
};
}  // namespace

TEST_CASE("picker: a data task with waiting wavelets competes by its id (= its color)") {
  const Color c{7};
  const std::uint32_t n = 4;  // all in the input queue (depth 6) before "go"
  wse::Program prog(wse::arch::wse2, 1, 2);
  prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{c, n, 1});
  prog.add_region<DataVsLocal>(Rect{{0, 1}, 1, 1}, ColorParams{c});
  wse::routes::path(prog.route_sink(), c, {0, 0}, wse::south, 2);
  wse::host::Runtime rt(prog, wse_test::config());
  CHECK(rt.run().status == wse::host::RunStatus::stalled);
  CHECK(read_log(rt, {0, 1}).empty());
  REQUIRE(rt.call("go").ok());
  // Host model: ids 3 < 7 < 12; the data task stays runnable while its queue is non-empty.
  std::vector<std::uint32_t> expected = {3};
  for (std::uint32_t i = 1; i <= n; ++i) expected.push_back(100 + i);
  expected.push_back(12);
  CHECK(read_log(rt, {0, 1}) == expected);
}

// ---- control tasks -------------------------------------------------------------------------

namespace {
// Data task of `color` logs 100 + payload; control tasks 2 and 40 log 2000/4000 + the
// control wavelet's user field; "release" unblocks control task 40, "poke" activates it.
struct CtlParams {
  Color color;
  bool block_40 = false;
};
template <class PE> struct Ctl {
  using Params = CtlParams;
  Log log;
  void init(PE& pe, const Params& p) {
    log.export_to(pe);
    wse::bind_data_task<&Ctl::on_data>(pe, p.color);
    wse::bind_control_task<&Ctl::c2>(pe, TaskId{2});
    wse::bind_control_task<&Ctl::c40>(pe, TaskId{40});
    if (p.block_40) pe.block(TaskId{40});
    wse::export_function<&Ctl::release>(pe, "release");
    wse::export_function<&Ctl::poke>(pe, "poke");
  }
  void on_data(PE&, Wavelet w) { log.push(100 + w.data); }
  void c2(PE&, Wavelet w) { log.push(2000 + wse::ControlPayload::decode(w.data).user); }
  void c40(PE&, Wavelet w) {
    log.push(w.control ? 4000 + wse::ControlPayload::decode(w.data).user : 9999);
  }
  void release(PE& pe) { pe.unblock(TaskId{40}); }
  void poke(PE& pe) { pe.activate(TaskId{40}); }
};

Wavelet ctl(std::uint8_t task, std::uint16_t user, bool activate = true) {
  wse::ControlPayload c;
  c.activate = activate;
  c.task = TaskId{task};
  c.user = user;
  return c.wavelet();
}

std::vector<std::uint32_t> entries_between(const std::vector<std::uint32_t>& log, std::uint32_t lo, std::uint32_t hi) {
  std::vector<std::uint32_t> out;
  for (auto v : log)
    if (v >= lo && v < hi) out.push_back(v);
  return out;
}
}  // namespace

TEST_CASE("control wavelets activate the control task they name at every PE they are delivered to") {
  const Color c{3};
  // (0,0) forwards without delivering; (0,1) delivers and forwards; (0,2) delivers.
  wse::Program prog(wse::arch::wse2, 1, 3);
  prog.add_region<Ctl>(prog.grid(), CtlParams{c});
  prog.set_route(Coord{0, 0}, c, wse::ColorRoute{wse::west, wse::south});
  prog.set_route(Coord{0, 1}, c, wse::ColorRoute{wse::north, wse::south | wse::ramp});
  prog.set_route(Coord{0, 2}, c, wse::ColorRoute{wse::north, wse::ramp});
  prog.add_input_stream("in", c, {0, 0}, wse::west);
  wse::host::Runtime rt(prog, wse_test::config());
  const std::vector<Wavelet> in = {Wavelet{7, false}, ctl(40, 5), Wavelet{8, false},
                                   ctl(40, 6, /*activate=*/false), ctl(2, 9), Wavelet{9, false}};
  rt.stream_in("in", in);
  const auto report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());

  CHECK(read_log(rt, {0, 0}).empty());  // no RAMP delivery at (0,0): nothing runs there
  for (std::uint16_t y : {1, 2}) {
    CAPTURE(y);
    const auto log = read_log(rt, {0, y});
    // Control wavelets never reach the data task; data arrive in order.
    CHECK(entries_between(log, 100, 200) == std::vector<std::uint32_t>{107, 108, 109});
    // Task 40 ran once with user 5 (the wavelet with activate=false did nothing); task 2 once.
    CHECK(entries_between(log, 4000, 5000) == std::vector<std::uint32_t>{4005});
    CHECK(entries_between(log, 2000, 3000) == std::vector<std::uint32_t>{2009});
    CHECK(log.size() == 5);
  }
}

TEST_CASE("control tasks: one activation bit, blocking, and activation by software") {
  const Color c{3};
  wse::Program prog(wse::arch::wse2, 1, 1);
  prog.add_region<Ctl>(prog.grid(), CtlParams{c, /*block_40=*/true});
  prog.set_route(Coord{0, 0}, c, wse::ColorRoute{wse::west, wse::ramp});
  prog.add_input_stream("in", c, {0, 0}, wse::west);
  wse::host::Runtime rt(prog, wse_test::config());

  // Two control wavelets for the blocked task 40: it is activated (once), does not run.
  rt.stream_in("in", std::vector<Wavelet>{ctl(40, 1)});
  CHECK(rt.run().status == wse::host::RunStatus::stalled);
  rt.stream_in("in", std::vector<Wavelet>{ctl(40, 2)});
  CHECK(rt.run().status == wse::host::RunStatus::stalled);
  CHECK(read_log(rt, {0, 0}).empty());
  CHECK((*rt.emulator()).pe({0, 0})->is_active(TaskId{40}));

  REQUIRE(rt.call("release").ok());
  const auto log = read_log(rt, {0, 0});
  REQUIRE(log.size() == 1);  // two activations before it ran: one run
  CHECK((log[0] == 4001 || log[0] == 4002));

  // Software activation of a control task runs it too.
  REQUIRE(rt.call("poke").ok());
  CHECK(read_log(rt, {0, 0}).size() == 2);
}

// ---- async op completions ------------------------------------------------------------------

namespace {
// Receives `n` wavelets on `color` with an async fabric-input mov into buf, and reports with
// local task 10, which logs 1000 + its run number followed by buf[0..n).
struct AsyncParams {
  Color color;
  std::uint32_t n = 0;
  int mode = 0;  // see the cases below
};
template <class PE> struct AsyncDone {
  using Params = AsyncParams;
  Params p;
  Log log;
  std::uint32_t buf[32] = {};
  std::uint32_t src[32] = {};
  std::uint32_t runs = 0;
  void init(PE& pe, const Params& params) {
    p = params;
    log.export_to(pe);
    wse::bind_local_task<&AsyncDone::done>(pe, TaskId{10});
    wse::export_function<&AsyncDone::release>(pe, "release");
    wse::export_function<&AsyncDone::peek>(pe, "peek");
    const auto dst = wse::mem1d(buf).with_length(p.n);
    const auto in = wse::fabin<std::uint32_t>(p.color, p.n);
    switch (p.mode) {
      case 0:  // completion activates task 10
        wse::mov(pe, dst, in, wse::then_activate(TaskId{10}));
        break;
      case 1:  // task 10 activated and blocked; completion unblocks it
        pe.activate(TaskId{10});
        pe.block(TaskId{10});
        wse::mov(pe, dst, in, wse::then_unblock(TaskId{10}));
        break;
      case 2:  // no completion action: the op still runs; "peek" shows the result
        wse::mov(pe, dst, in, wse::then_nothing());
        break;
      case 3:  // two memory ops completing for the same task: one activation bit
        for (std::uint32_t i = 0; i < 32; ++i) src[i] = 50 + i;
        wse::mov(pe, wse::mem1d(buf).with_length(p.n), wse::mem1d(src).with_length(p.n), wse::then_activate(TaskId{10}));
        wse::add(pe, wse::mem1d(buf).with_length(p.n), wse::mem1d(buf).with_length(p.n), std::uint32_t{1},
                 wse::then_activate(TaskId{10}));
        break;
      case 4:  // completion activates a blocked task: it waits for "release"
        pe.block(TaskId{10});
        wse::mov(pe, dst, in, wse::then_activate(TaskId{10}));
        break;
    }
  }
  void done(PE&) {
    log.push(1000 + runs++);
    for (std::uint32_t i = 0; i < p.n; ++i) log.push(buf[i]);
  }
  void release(PE& pe) { pe.unblock(TaskId{10}); }
  void peek(PE&) {
    for (std::uint32_t i = 0; i < p.n; ++i) log.push(buf[i]);
  }
};

struct AsyncRun {
  wse::Program prog{wse::arch::wse2, 1, 2};
  AsyncRun(AsyncParams p, std::uint32_t base) {
    // Mode 3 uses memory operands only: nothing to send.
    prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{p.color, p.mode == 3 ? 0u : p.n, base});
    prog.add_region<AsyncDone>(Rect{{0, 1}, 1, 1}, p);
    wse::routes::path(prog.route_sink(), p.color, {0, 0}, wse::south, 2);
  }
};
}  // namespace

TEST_CASE("async fabric-input op: completion activates the named task after the last element") {
  for (std::uint32_t n : {1u, 2u, 20u, 32u}) {
    CAPTURE(n);
    AsyncRun r(AsyncParams{Color{4}, n, 0}, 500);
    wse::host::Runtime rt(r.prog, wse_test::config());
    const auto report = rt.run();
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    std::vector<std::uint32_t> expected = {1000};
    for (std::uint32_t i = 0; i < n; ++i) expected.push_back(500 + i);
    CHECK(read_log(rt, {0, 1}) == expected);
  }
}

namespace {
// Data task of `color` logs 100 + payload; init issues an async op reading `k` wavelets of
// the same color plus `k` of `gate` (buf = color + gate), whose completion activates task
// 10 (logs 1000, then buf). Until the gate wavelets come, the op holds `color`.
struct SharedColorParams {
  Color color, gate;
  std::uint32_t k = 0;
};
template <class PE> struct FabinAndDataTask {
  using Params = SharedColorParams;
  Params p;
  Log log;
  std::uint32_t buf[32] = {};
  void init(PE& pe, const Params& params) {
    p = params;
    log.export_to(pe);
    wse::bind_data_task<&FabinAndDataTask::on_data>(pe, p.color);
    wse::bind_local_task<&FabinAndDataTask::done>(pe, TaskId{10});
    wse::add(pe, wse::mem1d(buf).with_length(p.k), wse::fabin<std::uint32_t>(p.color, p.k),
             wse::fabin<std::uint32_t>(p.gate, p.k), wse::then_activate(TaskId{10}));
  }
  void on_data(PE&, Wavelet w) { log.push(100 + w.data); }
  void done(PE&) {
    log.push(1000);
    for (std::uint32_t i = 0; i < p.k; ++i) log.push(buf[i]);
  }
};
}  // namespace

TEST_CASE("while an async op reads a color from the fabric, that color's data task does not run") {
  const Color c{4}, gate{6};
  const std::uint32_t n = 30;
  for (std::uint32_t k : {1u, 9u, 25u}) {
    CAPTURE(k);
    wse::Program prog(wse::arch::wse2, 1, 2);
    prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{c, n, 0});
    prog.add_region<FabinAndDataTask>(Rect{{0, 1}, 1, 1}, SharedColorParams{c, gate, k});
    wse::routes::path(prog.route_sink(), c, {0, 0}, wse::south, 2);
    prog.set_route(Coord{0, 1}, gate, wse::ColorRoute{wse::west, wse::ramp});
    prog.add_input_stream("gate", gate, {0, 1}, wse::west);
    wse::host::Runtime rt(prog, wse_test::config());
    // The op waits for its gate input while wavelets of `c` sit in the input queue: the data
    // task of `c` must leave them alone.
    CHECK(rt.run().status == wse::host::RunStatus::stalled);
    CHECK(read_log(rt, {0, 1}).empty());

    rt.stream_in<std::uint32_t>("gate", iota_from(500, k));
    const auto report = rt.run();
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    const auto log = read_log(rt, {0, 1});
    // The op took the first k wavelets; the data task got exactly the rest, in order.
    const auto done_at = std::find(log.begin(), log.end(), 1000u);
    REQUIRE(done_at != log.end());
    REQUIRE(log.end() - done_at >= std::ptrdiff_t{k} + 1);
    std::vector<std::uint32_t> sums(k);
    for (std::uint32_t i = 0; i < k; ++i) sums[i] = i + 500 + i;
    CHECK(std::vector<std::uint32_t>(done_at + 1, done_at + 1 + k) == sums);
    std::vector<std::uint32_t> data;
    for (auto it = log.begin(); it != log.end(); ++it)
      if (it < done_at || it > done_at + k) data.push_back(*it);
    CHECK(data == iota_from(100 + k, n - k));
  }
}

TEST_CASE("async op of length 0 completes at once and fires its completion") {
  AsyncRun r(AsyncParams{Color{4}, 0, 0}, 0);
  wse::host::Runtime rt(r.prog, wse_test::config());
  REQUIRE(rt.run().ok());
  CHECK(read_log(rt, {0, 1}) == std::vector<std::uint32_t>{1000});
}

TEST_CASE("async op completion unblocks the named task") {
  AsyncRun r(AsyncParams{Color{4}, 12, 1}, 70);
  wse::host::Runtime rt(r.prog, wse_test::config());
  REQUIRE(rt.run().ok());
  std::vector<std::uint32_t> expected = {1000};
  for (std::uint32_t i = 0; i < 12; ++i) expected.push_back(70 + i);
  CHECK(read_log(rt, {0, 1}) == expected);
}

TEST_CASE("async op with no completion action still completes") {
  AsyncRun r(AsyncParams{Color{4}, 9, 2}, 30);
  wse::host::Runtime rt(r.prog, wse_test::config());
  REQUIRE(rt.run().ok());
  CHECK(read_log(rt, {0, 1}).empty());  // nothing was activated
  REQUIRE(rt.call("peek").ok());
  CHECK(read_log(rt, {0, 1}) == iota_from(30, 9));
}

TEST_CASE("two async ops completing for one task activate it once (one bit)") {
  AsyncRun r(AsyncParams{Color{4}, 6, 3}, 0);
  wse::host::Runtime rt(r.prog, wse_test::config());
  REQUIRE(rt.run().ok());
  std::vector<std::uint32_t> expected = {1000};
  for (std::uint32_t i = 0; i < 6; ++i) expected.push_back(50 + i + 1);
  CHECK(read_log(rt, {0, 1}) == expected);
}

TEST_CASE("async completion activating a blocked task: it runs only once unblocked") {
  AsyncRun r(AsyncParams{Color{4}, 5, 4}, 10);
  wse::host::Runtime rt(r.prog, wse_test::config());
  CHECK(rt.run().status == wse::host::RunStatus::stalled);
  CHECK(read_log(rt, {0, 1}).empty());
  CHECK((*rt.emulator()).pe({0, 1})->is_active(TaskId{10}));
  REQUIRE(rt.call("release").ok());
  std::vector<std::uint32_t> expected = {1000};
  for (std::uint32_t i = 0; i < 5; ++i) expected.push_back(10 + i);
  CHECK(read_log(rt, {0, 1}) == expected);
}

// ---- synchronous send stalls the compute element ---------------------------------------------

namespace {
// Sends `count` wavelets from init, then activates local task 5, which logs 5.
template <class PE> struct SendThenTask {
  using Params = SendParams;
  Log log;
  void init(PE& pe, const Params& p) {
    log.export_to(pe);
    wse::bind_local_task<&SendThenTask::t5>(pe, TaskId{5});
    wse::export_function<&SendThenTask::fn>(pe, "fn");
    for (std::uint32_t i = 0; i < p.count; ++i) pe.send(p.color, Wavelet{p.base + i, false});
    pe.activate(TaskId{5});
  }
  void t5(PE&) { log.push(5); }
  void fn(PE&) { log.push(77); }
};
}  // namespace

TEST_CASE("a send into a full output queue stalls the compute element: no new task starts") {
  const Color c{0};
  const std::uint32_t n = 40;
  wse::Program prog(wse::arch::wse2, 1, 2);
  prog.add_region<SendThenTask>(Rect{{0, 0}, 1, 1}, SendParams{c, n, 0});
  prog.add_region<Receiver>(Rect{{0, 1}, 1, 1}, RecvParams{c, /*start_blocked=*/true, 0});
  wse::routes::path(prog.route_sink(), c, {0, 0}, wse::south, 2);
  wse::emu::EmuConfig cfg = wse_test::config();
  wse::host::Runtime rt(prog, cfg);

  const auto first = rt.run();
  CHECK(first.status == wse::host::RunStatus::stalled);
  // Task 5 was activated after the sends; the sender is still stalled, so it has not run.
  CHECK(read_log(rt, {0, 0}).empty());
  CHECK((*rt.emulator()).pe({0, 0})->is_active(TaskId{5}));
  // Everything that fits between the two compute elements left the sender: its output queue,
  // the two link buffers and the receiver's input queue (first queues by color order).
  const std::uint32_t room = wse::arch::wse2.output_queue_depth[0] + 2 * cfg.router_buffer_depth +
                             wse::arch::wse2.input_queue_depth[0];
  REQUIRE(room < n);
  CHECK((*rt.emulator()).pe({0, 0})->stats().sent == room);
  bool stalled_named = false;
  for (const auto& s : first.stuck)
    for (const auto& w : s.waiting) stalled_named |= wse_test::contains(w, "stalled on a send to color 0");
  CHECK(stalled_named);

  // A function launched on the stalled sender must wait too: no new task starts.
  rt.launch("fn", Rect{{0, 0}, 1, 1});
  const auto waiting = rt.run();
  CHECK(waiting.status == wse::host::RunStatus::stalled);
  CHECK(read_log(rt, {0, 0}).empty());
  // The stuck report names the waiting function.
  bool fn_named = false;
  for (const auto& s : waiting.stuck)
    for (const auto& w : s.waiting) fn_named |= wse_test::contains(w, "launched function 'fn' waits");
  CHECK(fn_named);

  rt.launch("release", Rect{{0, 1}, 1, 1});
  const auto second = rt.run();
  REQUIRE_MESSAGE(second.ok(), second.to_string());
  CHECK(read_log(rt, {0, 1}) == iota_from(0, n));
  const auto log = read_log(rt, {0, 0});
  CHECK(std::count(log.begin(), log.end(), 5u) == 1);
  CHECK(std::count(log.begin(), log.end(), 77u) == 1);
}

// ---- exported functions launched from the host -----------------------------------------------

namespace {
template <class PE> struct Launchable {
  using Params = NoParams;
  Log log;
  std::uint32_t count[1] = {};
  void init(PE& pe, const Params&) {
    log.export_to(pe);
    wse::export_symbol(pe, "count", count);
    wse::bind_local_task<&Launchable::t7>(pe, TaskId{7});
    wse::export_function<&Launchable::bump>(pe, "bump");
    wse::export_function<&Launchable::kick>(pe, "kick");
  }
  void bump(PE& pe) {
    ++count[0];
    log.push(100u * pe.coord().x + pe.coord().y);
  }
  void kick(PE& pe) { pe.activate(TaskId{7}); }
  void t7(PE&) { log.push(7); }
};
}  // namespace

TEST_CASE("exported functions launched from the host run once per launch on the chosen PEs") {
  wse::Program prog(wse::arch::wse2, 3, 4);
  prog.add_region<Launchable>(Rect{{0, 0}, 3, 3}, NoParams{});  // row 3 has no kernel
  wse::host::Runtime rt(prog, wse_test::config());
  REQUIRE(rt.run().ok());  // nothing to do before a launch

  const Rect area{{1, 1}, 2, 2};
  rt.launch("bump", area);
  rt.launch("bump", area);
  REQUIRE(rt.run().ok());
  const Rect all{{0, 0}, 3, 3};
  const auto counts = rt.read<std::uint32_t>("count", all, 1);
  for (std::uint16_t y = 0; y < 3; ++y)
    for (std::uint16_t x = 0; x < 3; ++x) {
      CAPTURE(x);
      CAPTURE(y);
      const bool in = area.contains({x, y});
      CHECK(counts[std::size_t{y} * 3 + x] == (in ? 2u : 0u));
      const auto log = read_log(rt, {x, y});
      const std::uint32_t id = 100u * x + y;
      CHECK(log == (in ? std::vector<std::uint32_t>{id, id} : std::vector<std::uint32_t>{}));
    }

  // A launched function may activate tasks; call() = launch on every PE + run.
  REQUIRE(rt.call("kick").ok());
  for (std::uint16_t y = 0; y < 3; ++y)
    for (std::uint16_t x = 0; x < 3; ++x) {
      const auto log = read_log(rt, {x, y});
      REQUIRE(!log.empty());
      CHECK(log.back() == 7);
    }

  CHECK_THROWS_AS(rt.launch("no_such_function"), wse::ProgramError);
  CHECK_THROWS_AS(rt.launch("bump", Rect{{0, 3}, 3, 1}), wse::ProgramError);  // no PE there exports it
}
