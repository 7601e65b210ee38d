// Transformer ops (kernels/transformer_ops.hpp) on the emulator: LayerNorm, GELU, softmax
// cross-entropy and causal self-attention, forward and backward, on 1x1, 2x1, 2x2, 4x2 and
// non-preset grids, against tests/reference_model.hpp (or double host code that mirrors it);
// every run repeated with another thread count and compared bit for bit; timed cycles of a
// LayerNorm on 4x2.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <kernels/transformer_ops.hpp>
#include <string>
#include <vector>

#include "reference_model.hpp"
#include "support.hpp"

using namespace wse;
namespace coll = wse::collectives;
namespace ko = wse::kernels;
namespace ref = wse::stream::reference;

namespace {

// ---- helpers -----------------------------------------------------------------------------

struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>((next() >> 40) * (1.0 / 16777216.0)); }
  std::vector<float> vec(std::size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(lo, hi);
    return v;
  }
};

// Global [rows, cols] row-major <-> per-PE blocks [rows/H, cols/W], PE-major (y * W + x).
std::vector<float> to_blocks(const std::vector<float>& g, std::uint32_t rows, std::uint32_t cols, std::uint16_t W,
                             std::uint16_t H) {
  const std::uint32_t R = rows / H, C = cols / W;
  std::vector<float> b(g.size());
  for (std::uint16_t y = 0; y < H; ++y)
    for (std::uint16_t x = 0; x < W; ++x)
      for (std::uint32_t r = 0; r < R; ++r)
        for (std::uint32_t c = 0; c < C; ++c)
          b[(std::size_t{y} * W + x) * R * C + r * C + c] = g[(std::size_t{y} * R + r) * cols + x * C + c];
  return b;
}
std::vector<float> from_blocks(const std::vector<float>& b, std::uint32_t rows, std::uint32_t cols, std::uint16_t W,
                               std::uint16_t H) {
  const std::uint32_t R = rows / H, C = cols / W;
  std::vector<float> g(b.size());
  for (std::uint16_t y = 0; y < H; ++y)
    for (std::uint16_t x = 0; x < W; ++x)
      for (std::uint32_t r = 0; r < R; ++r)
        for (std::uint32_t c = 0; c < C; ++c)
          g[(std::size_t{y} * R + r) * cols + x * C + c] = b[(std::size_t{y} * W + x) * R * C + r * C + c];
  return g;
}
std::vector<double> dbl(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Normwise relative error: max |a - r| / max |r|.
double rel_err(const std::vector<float>& a, const std::vector<double>& r) {
  REQUIRE(a.size() == r.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - r[i]));
    den = std::max(den, std::abs(r[i]));
  }
  return den > 0 ? num / den : num;
}

// The largest error seen per quantity, printed at the end of each test case.
struct Worst {
  std::vector<std::pair<std::string, double>> e;
  void add(const std::string& what, double v) {
    for (auto& [k, x] : e)
      if (k == what) {
        x = std::max(x, v);
        return;
      }
    e.emplace_back(what, v);
  }
  std::string str() const {
    std::string s;
    char buf[32];
    for (auto& [k, x] : e) {
      std::snprintf(buf, sizeof buf, "%.2e", x);
      s += k + " " + buf + "; ";
    }
    return s;
  }
};

unsigned other_threads() { return wse_test::threads() == 3 ? 1u : 3u; }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---- LayerNorm ---------------------------------------------------------------------------

struct LnParams {
  ko::LayerNormShape ln;
  coll::Params row;
};

template <class PE> struct LnRig {
  using Params = LnParams;
  coll::Collective<PE, float> row;
  ko::LayerNorm<PE> ln;
  Array<float> x, gamma, beta, y, xhat, rstd, dy, dx, dgamma, dbeta;
  void init(PE& pe, const Params& p) {
    coll::attach<&LnRig::row>(pe, *this, p.row);
    ln.init(pe, p.ln, row);
    const std::uint32_t TF = p.ln.tokens * p.ln.features, F = p.ln.features;
    x = alloc<float>(pe, TF), y = alloc<float>(pe, TF), xhat = alloc<float>(pe, TF);
    dy = alloc<float>(pe, TF), dx = alloc<float>(pe, TF);
    gamma = alloc<float>(pe, F), beta = alloc<float>(pe, F), dgamma = alloc<float>(pe, F), dbeta = alloc<float>(pe, F);
    rstd = alloc<float>(pe, p.ln.tokens);
    export_symbol(pe, "x", x), export_symbol(pe, "y", y), export_symbol(pe, "dy", dy), export_symbol(pe, "dx", dx);
    export_symbol(pe, "gamma", gamma), export_symbol(pe, "beta", beta);
    export_symbol(pe, "dgamma", dgamma), export_symbol(pe, "dbeta", dbeta);
    export_function<&LnRig::fwd>(pe, "fwd");
    export_function<&LnRig::bwd>(pe, "bwd");
    bind_local_task<&LnRig::on_ln>(pe, p.ln.task);
  }
  void on_ln(PE& pe) { ln.resume(pe); }
  void fwd(PE& pe) { ln.forward(pe, {x, gamma, beta, y, xhat, rstd}, then_nothing()); }
  void bwd(PE& pe) { ln.backward(pe, {dy, xhat, rstd, gamma, dx, dgamma, dbeta}, then_nothing()); }
};

struct LnOut {
  std::vector<float> y, dx, dgamma, dbeta;  // global layouts; dgamma/dbeta summed over rows
  std::uint64_t fwd_cycles = 0, bwd_cycles = 0;
};

LnOut run_ln(std::uint16_t W, std::uint16_t H, std::uint32_t N, std::uint32_t d, const std::vector<float>& x,
             const std::vector<float>& gamma, const std::vector<float>& beta, const std::vector<float>& dy,
             unsigned threads, bool timed = false) {
  Program prog(arch::wse2, W, H);
  std::vector<coll::Params> rows;
  for (std::uint16_t y = 0; y < H; ++y)
    rows.push_back(coll::allreduce<float>(prog, Rect{Coord{0, y}, W, 1}, N / H, {.name = "ln row"}));
  const TaskId task = prog.allocate_task("layer norm", prog.grid());
  const ko::LayerNormShape shape{.tokens = N / H, .features = d / W, .total_features = d, .eps = 1e-5f, .task = task};
  prog.add_region<LnRig>(prog.grid(), [&](Coord c) { return LnParams{shape, rows[c.y]}; });
  emu::EmuConfig cfg = wse_test::config();
  cfg.threads = threads;
  cfg.timed = timed;
  host::Runtime rt(prog, cfg);
  const Rect g = prog.grid();
  const std::uint32_t TF = shape.tokens * shape.features, F = shape.features;
  rt.memcpy_h2d<float>("x", to_blocks(x, N, d, W, H), g, TF);
  rt.memcpy_h2d<float>("dy", to_blocks(dy, N, d, W, H), g, TF);
  std::vector<float> gb, bb, zero(std::size_t{W} * H * F, 0.0f);
  for (std::uint16_t y = 0; y < H; ++y) {
    gb.insert(gb.end(), gamma.begin(), gamma.end());
    bb.insert(bb.end(), beta.begin(), beta.end());
  }
  rt.memcpy_h2d<float>("gamma", gb, g, F);
  rt.memcpy_h2d<float>("beta", bb, g, F);
  rt.memcpy_h2d<float>("dgamma", zero, g, F);
  rt.memcpy_h2d<float>("dbeta", zero, g, F);
  LnOut out;
  rt.launch("fwd");
  auto r = rt.run();
  REQUIRE_MESSAGE(r.ok(), r.to_string());
  out.fwd_cycles = r.cycles;
  rt.launch("bwd");
  r = rt.run();
  REQUIRE_MESSAGE(r.ok(), r.to_string());
  out.bwd_cycles = r.cycles;
  out.y = from_blocks(rt.read<float>("y", g, TF), N, d, W, H);
  out.dx = from_blocks(rt.read<float>("dx", g, TF), N, d, W, H);
  const auto dg = rt.read<float>("dgamma", g, F), db = rt.read<float>("dbeta", g, F);
  out.dgamma.assign(d, 0.0f);
  out.dbeta.assign(d, 0.0f);
  for (std::uint16_t y = 0; y < H; ++y)  // the host's sum over rows of the per-PE partials
    for (std::uint16_t xx = 0; xx < W; ++xx)
      for (std::uint32_t c = 0; c < F; ++c) {
        out.dgamma[xx * F + c] += dg[(std::size_t{y} * W + xx) * F + c];
        out.dbeta[xx * F + c] += db[(std::size_t{y} * W + xx) * F + c];
      }
  return out;
}

// ---- GELU --------------------------------------------------------------------------------

struct GeluParams {
  std::uint32_t n;
  ko::GeluKind kind;
};

template <class PE> struct GeluRig {
  using Params = GeluParams;
  ko::GeluOp<PE> gelu;
  std::uint32_t n = 0;
  Array<float> x, y, dy, dx;
  void init(PE& pe, const Params& p) {
    gelu.init(pe, p.kind);
    n = p.n;
    x = alloc<float>(pe, n), y = alloc<float>(pe, n), dy = alloc<float>(pe, n), dx = alloc<float>(pe, n);
    export_symbol(pe, "x", x), export_symbol(pe, "y", y), export_symbol(pe, "dy", dy), export_symbol(pe, "dx", dx);
    export_function<&GeluRig::go>(pe, "go");
  }
  void go(PE& pe) {
    gelu.forward(pe, x, y, n);
    gelu.backward(pe, x, dy, dx, n);
  }
};

// ---- cross-entropy -----------------------------------------------------------------------

struct CeParams {
  ko::CrossEntropyShape ce;
  coll::Params rmax, rsum;
};

template <class PE> struct CeRig {
  using Params = CeParams;
  coll::Collective<PE, float> rmax, rsum;
  ko::CrossEntropy<PE> ce;
  Array<float> logits, loss, partial, dlogits;
  Array<std::int32_t> targets;
  void init(PE& pe, const Params& p) {
    coll::attach<&CeRig::rmax>(pe, *this, p.rmax);
    coll::attach<&CeRig::rsum>(pe, *this, p.rsum);
    ce.init(pe, p.ce, rmax, rsum);
    const std::uint32_t T = p.ce.tokens;
    logits = alloc<float>(pe, T * p.ce.vocab), dlogits = alloc<float>(pe, T * p.ce.vocab);
    loss = alloc<float>(pe, T), partial = alloc<float>(pe, 1), targets = alloc<std::int32_t>(pe, T);
    export_symbol(pe, "logits", logits), export_symbol(pe, "dlogits", dlogits), export_symbol(pe, "loss", loss);
    export_symbol(pe, "partial", partial), export_symbol(pe, "targets", targets);
    export_function<&CeRig::fwd>(pe, "fwd");
    export_function<&CeRig::bwd>(pe, "bwd");
    bind_local_task<&CeRig::on_ce>(pe, p.ce.task);
  }
  void on_ce(PE& pe) { ce.resume(pe); }
  void fwd(PE& pe) { ce.forward(pe, {logits, targets, loss, partial}, then_nothing()); }
  void bwd(PE& pe) { ce.backward(pe, {logits, targets, dlogits}); }
};

// ---- attention ---------------------------------------------------------------------------

template <class PE> struct AttnRig {
  using Params = ko::AttentionShape;
  ko::Attention<PE> attn;
  Array<float> q, k, v, ctx, probs, dctx, dq, dk, dv;
  void init(PE& pe, const Params& p) {
    attn.init(pe, p);
    const std::uint32_t TF = attn.tokens() * attn.features(), P = p.seqs * p.heads * p.seq * p.seq;
    q = alloc<float>(pe, TF), k = alloc<float>(pe, TF), v = alloc<float>(pe, TF), ctx = alloc<float>(pe, TF);
    dctx = alloc<float>(pe, TF), dq = alloc<float>(pe, TF), dk = alloc<float>(pe, TF), dv = alloc<float>(pe, TF);
    probs = alloc<float>(pe, P);
    export_symbol(pe, "q", q), export_symbol(pe, "k", k), export_symbol(pe, "v", v), export_symbol(pe, "ctx", ctx);
    export_symbol(pe, "dctx", dctx), export_symbol(pe, "dq", dq), export_symbol(pe, "dk", dk), export_symbol(pe, "dv", dv);
    export_symbol(pe, "probs", probs);
    export_function<&AttnRig::fwd>(pe, "fwd");
    export_function<&AttnRig::bwd>(pe, "bwd");
  }
  void fwd(PE& pe) { attn.forward(pe, q, k, v, ctx, probs); }
  void bwd(PE& pe) { attn.backward(pe, q, k, v, probs, dctx, dq, dk, dv); }
};

}  // namespace

// ==== tests ===============================================================================

TEST_CASE("transformer ops: LayerNorm forward and backward against the reference model") {
  struct Case {
    std::uint16_t W, H;
    std::uint32_t d, B, S;
  };
  const Case cases[] = {{1, 1, 32, 1, 8}, {2, 1, 32, 2, 12}, {2, 2, 32, 4, 8}, {4, 2, 32, 4, 16}, {3, 2, 24, 2, 11}};
  Worst worst;
  for (const Case& c : cases) {
    CAPTURE(c.W);
    CAPTURE(c.H);
    CAPTURE(c.d);
    const std::uint32_t N = c.B * c.S;
    Rng rng(1000 + c.W * 10 + c.H);
    std::vector<float> x = rng.vec(std::size_t{N} * c.d, -2.0f, 2.0f);
    for (std::uint32_t t = 0; t < N; ++t)  // a per-token offset: a mean well away from 0
      for (std::uint32_t f = 0; f < c.d; ++f) x[t * c.d + f] += 3.0f + 0.25f * static_cast<float>(t % 5);
    const auto gamma = rng.vec(c.d, 0.5f, 1.5f), beta = rng.vec(c.d, -0.5f, 0.5f), dy = rng.vec(std::size_t{N} * c.d, -1, 1);
    const LnOut out = run_ln(c.W, c.H, N, c.d, x, gamma, beta, dy, wse_test::threads());
    const ref::Norm n = ref::detail::layer_norm(dbl(x), N, c.d, gamma, beta, 1e-5);
    std::vector<double> dgamma(c.d, 0.0), dbeta(c.d, 0.0);
    const auto dx = ref::detail::layer_norm_backward(n, dbl(dy), N, c.d, gamma, dgamma, dbeta);
    const double e[4] = {rel_err(out.y, n.out), rel_err(out.dx, dx), rel_err(out.dgamma, dgamma), rel_err(out.dbeta, dbeta)};
    worst.add("y", e[0]), worst.add("dx", e[1]), worst.add("dgamma", e[2]), worst.add("dbeta", e[3]);
    CHECK(e[0] < 1e-5);
    CHECK(e[1] < 1e-5);
    CHECK(e[2] < 1e-5);
    CHECK(e[3] < 1e-5);
    const LnOut again = run_ln(c.W, c.H, N, c.d, x, gamma, beta, dy, other_threads());
    CHECK(same_bits(out.y, again.y));
    CHECK(same_bits(out.dx, again.dx));
    CHECK(same_bits(out.dgamma, again.dgamma));
  }
  MESSAGE("LayerNorm max normwise relative errors: " << worst.str());
}

TEST_CASE("transformer ops: LayerNorm timed cycles on 4x2") {
  const std::uint32_t N = 64, d = 32;  // B 4, S 16: 32 tokens x 8 features per PE
  Rng rng(7);
  const auto x = rng.vec(N * d, -2, 2), gamma = rng.vec(d, 0.5f, 1.5f), beta = rng.vec(d, -0.5f, 0.5f),
             dy = rng.vec(N * d, -1, 1);
  const LnOut t = run_ln(4, 2, N, d, x, gamma, beta, dy, wse_test::threads(), true);
  const LnOut u = run_ln(4, 2, N, d, x, gamma, beta, dy, other_threads(), true);
  CHECK(t.fwd_cycles == u.fwd_cycles);
  CHECK(t.bwd_cycles == u.bwd_cycles);
  const LnOut f = run_ln(4, 2, N, d, x, gamma, beta, dy, wse_test::threads(), false);
  CHECK(same_bits(t.y, f.y));
  CHECK(same_bits(t.dx, f.dx));
  CHECK(t.fwd_cycles > 0);
  MESSAGE("LayerNorm 4x2 grid, 32 tokens x 8 features per PE (d 32), WSE-2 timed: forward " << t.fwd_cycles
                                                                                          << " cycles, backward "
                                                                                          << t.bwd_cycles << " cycles");
}

TEST_CASE("transformer ops: GELU tanh and erf, forward and backward") {
  Worst worst;
  for (ko::GeluKind kind : {ko::GeluKind::tanh, ko::GeluKind::erf}) {
    const std::uint16_t W = 2, H = 2;
    const std::uint32_t n = 256;
    Rng rng(kind == ko::GeluKind::tanh ? 11 : 12);
    auto x = rng.vec(std::size_t{W} * H * n, -6.0f, 6.0f);
    x[0] = 0.0f, x[1] = -12.0f, x[2] = 12.0f, x[3] = 1e-6f, x[4] = -30.0f, x[5] = 3.0f;
    const auto dy = rng.vec(x.size(), -1, 1);
    auto run = [&](unsigned threads) {
      Program prog(arch::wse2, W, H);
      prog.add_region<GeluRig>(prog.grid(), GeluParams{n, kind});
      emu::EmuConfig cfg = wse_test::config();
      cfg.threads = threads;
      host::Runtime rt(prog, cfg);
      rt.memcpy_h2d<float>("x", x, prog.grid(), n);
      rt.memcpy_h2d<float>("dy", dy, prog.grid(), n);
      rt.launch("go");
      const auto r = rt.run();
      REQUIRE_MESSAGE(r.ok(), r.to_string());
      return std::pair{rt.read<float>("y", prog.grid(), n), rt.read<float>("dx", prog.grid(), n)};
    };
    const auto [y, dx] = run(wse_test::threads());
    const stream::Gelu rk = kind == ko::GeluKind::tanh ? stream::Gelu::tanh : stream::Gelu::erf;
    // Elementwise relative error with a floor of 1e-20 on the denominator: for x <= -12 the
    // reference's 1 + erf(x / sqrt 2) cancels to exactly 0 in double, where the op returns the
    // true value (about 1e-32), so a pure relative error there would measure the reference.
    double ey = 0, edx = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double ry = ref::detail::gelu(x[i], rk), rdx = dy[i] * ref::detail::gelu_derivative(x[i], rk);
      ey = std::max(ey, std::abs(y[i] - ry) / std::max(std::abs(ry), 1e-20));
      edx = std::max(edx, std::abs(dx[i] - rdx) / std::max(std::abs(rdx), 1e-20));
    }
    const std::string name = kind == ko::GeluKind::tanh ? "tanh" : "erf";
    worst.add(name + " y", ey), worst.add(name + " dx", edx);
    CHECK(ey < 1e-5);
    CHECK(edx < 1e-5);
    const auto [y2, dx2] = run(other_threads());
    CHECK(same_bits(y, y2));
    CHECK(same_bits(dx, dx2));
  }
  MESSAGE("GELU max elementwise relative errors: " << worst.str());
}

TEST_CASE("transformer ops: softmax cross-entropy over a vocab split across rows") {
  struct Case {
    std::uint16_t W, H;
    std::uint32_t V, B, S;
  };
  const Case cases[] = {{1, 1, 64, 1, 8}, {2, 1, 64, 2, 8}, {2, 2, 64, 2, 12}, {4, 2, 64, 4, 16}, {3, 2, 36, 4, 5}};
  Worst worst;
  for (const Case& c : cases) {
    CAPTURE(c.W);
    CAPTURE(c.H);
    CAPTURE(c.V);
    const std::uint32_t N = c.B * c.S, T = N / c.H, Vb = c.V / c.W;
    Rng rng(2000 + c.W * 10 + c.H);
    auto logits = rng.vec(std::size_t{N} * c.V, -4.0f, 4.0f);
    for (std::uint32_t t = 0; t < N; ++t) logits[t * c.V + (t * 7) % c.V] += 20.0f;  // a dominant logit: max matters
    std::vector<std::int32_t> targets(N);
    for (auto& t : targets) t = static_cast<std::int32_t>(rng.next() % c.V);
    auto run = [&](unsigned threads) {
      Program prog(arch::wse2, c.W, c.H);
      std::vector<coll::Params> mx, sm;
      for (std::uint16_t y = 0; y < c.H; ++y) {
        const Rect row{Coord{0, y}, c.W, 1};
        mx.push_back(coll::allreduce<float>(prog, row, T, {.op = coll::Op::max, .name = "ce max"}));
        sm.push_back(coll::allreduce<float>(prog, row, 2 * T, {.name = "ce sum"}));
      }
      const TaskId task = prog.allocate_task("cross-entropy", prog.grid());
      prog.add_region<CeRig>(prog.grid(), [&](Coord pc) {
        return CeParams{{.tokens = T, .vocab = Vb, .vocab_begin = pc.x * Vb, .total_tokens = N, .task = task}, mx[pc.y], sm[pc.y]};
      });
      emu::EmuConfig cfg = wse_test::config();
      cfg.threads = threads;
      host::Runtime rt(prog, cfg);
      const Rect g = prog.grid();
      rt.memcpy_h2d<float>("logits", to_blocks(logits, N, c.V, c.W, c.H), g, T * Vb);
      std::vector<std::int32_t> tb;  // every PE of row y: the targets of its tokens
      for (std::uint16_t y = 0; y < c.H; ++y)
        for (std::uint16_t x = 0; x < c.W; ++x) tb.insert(tb.end(), targets.begin() + y * T, targets.begin() + (y + 1) * T);
      rt.memcpy_h2d<std::int32_t>("targets", tb, g, T);
      rt.launch("fwd");
      auto r = rt.run();
      REQUIRE_MESSAGE(r.ok(), r.to_string());
      rt.launch("bwd");
      r = rt.run();
      REQUIRE_MESSAGE(r.ok(), r.to_string());
      const auto partial = rt.read<float>("partial", g, 1);
      float loss = 0.0f;  // the host's sum of the per-PE partials
      for (float p : partial) loss += p;
      return std::pair{std::vector<float>{loss}, from_blocks(rt.read<float>("dlogits", g, T * Vb), N, c.V, c.W, c.H)};
    };
    const auto [loss, dlogits] = run(wse_test::threads());
    double total = 0.0;  // double host reference, as ReferenceModel::forward / backward
    std::vector<double> rd(std::size_t{N} * c.V);
    for (std::uint32_t t = 0; t < N; ++t) {
      const float* z = &logits[t * c.V];
      double mx = z[0], sum = 0.0;
      for (std::uint32_t v = 0; v < c.V; ++v) mx = std::max(mx, double{z[v]});
      for (std::uint32_t v = 0; v < c.V; ++v) sum += std::exp(z[v] - mx);
      total += mx + std::log(sum) - z[targets[t]];
      for (std::uint32_t v = 0; v < c.V; ++v)
        rd[t * c.V + v] = (std::exp(z[v] - mx) / sum - (static_cast<std::int32_t>(v) == targets[t] ? 1.0 : 0.0)) / N;
    }
    const double el = std::abs(loss[0] - total / N) / (total / N), ed = rel_err(dlogits, rd);
    worst.add("loss", el), worst.add("dlogits", ed);
    CHECK(el < 1e-5);
    CHECK(ed < 1e-5);
    const auto [loss2, dlogits2] = run(other_threads());
    CHECK(same_bits(loss, loss2));
    CHECK(same_bits(dlogits, dlogits2));
  }
  MESSAGE("cross-entropy max relative errors: " << worst.str());
}

TEST_CASE("transformer ops: causal self-attention with scale, local window and rotary") {
  struct Case {
    std::uint16_t W, H;
    std::uint32_t d, heads, B, S, rotary;
    stream::RotaryStyle style;
    std::uint32_t window;
    bool scale;
  };
  using RS = stream::RotaryStyle;
  const Case cases[] = {
      {1, 1, 32, 4, 1, 8, 0, RS::interleaved, 0, true},   {2, 1, 32, 4, 2, 12, 8, RS::interleaved, 0, true},
      {2, 2, 32, 4, 4, 8, 4, RS::half, 5, false},         {4, 2, 32, 4, 4, 16, 8, RS::half, 0, true},
      {4, 2, 32, 4, 2, 10, 6, RS::interleaved, 3, true},  {3, 2, 24, 3, 2, 7, 4, RS::half, 4, true},
  };
  Worst worst;
  for (const Case& c : cases) {
    CAPTURE(c.W);
    CAPTURE(c.H);
    CAPTURE(c.rotary);
    CAPTURE(c.window);
    const std::uint32_t N = c.B * c.S, d = c.d, hd = d / c.heads, T = N / c.H, F = d / c.W;
    stream::ModelSpec m;
    m.d_model = d, m.heads = c.heads, m.rotary_dims = c.rotary, m.rotary_style = c.style, m.scale_attention = c.scale;
    m.positions = c.rotary ? stream::Positions::rotary : stream::Positions::learned;
    m.local_window = c.window, m.local_layers = c.window ? stream::LocalLayers::all : stream::LocalLayers::none;
    Rng rng(3000 + c.W * 10 + c.H + c.window);
    const auto q = rng.vec(std::size_t{N} * d, -1.5f, 1.5f), k = rng.vec(std::size_t{N} * d, -1.5f, 1.5f),
               v = rng.vec(std::size_t{N} * d, -1, 1), dctx = rng.vec(std::size_t{N} * d, -1, 1);
    const ko::AttentionShape shape{.seqs = c.B / c.H, .seq = c.S, .heads = c.heads / c.W, .head_dim = hd, .scale = c.scale,
                                   .window = c.window, .rotary_dims = c.rotary, .rotary_half = c.style == RS::half,
                                   .rotary_base = 10000.0f};
    struct Out {
      std::vector<float> ctx, dq, dk, dv;
    };
    auto run = [&](unsigned threads) {
      Program prog(arch::wse2, c.W, c.H);
      prog.add_region<AttnRig>(prog.grid(), shape);
      emu::EmuConfig cfg = wse_test::config();
      cfg.threads = threads;
      host::Runtime rt(prog, cfg);
      const Rect g = prog.grid();
      rt.memcpy_h2d<float>("q", to_blocks(q, N, d, c.W, c.H), g, T * F);
      rt.memcpy_h2d<float>("k", to_blocks(k, N, d, c.W, c.H), g, T * F);
      rt.memcpy_h2d<float>("v", to_blocks(v, N, d, c.W, c.H), g, T * F);
      rt.memcpy_h2d<float>("dctx", to_blocks(dctx, N, d, c.W, c.H), g, T * F);
      rt.launch("fwd");
      auto r = rt.run();
      REQUIRE_MESSAGE(r.ok(), r.to_string());
      rt.launch("bwd");
      r = rt.run();
      REQUIRE_MESSAGE(r.ok(), r.to_string());
      auto rd = [&](const char* s) { return from_blocks(rt.read<float>(s, g, T * F), N, d, c.W, c.H); };
      return Out{rd("ctx"), rd("dq"), rd("dk"), rd("dv")};
    };
    const Out out = run(wse_test::threads());

    // Double host reference: the core of ReferenceModel::attention_forward / _backward.
    std::vector<double> Q = dbl(q), K = dbl(k), V = dbl(v), C(std::size_t{N} * d, 0.0);
    if (c.rotary) ref::detail::rotary(Q, m, c.S, N, false), ref::detail::rotary(K, m, c.S, N, false);
    const double scale = ref::detail::attention_scale(m);
    const std::uint32_t S = c.S;
    std::vector<double> P(std::size_t{c.B} * c.heads * S * S, 0.0);
    for (std::uint32_t n = 0; n < c.B; ++n)
      for (std::uint32_t h = 0; h < c.heads; ++h)
        for (std::uint32_t i = 0; i < S; ++i) {
          double* pr = &P[((n * c.heads + h) * S + i) * S];
          double mx = -1e300, sum = 0;
          for (std::uint32_t j = 0; j < S; ++j)
            if (ref::detail::visible(m, 0, i, j)) {
              double s = 0;
              for (std::uint32_t e = 0; e < hd; ++e) s += Q[(n * S + i) * d + h * hd + e] * K[(n * S + j) * d + h * hd + e];
              pr[j] = s * scale, mx = std::max(mx, pr[j]);
            }
          for (std::uint32_t j = 0; j < S; ++j)
            if (ref::detail::visible(m, 0, i, j)) sum += (pr[j] = std::exp(pr[j] - mx));
          for (std::uint32_t j = 0; j < S; ++j)
            if (ref::detail::visible(m, 0, i, j)) {
              pr[j] /= sum;
              for (std::uint32_t e = 0; e < hd; ++e) C[(n * S + i) * d + h * hd + e] += pr[j] * V[(n * S + j) * d + h * hd + e];
            }
        }
    std::vector<double> dQ(C.size(), 0.0), dK(C.size(), 0.0), dV(C.size(), 0.0), dp(S);
    for (std::uint32_t n = 0; n < c.B; ++n)
      for (std::uint32_t h = 0; h < c.heads; ++h)
        for (std::uint32_t i = 0; i < S; ++i) {
          const double* pr = &P[((n * c.heads + h) * S + i) * S];
          double dot = 0;
          for (std::uint32_t j = 0; j < S; ++j) {
            dp[j] = 0;
            if (!ref::detail::visible(m, 0, i, j)) continue;
            for (std::uint32_t e = 0; e < hd; ++e) {
              dp[j] += dctx[(n * S + i) * d + h * hd + e] * V[(n * S + j) * d + h * hd + e];
              dV[(n * S + j) * d + h * hd + e] += pr[j] * dctx[(n * S + i) * d + h * hd + e];
            }
            dot += pr[j] * dp[j];
          }
          for (std::uint32_t j = 0; j < S; ++j) {
            if (!ref::detail::visible(m, 0, i, j)) continue;
            const double ds = pr[j] * (dp[j] - dot) * scale;
            for (std::uint32_t e = 0; e < hd; ++e) {
              dQ[(n * S + i) * d + h * hd + e] += ds * K[(n * S + j) * d + h * hd + e];
              dK[(n * S + j) * d + h * hd + e] += ds * Q[(n * S + i) * d + h * hd + e];
            }
          }
        }
    if (c.rotary) ref::detail::rotary(dQ, m, c.S, N, true), ref::detail::rotary(dK, m, c.S, N, true);
    const double e[4] = {rel_err(out.ctx, C), rel_err(out.dq, dQ), rel_err(out.dk, dK), rel_err(out.dv, dV)};
    worst.add("context", e[0]), worst.add("dq", e[1]), worst.add("dk", e[2]), worst.add("dv", e[3]);
    for (double x : e) CHECK(x < 1e-5);
    const Out again = run(other_threads());
    CHECK(same_bits(out.ctx, again.ctx));
    CHECK(same_bits(out.dq, again.dq));
    CHECK(same_bits(out.dk, again.dk));
    CHECK(same_bits(out.dv, again.dv));
  }
  MESSAGE("attention max normwise relative errors: " << worst.str());
}

TEST_CASE("transformer ops: the freestanding log and sqrt agree with <cmath> and end on inf, NaN and 0") {
  namespace m = ko::transformer_ops_math;
  const double inf = HUGE_VAL;
  // +inf used to loop forever in the range reduction (a LayerNorm or loss fed inf hung).
  CHECK(m::log(inf) == inf);
  CHECK(m::sqrt(inf) == inf);
  CHECK(std::isnan(m::log(std::nan(""))));
  CHECK(std::isnan(m::sqrt(std::nan(""))));
  CHECK(std::isnan(m::log(-1.0)));
  CHECK(std::isnan(m::sqrt(-1.0)));
  CHECK(m::log(0.0) == -inf);
  CHECK(m::sqrt(0.0) == 0.0);
  double worst_log = 0, worst_sqrt = 0;
  for (double x = 1e-300; x < 1e300; x *= 7.3) {
    worst_log = std::max(worst_log, std::abs(m::log(x) - std::log(x)) / std::max(1.0, std::abs(std::log(x))));
    worst_sqrt = std::max(worst_sqrt, std::abs(m::sqrt(x) - std::sqrt(x)) / std::sqrt(x));
  }
  CHECK(worst_log < 1e-14);
  CHECK(worst_sqrt < 1e-15);
  CHECK(m::log(1.7976931348623157e308) == doctest::Approx(std::log(1.7976931348623157e308)));
}
