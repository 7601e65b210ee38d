// Program layer: building programs and refusing bad ones with errors that name the place.
#include <doctest/doctest.h>

#include "kernels.hpp"
#include "support.hpp"

using namespace wse;
using wse_test::contains;
using wse_test::error_of;
using wse_test::Idle;
using wse_test::NoParams;

TEST_CASE("a grid larger than the fabric is refused") {
  const auto e = error_of([] { Program p(arch::wse2, 758, 10); });
  CHECK(contains(e, "758x10"));
  CHECK(contains(e, "757x996"));
  CHECK(error_of([] { Program p(arch::wse2, 757, 996); }).empty());
}

TEST_CASE("regions outside the grid or overlapping are refused, naming both") {
  Program p(arch::wse2, 8, 8);
  p.add_region<Idle>(Rect{{0, 0}, 4, 4}, NoParams{}, "left");
  auto e = error_of([&] { p.add_region<Idle>(Rect{{6, 6}, 3, 2}, NoParams{}, "edge"); });
  CHECK(contains(e, "region 'edge'"));
  CHECK(contains(e, "outside the 8x8 grid"));
  e = error_of([&] { p.add_region<Idle>(Rect{{3, 2}, 2, 2}, NoParams{}, "middle"); });
  CHECK(contains(e, "'middle'"));
  CHECK(contains(e, "overlaps region 'left'"));
  CHECK(contains(e, "first shared PE (3,2)"));
  CHECK(error_of([&] { p.add_region<Idle>(Rect{{4, 0}, 4, 8}, NoParams{}, "right"); }).empty());
  CHECK(p.regions().size() == 2);
  CHECK(p.region_at(Coord{5, 5})->name == "right");
  CHECK(p.region_at(Coord{0, 7}) == nullptr);
}

TEST_CASE("the region name defaults to the kernel type") {
  Program p(arch::wse2, 2, 2);
  p.add_region<Idle>(p.grid(), NoParams{});
  CHECK(contains(p.regions()[0].name, "Idle"));
}

TEST_CASE("routes on non-routable or reserved colors are refused") {
  Program p(arch::wse2, 4, 4);
  auto e = error_of([&] { p.set_route(Coord{1, 2}, Color{24}, ColorRoute{ramp, east}); });
  CHECK(contains(e, "PE (1,2)"));
  CHECK(contains(e, "color 24"));
  CHECK(contains(e, "not routable"));
  for (std::uint8_t c : {21, 22, 23}) {
    e = error_of([&] { p.set_route(Coord{0, 0}, Color{c}, ColorRoute{ramp, east}); });
    CHECK(contains(e, "color " + std::to_string(c)));
    CHECK(contains(e, "reserved"));
  }
  CHECK(error_of([&] { p.set_route(Coord{0, 0}, Color{20}, ColorRoute{ramp, east}); }).empty());
  e = error_of([&] { p.set_route(Coord{4, 0}, Color{1}, ColorRoute{ramp, east}); });
  CHECK(contains(e, "outside the 4x4 grid"));
}

TEST_CASE("two simultaneous inputs into one color are refused") {
  Program p(arch::wse2, 4, 4);
  // Statically visible at one PE: one position receiving from two ports.
  auto e = error_of([&] { p.set_route(Coord{2, 1}, Color{3}, ColorRoute{west | north, ramp}); });
  CHECK(contains(e, "PE (2,1)"));
  CHECK(contains(e, "color 3"));
  CHECK(contains(e, "N|W"));
  CHECK(contains(e, "two inputs"));
  // Visible across PEs: two neighbours transmit into a PE that receives from only one.
  Program q(arch::wse2, 3, 1);
  q.set_route(Coord{0, 0}, Color{5}, ColorRoute{ramp, east});
  q.set_route(Coord{2, 0}, Color{5}, ColorRoute{ramp, west});
  q.set_route(Coord{1, 0}, Color{5}, ColorRoute{west, ramp});
  e = error_of([&] { q.validate(); });
  CHECK(contains(e, "PE (2,0)"));
  CHECK(contains(e, "to PE (1,0)"));
  CHECK(contains(e, "does not receive from E"));
  // Separate switch positions may each take one input.
  q.replace_route(Coord{1, 0}, Color{5}, ColorRoute{west, ramp}.then(east, ramp));
  CHECK(error_of([&] { q.validate(); }).empty());
}

TEST_CASE("route shape errors: too many positions, rx without tx, RAMP to itself") {
  Program p(arch::wse2, 2, 2);
  ColorRoute five{ramp, east};
  five.then(ramp, east).then(ramp, east).then(ramp, east).then(ramp, east);
  CHECK(contains(error_of([&] { p.set_route(Coord{0, 0}, Color{1}, five); }), "5 switch positions"));
  CHECK(contains(error_of([&] { p.set_route(Coord{0, 0}, Color{1}, ColorRoute{west, PortSet{}}); }), "transmits nowhere"));
  CHECK(contains(error_of([&] { p.set_route(Coord{0, 0}, Color{1}, ColorRoute{ramp, ramp}); }), "cannot send to itself"));
}

TEST_CASE("transmitting off the edge needs an output stream") {
  Program p(arch::wse2, 2, 1);
  p.set_route(Coord{1, 0}, Color{2}, ColorRoute{ramp, east});
  auto e = error_of([&] { p.validate(); });
  CHECK(contains(e, "PE (1,0)"));
  CHECK(contains(e, "off the fabric edge"));
  p.add_output_stream("out", Color{2}, Coord{1, 0}, east);
  CHECK(error_of([&] { p.validate(); }).empty());
}

TEST_CASE("stream declarations are checked") {
  Program p(arch::wse2, 3, 3);
  CHECK(contains(error_of([&] { p.add_input_stream("s", Color{1}, Coord{1, 1}, west); }), "faces another PE"));
  CHECK(contains(error_of([&] { p.add_input_stream("s", Color{1}, Coord{0, 1}, ramp); }), "not RAMP"));
  CHECK(contains(error_of([&] { p.add_input_stream("s", Color{22}, Coord{0, 1}, west); }), "color 22"));
  p.add_input_stream("s", Color{1}, Coord{0, 1}, west);
  CHECK(contains(error_of([&] { p.add_output_stream("s", Color{1}, Coord{2, 1}, east); }), "already exists"));
  // The PE must route the stream's color from that edge.
  auto e = error_of([&] { p.validate(); });
  CHECK(contains(e, "input stream 's'"));
  CHECK(contains(e, "no route"));
  p.set_route(Coord{0, 1}, Color{1}, ColorRoute{north, ramp});
  CHECK(contains(error_of([&] { p.validate(); }), "does not receive from W"));
  p.replace_route(Coord{0, 1}, Color{1}, ColorRoute{west, ramp});
  CHECK(error_of([&] { p.validate(); }).empty());
}

TEST_CASE("filters must sit on a color delivered to RAMP") {
  Program p(arch::wse2, 2, 1);
  p.set_filter(Coord{1, 0}, Color{4}, RangeFilter{0, 3});
  auto e = error_of([&] { p.validate(); });
  CHECK(contains(e, "filter at PE (1,0) on color 4"));
}

TEST_CASE("a second, different route at the same PE and color is refused; replace_route replaces") {
  Program p(arch::wse2, 2, 1);
  p.set_route(Coord{0, 0}, Color{1}, ColorRoute{ramp, east});
  p.set_route(Coord{1, 0}, Color{1}, ColorRoute{west, ramp});
  p.set_route(Coord{0, 0}, Color{1}, ColorRoute{ramp, east});  // the same again: fine
  const auto e = error_of([&] { p.set_route(Coord{0, 0}, Color{1}, ColorRoute{east, ramp}); });
  CHECK(contains(e, "route at PE (0,0) on color 1 is already set (position 0: rx RAMP, tx E)"));
  CHECK(p.find_route(Coord{0, 0}, Color{1})->positions[0].rx == PortSet{ramp});
  p.replace_route(Coord{0, 0}, Color{1}, ColorRoute{east, ramp});
  const ColorRoute* r = p.find_route(Coord{0, 0}, Color{1});
  REQUIRE(r != nullptr);
  CHECK(r->positions[0].rx == PortSet{east});
  CHECK(p.routes().size() == 2);
  CHECK(p.find_route(Coord{1, 0}, Color{2}) == nullptr);
}

TEST_CASE("per-PE parameter functions are called at once, once per PE, in row-major order") {
  Program p(arch::wse2, 3, 2);
  std::vector<Coord> seen;
  p.add_region<wse_test::Buffer>(p.grid(), [&](Coord c) {
    seen.push_back(c);
    return wse_test::BufferParams{static_cast<std::uint32_t>(c.x + 1)};
  });
  REQUIRE(seen.size() == 6);  // before loading: the function may capture locals by reference
  host::Runtime rt(p, wse_test::config());
  CHECK(seen.size() == 6);
  CHECK(seen[0] == Coord{0, 0});
  CHECK(seen[1] == Coord{1, 0});
  CHECK(seen[3] == Coord{0, 1});
  CHECK(rt.read<float>("buf", Rect{{2, 1}, 1, 1}, 3).size() == 3);
  CHECK(contains(error_of([&] { (void)rt.read<float>("buf", Rect{{0, 1}, 1, 1}, 2); }), "the symbol has 1 elements"));
}
