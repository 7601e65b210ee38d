// Faults and stalls: a run that cannot go on says why, naming PE, task and operation.
#include <doctest/doctest.h>

#include "kernels.hpp"
#include "support.hpp"

using namespace wse;
using wse_test::contains;
using wse_test::error_of;

namespace {

struct WaitParams {
  Color in;
};
/// Waits for 4 wavelets on `in` with an async fabin op; nothing ever sends them.
template <class PE> struct Waiter {
  using Params = WaitParams;
  float x[4] = {};
  void init(PE& pe, const Params& p) {
    wse::bind_local_task<&Waiter::done>(pe, TaskId{25});
    wse::mov(pe, wse::mem1d(x), wse::fabin<float>(p.in, 4), wse::then_activate(TaskId{25}));
  }
  void done(PE&) {}
};

struct HogParams {
  std::uint32_t bytes;
};
template <class PE> struct Hog {
  using Params = HogParams;
  void init(PE& pe, const Params& p) { (void)wse::alloc<std::uint8_t>(pe, p.bytes); }
};

struct FloodParams {
  Color out;
  std::uint32_t n;
};
/// Sends `n` wavelets from one task when launched.
template <class PE> struct Flood {
  using Params = FloodParams;
  Params p{};
  void init(PE& pe, const Params& params) {
    p = params;
    wse::export_function<&Flood::go>(pe, "go");
  }
  void go(PE& pe) {
    for (std::uint32_t i = 0; i < p.n; ++i) pe.send(p.out, Wavelet{i, false});
  }
};
/// Re-activates its own task forever.
template <class PE> struct Spinner {
  using Params = wse_test::NoParams;
  std::uint32_t spins = 0;
  void init(PE& pe, const Params&) {
    wse::bind_local_task<&Spinner::spin>(pe, TaskId{26});
    pe.activate(TaskId{26});
  }
  void spin(PE& pe) {
    ++spins;
    pe.activate(TaskId{26});
  }
};

/// Activates a task id nothing is bound to.
template <class PE> struct BadActivate {
  using Params = wse_test::NoParams;
  void init(PE& pe, const Params&) { wse::export_function<&BadActivate::go>(pe, "go"); }
  void go(PE& pe) { pe.activate(TaskId{29}); }
};
}  // namespace

TEST_CASE("a DSD running past its array faults, naming PE, task and op") {
  Program p(arch::wse2, 2, 2);
  p.add_region<wse_test::Overrun>(p.grid(), [](Coord c) { return wse_test::OverrunParams{c == Coord{1, 1} ? 9u : 8u}; });
  host::Runtime rt(p, wse_test::config());
  const auto r = rt.call("start");
  CHECK(r.status == host::RunStatus::faulted);
  REQUIRE(r.faults.size() == 1);
  const auto& f = r.faults[0];
  CHECK(f.pe == Coord{1, 1});
  CHECK(contains(f.kernel, "Overrun"));
  CHECK(f.task == "local task 27");
  CHECK(f.operation == "mul");
  CHECK(contains(f.message, "elements 0..8 of an array of 8 f32"));
  CHECK(contains(r.to_string(), "fault at PE (1,1)"));
}

TEST_CASE("a program that deadlocks stops with a report instead of hanging") {
  Program p(arch::wse2, 2, 1);
  p.add_region<Waiter>(Rect{{1, 0}, 1, 1}, WaitParams{Color{6}}, "receiver");
  p.add_region<wse_test::Idle>(Rect{{0, 0}, 1, 1}, wse_test::NoParams{});
  p.set_route(Coord{0, 0}, Color{6}, ColorRoute{ramp, east});
  p.set_route(Coord{1, 0}, Color{6}, ColorRoute{west, ramp});
  host::Runtime rt(p, wse_test::config());
  const auto r = rt.run();
  CHECK(r.status == host::RunStatus::stalled);
  REQUIRE(r.stuck.size() == 1);
  CHECK(r.stuck[0].pe == Coord{1, 0});
  CHECK(contains(r.stuck[0].kernel, "receiver: "));  // the region's name, then the kernel type
  CHECK(contains(r.stuck[0].kernel, "Waiter"));
  REQUIRE(r.stuck[0].waiting.size() == 1);
  CHECK(contains(r.stuck[0].waiting[0], "async mov at element 0 of 4, reads color 6"));
  CHECK(contains(r.to_string(), "1 PE(s) with work left"));
}

TEST_CASE("wavelets on a color without a data task are reported with the queue") {
  Program p(arch::wse2, 2, 1);
  p.add_region<wse_test::Idle>(p.grid(), wse_test::NoParams{});
  p.set_route(Coord{0, 0}, Color{2}, ColorRoute{west, east});
  p.set_route(Coord{1, 0}, Color{2}, ColorRoute{west, ramp});
  p.add_input_stream("in", Color{2}, Coord{0, 0}, west);
  host::Runtime rt(p, wse_test::config());
  rt.stream_in<std::uint32_t>("in", std::vector<std::uint32_t>(10, 1u));
  const auto r = rt.run();
  CHECK(r.status == host::RunStatus::stalled);
  REQUIRE(!r.stuck.empty());
  const auto& s = r.stuck.back();
  CHECK(s.pe == Coord{1, 0});
  CHECK(s.colors == std::vector<std::uint8_t>{2});
  REQUIRE(!s.queues.empty());
  CHECK(contains(s.queues[0], "color 2 input queue: 6/6 wavelets (no data task bound)"));
}

TEST_CASE("kernel state over the memory budget fails at load, naming region and PE") {
  Program p(arch::wse2, 3, 1);
  p.add_region<Hog>(p.grid(), [](Coord c) { return HogParams{c.x == 2 ? 48u * 1024u : 1000u}; }, "hogs");
  const auto e = error_of([&] { host::Runtime rt(p, wse_test::config()); });
  CHECK(contains(e, "loading region 'hogs' at PE (2,0)"));
  CHECK(contains(e, "PE memory over budget"));
  CHECK(contains(e, "49152 available on wse2"));
}

TEST_CASE("queue overflow: a task that sends past every limit faults") {
  Program p(arch::wse2, 2, 1);
  p.add_region<Flood>(Rect{{0, 0}, 1, 1}, FloodParams{Color{1}, 100});
  p.add_region<wse_test::Idle>(Rect{{1, 0}, 1, 1}, wse_test::NoParams{});
  p.set_route(Coord{0, 0}, Color{1}, ColorRoute{ramp, east});
  p.set_route(Coord{1, 0}, Color{1}, ColorRoute{west, ramp});
  auto cfg = wse_test::config();
  cfg.max_stalled_sends = 16;
  host::Runtime rt(p, cfg);
  const auto r = rt.call("go");
  CHECK(r.status == host::RunStatus::faulted);
  REQUIRE(r.faults.size() == 1);
  CHECK(r.faults[0].task == "function 'go'");
  CHECK(r.faults[0].operation == "send");
  CHECK(contains(r.faults[0].message, "queue overflow"));
}

TEST_CASE("sends beyond the queue stall the compute element, then complete in order") {
  Program p(arch::wse2, 2, 1);
  p.add_region<Flood>(Rect{{0, 0}, 1, 1}, FloodParams{Color{1}, 40});
  p.add_region<wse_test::Relay>(Rect{{1, 0}, 1, 1}, wse_test::RelayParams{Color{1}, Color{1}, 0, true});
  p.set_route(Coord{0, 0}, Color{1}, ColorRoute{ramp, east});
  p.set_route(Coord{1, 0}, Color{1}, ColorRoute{west, ramp});
  host::Runtime rt(p, wse_test::config());
  CHECK(rt.call("go").ok());
  const auto got = rt.read<std::int32_t>("got", Rect{{1, 0}, 1, 1}, 40);
  for (std::int32_t i = 0; i < 40; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("a task that activates itself forever stops at the epoch limit") {
  Program p(arch::wse2, 2, 1);
  p.add_region<Spinner>(Rect{{1, 0}, 1, 1}, wse_test::NoParams{});
  auto cfg = wse_test::config();
  cfg.max_epochs = 50;
  host::Runtime rt(p, cfg);
  const auto r = rt.run();
  CHECK(r.status == host::RunStatus::epoch_limit);
  CHECK(r.epochs == 50);
  REQUIRE(r.stuck.size() == 1);
  CHECK(r.stuck[0].pe == Coord{1, 0});
  CHECK(r.stuck[0].tasks == std::vector<std::string>{"local task 26 activated"});
  // Every epoch runs the task max_task_runs_per_epoch times.
  CHECK(rt.stats().totals.tasks_run == 50u * cfg.max_task_runs_per_epoch);
}

TEST_CASE("activating an unbound task faults") {
  Program p(arch::wse2, 1, 1);
  p.add_region<BadActivate>(p.grid(), wse_test::NoParams{});
  host::Runtime rt(p, wse_test::config());
  const auto r = rt.call("go");
  REQUIRE(r.faults.size() == 1);
  CHECK(r.faults[0].operation == "activate");
  CHECK(contains(r.faults[0].message, "task 29 is not bound"));
}

namespace {
/// Binds a task from a launched function, after init: tasks are bound at load, as on hardware.
template <class PE> struct LateBind {
  using Params = wse_test::NoParams;
  void init(PE& pe, const Params&) { wse::export_function<&LateBind::go>(pe, "go"); }
  void go(PE& pe) { wse::bind_local_task<&LateBind::go>(pe, TaskId{25}); }
};
}  // namespace

TEST_CASE("binding a task after kernel init faults, naming the task id") {
  Program p(arch::wse2, 2, 1);
  p.add_region<LateBind>(p.grid(), wse_test::NoParams{});
  host::Runtime rt(p, wse_test::config());
  const auto r = rt.call("go");
  REQUIRE(r.faults.size() == 2);
  CHECK(r.faults[0].operation == "bind_task");
  CHECK(contains(r.faults[0].message, "kernel init only (task id 25)"));
}

namespace {
/// Streams 1..8 with an async fabout op, then sends 99 on the same color at once.
template <class PE> struct SendAfterAsync {
  using Params = wse_test::NoParams;
  std::uint32_t v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  void init(PE& pe, const Params&) { wse::export_function<&SendAfterAsync::go>(pe, "go"); }
  void go(PE& pe) {
    wse::mov(pe, wse::fabout<std::uint32_t>(Color{4}, 8), wse::mem1d(v), wse::then_nothing());
    pe.send(Color{4}, Wavelet::from_u32(99));
  }
};
}  // namespace

TEST_CASE("a send does not overtake an async op writing the same color (regression)") {
  Program p(arch::wse2, 1, 1);
  p.add_region<SendAfterAsync>(p.grid(), wse_test::NoParams{});
  p.set_route(Coord{0, 0}, Color{4}, ColorRoute{ramp, east});
  p.add_output_stream("out", Color{4}, Coord{0, 0}, east);
  host::Runtime rt(p, wse_test::config());
  REQUIRE(rt.call("go").ok());
  CHECK(rt.stream_out_as<std::uint32_t>("out") == std::vector<std::uint32_t>{1, 2, 3, 4, 5, 6, 7, 8, 99});
}
