// kernels/stream_linear.hpp: the weight-streaming linear layer. Forward Y = X·W (+ b) and
// backward (dX = dY·Wᵀ, dW = Xᵀ·dY, db) on 1×1, 2×3, 3×2 and 4×4 grids with T, IN, OUT
// different, with and without bias: exact on small integers; within 1e-5 of a double
// reference on random data, bit-identical for 1 and 4 threads and between functional and
// timed mode; timed cycles at or above the compute and weight-stream bounds; the split
// backward launches; repeated launches; memory accounting; channel allocation; the checks.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../kernels/stream_linear.hpp"
#include "support.hpp"

using namespace wse;
namespace kern = wse::kernels;

namespace {

kern::StreamLinearParams params(std::uint16_t w, std::uint16_t h, std::uint32_t t, std::uint32_t in, std::uint32_t out,
                                bool bias) {
  return kern::StreamLinearParams{.area = {{0, 0}, w, h}, .tokens = t, .in = in, .out = out, .bias = bias};
}

struct Data {
  std::vector<float> X, W, b, dY;  // T×IN, IN×OUT, OUT, T×OUT (row-major)
};
struct Grads {
  std::vector<float> dX, dW, db;
  std::uint64_t cycles = 0;
};

Data integer_data(const kern::StreamLinearParams& p, unsigned salt) {
  Data d{std::vector<float>(std::size_t{p.tokens} * p.in), std::vector<float>(std::size_t{p.in} * p.out),
         std::vector<float>(p.out), std::vector<float>(std::size_t{p.tokens} * p.out)};
  auto small = [](std::uint32_t v, int range) { return float(int(v % std::uint32_t(2 * range + 1)) - range); };
  for (std::uint32_t t = 0; t < p.tokens; ++t)
    for (std::uint32_t i = 0; i < p.in; ++i) d.X[std::size_t(t) * p.in + i] = small(t * 7 + i * 3 + salt + t * i, 2);
  for (std::uint32_t i = 0; i < p.in; ++i)
    for (std::uint32_t o = 0; o < p.out; ++o) d.W[std::size_t(i) * p.out + o] = small(i * 5 + o * 11 + salt * 3 + i * o, 3);
  for (std::uint32_t o = 0; o < p.out; ++o) d.b[o] = small(o * 13 + salt, 9);
  for (std::uint32_t t = 0; t < p.tokens; ++t)
    for (std::uint32_t o = 0; o < p.out; ++o) d.dY[std::size_t(t) * p.out + o] = small(t * 3 + o * 7 + salt * 5 + 2 * t * o, 2);
  return d;
}
Data rand_data(const kern::StreamLinearParams& p, unsigned seed) {
  Data d = integer_data(p, 0);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (auto* v : {&d.X, &d.W, &d.b, &d.dY})
    for (float& e : *v) e = uni(rng);
  return d;
}

// Host reference in double: Y, dX, dW, db.
struct Reference {
  std::vector<double> Y, dX, dW, db;
};
Reference reference(const kern::StreamLinearParams& p, const Data& d) {
  const std::uint32_t T = p.tokens, I = p.in, O = p.out;
  Reference r{std::vector<double>(std::size_t{T} * O), std::vector<double>(std::size_t{T} * I),
              std::vector<double>(std::size_t{I} * O), std::vector<double>(O)};
  for (std::uint32_t t = 0; t < T; ++t)
    for (std::uint32_t o = 0; o < O; ++o) {
      double s = p.bias ? d.b[o] : 0.0;
      for (std::uint32_t i = 0; i < I; ++i) s += double(d.X[t * I + i]) * d.W[i * O + o];
      r.Y[t * O + o] = s;
    }
  for (std::uint32_t t = 0; t < T; ++t)
    for (std::uint32_t i = 0; i < I; ++i) {
      double s = 0;
      for (std::uint32_t o = 0; o < O; ++o) s += double(d.dY[t * O + o]) * d.W[i * O + o];
      r.dX[t * I + i] = s;
    }
  for (std::uint32_t i = 0; i < I; ++i)
    for (std::uint32_t o = 0; o < O; ++o) {
      double s = 0;
      for (std::uint32_t t = 0; t < T; ++t) s += double(d.X[t * I + i]) * d.dY[t * O + o];
      r.dW[i * O + o] = s;
    }
  for (std::uint32_t o = 0; o < O; ++o)
    for (std::uint32_t t = 0; t < T; ++t) r.db[o] += d.dY[t * O + o];
  return r;
}

bool exact(const std::vector<float>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return false;
  for (std::size_t k = 0; k < got.size(); ++k)
    if (double(got[k]) != want[k]) return false;
  return true;
}
// Norm-wise relative error ||got - want|| / ||want||.
double rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return 1e30;
  double num = 0, den = 0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    num += (got[k] - want[k]) * (got[k] - want[k]);
    den += want[k] * want[k];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// A program holding one StreamLinear on the whole grid; `taken` colors are granted to
// someone else over the whole grid first (the kernel must keep off them).
struct Rig {
  kern::StreamLinearParams p;
  Program prog;
  host::Runtime rt;

  static Program build(kern::StreamLinearParams& p, unsigned taken) {
    Program prog(arch::wse2, p.area.width, p.area.height);
    for (unsigned k = 0; k < taken; ++k) prog.allocate_color("someone else", prog.grid());
    kern::stream_linear_channels(prog, p);
    const char* err = kern::stream_linear_params_error(p);
    REQUIRE_MESSAGE(err == nullptr, err);
    prog.add_region<kern::StreamLinear>(p.area, p);
    kern::stream_linear_routes(prog.route_sink(), p);
    kern::stream_linear_weight_streams(p, [&](std::uint32_t x, Coord c, Color col, Port e) {
      prog.add_input_stream("w" + std::to_string(x), col, c, e);
    });
    kern::stream_linear_grad_streams(p, [&](std::uint32_t x, Coord c, Color col, Port e) {
      prog.add_output_stream("g" + std::to_string(x), col, c, e);
    });
    return prog;
  }
  Rig(const kern::StreamLinearParams& params, emu::EmuConfig cfg, unsigned taken = 0)
      : p(params), prog(build(p, taken)), rt(prog, cfg) {}

  std::uint32_t tb() const { return kern::stream_linear_tb(p); }
  std::uint32_t inb() const { return kern::stream_linear_inb(p); }
  std::uint32_t outb() const { return kern::stream_linear_outb(p); }

  // A row-major rows × cols matrix into per-PE blocks (token band y × feature band x) in the
  // runtime's PE order (row-major over the area), and back.
  std::vector<float> to_blocks(const std::vector<float>& m, std::uint32_t cols) const {
    const std::uint32_t cb = cols / p.area.width;
    std::vector<float> s;
    s.reserve(m.size());
    for (std::uint32_t y = 0; y < p.area.height; ++y)
      for (std::uint32_t x = 0; x < p.area.width; ++x)
        for (std::uint32_t t = 0; t < tb(); ++t)
          for (std::uint32_t c = 0; c < cb; ++c) s.push_back(m[std::size_t(y * tb() + t) * cols + x * cb + c]);
    return s;
  }
  std::vector<float> from_blocks(const std::vector<float>& s, std::uint32_t cols) const {
    const std::uint32_t cb = cols / p.area.width;
    std::vector<float> m(s.size());
    std::size_t k = 0;
    for (std::uint32_t y = 0; y < p.area.height; ++y)
      for (std::uint32_t x = 0; x < p.area.width; ++x)
        for (std::uint32_t t = 0; t < tb(); ++t)
          for (std::uint32_t c = 0; c < cb; ++c) m[std::size_t(y * tb() + t) * cols + x * cb + c] = s[k++];
    return m;
  }

  bool run_ok(std::uint64_t* cycles) {
    const host::RunReport report = rt.run();
    if (!report.ok()) {
      MESSAGE(report.to_string());
      return false;
    }
    if (cycles) *cycles = report.cycles;
    return true;
  }

  // Streams W (and b), launches "forward", returns Y (T × OUT), empty on failure.
  std::vector<float> forward(const Data& d, std::uint64_t* cycles = nullptr) {
    rt.memcpy_h2d<float>("x", to_blocks(d.X, p.in), p.area, tb() * inb());
    for (std::uint32_t x = 0; x < p.area.width; ++x) {
      std::vector<float> s;
      kern::stream_linear_forward_order(p, x, [&](bool is_b, std::uint32_t i, std::uint32_t o) {
        s.push_back(is_b ? d.b[o] : d.W[std::size_t(i) * p.out + o]);
      });
      CHECK(s.size() == kern::stream_linear_forward_stream_length(p));
      rt.stream_in<float>("w" + std::to_string(x), s);
    }
    rt.launch("forward");
    if (!run_ok(cycles)) return {};
    return from_blocks(rt.read<float>("y", p.area, tb() * outb()), p.out);
  }

  // Launches `fn` ("backward", "backward_data" or "backward_weights") with dY in place.
  Grads backward(const Data& d, const std::string& fn) {
    Grads g;
    const bool data = fn != "backward_weights", weights = fn != "backward_data";
    rt.memcpy_h2d<float>("dy", to_blocks(d.dY, p.out), p.area, tb() * outb());
    if (data)
      for (std::uint32_t x = 0; x < p.area.width; ++x) {
        std::vector<float> s;
        kern::stream_linear_backward_order(p, x, [&](std::uint32_t i, std::uint32_t o) { s.push_back(d.W[std::size_t(i) * p.out + o]); });
        CHECK(s.size() == kern::stream_linear_backward_stream_length(p));
        rt.stream_in<float>("w" + std::to_string(x), s);
      }
    rt.launch(fn);
    if (!run_ok(&g.cycles)) return g;
    if (data) g.dX = from_blocks(rt.read<float>("dx", p.area, tb() * inb()), p.in);
    if (weights) {
      g.dW.assign(std::size_t{p.in} * p.out, 0.0f);
      g.db.assign(p.bias ? p.out : 0, 0.0f);
      for (std::uint32_t x = 0; x < p.area.width; ++x) {
        const std::vector<float> s = rt.stream_out_as<float>("g" + std::to_string(x));
        REQUIRE(s.size() == kern::stream_linear_grad_stream_length(p));
        std::size_t k = 0;
        kern::stream_linear_grad_order(p, x, [&](bool is_b, std::uint32_t i, std::uint32_t o) {
          (is_b ? g.db[o] : g.dW[std::size_t(i) * p.out + o]) = s[k++];
        });
      }
    }
    return g;
  }
};

// Cycle bounds on WSE-2 (fp32 mul/fmac: 1 element per cycle; a link: 1 wavelet per cycle).
// Forward: every PE does Tb·INb·OUT multiply-adds; every column's stream carries INb·OUT
// (+ OUTb) wavelets through one link. Backward: Tb·OUTb·IN for dX plus Tb·INb·OUT for dW on
// the same compute element, and the same stream lengths in and out.
std::uint64_t forward_bound(const kern::StreamLinearParams& p) {
  const std::uint64_t compute = std::uint64_t{kern::stream_linear_tb(p)} * kern::stream_linear_inb(p) * p.out;
  const std::uint64_t stream = kern::stream_linear_forward_stream_length(p);
  return compute > stream ? compute : stream;
}
std::uint64_t backward_bound(const kern::StreamLinearParams& p) {
  const std::uint64_t tb = kern::stream_linear_tb(p);
  const std::uint64_t compute = tb * kern::stream_linear_outb(p) * p.in + tb * kern::stream_linear_inb(p) * p.out;
  const std::uint64_t stream = kern::stream_linear_grad_stream_length(p);
  return compute > stream ? compute : stream;
}

std::string shape(const kern::StreamLinearParams& p) {
  return std::to_string(p.area.width) + "x" + std::to_string(p.area.height) + " T=" + std::to_string(p.tokens) +
         " IN=" + std::to_string(p.in) + " OUT=" + std::to_string(p.out) + (p.bias ? " bias" : "");
}

}  // namespace

TEST_CASE("stream_linear: forward and backward are exact on small integers, several shapes") {
  const kern::StreamLinearParams shapes[] = {
      params(1, 1, 3, 4, 5, true),  params(2, 3, 6, 4, 6, false), params(2, 3, 6, 4, 6, true),
      params(3, 2, 4, 6, 3, true),  params(4, 4, 8, 8, 12, true), params(4, 4, 4, 12, 8, false),
  };
  for (const auto& sp : shapes) {
    CAPTURE(shape(sp));
    Rig rig(sp, wse_test::config());
    const Data d = integer_data(rig.p, 1);
    const Reference r = reference(rig.p, d);
    CHECK(exact(rig.forward(d), r.Y));
    const Grads g = rig.backward(d, "backward");
    CHECK(exact(g.dX, r.dX));
    CHECK(exact(g.dW, r.dW));
    if (sp.bias) CHECK(exact(g.db, r.db));
    // The layer runs again with other data (state is reset by every launch).
    const Data d2 = integer_data(rig.p, 4);
    const Reference r2 = reference(rig.p, d2);
    CHECK(exact(rig.forward(d2), r2.Y));
    const Grads g2 = rig.backward(d2, "backward");
    CHECK(exact(g2.dX, r2.dX));
    CHECK(exact(g2.dW, r2.dW));
    if (sp.bias) CHECK(exact(g2.db, r2.db));
  }
}

TEST_CASE("stream_linear: backward_data and backward_weights launched apart give what backward gives") {
  for (const auto& sp : {params(2, 3, 6, 4, 6, true), params(3, 1, 2, 3, 6, false)}) {
    CAPTURE(shape(sp));
    Rig both(sp, wse_test::config()), apart(sp, wse_test::config());
    const Data d = rand_data(both.p, 3);
    REQUIRE(!both.forward(d).empty());
    REQUIRE(!apart.forward(d).empty());
    const Grads g = both.backward(d, "backward");
    const Grads gd = apart.backward(d, "backward_data");
    const Grads gw = apart.backward(d, "backward_weights");
    CHECK(same_bits(g.dX, gd.dX));
    CHECK(same_bits(g.dW, gw.dW));
    CHECK(same_bits(g.db, gw.db));
    CHECK(gd.dW.empty());
    CHECK(gw.dX.empty());
  }
}

TEST_CASE("stream_linear: random data within 1e-5, bit-identical across threads and timed mode; cycles >= bounds") {
  for (const auto& sp : {params(2, 3, 6, 4, 6, true), params(4, 4, 8, 8, 12, false), params(4, 4, 8, 16, 8, true)}) {
    CAPTURE(shape(sp));
    struct Run {
      std::vector<float> Y;
      Grads g;
      std::uint64_t fwd_cycles = 0;
    };
    auto run = [&](emu::EmuConfig cfg) {
      Rig rig(sp, cfg);
      const Data d = rand_data(rig.p, 7);
      Run r;
      r.Y = rig.forward(d, &r.fwd_cycles);
      r.g = rig.backward(d, "backward");
      return r;
    };
    emu::EmuConfig one = wse_test::config(), four = wse_test::config(), timed = wse_test::config();
    one.threads = 1;
    four.threads = 4;
    timed.timed = true;
    const Run a = run(one), b = run(four), c = run(wse_test::config()), t = run(timed);

    const kern::StreamLinearParams& p = sp;
    const Reference r = reference(p, rand_data(p, 7));
    CHECK(rel_error(a.Y, r.Y) < 1e-5);
    CHECK(rel_error(a.g.dX, r.dX) < 1e-5);
    CHECK(rel_error(a.g.dW, r.dW) < 1e-5);
    if (p.bias) CHECK(rel_error(a.g.db, r.db) < 1e-5);
    for (const Run* o : {&b, &c, &t}) {
      CHECK(same_bits(a.Y, o->Y));
      CHECK(same_bits(a.g.dX, o->g.dX));
      CHECK(same_bits(a.g.dW, o->g.dW));
      CHECK(same_bits(a.g.db, o->g.db));
    }
    CHECK(a.fwd_cycles == 0);  // functional mode has no clock
    CHECK(t.fwd_cycles >= forward_bound(p));
    CHECK(t.g.cycles >= backward_bound(p));
    MESSAGE(shape(p) << ": forward " << t.fwd_cycles << " cycles (bound " << forward_bound(p) << "), backward "
                     << t.g.cycles << " cycles (bound " << backward_bound(p) << ")");
  }
}

TEST_CASE("stream_linear: timed cycles are the same for any thread count") {
  const kern::StreamLinearParams sp = params(2, 3, 6, 4, 6, true);
  std::uint64_t cycles[2][2] = {};
  for (unsigned k = 0; k < 2; ++k) {
    emu::EmuConfig cfg = wse_test::config();
    cfg.timed = true;
    cfg.threads = k == 0 ? 1 : 3;
    Rig rig(sp, cfg);
    const Data d = integer_data(rig.p, 2);
    REQUIRE(!rig.forward(d, &cycles[k][0]).empty());
    cycles[k][1] = rig.backward(d, "backward").cycles;
  }
  CHECK(cycles[0][0] == cycles[1][0]);
  CHECK(cycles[0][1] == cycles[1][1]);
  CHECK(cycles[0][0] > 0);
}

TEST_CASE("stream_linear: memory estimate matches the emulator; channels keep off other grants") {
  for (const auto& sp : {params(1, 1, 3, 4, 5, true), params(2, 3, 6, 4, 6, false), params(4, 4, 8, 16, 8, true)}) {
    CAPTURE(shape(sp));
    Rig rig(sp, wse_test::config());
    CHECK(rig.rt.emulator()->pe(sp.area.origin)->memory_used() == kern::stream_linear_bytes_per_pe(rig.p));
  }
  // Colors 0..2 already granted over the grid: the kernel gets others and still works. (Three
  // columns, so every one of the eight colors is routed and granted; on two columns
  // east_colors[1] and west_colors[1] carry nothing and get a free value without a grant.)
  Rig rig(params(3, 2, 4, 6, 3, true), wse_test::config(), 3);
  const Color cs[8] = {rig.p.w_color,        rig.p.east_colors[0], rig.p.east_colors[1],  rig.p.west_colors[0],
                       rig.p.west_colors[1], rig.p.row_color,      rig.p.south_colors[0], rig.p.south_colors[1]};
  for (const Color c : cs) CHECK(c.value >= 3);
  const Data d = integer_data(rig.p, 5);
  const Reference r = reference(rig.p, d);
  CHECK(exact(rig.forward(d), r.Y));
  const Grads g = rig.backward(d, "backward");
  CHECK(exact(g.dX, r.dX));
  CHECK(exact(g.dW, r.dW));
  CHECK(exact(g.db, r.db));
}

TEST_CASE("stream_linear_params_error names the problem") {
  using wse_test::contains;
  auto err = [](const kern::StreamLinearParams& p) {
    const char* e = kern::stream_linear_params_error(p);
    return std::string(e ? e : "");
  };
  CHECK(err(params(2, 3, 6, 4, 6, true)).empty());
  CHECK(contains(err(params(0, 3, 6, 4, 6, true)), "area is empty"));
  CHECK(contains(err(params(2, 3, 0, 4, 6, true)), ">= 1"));
  CHECK(contains(err(params(2, 3, 7, 4, 6, true)), "tokens must be a multiple of area.height"));
  CHECK(contains(err(params(2, 3, 6, 5, 6, true)), "in must be a multiple of area.width"));
  CHECK(contains(err(params(2, 3, 6, 4, 7, true)), "out must be a multiple of area.width"));
  // One PE: X, Y, dY, dX (T·IN, T·OUT twice each), W buffers 2·IN·OUT, scratch 2·T·max.
  CHECK(err(params(1, 1, 16, 48, 48, false)).empty());  // 36,864 bytes + the kernel object
  CHECK(contains(err(params(1, 1, 16, 64, 64, false)), "48 KiB"));
  CHECK(err(params(2, 2, 32, 96, 96, false)).empty());  // the same blocks on 2 x 2 PEs
  kern::StreamLinearParams p = params(2, 3, 6, 4, 6, true);
  p.row_color = p.w_color;
  CHECK(contains(err(p), "distinct"));
  p = params(2, 3, 6, 4, 6, true);
  p.south_colors[1] = Color{22};
  CHECK(contains(err(p), "reserved"));
  p = params(2, 3, 6, 4, 6, true);
  p.tasks[2] = p.tasks[0];
  CHECK(contains(err(p), "task ids must be distinct"));
  p = params(2, 3, 6, 4, 6, true);
  p.tasks[1] = TaskId{5};
  CHECK(contains(err(p), "8..30"));
}

// Not part of the suite (skipped): timed cycles of larger layers against the bounds, for
// docs/kernels-stream-linear.md. Run: test_stream_linear --no-skip -tc="*larger*"
TEST_CASE("stream_linear: timed cycles of larger layers" * doctest::skip()) {
  for (const auto& sp : {params(4, 4, 32, 64, 64, true), params(8, 8, 8, 64, 64, true), params(4, 4, 16, 256, 256, false),
                         params(8, 4, 8, 256, 128, false)}) {
    CAPTURE(shape(sp));
    emu::EmuConfig cfg = wse_test::config();
    cfg.timed = true;
    Rig rig(sp, cfg);
    const Data d = rand_data(rig.p, 11);
    std::uint64_t fwd = 0;
    const std::vector<float> Y = rig.forward(d, &fwd);
    const Grads g = rig.backward(d, "backward");
    const Reference r = reference(rig.p, d);
    CHECK(rel_error(Y, r.Y) < 1e-5);
    CHECK(rel_error(g.dW, r.dW) < 1e-5);
    CHECK(fwd >= forward_bound(rig.p));
    CHECK(g.cycles >= backward_bound(rig.p));
    MESSAGE(shape(rig.p) << ": " << kern::stream_linear_bytes_per_pe(rig.p) << " B/PE; forward " << fwd << " cycles (bound "
                         << forward_bound(rig.p) << ", x" << double(fwd) / double(forward_bound(rig.p)) << "), backward "
                         << g.cycles << " cycles (bound " << backward_bound(rig.p) << ", x"
                         << double(g.cycles) / double(backward_bound(rig.p)) << ")");
  }
}
