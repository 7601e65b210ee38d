// Host layer: memcpy over rectangles, streams, launch, run, statistics, and their errors.
#include <doctest/doctest.h>

#include <numeric>

#include "kernels.hpp"
#include "support.hpp"

using namespace wse;
using wse_test::contains;
using wse_test::error_of;

namespace {

Program buffer_program(std::uint16_t w, std::uint16_t h, std::uint32_t n) {
  Program p(arch::wse2, w, h);
  p.add_region<wse_test::Buffer>(p.grid(), wse_test::BufferParams{n});
  return p;
}
}  // namespace

TEST_CASE("memcpy is row-major over the rectangle, then the symbol's elements") {
  host::Runtime rt(buffer_program(4, 3, 5), wse_test::config());
  const Rect area{{1, 1}, 3, 2};  // PEs (1,1) (2,1) (3,1) (1,2) (2,2) (3,2)
  std::vector<float> in(area.area() * 2);
  std::iota(in.begin(), in.end(), 1.0f);
  rt.memcpy_h2d<float>("buf", in, area, 2, /*offset=*/3);
  // PE (2,1) is the second PE: it holds in[2], in[3] at elements 3 and 4.
  const auto one = rt.read<float>("buf", Rect{{2, 1}, 1, 1}, 5);
  CHECK(one == std::vector<float>{0, 0, 0, 3, 4});
  const auto pe32 = rt.read<float>("buf", Rect{{3, 2}, 1, 1}, 2, 3);
  CHECK(pe32 == std::vector<float>{11, 12});
  CHECK(rt.read<float>("buf", area, 2, 3) == in);
  // PEs outside the rectangle are untouched.
  CHECK(rt.read<float>("buf", Rect{{0, 0}, 1, 1}, 5) == std::vector<float>(5, 0.0f));
}

TEST_CASE("launch runs an exported function on every PE that exports it") {
  host::Runtime rt(buffer_program(3, 2, 4), wse_test::config());
  std::vector<float> in(6 * 4);
  std::iota(in.begin(), in.end(), 0.0f);
  rt.memcpy_h2d<float>("buf", in, rt.program().grid(), 4);
  const auto report = rt.call("double");
  CHECK(report.ok());
  const auto out = rt.read<float>("buf", rt.program().grid(), 4);
  for (std::size_t i = 0; i < in.size(); ++i) CHECK(out[i] == 2 * in[i]);
  CHECK(rt.stats().totals.tasks_run == 6);
  // Restricting to a rectangle doubles only there.
  rt.launch("double", Rect{{0, 0}, 1, 1});
  CHECK(rt.run().ok());
  CHECK(rt.read<float>("buf", Rect{{0, 0}, 1, 1}, 4)[1] == 4.0f);
  CHECK(rt.read<float>("buf", Rect{{1, 0}, 1, 1}, 4)[1] == 10.0f);
}

TEST_CASE("memcpy errors name the symbol, the PE and the allowed range") {
  host::Runtime rt(buffer_program(2, 2, 3), wse_test::config());
  std::vector<float> four(4, 1.0f);
  auto e = error_of([&] { rt.memcpy_h2d<float>("nope", four, rt.program().grid(), 1); });
  CHECK(contains(e, "symbol 'nope' at PE (0,0)"));
  CHECK(contains(e, "this PE exports: buf"));
  e = error_of([&] { rt.memcpy_h2d<float>("buf", four, Rect{{1, 1}, 2, 2}, 1); });
  CHECK(contains(e, "leaves the 2x2 grid"));
  e = error_of([&] { rt.memcpy_h2d<float>("buf", four, rt.program().grid(), 2); });
  CHECK(contains(e, "host array has 4 elements, expected 4 PEs x 2 = 8"));
  e = error_of([&] { rt.memcpy_h2d<float>("buf", four, Rect{{0, 0}, 1, 1}, 4); });
  CHECK(contains(e, "elements 0..3 requested, but the symbol has 3 elements"));
  std::vector<float> two(2, 1.0f);
  e = error_of([&] { rt.memcpy_h2d<float>("buf", two, Rect{{0, 0}, 1, 1}, 2, 2); });
  CHECK(contains(e, "elements 2..3"));
  std::vector<std::int32_t> ints(4, 1);
  e = error_of([&] { rt.memcpy_h2d<std::int32_t>("buf", ints, rt.program().grid(), 1); });
  CHECK(contains(e, "symbol holds f32, not i32"));
}

TEST_CASE("launching an unknown function or using an unknown stream is refused") {
  host::Runtime rt(buffer_program(2, 1, 1), wse_test::config());
  CHECK(contains(error_of([&] { rt.launch("missing"); }), "launch('missing'): no PE exports"));
  CHECK(contains(error_of([&] { rt.launch("double", Rect{{5, 5}, 1, 1}); }), "no PE in (5,5)+1x1"));
  CHECK(contains(error_of([&] { (void)rt.stream_out("x"); }), "no output stream named 'x' (declared streams: none)"));
}

TEST_CASE("streams carry wavelets in at one edge and out at another, in order") {
  // Three relays along a row: in at (0,0) west, +1 at each PE, out at (2,0) east.
  Program p(arch::wse2, 3, 1);
  const Color c[2] = {Color{3}, Color{4}};
  p.add_region<wse_test::Relay>(p.grid(), [&](Coord at) {
    return wse_test::RelayParams{c[(at.x + 1) % 2], c[at.x % 2], 1, false};
  });
  routes::checkerboard_chain(p.route_sink(), c, Coord{0, 0}, east, 3, true, true);
  p.add_input_stream("in", c[1], Coord{0, 0}, west);
  p.add_output_stream("out", c[0], Coord{2, 0}, east);
  host::Runtime rt(p, wse_test::config());
  std::vector<std::int32_t> in(100);
  std::iota(in.begin(), in.end(), -50);
  rt.stream_in<std::int32_t>("in", in);
  CHECK(contains(error_of([&] { rt.stream_in<std::int32_t>("out", in); }), "cannot be written"));
  const auto report = rt.run();
  CHECK(report.ok());
  const auto out = rt.stream_out_as<std::int32_t>("out");
  REQUIRE(out.size() == in.size());
  for (std::size_t i = 0; i < in.size(); ++i) CHECK(out[i] == in[i] + 3);
  CHECK(rt.stream_out("out").empty());  // taken
  // Statistics: each PE ran 100 tasks and sent 100 wavelets; every hop is counted once.
  const auto s = rt.stats();
  CHECK(s.totals.tasks_run == 300);
  CHECK(s.totals.sent == 300);
  CHECK(s.totals.received == 300);
  REQUIRE(s.per_pe.size() == 3);
  CHECK(s.per_pe[0].first == Coord{0, 0});
  CHECK(s.per_pe[0].second.forwarded == 100);  // router of PE (0,0) sent 100 east
  CHECK(s.per_pe[0].second.delivered == 100);  // and delivered 100 stream wavelets to RAMP
  // A second batch continues where the first left off.
  rt.stream_in<std::int32_t>("in", std::vector<std::int32_t>{7});
  CHECK(rt.run().ok());
  CHECK(rt.stream_out_as<std::int32_t>("out") == std::vector<std::int32_t>{10});
}

namespace {
/// Sends data 1, a control wavelet (no task, no switch command), then data 2.
template <class PE> struct MixedSender {
  using Params = wse_test::NoParams;
  void init(PE& pe, const Params&) { wse::export_function<&MixedSender::go>(pe, "go"); }
  void go(PE& pe) {
    pe.send(Color{4}, Wavelet::from_u32(1));
    pe.send(Color{4}, ControlPayload{}.wavelet());
    pe.send(Color{4}, Wavelet::from_u32(2));
  }
};
}  // namespace

TEST_CASE("stream_out_as keeps data wavelets; stream_out keeps control wavelets too") {
  Program p(arch::wse2, 1, 1);
  p.add_region<MixedSender>(p.grid(), wse_test::NoParams{});
  p.set_route(Coord{0, 0}, Color{4}, ColorRoute{ramp, east});
  p.add_output_stream("out", Color{4}, Coord{0, 0}, east);
  host::Runtime rt(p, wse_test::config());
  REQUIRE(rt.call("go").ok());
  const auto raw = rt.stream_out("out");
  REQUIRE(raw.size() == 3);
  CHECK(raw[1].control);
  rt.launch("go");
  REQUIRE(rt.run().ok());
  CHECK(rt.stream_out_as<std::uint32_t>("out") == std::vector<std::uint32_t>{1, 2});
  REQUIRE(rt.emulator() != nullptr);
  CHECK(rt.emulator()->pe(Coord{0, 0})->stats().sent == 6);
}

TEST_CASE("describe names the device") {
  host::Runtime rt(buffer_program(2, 3, 1), wse_test::config());
  CHECK(contains(rt.describe(), "wse emulator, wse2, 2x3 PEs"));
}
