// Channel allocation: Program::allocate_color / allocate_task / reserve_* (colors and local task
// ids granted per rectangle), and the kernels' *_channels helpers built on them: a kernel that
// asks for its channels runs exactly as with its default numbers, kernels in disjoint areas
// reuse colors, kernels over shared PEs get distinct ones.
#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "../kernels/gemm_cannon.hpp"
#include "../kernels/gemm_summa.hpp"
#include "../kernels/gemv.hpp"
#include "../kernels/stencil7.hpp"
#include "../kernels/wave25.hpp"
#include "support.hpp"

using namespace wse;
namespace kern = wse::kernels;
using wse_test::contains;
using wse_test::error_of;

namespace {

constexpr Rect rect(std::uint16_t x, std::uint16_t y, std::uint16_t w, std::uint16_t h) { return Rect{{x, y}, w, h}; }

// Small integers in [-3, 3]: products and sums stay exact, so any mix-up shows as a difference.
std::vector<float> ints(std::size_t n, unsigned salt) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = float(int((i * 5 + i / 3 + salt) % 7) - 3);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The grants whose asker starts with `prefix`.
std::vector<ChannelGrant> grants_of(const Program& prog, const std::string& prefix) {
  std::vector<ChannelGrant> out;
  for (const ChannelGrant& g : prog.channel_grants())
    if (g.asker.rfind(prefix, 0) == 0) out.push_back(g);
  return out;
}
// The area granted to `asker`, or an empty Rect when it holds nothing.
Rect area_of(const Program& prog, const std::string& asker) {
  for (const ChannelGrant& g : prog.channel_grants())
    if (g.asker == asker) return g.area;
  return Rect{};
}

// One kernel per struct: its Params for a small case at `origin`, its *_channels helper, and
// how to build, load (and launch) and read it. Inputs depend only on the Params' sizes.
struct GemvK {
  using P = kern::GemvParams;
  static constexpr const char* name = "gemv";
  static P params(Coord o = {}) { return P{.area = {o, 4, 3}, .m = 7, .n = 10}; }
  static void channels(Program& prog, P& p) { kern::gemv_channels(prog, p); }
  static const char* error(const P& p) { return kern::gemv_params_error(p); }
  static void build(Program& prog, const P& p) {
    prog.add_region<kern::Gemv>(p.area, p);
    kern::gemv_routes(prog.route_sink(), p);
    kern::gemv_x_streams(p, [&](std::uint32_t i, Coord c, Color col, Port edge) {
      prog.add_input_stream("x" + std::to_string(i), col, c, edge);
    });
  }
  static void start(host::Runtime& rt, const P& p) {
    const Rect act = kern::gemv_active_area(p);
    const std::uint32_t slot = kern::gemv_mb(p) * kern::gemv_nb(p);
    rt.memcpy_h2d<float>("A", ints(std::size_t{act.area()} * slot, 1), act, slot);
    for (std::uint32_t i = 0; i < act.width; ++i) rt.stream_in<float>("x" + std::to_string(i), ints(kern::gemv_cols(p, i), i));
    rt.launch("gemv", p.area);
  }
  static std::vector<float> read(host::Runtime& rt, const P& p) { return rt.read<float>("y", kern::gemv_y_area(p), kern::gemv_mb(p)); }
};

struct SummaK {
  using P = kern::SummaParams;
  static constexpr const char* name = "summa";
  static P params(Coord o = {}) { return P{.area = {o, 5, 5}, .mb = 2, .nb = 3, .k = 10}; }  // 2 colors per axis
  static void channels(Program& prog, P& p) { kern::summa_channels(prog, p); }
  static const char* error(const P& p) { return kern::summa_params_error(p); }
  static void build(Program& prog, const P& p) {
    prog.add_region<kern::GemmSumma>(p.area, p);
    kern::summa_routes(prog.route_sink(), p);
  }
  static void start(host::Runtime& rt, const P& p) {
    const std::uint32_t a = p.mb * (p.k / p.area.width), b = (p.k / p.area.height) * p.nb;
    rt.memcpy_h2d<float>("A", ints(std::size_t{p.area.area()} * a, 2), p.area, a);
    rt.memcpy_h2d<float>("B", ints(std::size_t{p.area.area()} * b, 3), p.area, b);
    rt.launch("gemm", p.area);
  }
  static std::vector<float> read(host::Runtime& rt, const P& p) { return rt.read<float>("C", p.area, p.mb * p.nb); }
};

struct CannonK {
  using P = kern::CannonParams;
  static constexpr const char* name = "cannon";
  static P params(Coord o = {}) { return P{.area = {o, 4, 4}, .mb = 2, .nb = 2, .kb = 3}; }
  static void channels(Program& prog, P& p) { kern::cannon_channels(prog, p); }
  static const char* error(const P& p) { return kern::cannon_params_error(p); }
  static void build(Program& prog, const P& p) {
    prog.add_region<kern::GemmCannon>(p.area, p);
    kern::cannon_routes(prog.route_sink(), p);
  }
  static void start(host::Runtime& rt, const P& p) {
    rt.memcpy_h2d<float>("A", ints(std::size_t{p.area.area()} * p.mb * p.kb, 4), p.area, p.mb * p.kb);
    rt.memcpy_h2d<float>("B", ints(std::size_t{p.area.area()} * p.kb * p.nb, 5), p.area, p.kb * p.nb);
    rt.launch("gemm", p.area);
  }
  static std::vector<float> read(host::Runtime& rt, const P& p) { return rt.read<float>("C", p.area, p.mb * p.nb); }
};

struct StencilK {
  using P = kern::Stencil7Params;
  static constexpr const char* name = "stencil7";
  static P params(Coord o = {}) {
    return P{.area = {o, 5, 4}, .nz = 6, .sweeps = 2, .c0 = 3, .cxm = 1, .cxp = -2, .cym = 2, .cyp = -1, .czm = 1, .czp = -3};
  }
  static void channels(Program& prog, P& p) { kern::stencil7_channels(prog, p); }
  static const char* error(const P& p) { return kern::stencil7_params_error(p); }
  static void build(Program& prog, const P& p) {
    prog.add_region<kern::Stencil7>(p.area, p);
    kern::stencil7_routes(prog.route_sink(), p);
  }
  static void start(host::Runtime& rt, const P& p) {
    rt.memcpy_h2d<float>("x", ints(std::size_t{p.area.area()} * p.nz, 6), p.area, p.nz);
    rt.launch("spmv", p.area);
  }
  static std::vector<float> read(host::Runtime& rt, const P& p) { return rt.read<float>("y", p.area, p.nz); }
};

struct WaveK {
  using P = kern::Wave25Params;
  static constexpr const char* name = "wave25";
  // Wider and taller than 9, so colors are reused and some are granted on a band.
  static P params(Coord o = {}) {
    return P{.area = {o, 10, 10}, .nz = 4, .steps = 2, .c0 = 3, .cx = {2, -1, 1, -2}, .cy = {-2, 1, 2, -1},
             .cz = {1, 2, -1, -2}};
  }
  static void channels(Program& prog, P& p) { kern::wave25_channels(prog, p); }
  static const char* error(const P& p) { return kern::wave25_params_error(p); }
  static void build(Program& prog, const P& p) {
    prog.add_region<kern::Wave25>(p.area, p);
    kern::wave25_routes(prog.route_sink(), p);
  }
  static void start(host::Runtime& rt, const P& p) {
    const std::size_t n = std::size_t{p.area.area()} * p.nz;
    std::vector<float> m = ints(n, 7);
    for (float& v : m) v = v > 0 ? 1.0f : 0.0f;
    rt.memcpy_h2d<float>("u", ints(n, 8), p.area, p.nz);
    rt.memcpy_h2d<float>("u_prev", ints(n, 9), p.area, p.nz);
    rt.memcpy_h2d<float>("m", m, p.area, p.nz);
    rt.launch("run", p.area);
  }
  static std::vector<float> read(host::Runtime& rt, const P& p) { return rt.read<float>("u", p.area, p.nz); }
};

// Builds kernel K with `p` into `prog`, runs it, returns its result (empty when it did not complete).
template <class K> std::vector<float> run(Program& prog, const typename K::P& p) {
  REQUIRE(K::error(p) == nullptr);
  K::build(prog, p);
  host::Runtime rt(prog, wse_test::config());
  K::start(rt, p);
  const host::RunReport report = rt.run();
  if (!report.ok()) {
    MESSAGE(report.to_string());
    return {};
  }
  return K::read(rt, p);
}

// The same kernel with its default numbers on a fresh grid of its own size.
template <class K> std::vector<float> run_with_defaults(const typename K::P& p) {
  Program prog(arch::wse2, static_cast<std::uint16_t>(p.area.origin.x + p.area.width),
               static_cast<std::uint16_t>(p.area.origin.y + p.area.height));
  return run<K>(prog, p);
}

bool nonzero(const std::vector<float>& v) {
  for (float f : v)
    if (f != 0) return true;
  return false;
}

}  // namespace

// ---- the allocator ----------------------------------------------------------------------

TEST_CASE("allocate_color gives the lowest free color; disjoint rectangles reuse it, overlapping ones do not") {
  Program prog(arch::wse2, 8, 8);
  CHECK(prog.allocate_color("a", rect(0, 0, 4, 4)) == Color{0});
  CHECK(prog.allocate_color("b", rect(4, 0, 4, 4)) == Color{0});  // disjoint: same color
  CHECK(prog.allocate_color("c", rect(0, 4, 8, 4)) == Color{0});
  CHECK(prog.allocate_color("d", rect(3, 3, 2, 2)) == Color{1});  // meets a, b and c
  CHECK(prog.allocate_color("e", rect(2, 0, 1, 1)) == Color{1});  // meets only a (color 0)
  CHECK(prog.allocate_color("f", rect(0, 0, 8, 8)) == Color{2});
  REQUIRE(prog.channel_grants().size() == 6);
  const ChannelGrant& d = prog.channel_grants()[3];
  CHECK(d.kind == ChannelGrant::Kind::color);
  CHECK(d.value == 1);
  CHECK(d.asker == "d");
  CHECK(d.area == rect(3, 3, 2, 2));
  CHECK_FALSE(d.reserved);
  CHECK(contains(prog.channel_report(), "color  1  (3,3)+2x2  d\n"));
}

TEST_CASE("allocate_color keeps off colors of routes set by hand inside the area, not outside it") {
  Program prog(arch::wse2, 8, 8);
  prog.set_route(Coord{2, 2}, Color{0}, ColorRoute{Port::west, Port::ramp});
  prog.set_route(Coord{2, 2}, Color{1}, ColorRoute{Port::north, Port::ramp});
  prog.set_route(Coord{6, 6}, Color{2}, ColorRoute{Port::north, Port::ramp});
  CHECK(prog.allocate_color("inside", rect(0, 0, 4, 4)) == Color{2});
  CHECK(prog.allocate_color("elsewhere", rect(4, 0, 4, 4)) == Color{0});
  CHECK(prog.allocate_color("over (6,6)", rect(5, 5, 3, 3)) == Color{0});
  CHECK(prog.allocate_color("both", rect(0, 0, 8, 8)) == Color{3});  // 0, 1, 2 routed or granted
}

TEST_CASE("reserve_color: the allocator keeps off it; a second holder is refused, naming the first") {
  Program prog(arch::wse2, 8, 8);
  prog.reserve_color("hand-picked halo", rect(0, 0, 4, 8), Color{0});
  CHECK(prog.allocate_color("auto", rect(2, 2, 2, 2)) == Color{1});
  CHECK(prog.allocate_color("east", rect(4, 0, 4, 8)) == Color{0});
  CHECK(prog.channel_grants()[0].reserved);
  CHECK(contains(prog.channel_report(), "hand-picked halo (reserved by hand)"));

  auto e = error_of([&] { prog.reserve_color("late", rect(3, 7, 2, 1), Color{0}); });
  CHECK(contains(e, "late"));
  CHECK(contains(e, "color 0"));
  CHECK(contains(e, "already held by"));
  CHECK(contains(e, "hand-picked halo"));
  e = error_of([&] { prog.reserve_color("late 2", rect(0, 0, 8, 8), Color{1}); });  // held by "auto"
  CHECK(contains(e, "auto"));
  CHECK(error_of([&] { prog.reserve_color("disjoint", rect(4, 4, 4, 4), Color{1}); }).empty());
  e = error_of([&] { prog.reserve_color("runtime's", rect(0, 0, 1, 1), Color{21}); });
  CHECK(contains(e, "color 21 is not usable"));
  e = error_of([&] { prog.allocate_color("off the grid", rect(6, 6, 3, 1)); });
  CHECK(contains(e, "off the grid"));
  CHECK(contains(e, "leaves the 8x8 grid"));
}

TEST_CASE("allocate_task: 24..30 first, then 8..20 except granted colors; colors keep off granted task ids") {
  Program prog(arch::wse2, 6, 6);
  const Rect area = rect(0, 0, 6, 6);
  for (unsigned c = 0; c < 10; ++c) CHECK(prog.allocate_color("color " + std::to_string(c), area) == Color{c});
  for (unsigned t = 24; t <= 30; ++t) CHECK(prog.allocate_task("task " + std::to_string(t), area) == TaskId{t});
  // 8 and 9 are colors here (a color's data-task id on WSE-2), so the next id is 10 ...
  CHECK(prog.allocate_task("low task", area) == TaskId{10});
  // ... and the next color is not 10.
  CHECK(prog.allocate_color("after low task", area) == Color{11});
  // A hand-set route on 12 inside the area keeps task ids off it too.
  prog.set_route(Coord{5, 5}, Color{12}, ColorRoute{Port::north, Port::ramp});
  CHECK(prog.allocate_task("past route", area) == TaskId{13});
  // Elsewhere task ids start again at 24.
  Program other(arch::wse2, 6, 6);
  other.allocate_task("west", rect(0, 0, 3, 6));
  CHECK(other.allocate_task("east", rect(3, 0, 3, 6)) == TaskId{24});
  CHECK(other.allocate_task("all", rect(0, 0, 6, 6)) == TaskId{25});
  const auto e = error_of([&] { other.reserve_task("by hand", rect(2, 2, 1, 1), TaskId{24}); });
  CHECK(contains(e, "task id 24"));
  CHECK(contains(e, "west"));
  CHECK(contains(other.channel_report(), "task  25  (0,0)+6x6  all"));
}

TEST_CASE("asking for more colors than one rectangle has throws, listing every grant in the way") {
  Program prog(arch::wse2, 4, 4);
  const Rect area = rect(0, 0, 4, 4);
  for (unsigned i = 0; i < 21; ++i) prog.allocate_color("ask " + std::to_string(i), rect(0, 0, 2 + i % 3, 4));
  CHECK_THROWS_AS(prog.allocate_color("ask 21", area), ProgramError);
  const std::string e = error_of([&] { prog.allocate_color("ask 21", area); });
  CHECK(contains(e, "no free color for ask 21 on (0,0)+4x4"));
  CHECK(contains(e, "color  0  (0,0)+2x4  ask 0"));
  CHECK(contains(e, "color 20  (0,0)+4x4  ask 20"));
  CHECK(contains(e, "ask 13"));
  // Colors are gone, task ids are not: 24..30 and 8..20 minus the 13 colors in 8..20 leave 7.
  for (int i = 0; i < 7; ++i) prog.allocate_task("t" + std::to_string(i), area);
  CHECK_THROWS_WITH_AS(prog.allocate_task("one more", area), doctest::Contains("no free local task id for one more"),
                       ProgramError);
  // Outside the rectangle every color is still free.
  Program wide(arch::wse2, 8, 4);
  for (unsigned i = 0; i < 21; ++i) wide.allocate_color("ask " + std::to_string(i), area);
  CHECK(wide.allocate_color("next door", rect(4, 0, 4, 4)) == Color{0});
}

// ---- the kernels' *_channels helpers ----------------------------------------------------

TEST_CASE_TEMPLATE("a kernel that asks for its channels runs as with its default colors", K, GemvK, SummaK, CannonK,
                   StencilK, WaveK) {
  const typename K::P defaults = K::params();
  const std::vector<float> expected = run_with_defaults<K>(defaults);
  REQUIRE_FALSE(expected.empty());
  CHECK(nonzero(expected));

  Program prog(arch::wse2, defaults.area.width, defaults.area.height);
  // Someone else holds color 0 and task 24 everywhere: the kernel must get other numbers.
  prog.reserve_color("someone", prog.grid(), Color{0});
  prog.reserve_task("someone", prog.grid(), TaskId{24});
  typename K::P p = defaults;
  K::channels(prog, p);
  CHECK(K::error(p) == nullptr);
  const std::vector<ChannelGrant> mine = grants_of(prog, K::name);
  REQUIRE_FALSE(mine.empty());
  for (const ChannelGrant& g : mine) {
    CAPTURE(g.asker);
    CHECK(g.value != (g.kind == ChannelGrant::Kind::color ? 0 : 24));
    CHECK(g.area.width > 0);
    CHECK(p.area.contains(g.area.origin));
    CHECK(g.area.origin.x + g.area.width <= p.area.origin.x + p.area.width);
    CHECK(g.area.origin.y + g.area.height <= p.area.origin.y + p.area.height);
  }
  CHECK(same_bits(run<K>(prog, p), expected));
}

TEST_CASE("gemv_channels asks over the active area; sum colors of a one-column gemv get values but no grant") {
  {
    Program prog(arch::wse2, 4, 3);
    kern::GemvParams p{.area = prog.grid(), .m = 2, .n = 3};  // active: 3 columns, 2 rows
    kern::gemv_channels(prog, p);
    CHECK(area_of(prog, "gemv x_color") == rect(0, 0, 3, 2));
    CHECK(area_of(prog, "gemv sum_colors[0]") == rect(0, 0, 2, 2));  // sent by column 0, received by 1
    CHECK(area_of(prog, "gemv sum_colors[1]") == rect(1, 0, 2, 2));  // sent by column 1, received by 2
    CHECK(area_of(prog, "gemv tasks[0]") == rect(0, 0, 3, 2));
  }
  kern::GemvParams p{.area = rect(0, 0, 4, 3), .m = 5, .n = 1};
  const std::vector<float> expected = run_with_defaults<GemvK>(p);
  Program prog(arch::wse2, 4, 3);
  prog.reserve_color("someone", prog.grid(), Color{1});
  kern::gemv_channels(prog, p, "one column");
  CHECK(prog.channel_grants().size() == 3);  // someone, x_color, tasks[0]
  CHECK(area_of(prog, "one column x_color") == rect(0, 0, 1, 3));
  CHECK(area_of(prog, "one column sum_colors[0]") == Rect{});
  CHECK(p.x_color == Color{0});
  CHECK(p.sum_colors[0] == Color{1});  // placeholders: never routed, only distinct
  CHECK(p.sum_colors[1] == Color{2});
  CHECK(kern::gemv_params_error(p) == nullptr);
  CHECK(same_bits(run<GemvK>(prog, p), expected));
}

TEST_CASE("wave25_channels grants each color on the band its pencils cross; unused colors get no grant") {
  Program prog(arch::wse2, 10, 10);
  kern::Wave25Params p = WaveK::params();
  kern::wave25_channels(prog, p);
  CHECK(area_of(prog, "wave25 x_colors[0]") == rect(0, 0, 10, 10));  // sources 0 and 9
  CHECK(area_of(prog, "wave25 x_colors[1]") == rect(0, 0, 6, 10));   // source 1: columns 0..5
  CHECK(area_of(prog, "wave25 x_colors[8]") == rect(4, 0, 6, 10));   // source 8: columns 4..9
  CHECK(area_of(prog, "wave25 y_colors[8]") == rect(0, 4, 10, 6));
  // A color held at the north-west PE only is free for the bands that miss it.
  Program held(arch::wse2, 10, 10);
  held.reserve_color("corner", rect(0, 0, 1, 1), Color{0});
  kern::Wave25Params q = WaveK::params();
  kern::wave25_channels(held, q);
  CHECK(q.x_colors[0] == Color{1});
  CHECK(q.x_colors[5] == Color{0});  // columns 1..9
  CHECK(kern::wave25_params_error(q) == nullptr);
  CHECK(same_bits(run<WaveK>(held, q), run_with_defaults<WaveK>(WaveK::params())));

  // 6 x 5 PEs: x_colors[6..8] and y_colors[5..8] have no sources, so no grants.
  Program narrow(arch::wse2, 6, 5);
  kern::Wave25Params n = WaveK::params();
  n.area = narrow.grid();
  kern::wave25_channels(narrow, n);
  CHECK(grants_of(narrow, "wave25 x_colors").size() == 6);
  CHECK(grants_of(narrow, "wave25 y_colors").size() == 5);
  CHECK(kern::wave25_params_error(n) == nullptr);
  kern::Wave25Params d = WaveK::params();
  d.area = rect(0, 0, 6, 5);
  CHECK(same_bits(run<WaveK>(narrow, n), run_with_defaults<WaveK>(d)));
}

TEST_CASE("stencil7_channels: colors whose routes never meet still get distinct values (the kernel wants that)") {
  // On 4 x 1 PEs colors[0] is routed on PEs 0..1 and colors[3] on 2..3: both ask over the hull.
  Program prog(arch::wse2, 4, 1);
  kern::Stencil7Params p = StencilK::params();
  p.area = prog.grid();
  kern::stencil7_channels(prog, p);
  CHECK(area_of(prog, "stencil7 colors[0]") == rect(0, 0, 4, 1));
  CHECK(area_of(prog, "stencil7 colors[1]") == rect(0, 0, 3, 1));
  CHECK(area_of(prog, "stencil7 colors[3]") == rect(0, 0, 4, 1));
  CHECK(area_of(prog, "stencil7 colors[4]") == Rect{});  // no PE sends on it
  CHECK(kern::stencil7_params_error(p) == nullptr);
  kern::Stencil7Params d = StencilK::params();
  d.area = rect(0, 0, 4, 1);
  CHECK(same_bits(run<StencilK>(prog, p), run_with_defaults<StencilK>(d)));
}

TEST_CASE("kernels in disjoint areas of one program reuse colors and run together") {
  Program prog(arch::wse2, 10, 5);
  kern::Stencil7Params st = StencilK::params(Coord{0, 0});  // (0,0)+5x4
  kern::SummaParams su = SummaK::params(Coord{5, 0});       // (5,0)+5x5
  kern::stencil7_channels(prog, st);
  kern::summa_channels(prog, su);
  CHECK(st.colors[0] == Color{0});
  CHECK(su.row_colors[0] == Color{0});  // same color, other PEs
  CHECK(st.tasks[0] == TaskId{24});
  CHECK(su.tasks[0] == TaskId{24});
  REQUIRE(kern::stencil7_params_error(st) == nullptr);
  REQUIRE(kern::summa_params_error(su) == nullptr);
  StencilK::build(prog, st);
  SummaK::build(prog, su);
  host::Runtime rt(prog, wse_test::config());
  StencilK::start(rt, st);
  SummaK::start(rt, su);
  const host::RunReport report = rt.run();
  REQUIRE_MESSAGE(report.ok(), report.to_string());
  CHECK(same_bits(StencilK::read(rt, st), run_with_defaults<StencilK>(StencilK::params(Coord{0, 0}))));
  CHECK(same_bits(SummaK::read(rt, su), run_with_defaults<SummaK>(SummaK::params(Coord{5, 0}))));
}

TEST_CASE("kernels over overlapping areas get distinct colors and task ids, or a clear error") {
  Program prog(arch::wse2, 8, 8);
  kern::GemvParams gv{.area = prog.grid(), .m = 16, .n = 16};
  kern::Stencil7Params st = StencilK::params();
  st.area = rect(0, 0, 8, 8);
  kern::SummaParams su{.area = rect(2, 2, 5, 5), .mb = 2, .nb = 2, .k = 10};
  kern::gemv_channels(prog, gv);
  kern::stencil7_channels(prog, st);
  kern::summa_channels(prog, su);
  CHECK(kern::gemv_params_error(gv) == nullptr);
  CHECK(kern::stencil7_params_error(st) == nullptr);
  CHECK(kern::summa_params_error(su) == nullptr);
  std::set<unsigned> colors, tasks;
  for (const ChannelGrant& g : prog.channel_grants()) {
    CAPTURE(g.asker);
    const bool fresh = (g.kind == ChannelGrant::Kind::color ? colors : tasks).insert(g.value).second;
    CHECK(fresh);  // every area here meets every other
    if (g.kind == ChannelGrant::Kind::task) CHECK(colors.count(g.value) == 0);
  }
  CHECK(colors.size() == 3 + 5 + 4);
  CHECK(tasks.size() == 1 + 5 + 2);
  // Their routes share the PEs without a clash (the regions themselves could not overlap).
  kern::gemv_routes(prog.route_sink(), gv);
  kern::stencil7_routes(prog.route_sink(), st);
  kern::summa_routes(prog.route_sink(), su);
  CHECK(error_of([&] { prog.validate(); }).empty());

  // A Wave25 (18 colors) does not fit next to the 12 above: the error names who holds them.
  kern::Wave25Params wv = WaveK::params();
  wv.area = rect(0, 0, 8, 8);
  const std::string e = error_of([&] { kern::wave25_channels(prog, wv); });
  CHECK(contains(e, "no free color for wave25"));
  CHECK(contains(e, "gemv x_color"));
  CHECK(contains(e, "stencil7 colors[4]"));
  CHECK(contains(e, "summa col_colors[1]"));
}

TEST_CASE("host streams can ask for their color: pass-through row from the west edge to the east edge") {
  Program prog(arch::wse2, 4, 2);
  // Something already holds colors over the row: the stream must get another one.
  const Color taken = prog.allocate_color("someone", Rect{{0, 0}, 4, 1});
  const Rect row{{0, 0}, 4, 1};
  const Color c = prog.add_input_stream("in", Coord{0, 0}, Port::west, row);
  CHECK(c != taken);
  prog.add_output_stream("out", c, Coord{3, 0}, Port::east);  // same route, same color
  for (std::uint16_t x = 0; x < 4; ++x) prog.set_route(Coord{x, 0}, c, ColorRoute{Port::west, Port::east});
  CHECK(contains(prog.channel_report(), "input stream 'in'"));
  host::Runtime rt(prog, wse_test::config());
  const std::vector<std::uint32_t> data{5, 6, 7, 8, 9};
  rt.stream_in<std::uint32_t>("in", data);
  REQUIRE(rt.run().ok());
  CHECK(rt.stream_out_as<std::uint32_t>("out") == data);
  // A stream that cannot be declared takes no color; an area without its PE is refused.
  const std::size_t grants = prog.channel_grants().size();
  CHECK(contains(error_of([&] { prog.add_input_stream("bad", Coord{1, 1}, Port::west, Rect{{1, 1}, 1, 1}); }),
                 "faces another PE"));
  CHECK(prog.channel_grants().size() == grants);
  CHECK(contains(error_of([&] { prog.add_output_stream("far", Coord{3, 1}, Port::east, Rect{{0, 0}, 2, 1}); }),
                 "does not contain its PE (3,1)"));
  // An allocated output stream works the same way; off the row, the lowest color is free again.
  const Color o = prog.add_output_stream("out2", Coord{3, 1}, Port::east);
  CHECK(o == taken);
}
