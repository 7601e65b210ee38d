// Emulator memory: Engine::memory() accounting, the per-PE state bounds that keep a full fabric
// in a few GB (docs/performance.md), and the containers behind them (CompactVector, PeArena).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels.hpp"
#include "kernels/collective_join.hpp"
#include "kernels/stencil7.hpp"
#include "support.hpp"

using namespace wse;
using wse_test::Buffer;
using wse_test::BufferParams;
using wse_test::Idle;
using wse_test::NoParams;

TEST_CASE("CompactVector keeps order through push, insert, erase_front and growth, and is one pointer") {
  static_assert(sizeof(emu::CompactVector<std::uint64_t>) == sizeof(void*));
  emu::CompactVector<std::uint64_t> v;
  CHECK(v.empty());
  CHECK(v.capacity() == 0);
  for (std::uint64_t i = 0; i < 100; ++i) v.push_back(i * 3);
  CHECK(v.size() == 100);
  v.push_back(v[7]);  // an element of the vector itself, while it grows
  CHECK(v.back() == 21);
  v.insert(0, 1000);
  v.insert(50, 2000);
  CHECK(v[0] == 1000);
  CHECK(v[1] == 0);
  CHECK(v[50] == 2000);
  CHECK(v[51] == 49 * 3);
  v.erase_front(2);
  CHECK(v[0] == 3);
  CHECK(v.size() == 101);
  v.resize_down(5);
  std::uint64_t sum = 0;
  for (auto x : v) sum += x;
  CHECK(sum == 3 + 6 + 9 + 12 + 15);
  v.shrink_to_fit();
  CHECK(v.capacity() == 5);
  v.clear();
  v.release_if_empty();
  CHECK(v.capacity() == 0);
}

TEST_CASE("CompactCounters count exactly past 2^32 and allocate only then") {
  emu::CompactCounters<3> c;
  static_assert(sizeof(c) <= 3 * 4 + 4 + sizeof(void*));
  c.add(0, 0xfffffff0u);
  c.add(1);
  CHECK(c.extra_bytes() == 0);
  for (int i = 0; i < 0x20; ++i) c.add(0);  // passes 2^32 - 1 one event at a time
  CHECK(c.get(0) == 0xfffffff0ull + 0x20);
  CHECK(c.extra_bytes() > 0);
  c.add(0, 5);
  c.add(2, 3ull << 33);  // more than 32 bits at once
  c.add(2, 7);
  CHECK(c.get(0) == 0xfffffff0ull + 0x25);
  CHECK(c.get(1) == 1);
  CHECK(c.get(2) == (3ull << 33) + 7);
}

TEST_CASE("PeArena returns zeroed, aligned, disjoint blocks, large ones too") {
  emu::PeArena arena;
  std::vector<std::pair<std::byte*, std::size_t>> blocks;
  for (std::size_t i = 0; i < 2000; ++i) {
    const std::size_t bytes = 1 + (i * 37) % 300, align = std::size_t{1} << (i % 7);
    auto* p = static_cast<std::byte*>(arena.allocate(bytes, align));
    CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0);
    bool zero = true;
    for (std::size_t k = 0; k < bytes; ++k) zero &= p[k] == std::byte{0};
    CHECK(zero);
    std::memset(p, 0xab, bytes);  // must not touch any other block
    blocks.emplace_back(p, bytes);
  }
  auto* big = static_cast<std::byte*>(arena.allocate(1u << 20, 64));
  CHECK(reinterpret_cast<std::uintptr_t>(big) % 64 == 0);
  std::memset(big, 0xcd, 1u << 20);
  for (const auto& [p, n] : blocks) {
    bool intact = true;
    for (std::size_t k = 0; k < n; ++k) intact &= p[k] == std::byte{0xab};
    CHECK(intact);
  }
  CHECK(arena.bytes() >= (1u << 20));
}

namespace {
// Every PE joins one collective over the whole grid (kernels/collective_join.hpp).
Program join_program(collectives::Kind kind, std::uint16_t w, std::uint16_t h, std::uint32_t n) {
  Program p(arch::wse2, w, h);
  const auto cp = collectives::build<float>(p, kind, p.grid(), n, {.name = "join"});
  p.add_region<kernels::CollectiveJoin>(p.grid(), kernels::CollectiveJoinParams{cp, p.allocate_task("join: done", p.grid())});
  return p;
}
// The allreduce of join_program with every value `v`, loaded, not yet launched.
std::unique_ptr<host::Runtime> loaded_allreduce(std::uint16_t w, std::uint16_t h, std::uint32_t n, float v) {
  auto rt = std::make_unique<host::Runtime>(join_program(collectives::Kind::allreduce, w, h, n), wse_test::config());
  const std::vector<float> values(std::size_t{w} * h * n, v);
  rt->memcpy_h2d<float>("buf", values, rt->program().grid(), n);
  return rt;
}
}  // namespace

TEST_CASE("Engine::memory counts every PE's state and kernel memory; idle PEs stay small") {
  SUBCASE("kernel memory equals what the PEs report and the state is counted per PE") {
    Program p(arch::wse2, 12, 10);
    p.add_region<Buffer>(Rect{{0, 0}, 12, 10}, BufferParams{40});
    host::Runtime rt(p, wse_test::config());
    const emu::EmuMemory m = rt.emulator()->memory();
    CHECK(m.pes == 120);
    std::uint64_t kernel = 0;
    for (std::uint16_t y = 0; y < 10; ++y)
      for (std::uint16_t x = 0; x < 12; ++x) kernel += rt.emulator()->pe({x, y})->memory_used();
    CHECK(m.kernel_bytes == kernel);
    CHECK(m.kernel_bytes >= 120u * 160u);  // 40 floats each, plus the kernel object
    CHECK(m.pe_state_bytes >= 120u * sizeof(emu::Pe));
    if constexpr (sizeof(void*) == 8) CHECK(sizeof(emu::Pe) <= 240);  // docs/performance.md, fourth pass
    CHECK(m.ring_pool_bytes == 0);  // nothing has moved yet
  }
  SUBCASE("a PE with a kernel and one routed color costs at most 512 bytes beyond its kernel") {
    // The bound of issue #7 for an idle PE (docs/performance.md has the measured figures).
    host::Runtime rt(join_program(collectives::Kind::broadcast, 64, 64, 16), wse_test::config());
    const emu::EmuMemory m = rt.emulator()->memory();
    CHECK(m.pes == 64u * 64u);
    MESSAGE("broadcast: emulator state per PE ", m.state_per_pe(), " bytes beyond the kernel's ",
            double(m.kernel_bytes) / double(m.pes));
    CHECK(m.state_per_pe() <= 512.0);
  }
  SUBCASE("a PE of the 2-D allreduce (up to 5 routed colors) costs at most 512 bytes after a run") {
    // Its colors share interned plans: a 64x64 grid has ~15,000 routed colors and 11 distinct
    // plans (the row and column trees' few shapes), a number that does not grow with the grid.
    const std::uint16_t w = 64, h = 64;
    const std::uint32_t n = 16;
    const auto runtime = loaded_allreduce(w, h, n, 2.0f);
    host::Runtime& rt = *runtime;
    rt.launch("go");
    REQUIRE(rt.run().ok());
    const emu::EmuMemory m = rt.emulator()->memory();
    MESSAGE("allreduce: emulator state per PE ", m.state_per_pe(), " bytes, ", m.color_plans, " color plans");
    CHECK(m.state_per_pe() <= 512.0);
    CHECK(m.color_plans > 0);
    CHECK(m.color_plans <= 32);
    const std::vector<float> out = rt.read<float>("buf", rt.program().grid(), n);
    CHECK(std::count(out.begin(), out.end(), 2.0f * w * h) == static_cast<std::ptrdiff_t>(out.size()));
  }
  SUBCASE("a 7-point stencil PE (5 colors, 5 tasks, 2 symbols) costs at most 512 bytes after a run") {
    const std::uint16_t w = 24, h = 24;
    const std::uint32_t nz = 8;
    Program prog(arch::wse2, w, h);
    kernels::Stencil7Params p{.area = prog.grid(), .nz = nz, .sweeps = 1, .c0 = 6, .cxm = -1, .cxp = -1, .cym = -1, .cyp = -1, .czm = -1, .czp = -1};
    kernels::stencil7_channels(prog, p);
    prog.add_region<kernels::Stencil7>(p.area, p);
    kernels::stencil7_routes(prog.route_sink(), p);
    host::Runtime rt(std::move(prog), wse_test::config());
    const std::vector<float> x(std::size_t{w} * h * nz, 1.0f);
    rt.memcpy_h2d<float>("x", x, p.area, nz);
    rt.launch("spmv");
    REQUIRE(rt.run().ok());
    const emu::EmuMemory m = rt.emulator()->memory();
    MESSAGE("stencil: emulator state per PE ", m.state_per_pe(), " bytes, ", m.task_functions, " task functions");
    CHECK(m.state_per_pe() <= 512.0);
    CHECK(m.task_functions > 0);
    CHECK(m.task_functions <= 16);  // one kernel's few tasks, however many PEs bind them
    // All ones: an interior point is 6 - 6 = 0; a face point lacks neighbours, so it is > 0.
    const std::vector<float> y = rt.read<float>("y", p.area, nz);
    CHECK(y[(std::size_t{12} * w + 12) * nz + 4] == 0.0f);
    CHECK(y[(std::size_t{12} * w + 0) * nz + 4] == 1.0f);
  }
  SUBCASE("a PE with a kernel and no route costs less still") {
    Program p(arch::wse2, 32, 32);
    p.add_region<Idle>(p.grid(), NoParams{});
    host::Runtime rt(p, wse_test::config());
    const emu::EmuMemory m = rt.emulator()->memory();
    CHECK(m.pes == 32u * 32u);
    MESSAGE("idle kernel: emulator state per PE ", m.state_per_pe(), " bytes");
    CHECK(m.state_per_pe() <= 400.0);
  }
}

TEST_CASE("after a run every PE has given its wavelet buffers and async lists back") {
  // A 2-D allreduce over 24x20 PEs: every PE routes several colors and moves data.
  const std::uint16_t w = 24, h = 20;
  const std::uint32_t n = 8;
  const auto runtime = loaded_allreduce(w, h, n, 1.0f);
  host::Runtime& rt = *runtime;
  const emu::EmuMemory before = rt.emulator()->memory();
  rt.launch("go");
  REQUIRE(rt.run().ok());
  const emu::EmuMemory after = rt.emulator()->memory();
  CHECK(after.pes == before.pes);
  CHECK(after.kernel_bytes == before.kernel_bytes);
  CHECK(after.pe_state_bytes <= before.pe_state_bytes);  // nothing left in flight
  CHECK(after.ring_pool_bytes > 0);                       // buffers were used, and are pooled
  unsigned holding = 0;
  for (std::uint16_t y = 0; y < h; ++y)
    for (std::uint16_t x = 0; x < w; ++x) holding += rt.emulator()->pe({x, y})->rings_with_storage();
  CHECK(holding == 0);
  const std::vector<float> out = rt.read<float>("buf", rt.program().grid(), n);
  CHECK(out.front() == float(w * h));
  CHECK(out.back() == float(w * h));
}
