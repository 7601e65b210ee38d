// Timed mode (docs/timing.md): cycle counts derived by hand from the documented rules, the
// same results as functional mode, and counts identical for any number of worker threads.
//
// The rules the expected counts come from (sw = task switch, L = hop latency, w = width):
//  - a task started in cycle t runs its body from t + sw; a send costs 1 cycle and enters the
//    output queue at the task time it happens; the router takes it the next cycle;
//  - a wavelet the router moves in cycle t reaches the router k hops away in cycle t + k·L;
//    a data task or fabric-input op there takes it in that same cycle;
//  - a memory DSD op costs 1 issue cycle + ceil(n / w); a fabric op moves one wavelet a cycle;
//  - the run's cycles end when the last task or op ends.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "kernels/stencil7.hpp"
#include "support.hpp"

using wse::Color;
using wse::Coord;
using wse::Port;
using wse::Rect;
using wse::TaskId;

namespace {

struct LineParams {
  std::uint32_t n = 1;      // wavelets sent
  bool sender = false;      // exports "go"
  bool receiver = false;    // takes the wavelets
  bool stream = false;      // async fabric ops instead of scalar sends / a data task
  std::uint32_t work = 0;   // receiver: elements of a mac per received wavelet (slow consumer)
  Color color{0};
};

/// A row of PEs: the westmost sends n values east on one color, the eastmost takes them.
template <class PE> struct Line {
  using Params = LineParams;
  static constexpr TaskId done_task{12};
  Params p{};
  float buf[256] = {};
  float scratch[512] = {};
  std::uint32_t got[1] = {};
  void init(PE& pe, const Params& params) {
    p = params;
    for (std::uint32_t i = 0; i < 256; ++i) buf[i] = p.sender ? float(i + 1) : 0.0f;
    if (p.sender) wse::export_function<&Line::go>(pe, "go");
    if (p.receiver && p.stream) {
      wse::bind_local_task<&Line::finish>(pe, done_task);
      wse::mov(pe, wse::mem1d(buf).with_length(p.n), wse::fabin<float>(p.color, p.n), wse::then_activate(done_task));
    } else if (p.receiver) {
      wse::bind_data_task<&Line::on_data>(pe, p.color);
    }
    wse::export_symbol(pe, "buf", buf);
    wse::export_symbol(pe, "got", got);
  }
  void go(PE& pe) {
    if (p.stream) {
      wse::mov(pe, wse::fabout<float>(p.color, p.n), wse::mem1d(buf).with_length(p.n), wse::then_nothing());
    } else {
      for (std::uint32_t i = 0; i < p.n; ++i) pe.send(p.color, wse::Wavelet::from_f32(buf[i]));
    }
  }
  void on_data(PE& pe, wse::Wavelet w) {
    buf[got[0]++ % 256] = w.f32();
    if (p.work) {
      const auto s = wse::mem1d(scratch).with_length(p.work);
      wse::mac(pe, s, s, s, 0.5f);
    }
  }
  void finish(PE&) { got[0] = p.n; }
};

/// k + 1 PEs in a row on `arch`; PE 0 sends, PE k receives, the ones between forward.
wse::Program line_program(const wse::arch::Arch& arch, std::uint16_t k, LineParams p) {
  wse::Program prog(arch, static_cast<std::uint16_t>(k + 1), 1);
  LineParams s = p, r = p;
  s.sender = true;
  r.receiver = true;
  prog.add_region<Line>(Rect{{0, 0}, 1, 1}, s, "sender");
  prog.add_region<Line>(Rect{{k, 0}, 1, 1}, r, "receiver");
  prog.set_route({0, 0}, p.color, wse::ColorRoute{wse::ramp, wse::east});
  for (std::uint16_t x = 1; x < k; ++x) prog.set_route({x, 0}, p.color, wse::ColorRoute{wse::west, wse::east});
  prog.set_route({k, 0}, p.color, wse::ColorRoute{wse::west, wse::ramp});
  return prog;
}

wse::emu::EmuConfig timed_config() {
  wse::emu::EmuConfig c = wse_test::config();
  c.timed = true;
  return c;
}

struct LineRun {
  wse::host::RunReport report;
  wse::emu::Stats stats;
  std::vector<float> received;
};

LineRun run_line(const wse::arch::Arch& arch, std::uint16_t k, LineParams p, wse::emu::EmuConfig cfg = timed_config()) {
  wse::host::Runtime rt(line_program(arch, k, p), cfg);
  LineRun r;
  r.report = rt.call("go");
  r.stats = rt.stats();
  r.received = rt.read<float>("buf", Rect{{k, 0}, 1, 1}, p.n);
  return r;
}

const wse::emu::PeStats& stats_at(const wse::emu::Stats& s, Coord c) {
  for (const auto& [pe, st] : s.per_pe)
    if (pe == c) return st;
  FAIL("no stats for PE");
  return s.totals;
}

}  // namespace

TEST_CASE("timed: one wavelet over k hops takes 2*sw + 1 + k*L cycles") {
  for (const wse::arch::Arch* arch : {&wse::arch::wse2, &wse::arch::wse3}) {
    const std::uint64_t sw = arch->cycles.task_switch, L = arch->hop_latency_cycles;
    for (std::uint16_t k : {1, 2, 5, 17}) {
      CAPTURE(arch->name);
      CAPTURE(k);
      const LineRun r = run_line(*arch, k, LineParams{});
      REQUIRE(r.report.ok());
      CHECK(r.report.cycles == 2 * sw + 1 + k * L);
      CHECK(r.report.seconds == doctest::Approx(double(r.report.cycles) / arch->clock_hz));
      CHECK(r.received[0] == 1.0f);
      // The sender's task: switch + one send; the receiver's: switch only.
      CHECK(stats_at(r.stats, {0, 0}).busy_cycles == sw + 1);
      CHECK(stats_at(r.stats, {k, 0}).busy_cycles == sw);
      for (std::uint16_t x = 1; x <= k; ++x) CHECK(stats_at(r.stats, {x, 0}).link_in[3] == 1);  // from the west
      CHECK(r.stats.cycles == r.report.cycles);
    }
  }
}

TEST_CASE("timed: a stream of n wavelets over k hops takes (n - 1) + k*L + 2*sw + 2 cycles") {
  for (const wse::arch::Arch* arch : {&wse::arch::wse2, &wse::arch::wse3}) {
    const std::uint64_t sw = arch->cycles.task_switch, L = arch->hop_latency_cycles, issue = arch->cycles.dsd_issue;
    REQUIRE(issue == 1);  // the formula below has the issue cycle in its "+ 2"
    for (std::uint16_t k : {1, 3, 8}) {
      for (std::uint32_t n : {1u, 2u, 10u, 200u}) {
        CAPTURE(arch->name);
        CAPTURE(k);
        CAPTURE(n);
        LineParams p;
        p.n = n;
        p.stream = true;
        const LineRun r = run_line(*arch, k, p);
        REQUIRE(r.report.ok());
        CHECK(r.report.cycles == (n - 1) + k * L + 2 * sw + 2);
        for (std::uint32_t i = 0; i < n; ++i) CHECK(r.received[i] == float(i + 1));
        // The link carried one wavelet per cycle: each link saw all n.
        CHECK(stats_at(r.stats, {k, 0}).link_in[3] == n);
      }
    }
  }
}

TEST_CASE("timed: scalar sends leave at one per cycle; a data task per wavelet paces the receiver") {
  const std::uint64_t sw = wse::arch::wse2.cycles.task_switch;
  for (std::uint32_t n : {1u, 5u, 40u}) {
    LineParams p;
    p.n = n;
    const LineRun r = run_line(wse::arch::wse2, 4, p);
    REQUIRE(r.report.ok());
    // Send i enters the queue at sw + i; the first reaches the receiver at sw + 1 + k*L,
    // whose data tasks (sw cycles each, sw >= 1) then run back to back.
    CHECK(r.report.cycles == sw + 1 + 4 + n * sw);
    CHECK(stats_at(r.stats, {0, 0}).busy_cycles == sw + n);
    CHECK(stats_at(r.stats, {4, 0}).busy_cycles == n * sw);
  }
}

namespace {
struct MacParams {
  std::uint32_t n = 0;
  int op = 0;  // 0 = mac, 1 = add, 2 = async mac then a task
};
template <class PE> struct MacKernel {
  using Params = MacParams;
  static constexpr TaskId after{20};
  Params p{};
  float a[4096] = {};
  void init(PE& pe, const Params& params) {
    p = params;
    wse::export_function<&MacKernel::go>(pe, "go");
    wse::bind_local_task<&MacKernel::done>(pe, after);
  }
  void go(PE& pe) {
    const auto d = wse::mem1d(a).with_length(p.n);
    if (p.op == 0) wse::mac(pe, d, d, d, 2.0f);
    if (p.op == 1) wse::add(pe, d, d, d);
    if (p.op == 2) wse::mac(pe, d, d, d, 2.0f, wse::then_activate(after));
  }
  void done(PE&) {}
};

wse::host::RunReport run_mac(const wse::arch::Arch& arch, MacParams p) {
  wse::Program prog(arch, 1, 1);
  prog.add_region<MacKernel>(Rect{{0, 0}, 1, 1}, p);
  wse::host::Runtime rt(prog, timed_config());
  return rt.call("go");
}
}  // namespace

TEST_CASE("timed: a DSD op of n elements at width w costs 1 + ceil(n / w) cycles") {
  for (const wse::arch::Arch* arch : {&wse::arch::wse2, &wse::arch::wse3}) {
    const std::uint64_t sw = arch->cycles.task_switch;
    const std::uint64_t fmac_w = arch->cycles.f32_mul_width, add_w = arch->cycles.f32_add_width;
    for (std::uint32_t n : {1u, 2u, 3u, 7u, 100u, 4096u}) {
      CAPTURE(arch->name);
      CAPTURE(n);
      CHECK(run_mac(*arch, {n, 0}).cycles == sw + 1 + (n + fmac_w - 1) / fmac_w);
      CHECK(run_mac(*arch, {n, 1}).cycles == sw + 1 + (n + add_w - 1) / add_w);
      // Async: the launched function ends after the issue; the op's completion starts a task.
      CHECK(run_mac(*arch, {n, 2}).cycles == sw + 1 + (n + fmac_w - 1) / fmac_w + sw);
    }
  }
  CHECK(wse::arch::wse2.cycles.f32_add_width == 2);  // DESIGN.md hardware table
  CHECK(wse::arch::wse3.cycles.f32_add_width == 4);
}

TEST_CASE("timed: back-pressure from a slow consumer stalls the sender and paces the run") {
  const wse::arch::Arch& arch = wse::arch::wse2;
  const std::uint64_t sw = arch.cycles.task_switch;
  const std::uint16_t k = 2;
  LineParams p;
  p.n = 60;  // more than the queues and link buffers on the way hold (2 + 8 + 8 + 8 + 8 + 6)
  p.work = 100;  // every data task: switch + a 100-element fmac (1 issue + 100 cycles)
  const LineRun r = run_line(arch, k, p);
  REQUIRE(r.report.ok());
  const std::uint64_t per_task = sw + 1 + 100;
  // The first wavelet reaches the consumer at sw + 1 + k; then the consumer is the bottleneck.
  CHECK(r.report.cycles == sw + 1 + k + p.n * per_task);
  const auto& sender = stats_at(r.stats, {0, 0});
  CHECK(sender.busy_cycles == sw + p.n);
  // The sender waited for space once everything on the way was full.
  CHECK(sender.stall_cycles > 0);
  MESSAGE("sender stall cycles: " << sender.stall_cycles << " of " << r.report.cycles);
  CHECK(sender.stall_cycles < r.report.cycles);
  CHECK(stats_at(r.stats, {k, 0}).busy_cycles == p.n * per_task);
  CHECK(r.stats.idle_cycles(stats_at(r.stats, {k, 0})) == r.report.cycles - p.n * per_task);
  for (std::uint32_t i = 0; i < p.n; ++i) CHECK(r.received[i] == float(i + 1));
}

namespace {
struct TwoColorParams {
  std::uint32_t n = 0;
  bool sender = false;
};
/// Two fabric streams on colors 0 and 1 over the same link, west to east.
template <class PE> struct TwoColor {
  using Params = TwoColorParams;
  static constexpr TaskId done0{12}, done1{13};
  Params p{};
  float a[128] = {}, b[128] = {};
  std::uint32_t got[1] = {};
  void init(PE& pe, const Params& params) {
    p = params;
    if (p.sender) {
      wse::export_function<&TwoColor::go>(pe, "go");
      return;
    }
    wse::bind_local_task<&TwoColor::finish>(pe, done0);
    wse::bind_local_task<&TwoColor::finish>(pe, done1);
    wse::mov(pe, wse::mem1d(a).with_length(p.n), wse::fabin<float>(Color{0}, p.n), wse::then_activate(done0));
    wse::mov(pe, wse::mem1d(b).with_length(p.n), wse::fabin<float>(Color{1}, p.n), wse::then_activate(done1));
    wse::export_symbol(pe, "got", got);
  }
  void go(PE& pe) {
    wse::mov(pe, wse::fabout<float>(Color{0}, p.n), wse::mem1d(a).with_length(p.n), wse::then_nothing());
    wse::mov(pe, wse::fabout<float>(Color{1}, p.n), wse::mem1d(b).with_length(p.n), wse::then_nothing());
  }
  void finish(PE&) { ++got[0]; }
};
}  // namespace

TEST_CASE("timed: colors share a link at one wavelet per cycle") {
  const std::uint32_t n = 100;
  wse::Program prog(wse::arch::wse2, 2, 1);
  prog.add_region<TwoColor>(Rect{{0, 0}, 1, 1}, TwoColorParams{n, true}, "sender");
  prog.add_region<TwoColor>(Rect{{1, 0}, 1, 1}, TwoColorParams{n, false}, "receiver");
  for (std::uint8_t c : {0, 1}) {
    prog.set_route({0, 0}, Color{c}, wse::ColorRoute{wse::ramp, wse::east});
    prog.set_route({1, 0}, Color{c}, wse::ColorRoute{wse::west, wse::ramp});
  }
  wse::host::Runtime rt(prog, timed_config());
  const auto report = rt.call("go");
  REQUIRE(report.ok());
  CHECK(rt.read<std::uint32_t>("got", Rect{{1, 0}, 1, 1}, 1)[0] == 2);
  const auto stats = rt.stats();
  CHECK(stats_at(stats, {1, 0}).link_in[3] == 2 * n);
  // 2n wavelets over one link need 2n cycles; the link is never idle once it starts.
  CHECK(report.cycles >= 2 * n);
  CHECK(report.cycles <= 2 * n + 12);
  CHECK(stats.busiest_link_utilization() > 0.9);
  CHECK(stats.link_utilization() == doctest::Approx(stats.busiest_link_utilization()));
}

namespace {
struct StencilRun {
  wse::host::RunReport report;
  wse::emu::Stats stats;
  std::vector<float> y;
};
StencilRun run_stencil(bool timed, unsigned threads) {
  wse::kernels::Stencil7Params p;
  p.area = Rect{{0, 0}, 6, 5};
  p.nz = 12;
  p.sweeps = 3;
  wse::Program prog(wse::arch::wse2, 6, 5);
  prog.add_region<wse::kernels::Stencil7>(p.area, p);
  wse::kernels::stencil7_routes(prog.route_sink(), p);
  wse::emu::EmuConfig cfg = wse_test::config();
  cfg.threads = threads;
  cfg.timed = timed;
  wse::host::Runtime rt(prog, cfg);
  std::vector<float> x(std::size_t{30} * p.nz);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7 % 13) - 6);
  rt.memcpy_h2d<float>("x", x, p.area, p.nz);
  StencilRun r;
  r.report = rt.call("spmv");
  r.stats = rt.stats();
  r.y = rt.read<float>("y", p.area, p.nz);
  return r;
}
}  // namespace

TEST_CASE("timed: same results as functional mode, same counts for any thread count") {
  const StencilRun functional = run_stencil(false, 1);
  REQUIRE(functional.report.ok());
  CHECK(functional.report.cycles == 0);
  const StencilRun timed = run_stencil(true, 1);
  REQUIRE(timed.report.ok());
  CHECK(timed.y == functional.y);
  CHECK(timed.report.cycles > 0);
  CHECK(timed.stats.totals.sent == functional.stats.totals.sent);
  CHECK(timed.stats.totals.forwarded == functional.stats.totals.forwarded);
  for (unsigned threads : {2u, 3u, wse_test::threads()}) {
    CAPTURE(threads);
    const StencilRun t = run_stencil(true, threads);
    CHECK(t.report == timed.report);
    CHECK(t.stats.per_pe == timed.stats.per_pe);
    CHECK(t.y == timed.y);
  }
}

TEST_CASE("timed: a second run continues the clock and counts only its own cycles") {
  wse::host::Runtime rt(line_program(wse::arch::wse2, 3, LineParams{}), timed_config());
  const auto first = rt.call("go");
  const auto second = rt.call("go");
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(first.cycles == second.cycles);
  CHECK(rt.stats().cycles == first.cycles + second.cycles);
  CHECK(wse_test::contains(first.to_string(), std::to_string(first.cycles) + " cycles"));
}

TEST_CASE("timed: jitter cannot be combined with timed mode") {
  wse::emu::EmuConfig cfg = timed_config();
  cfg.jitter_percent = 20;
  const std::string e = wse_test::error_of([&] { wse::host::Runtime rt(line_program(wse::arch::wse2, 1, LineParams{}), cfg); });
  CHECK(wse_test::contains(e, "jitter_percent"));
  CHECK(wse_test::contains(e, "timed"));
}

namespace {
// Two colors on one link; the receiver drains the color sent second first. With hop latency
// 2 (WSE-3) the first color's wavelets fill their router buffer while the second's must still
// pass: a congested color never blocks another (docs/semantics.md), in timed mode too.
template <class PE> struct OrderTx {
  using Params = TwoColorParams;
  float a[40] = {}, b[40] = {};
  void init(PE& pe, const Params&) {
    for (int i = 0; i < 40; ++i) {
      a[i] = float(i);
      b[i] = float(100 + i);
    }
    wse::export_function<&OrderTx::go>(pe, "go");
  }
  void go(PE& pe) {
    wse::mov(pe, wse::fabout<float>(Color{0}, 40), wse::mem1d(a), wse::then_nothing());
    wse::mov(pe, wse::fabout<float>(Color{1}, 40), wse::mem1d(b), wse::then_nothing());
  }
};
template <class PE> struct OrderRx {
  using Params = TwoColorParams;
  static constexpr TaskId got_b_task{24}, got_a_task{25};
  float a[40] = {}, b[40] = {};
  void init(PE& pe, const Params&) {
    wse::export_symbol(pe, "a", a);
    wse::export_symbol(pe, "b", b);
    wse::bind_local_task<&OrderRx::got_b>(pe, got_b_task);
    wse::bind_local_task<&OrderRx::got_a>(pe, got_a_task);
    wse::mov(pe, wse::mem1d(b), wse::fabin<float>(Color{1}, 40), wse::then_activate(got_b_task));
  }
  void got_b(PE& pe) { wse::mov(pe, wse::mem1d(a), wse::fabin<float>(Color{0}, 40), wse::then_activate(got_a_task)); }
  void got_a(PE&) {}
};
}  // namespace

TEST_CASE("timed: a congested color does not block another on the same link (hop latency 1 and 2)") {
  for (const wse::arch::Arch* arch : {&wse::arch::wse2, &wse::arch::wse3})
    for (std::uint16_t hops : {1, 3}) {
      CAPTURE(arch->name);
      CAPTURE(hops);
      wse::Program prog(*arch, 1, static_cast<std::uint16_t>(hops + 1));
      prog.add_region<OrderTx>(Rect{{0, 0}, 1, 1}, TwoColorParams{});
      prog.add_region<OrderRx>(Rect{{0, hops}, 1, 1}, TwoColorParams{});
      for (std::uint8_t c : {0, 1}) wse::routes::path(prog.route_sink(), Color{c}, {0, 0}, wse::south, hops + 1);
      wse::host::Runtime rt(prog, timed_config());
      const auto report = rt.call("go");
      REQUIRE_MESSAGE(report.ok(), report.to_string());
      const auto a = rt.read<float>("a", Rect{{0, hops}, 1, 1}, 40), b = rt.read<float>("b", Rect{{0, hops}, 1, 1}, 40);
      for (int i = 0; i < 40; ++i) {
        CHECK(a[i] == float(i));
        CHECK(b[i] == float(100 + i));
      }
    }
}
