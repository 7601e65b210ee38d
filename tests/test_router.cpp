// Router (DESIGN.md "PE semantics": Router, Colors, Wavelets, Switches, Filters, Queues):
// fan-out to several ports and RAMP; independent flow control per color; switch positions
// advanced or reset by control wavelets (the control wavelet itself uses the old position);
// ring and non-ring switches; range filters that gate only delivery to RAMP; the 16-bit data
// + 16-bit index form; bounded queues with back-pressure and in-order delivery. Expected
// results come from small host models of the documented rules.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"

using wse::Color;
using wse::ColorRoute;
using wse::Coord;
using wse::Port;
using wse::Rect;
using wse::TaskId;
using wse::Wavelet;

namespace {

constexpr std::uint32_t log_cap = 1024;

/// (color, payload) pairs a kernel records, exported as "log" (2 words per entry) and "log_n".
struct Log {
  std::uint32_t at[2 * log_cap] = {};
  std::uint32_t n[1] = {};
  void push(std::uint32_t tag, std::uint32_t v) {
    if (n[0] < log_cap) {
      at[2 * n[0]] = tag;
      at[2 * n[0] + 1] = v;
    }
    ++n[0];
  }
  template <class PE> void export_to(PE& pe) {
    wse::export_symbol(pe, "log", at);
    wse::export_symbol(pe, "log_n", n);
  }
};

using Entries = std::vector<std::pair<std::uint32_t, std::uint32_t>>;

Entries read_log(const wse::host::Runtime& rt, Coord c) {
  const Rect r{c, 1, 1};
  const std::uint32_t n = rt.read<std::uint32_t>("log_n", r, 1)[0];
  REQUIRE(n <= log_cap);
  const auto all = rt.read<std::uint32_t>("log", r, 2 * log_cap);
  Entries out;
  for (std::uint32_t i = 0; i < n; ++i) out.emplace_back(all[2 * i], all[2 * i + 1]);
  return out;
}

/// Payloads logged with `tag`, in log order.
std::vector<std::uint32_t> with_tag(const Entries& e, std::uint32_t tag) {
  std::vector<std::uint32_t> out;
  for (const auto& [t, v] : e)
    if (t == tag) out.push_back(v);
  return out;
}

constexpr std::uint32_t ctl_tag(unsigned task) { return 1000 + task; }

// ---- kernels -------------------------------------------------------------------------------

// Sends `count` wavelets on every color of `colors` from init, interleaved by color:
// payload (color << 16) | i.
struct SendParams {
  std::uint32_t colors = 0;
  std::uint32_t count = 0;
};
template <class PE> struct Sender {
  using Params = SendParams;
  void init(PE& pe, const Params& p) {
    for (std::uint32_t i = 0; i < p.count; ++i)
      for (unsigned c = 0; c < wse::max_colors; ++c)
        if ((p.colors >> c) & 1u) pe.send(Color{static_cast<std::uint8_t>(c)}, Wavelet{(c << 16) | i, false});
  }
};

// Binds data tasks for `colors` (logging (color, payload)) and control tasks 40..47
// (logging (1000 + id, payload)). Data tasks of `blocked` start blocked; "release"
// unblocks them.
struct RecvParams {
  std::uint32_t colors = 0;
  std::uint32_t blocked = 0;
};
template <class PE> struct Recv {
  using Params = RecvParams;
  Params p;
  Log log;
  template <std::size_t C> void on_data(PE&, Wavelet w) { log.push(static_cast<std::uint32_t>(C), w.data); }
  template <std::size_t T> void on_ctl(PE&, Wavelet w) { log.push(ctl_tag(T), w.data); }
  template <std::size_t... C> void bind_colors(PE& pe, std::index_sequence<C...>) {
    (((p.colors >> C) & 1u ? wse::bind_data_task<&Recv::template on_data<C>>(pe, Color{static_cast<std::uint8_t>(C)})
                           : void()),
     ...);
  }
  template <std::size_t... T> void bind_ctl(PE& pe, std::index_sequence<T...>) {
    (wse::bind_control_task<&Recv::template on_ctl<40 + T>>(pe, TaskId{static_cast<std::uint8_t>(40 + T)}), ...);
  }
  void init(PE& pe, const Params& params) {
    p = params;
    log.export_to(pe);
    bind_colors(pe, std::make_index_sequence<21>{});
    bind_ctl(pe, std::make_index_sequence<8>{});
    for (unsigned c = 0; c < 21; ++c)
      if ((p.blocked >> c) & 1u) pe.block(TaskId{static_cast<std::uint8_t>(c)});
    wse::export_function<&Recv::release>(pe, "release");
  }
  void release(PE& pe) {
    for (unsigned c = 0; c < 21; ++c)
      if ((p.blocked >> c) & 1u) pe.unblock(TaskId{static_cast<std::uint8_t>(c)});
  }
};

std::uint32_t bit(Color c) { return 1u << c.value; }

Wavelet ctl(std::uint8_t task, bool advance = false, bool reset = false, std::uint16_t user = 0) {
  wse::ControlPayload p;
  p.activate = true;
  p.task = TaskId{task};
  p.advance_switch = advance;
  p.reset_switch = reset;
  p.user = user;
  return p.wavelet();
}

std::vector<std::uint32_t> tagged_seq(unsigned color, std::uint32_t n) {
  std::vector<std::uint32_t> v(n);
  for (std::uint32_t i = 0; i < n; ++i) v[i] = (color << 16) | i;
  return v;
}

}  // namespace

// ---- wavelet form --------------------------------------------------------------------------

TEST_CASE("wavelets: 32-bit payload, or 16-bit data in the low half and a 16-bit index in the high half") {
  for (std::uint32_t v : {0u, 1u, 0x7fffu, 0x8000u, 0xffffu})
    for (std::uint32_t i : {0u, 1u, 0x1234u, 0xfffeu, 0xffffu}) {
      const Wavelet w = Wavelet::indexed(static_cast<std::uint16_t>(v), static_cast<std::uint16_t>(i));
      CHECK(w.data == (v | (i << 16)));
      CHECK(w.lo16() == v);
      CHECK(w.index() == i);
      CHECK_FALSE(w.control);
    }
  const Wavelet f = Wavelet::from_f32(-2.5f);
  CHECK(f.data == 0xc0200000u);
  CHECK(f.f32() == -2.5f);
  // Control payload encoding round-trips every field.
  wse::ControlPayload p;
  p.activate = true;
  p.task = TaskId{63};
  p.advance_switch = true;
  p.reset_switch = false;
  p.user = 0xbeef;
  const Wavelet cw = p.wavelet();
  CHECK(cw.control);
  const auto q = wse::ControlPayload::decode(cw.data);
  CHECK(q.activate);
  CHECK(q.task == TaskId{63});
  CHECK(q.advance_switch);
  CHECK_FALSE(q.reset_switch);
  CHECK(q.user == 0xbeef);
  CHECK(cw.index() == 0xbeef);  // the user field sits where the index of a data wavelet is
}

// ---- fan-out / multicast -------------------------------------------------------------------

TEST_CASE("fan-out: one route transmits every wavelet to all four neighbors, in order") {
  const Color c{6};
  const std::uint32_t n = 30;  // more than any queue: exercises back-pressure on every branch
  wse::Program prog(wse::arch::wse2, 3, 3);
  const Coord center{1, 1};
  prog.add_region<Sender>(Rect{center, 1, 1}, SendParams{bit(c), n});
  prog.set_route(center, c, ColorRoute{wse::ramp, wse::north | wse::east | wse::south | wse::west});
  const std::pair<Coord, Port> around[] = {
      {{1, 0}, wse::south}, {{2, 1}, wse::west}, {{1, 2}, wse::north}, {{0, 1}, wse::east}};
  for (const auto& [pe, from] : around) {
    prog.add_region<Recv>(Rect{pe, 1, 1}, RecvParams{bit(c), 0});
    prog.set_route(pe, c, ColorRoute{from, wse::ramp});
  }
  wse::host::Runtime rt(prog, wse_test::config());
  const auto report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());
  for (const auto& [pe, from] : around) {
    CAPTURE(pe.x);
    CAPTURE(pe.y);
    CHECK(with_tag(read_log(rt, pe), c.value) == tagged_seq(c.value, n));
  }
  CHECK((*rt.emulator()).pe(center)->stats().forwarded == 4 * n);
  CHECK((*rt.emulator()).pe(center)->stats().sent == n);
}

TEST_CASE("fan-out: forward-and-deliver along a line; every PE on it gets every wavelet") {
  const Color c{2};
  const std::uint16_t len = 5;
  const std::uint32_t n = 25;
  wse::Program prog(wse::arch::wse2, 1, len);
  prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{bit(c), n});
  prog.add_region<Recv>(Rect{{0, 1}, 1, static_cast<std::uint16_t>(len - 1)}, RecvParams{bit(c), 0});
  wse::routes::column_broadcast(prog.route_sink(), c, {0, 0}, len);
  // The builder's routes: the root sends S; middle PEs N -> S|RAMP; the last N -> RAMP.
  CHECK(*prog.find_route({0, 2}, c) == ColorRoute{wse::north, wse::south | wse::ramp});
  CHECK(*prog.find_route({0, static_cast<std::uint16_t>(len - 1)}, c) == ColorRoute{wse::north, wse::ramp});
  wse::host::Runtime rt(prog, wse_test::config());
  const auto report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());
  for (std::uint16_t y = 1; y < len; ++y) {
    CAPTURE(y);
    CHECK(with_tag(read_log(rt, {0, y}), c.value) == tagged_seq(c.value, n));
    const auto& st = (*rt.emulator()).pe({0, y})->stats();
    CHECK(st.delivered == n);
    CHECK(st.forwarded == (y + 1 < len ? n : 0u));
  }
}

TEST_CASE("fan-out: a multicast wavelet waits until every branch has room") {
  // (0,1) delivers to its RAMP and forwards S; its data task is blocked, so once its input
  // queue is full the next wavelet cannot move, and (0,2) gets nothing more either.
  const Color c{0};
  const std::uint32_t n = 20;
  wse::Program prog(wse::arch::wse2, 1, 3);
  prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{bit(c), n});
  prog.add_region<Recv>(Rect{{0, 1}, 1, 1}, RecvParams{bit(c), bit(c)});
  prog.add_region<Recv>(Rect{{0, 2}, 1, 1}, RecvParams{bit(c), 0});
  wse::routes::column_broadcast(prog.route_sink(), c, {0, 0}, 3);
  wse::host::Runtime rt(prog, wse_test::config());
  CHECK(rt.run().status == wse::host::RunStatus::stalled);
  const unsigned iq = wse::arch::wse2.input_queue_depth[0];
  CHECK((*rt.emulator()).pe({0, 1})->stats().delivered == iq);
  CHECK(with_tag(read_log(rt, {0, 2}), c.value) == tagged_seq(c.value, iq));
  rt.launch("release", Rect{{0, 1}, 1, 1});
  REQUIRE(rt.run().ok());
  CHECK(with_tag(read_log(rt, {0, 1}), c.value) == tagged_seq(c.value, n));
  CHECK(with_tag(read_log(rt, {0, 2}), c.value) == tagged_seq(c.value, n));
}

// ---- colors: independent flow control --------------------------------------------------------

TEST_CASE("colors: 0..20 usable, 21..23 reserved for host I/O, 24+ not routable") {
  wse::Program prog(wse::arch::wse2, 2, 1);
  for (std::uint8_t c = 0; c <= 20; ++c) CHECK_NOTHROW(prog.set_route(Coord{0, 0}, Color{c}, ColorRoute{wse::ramp, wse::east}));
  for (std::uint8_t c = 21; c <= 25; ++c) CHECK_THROWS_AS(prog.set_route(Coord{0, 0}, Color{c}, ColorRoute{wse::ramp, wse::east}), wse::ProgramError);
  CHECK(wse::arch::wse2.routable_colors == 24);
}

TEST_CASE("colors: the emulator refuses an arch with more routable colors than it holds") {
  wse::arch::Arch wide = wse::arch::wse2;
  wide.routable_colors = static_cast<std::uint8_t>(wse::max_colors + 1);
  const wse::Program prog(wide, 2, 1);
  CHECK_THROWS_WITH_AS(wse::host::Runtime(prog, wse_test::config()), doctest::Contains("routable colors"), wse::ProgramError);
}

TEST_CASE("colors: a congested color does not hold up the others on the same links") {
  // (0,0) sends `congested` down through (0,1) to (0,2), whose data task for it is blocked.
  // (0,1) sends on all 20 other usable colors to (0,2) over the same link.
  const Color congested{0};
  std::uint32_t others = 0;
  for (unsigned c = 1; c <= 20; ++c) others |= 1u << c;
  const std::uint32_t n_congested = 60, n_other = 12;
  wse::Program prog(wse::arch::wse2, 1, 3);
  prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{bit(congested), n_congested});
  prog.add_region<Sender>(Rect{{0, 1}, 1, 1}, SendParams{others, n_other});
  prog.add_region<Recv>(Rect{{0, 2}, 1, 1}, RecvParams{others | bit(congested), bit(congested)});
  wse::routes::path(prog.route_sink(), congested, {0, 0}, wse::south, 3);
  for (unsigned c = 1; c <= 20; ++c) wse::routes::path(prog.route_sink(), Color{static_cast<std::uint8_t>(c)}, {0, 1}, wse::south, 2);
  wse::host::Runtime rt(prog, wse_test::config());

  const auto first = rt.run();
  CHECK(first.status == wse::host::RunStatus::stalled);
  auto log = read_log(rt, {0, 2});
  for (unsigned c = 1; c <= 20; ++c) {
    CAPTURE(c);
    CHECK(with_tag(log, c) == tagged_seq(c, n_other));
  }
  CHECK(with_tag(log, congested.value).empty());
  // Only the congested color is stuck anywhere.
  for (const auto& s : first.stuck) CHECK(s.colors == std::vector<std::uint8_t>{congested.value});

  rt.launch("release", Rect{{0, 2}, 1, 1});
  const auto second = rt.run();
  REQUIRE_MESSAGE(second.ok(), second.to_string());
  CHECK(with_tag(read_log(rt, {0, 2}), congested.value) == tagged_seq(congested.value, n_congested));
}

// ---- switches ------------------------------------------------------------------------------

namespace {
// A router PE R at (1,1) receives color `c` from the west (a host stream through (0,1)) and
// switches it between N (1,0), E (2,1) and S (1,2) -- the receivers -- by position.
struct SwitchRig {
  static constexpr Color c{5};
  static constexpr Coord router{1, 1};
  static constexpr Coord receivers[3] = {{1, 0}, {2, 1}, {1, 2}};
  static constexpr Port out_port[3] = {Port::north, Port::east, Port::south};
  wse::Program prog{wse::arch::wse2, 3, 3};
  explicit SwitchRig(const ColorRoute& route, std::uint32_t extra_colors = 0) {
    prog.set_route(Coord{0, 1}, c, ColorRoute{wse::west, wse::east});
    prog.set_route(router, c, route);
    prog.add_input_stream("in", c, {0, 1}, wse::west);
    for (unsigned k = 0; k < 3; ++k) {
      prog.add_region<Recv>(Rect{receivers[k], 1, 1}, RecvParams{bit(c) | extra_colors, 0});
      prog.set_route(receivers[k], c, ColorRoute{wse::opposite(out_port[k]), wse::ramp});
    }
  }
};

/// Host model of a switch: which receiver (index into SwitchRig::receivers) each wavelet
/// reaches, and the final position. The control wavelet uses the current position; then
/// advance moves to the next (ring: wraps to 0; else stays at the last); reset goes to 0.
struct SwitchModel {
  std::vector<int> dest;
  unsigned final_pos = 0;
};
SwitchModel model_switch(const std::vector<Wavelet>& in, const std::vector<int>& pos_dest, bool ring) {
  SwitchModel m;
  unsigned pos = 0;
  for (const Wavelet& w : in) {
    m.dest.push_back(pos_dest[pos]);
    if (!w.control) continue;
    const auto p = wse::ControlPayload::decode(w.data);
    if (p.advance_switch) pos = pos + 1 < pos_dest.size() ? pos + 1 : (ring ? 0 : pos);
    if (p.reset_switch) pos = 0;
  }
  m.final_pos = pos;
  return m;
}

void run_switch_case(const std::vector<Wavelet>& in, const std::vector<int>& pos_dest, bool ring) {
  ColorRoute route{wse::west, SwitchRig::out_port[pos_dest[0]]};
  for (std::size_t k = 1; k < pos_dest.size(); ++k) route.then(wse::west, SwitchRig::out_port[pos_dest[k]]);
  route.ring_mode(ring);
  SwitchRig rig(route);
  wse::host::Runtime rt(rig.prog, wse_test::config());
  rt.stream_in("in", in);
  const auto report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());

  const SwitchModel m = model_switch(in, pos_dest, ring);
  for (int r = 0; r < 3; ++r) {
    CAPTURE(r);
    std::vector<std::uint32_t> data, ctl_ids;
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (m.dest[i] != r) continue;
      if (in[i].control) ctl_ids.push_back(ctl_tag(wse::ControlPayload::decode(in[i].data).task.value));
      else data.push_back(in[i].data);
    }
    const auto log = read_log(rt, SwitchRig::receivers[r]);
    CHECK(with_tag(log, SwitchRig::c.value) == data);
    std::vector<std::uint32_t> got_ctl;
    for (const auto& [tag, v] : log)
      if (tag >= 1000) got_ctl.push_back(tag);
    std::sort(got_ctl.begin(), got_ctl.end());
    std::sort(ctl_ids.begin(), ctl_ids.end());
    CHECK(got_ctl == ctl_ids);
  }
  CHECK((*rt.emulator()).pe(SwitchRig::router)->switch_position(SwitchRig::c) == m.final_pos);
}

Wavelet d(std::uint32_t v) { return Wavelet{v, false}; }
}  // namespace

TEST_CASE("switch: a control wavelet is routed with the current position; later wavelets use the next") {
  // Three positions N, E, S; each control wavelet activates a different control task so the
  // receiver that got it is visible.
  const std::vector<Wavelet> in = {d(1), d(2), ctl(40, true), d(3), d(4), ctl(41, true), d(5), ctl(42, true), d(6), d(7)};
  const SwitchModel m = model_switch(in, {0, 1, 2}, false);
  // Spelled out once: 1, 2 and ctl 40 go N; 3, 4, ctl 41 go E; 5, ctl 42 go S; then the
  // non-ring switch stays at its last position: 6 and 7 go S.
  CHECK(m.dest == std::vector<int>{0, 0, 0, 1, 1, 1, 2, 2, 2, 2});
  run_switch_case(in, {0, 1, 2}, false);
}

TEST_CASE("switch: ring mode wraps from the last position to position 0; non-ring stays at the last") {
  const std::vector<Wavelet> in = {d(1), ctl(40, true), d(2), ctl(41, true), d(3), ctl(42, true),
                                   d(4), d(5),          ctl(43, true), d(6), ctl(44, true), d(7)};
  for (bool ring : {true, false}) {
    CAPTURE(ring);
    // The host model, spelled out: with ring the third advance wraps to N.
    const SwitchModel m = model_switch(in, {0, 1, 2}, ring);
    CHECK(m.dest == (ring ? std::vector<int>{0, 0, 1, 1, 2, 2, 0, 0, 0, 1, 1, 2}
                          : std::vector<int>{0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2}));
    run_switch_case(in, {0, 1, 2}, ring);
  }
  // Two positions, ring: alternate on every control wavelet.
  run_switch_case({d(1), ctl(40, true), d(2), ctl(41, true), d(3), ctl(42, true), d(4)}, {2, 0}, true);
}

TEST_CASE("switch: four positions, and reset returns to position 0") {
  // Positions N, E, S, E (a position may repeat a port).
  const std::vector<Wavelet> in = {d(1), ctl(40, true), d(2), ctl(41, true), d(3), ctl(42, false, true),
                                   d(4), ctl(43, true), ctl(44, true), ctl(45, true), d(5), ctl(46, true), d(6),
                                   ctl(47, false, true), d(7)};
  run_switch_case(in, {0, 1, 2, 1}, false);
  run_switch_case(in, {0, 1, 2, 1}, true);
  // Reset at position 0 stays at 0; a control wavelet that neither advances nor resets
  // leaves the position alone.
  run_switch_case({ctl(40, false, true), d(1), ctl(41), d(2), ctl(42, true), d(3)}, {1, 2}, false);
}

TEST_CASE("switch: the position is per color; other colors through the same PE are unaffected") {
  // Color 5 switches at (1,1) between N and S; color 7 takes a fixed route W -> E through
  // the same PE, and its control wavelets (which ask to advance) do not move color 5's switch.
  const Color other{7};
  ColorRoute route{wse::west, wse::north};
  route.then(wse::west, wse::south);
  SwitchRig rig(route, bit(other));
  rig.prog.set_route(Coord{0, 1}, other, ColorRoute{wse::west, wse::east});
  rig.prog.set_route(SwitchRig::router, other, ColorRoute{wse::west, wse::east});
  rig.prog.set_route(SwitchRig::receivers[1], other, ColorRoute{wse::west, wse::ramp});
  rig.prog.add_input_stream("other", other, {0, 1}, wse::west);
  wse::host::Runtime rt(rig.prog, wse_test::config());
  rt.stream_in("in", std::vector<Wavelet>{d(1), ctl(40, true), d(2)});
  rt.stream_in("other", std::vector<Wavelet>{d(100), ctl(41, true), d(101), ctl(42, true), d(102)});
  const auto report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());
  const auto north = read_log(rt, SwitchRig::receivers[0]);
  const auto east = read_log(rt, SwitchRig::receivers[1]);
  const auto south = read_log(rt, SwitchRig::receivers[2]);
  CHECK(with_tag(north, SwitchRig::c.value) == std::vector<std::uint32_t>{1});
  CHECK(with_tag(north, ctl_tag(40)).size() == 1);
  CHECK(with_tag(south, SwitchRig::c.value) == std::vector<std::uint32_t>{2});
  CHECK(with_tag(east, other.value) == std::vector<std::uint32_t>{100, 101, 102});
  CHECK(with_tag(east, ctl_tag(41)).size() == 1);
  CHECK(with_tag(east, ctl_tag(42)).size() == 1);
  CHECK(with_tag(east, SwitchRig::c.value).empty());
  CHECK((*rt.emulator()).pe(SwitchRig::router)->switch_position(SwitchRig::c) == 1);
  CHECK((*rt.emulator()).pe(SwitchRig::router)->switch_position(other) == 0);
}

TEST_CASE("switch: a position may receive from another port; wavelets at the other port wait") {
  // R (1,1): position 0 receives W -> E, position 1 receives N -> E. Host streams enter from
  // the west through (0,1) and from the north through (1,0); the receiver is (2,1).
  const Color c{8};
  wse::Program prog(wse::arch::wse2, 3, 2);
  prog.set_route(Coord{0, 1}, c, ColorRoute{wse::west, wse::east});
  prog.set_route(Coord{1, 0}, c, ColorRoute{wse::north, wse::south});
  prog.set_route(Coord{1, 1}, c, ColorRoute{wse::west, wse::east}.then(wse::north, wse::east));
  prog.set_route(Coord{2, 1}, c, ColorRoute{wse::west, wse::ramp});
  prog.add_region<Recv>(Rect{{2, 1}, 1, 1}, RecvParams{bit(c), 0});
  prog.add_input_stream("west", c, {0, 1}, wse::west);
  prog.add_input_stream("north", c, {1, 0}, wse::north);
  wse::host::Runtime rt(prog, wse_test::config());
  // Both streams are available from the start; the switch alone decides the interleaving:
  // W: 1, ctl 40 (advance) | N: 3, 4, ctl 41 (reset) | W: 2.
  rt.stream_in("west", std::vector<Wavelet>{d(1), ctl(40, true), d(2)});
  rt.stream_in("north", std::vector<Wavelet>{d(3), d(4), ctl(41, false, true)});
  const auto report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());
  const auto log = read_log(rt, {2, 1});
  CHECK(with_tag(log, c.value) == std::vector<std::uint32_t>{1, 3, 4, 2});
  CHECK(with_tag(log, ctl_tag(40)).size() == 1);
  CHECK(with_tag(log, ctl_tag(41)).size() == 1);
  CHECK((*rt.emulator()).pe({1, 1})->switch_position(c) == 0);

  // Without the reset, the last west wavelet stays queued at the switch: a stall.
  wse::host::Runtime rt2(prog, wse_test::config());
  rt2.stream_in("west", std::vector<Wavelet>{d(1), ctl(40, true), d(2)});
  rt2.stream_in("north", std::vector<Wavelet>{d(3)});
  const auto stuck = rt2.run();
  CHECK(stuck.status == wse::host::RunStatus::stalled);
  CHECK(with_tag(read_log(rt2, {2, 1}), c.value) == std::vector<std::uint32_t>{1, 3});
  REQUIRE(stuck.stuck.size() == 1);
  CHECK(stuck.stuck[0].pe == Coord{1, 1});
  CHECK(stuck.stuck[0].colors == std::vector<std::uint8_t>{c.value});
}

// ---- range filters -------------------------------------------------------------------------

TEST_CASE("range filter: only wavelets whose index lies in [lo, hi] reach RAMP; all travel on") {
  const Color c{4};
  struct Case {
    wse::RangeFilter f0, f1;
  };
  const Case cases[] = {
      {{10, 20}, {0, 0xffff}},
      {{0, 0}, {0xffff, 0xffff}},
      {{7, 7}, {21, 0xfffe}},
      {{30, 5}, {0, 0x7fff}},  // empty range: nothing delivered
  };
  std::vector<Wavelet> in;
  for (std::uint32_t idx : {0u, 1u, 6u, 7u, 8u, 9u, 10u, 11u, 19u, 20u, 21u, 0x7fffu, 0x8000u, 0xfffeu, 0xffffu})
    in.push_back(Wavelet::indexed(static_cast<std::uint16_t>(idx * 3 + 1), static_cast<std::uint16_t>(idx)));
  // Control wavelets are never filtered: user data (the index bits) far outside the range.
  in.push_back(ctl(40, false, false, 0x9999));
  in.push_back(Wavelet::indexed(0x4242, 15));
  for (const Case& k : cases) {
    CAPTURE(k.f0.lo);
    CAPTURE(k.f0.hi);
    // (0,0) W -> S|RAMP with filter f0; (0,1) N -> S|RAMP with filter f1; (0,2) N -> RAMP.
    wse::Program prog(wse::arch::wse2, 1, 3);
    prog.add_region<Recv>(prog.grid(), RecvParams{bit(c), 0});
    prog.set_route(Coord{0, 0}, c, ColorRoute{wse::west, wse::south | wse::ramp});
    prog.set_route(Coord{0, 1}, c, ColorRoute{wse::north, wse::south | wse::ramp});
    prog.set_route(Coord{0, 2}, c, ColorRoute{wse::north, wse::ramp});
    prog.set_filter({0, 0}, c, k.f0);
    prog.set_filter({0, 1}, c, k.f1);
    prog.add_input_stream("in", c, {0, 0}, wse::west);
    wse::host::Runtime rt(prog, wse_test::config());
    rt.stream_in("in", in);
    const auto report = rt.run();
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    const wse::RangeFilter filters[3] = {k.f0, k.f1, wse::RangeFilter{}};
    for (std::uint16_t y = 0; y < 3; ++y) {
      CAPTURE(y);
      std::vector<std::uint32_t> expected;
      for (const Wavelet& w : in) {
        const std::uint16_t index = static_cast<std::uint16_t>(w.data >> 16);
        if (!w.control && index >= filters[y].lo && index <= filters[y].hi) expected.push_back(w.data);
      }
      const auto log = read_log(rt, {0, y});
      CHECK(with_tag(log, c.value) == expected);
      CHECK(with_tag(log, ctl_tag(40)).size() == 1);
      // Everything travels on: each PE but the last forwards every wavelet.
      CHECK((*rt.emulator()).pe({0, y})->stats().forwarded == (y < 2 ? in.size() : 0u));
    }
  }
}

TEST_CASE("16-bit form end to end: indexed wavelets keep data and index through several hops") {
  namespace wr = wse::routes;
  const Color c{9};
  wse::Program prog(wse::arch::wse2, 1, 4);
  prog.add_region<Recv>(Rect{{0, 3}, 1, 1}, RecvParams{bit(c), 0});
  wr::path(prog.route_sink(), c, {0, 0}, wse::south, 4, wse::west);
  prog.add_input_stream("in", c, {0, 0}, wse::west);
  wse::host::Runtime rt(prog, wse_test::config());
  std::vector<Wavelet> in;
  std::vector<std::uint32_t> expected;
  for (std::uint32_t i = 0; i < 40; ++i) {
    const auto v = static_cast<std::uint16_t>(0xffffu - i * 1637u);
    const auto idx = static_cast<std::uint16_t>(i * 2029u);
    in.push_back(Wavelet::indexed(v, idx));
    expected.push_back(v | (std::uint32_t{idx} << 16));
  }
  rt.stream_in("in", in);
  REQUIRE(rt.run().ok());
  const auto got = with_tag(read_log(rt, {0, 3}), c.value);
  REQUIRE(got == expected);
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(Wavelet{got[i], false}.lo16() == in[i].lo16());
    CHECK(Wavelet{got[i], false}.index() == in[i].index());
  }
}

// ---- bounded queues and back-pressure --------------------------------------------------------

TEST_CASE("back-pressure: with a blocked receiver only queue depths + router buffers are in flight") {
  // (0,0) sends n wavelets S through (0,1), which only forwards, to (0,2), whose data task is
  // blocked. In flight when everything stops: the sender's output queue, two router buffers
  // per hop (out of one PE, into the next), and the receiver's input queue.
  const Color c{3};
  const std::uint32_t n = 100;
  for (unsigned depth : {1u, 3u, 8u, 16u}) {
    CAPTURE(depth);
    wse::Program prog(wse::arch::wse2, 1, 3);
    prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{bit(c), n});
    prog.add_region<Recv>(Rect{{0, 2}, 1, 1}, RecvParams{bit(c), bit(c)});
    wse::routes::path(prog.route_sink(), c, {0, 0}, wse::south, 3);
    wse::emu::EmuConfig cfg = wse_test::config();
    cfg.router_buffer_depth = depth;
    wse::host::Runtime rt(prog, cfg);
    const auto first = rt.run();
    CHECK(first.status == wse::host::RunStatus::stalled);

    const unsigned oq = wse::arch::wse2.output_queue_depth[0], iq = wse::arch::wse2.input_queue_depth[0];
    auto& eng = (*rt.emulator());
    const auto& s0 = eng.pe({0, 0})->stats();
    const auto& s1 = eng.pe({0, 1})->stats();
    const auto& s2 = eng.pe({0, 2})->stats();
    CHECK(s0.sent == oq + 4 * depth + iq);  // the rest wait in the stalled compute element
    CHECK(s0.forwarded == 4 * depth + iq);  // left the sender's router
    CHECK(s1.forwarded == 2 * depth + iq);  // left the middle router
    CHECK(s2.delivered == iq);
    CHECK(s2.received == 0);
    CHECK(read_log(rt, {0, 2}).empty());

    rt.launch("release", Rect{{0, 2}, 1, 1});
    const auto second = rt.run();
    REQUIRE_MESSAGE(second.ok(), second.to_string());
    CHECK(with_tag(read_log(rt, {0, 2}), c.value) == tagged_seq(c.value, n));
    CHECK(eng.pe({0, 0})->stats().sent == n);
    CHECK(eng.pe({0, 2})->stats().received == n);
  }
}

namespace {
// Streams `count` wavelets on each color of `colors` with one async mov per color from a
// memory array to a fabric output DSD; the compute element itself never stalls.
struct AsyncSendParams {
  std::uint32_t colors = 0;
  std::uint32_t count = 0;
};
template <class PE> struct AsyncSender {
  using Params = AsyncSendParams;
  std::uint32_t data[24][64] = {};
  void init(PE& pe, const Params& p) {
    for (unsigned c = 0; c < wse::max_colors; ++c) {
      if (!((p.colors >> c) & 1u)) continue;
      for (std::uint32_t i = 0; i < p.count; ++i) data[c][i] = (c << 16) | i;
      wse::mov(pe, wse::fabout<std::uint32_t>(Color{static_cast<std::uint8_t>(c)}, p.count),
               wse::mem1d(data[c]).with_length(p.count), wse::then_nothing());
    }
  }
};
}  // namespace

TEST_CASE("queue depths come from the arch: input queues by ascending color, output queues likewise") {
  // Six colors from one sender (async ops, so every color fills independently) to one
  // blocked receiver. The stuck report shows each queue full at its arch depth.
  const std::uint8_t colors[6] = {1, 4, 5, 10, 13, 20};
  std::uint32_t mask = 0;
  for (auto c : colors) mask |= 1u << c;
  wse::Program prog(wse::arch::wse2, 1, 2);
  prog.add_region<AsyncSender>(Rect{{0, 0}, 1, 1}, AsyncSendParams{mask, 60});
  prog.add_region<Recv>(Rect{{0, 1}, 1, 1}, RecvParams{mask, mask});
  for (auto c : colors) wse::routes::path(prog.route_sink(), Color{c}, {0, 0}, wse::south, 2);
  wse::host::Runtime rt(prog, wse_test::config());
  const auto first = rt.run();
  REQUIRE(first.status == wse::host::RunStatus::stalled);
  REQUIRE(first.stuck.size() == 2);
  auto has_queue = [&](Coord pe, const std::string& text) {
    for (const auto& s : first.stuck)
      if (s.pe == pe)
        for (const auto& q : s.queues)
          if (wse_test::contains(q, text)) return true;
    return false;
  };
  for (unsigned rank = 0; rank < 6; ++rank) {
    CAPTURE(rank);
    const std::string c = "color " + std::to_string(colors[rank]);
    const std::string oq = std::to_string(wse::arch::wse2.output_queue_depth[rank]);
    const std::string iq = std::to_string(wse::arch::wse2.input_queue_depth[rank]);
    CHECK(has_queue({0, 0}, c + " output queue: " + oq + "/" + oq + " wavelets"));
    CHECK(has_queue({0, 1}, c + " input queue: " + iq + "/" + iq + " wavelets"));
  }
  rt.launch("release", Rect{{0, 1}, 1, 1});
  const auto second = rt.run();
  REQUIRE_MESSAGE(second.ok(), second.to_string());
  const auto log = read_log(rt, {0, 1});
  for (auto c : colors) CHECK(with_tag(log, c) == tagged_seq(c, 60));
}

TEST_CASE("input queues beyond the eighth RAMP color take the last depth") {
  // Ten colors delivered to one PE, each from its own host stream, all data tasks blocked.
  const std::uint8_t colors[10] = {0, 2, 3, 6, 7, 9, 12, 15, 18, 20};
  std::uint32_t mask = 0;
  for (auto c : colors) mask |= 1u << c;
  wse::Program prog(wse::arch::wse2, 1, 1);
  prog.add_region<Recv>(prog.grid(), RecvParams{mask, mask});
  for (auto c : colors) {
    prog.set_route(Coord{0, 0}, Color{c}, ColorRoute{wse::west, wse::ramp});
    prog.add_input_stream("s" + std::to_string(c), Color{c}, {0, 0}, wse::west);
  }
  wse::host::Runtime rt(prog, wse_test::config());
  for (auto c : colors) rt.stream_in<std::uint32_t>("s" + std::to_string(c), tagged_seq(c, 40));
  const auto first = rt.run();
  REQUIRE(first.status == wse::host::RunStatus::stalled);
  REQUIRE(first.stuck.size() == 1);
  const auto& queues = first.stuck[0].queues;
  for (unsigned rank = 0; rank < 10; ++rank) {
    CAPTURE(rank);
    const std::string depth = std::to_string(wse::arch::wse2.input_queue_depth[rank < 8 ? rank : 7]);
    const std::string want = "color " + std::to_string(colors[rank]) + " input queue: " + depth + "/" + depth + " wavelets";
    CHECK(std::any_of(queues.begin(), queues.end(), [&](const std::string& q) { return wse_test::contains(q, want); }));
  }
  rt.launch("release");
  REQUIRE(rt.run().ok());
  const auto log = read_log(rt, {0, 0});
  for (auto c : colors) CHECK(with_tag(log, c) == tagged_seq(c, 40));
}

TEST_CASE("ordering: per color, wavelets arrive in the order sent, across many hops and threads") {
  // A 6-row column with a bend: (0,0) -> S ... (0,5) -> E (1,5) -> N ... (1,0). Two colors.
  const Color a{0}, b{11};
  const std::uint32_t n = 150;
  wse::Program prog(wse::arch::wse2, 2, 6);
  prog.add_region<Sender>(Rect{{0, 0}, 1, 1}, SendParams{bit(a) | bit(b), n});
  prog.add_region<Recv>(Rect{{1, 0}, 1, 1}, RecvParams{bit(a) | bit(b), 0});
  for (Color c : {a, b}) {
    prog.set_route(Coord{0, 0}, c, ColorRoute{wse::ramp, wse::south});
    for (std::uint16_t y = 1; y < 5; ++y) prog.set_route(Coord{0, y}, c, ColorRoute{wse::north, wse::south});
    prog.set_route(Coord{0, 5}, c, ColorRoute{wse::north, wse::east});
    prog.set_route(Coord{1, 5}, c, ColorRoute{wse::west, wse::north});
    for (std::uint16_t y = 1; y < 5; ++y) prog.set_route(Coord{1, y}, c, ColorRoute{wse::south, wse::north});
    prog.set_route(Coord{1, 0}, c, ColorRoute{wse::south, wse::ramp});
  }
  wse::host::Runtime rt(prog, wse_test::config());
  const auto report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());
  const auto log = read_log(rt, {1, 0});
  CHECK(with_tag(log, a.value) == tagged_seq(a.value, n));
  CHECK(with_tag(log, b.value) == tagged_seq(b.value, n));
}
