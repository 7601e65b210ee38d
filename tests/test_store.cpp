// Weight store (wse/stream/store.hpp, optimizer.hpp): deterministic initialization and its
// statistics, the shared parameter file format, save/load in memory and file-backed, a
// file-backed model much larger than its buffers, SGD and AdamW against the PyTorch formulas
// evaluated in double, the step protocol, the replica tree reduction, and errors that name
// the tensor and the file.
#include <doctest/doctest.h>

#include <wse/stream.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace ws = wse::stream;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    for (int attempt = 0;; ++attempt) {
      path = fs::temp_directory_path() / ("wse_test_store_" + std::to_string(rd()) + std::to_string(rd()));
      if (fs::create_directory(path)) break;
      REQUIRE(attempt < 100);
    }
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ws::StoreError& e) {
    return e.what();
  }
  return "";
}

// $WSE_TEST_SMALL (the sanitizer run): smaller models.
bool small() { return std::getenv("WSE_TEST_SMALL") != nullptr; }

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

// A deterministic gradient for tensor `name` in step `step`: smooth, both signs, O(0.1..1).
std::vector<float> gradient(const ws::TensorSpec& t, int step) {
  std::vector<float> g(t.elements());
  const double phase = static_cast<double>(ws::fnv1a64(t.name) % 1000) / 100.0;
  for (std::size_t i = 0; i < g.size(); ++i)
    g[i] = static_cast<float>(0.5 * std::sin(0.37 * static_cast<double>(i) + phase + 1.3 * step) + 0.05 * (step - 2));
  return g;
}

// One full step: every tensor gets gradient(t, step).
void full_step(ws::WeightStore& s, int step) {
  for (const auto& t : s.tensors()) s.apply_gradient(t.name, gradient(t, step));
  s.end_step();
}

ws::ModelSpec micro() {  // every kind of tensor, 20 of them, 194 elements
  return ws::ModelSpec{.name = "micro", .vocab = 5, .context = 3, .d_model = 4, .layers = 1, .heads = 2, .d_ff = 6};
}

// ~21 MB of parameters (5.3 M): wte 2048 x 256 is the largest tensor (2 MB).
ws::ModelSpec mid() {
  if (small()) return ws::ModelSpec{.name = "mid-small", .vocab = 512, .context = 32, .d_model = 128, .layers = 2, .heads = 4, .d_ff = 512};
  return ws::ModelSpec{.name = "mid", .vocab = 2048, .context = 64, .d_model = 256, .layers = 6, .heads = 4, .d_ff = 1024};
}

// Resident set size in bytes from /proc/self/status, or -1 where there is none.
long long rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

std::vector<unsigned char> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("splitmix64 and the normal deviates are the documented algorithms") {
  ws::SplitMix64 r(0);
  CHECK(r.next() == 0xE220A8397B1DCDAFull);  // the published first output for seed 0
  // uniform() is the top 53 bits; normal() is the polar method on two uniforms.
  ws::SplitMix64 a(42), b(42);
  CHECK(a.uniform() == static_cast<double>(b.next() >> 11) * 0x1.0p-53);
  ws::SplitMix64 c(7), d(7);
  double x, y, s;
  do {
    x = 2.0 * d.uniform() - 1.0;
    y = 2.0 * d.uniform() - 1.0;
    s = x * x + y * y;
  } while (!(s > 0.0 && s < 1.0));
  const double f = std::sqrt(-2.0 * std::log(s) / s);
  CHECK(c.normal() == x * f);
  CHECK(c.normal() == y * f);
  CHECK(ws::fnv1a64("") == 0xCBF29CE484222325ull);
  CHECK(ws::fnv1a64("a") == 0xAF63DC4C8601EC8Cull);
}

TEST_CASE("initialization: deterministic, seedable, per-tensor streams, the documented kinds") {
  const ws::ModelSpec m = ws::preset("tiny-gpt2");
  ws::WeightStore s1(m, ws::AdamW{}), s2(m, ws::AdamW{}), s3(m, ws::AdamW{});
  s1.initialize({.seed = 1});
  s2.initialize({.seed = 1});
  s3.initialize({.seed = 2});
  for (const auto& t : s1.tensors()) {
    const auto v = s1.read(t.name);
    CHECK(same_bits(v, s2.read(t.name)));
    switch (ws::init_kind(t)) {
      case ws::InitKind::zeros:
        CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; }));
        break;
      case ws::InitKind::ones:
        CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 1.0f; }));
        break;
      case ws::InitKind::normal:
        CHECK(!same_bits(v, s3.read(t.name)));
        break;
    }
  }
  CHECK(ws::init_kind(s1.tensor("h.1.ln2.weight")) == ws::InitKind::ones);
  CHECK(ws::init_kind(s1.tensor("lnf.weight")) == ws::InitKind::ones);
  CHECK(ws::init_kind(s1.tensor("lnf.bias")) == ws::InitKind::zeros);
  CHECK(ws::init_kind(s1.tensor("h.0.mlp.fc.bias")) == ws::InitKind::zeros);
  CHECK(ws::init_kind(s1.tensor("wte")) == ws::InitKind::normal);
  CHECK(ws::init_kind(s1.tensor("h.0.attn.q.weight")) == ws::InitKind::normal);

  // A tensor's values depend on its name and the seed only: the same name in another model.
  ws::ModelSpec deeper = m;
  deeper.layers = 3;
  ws::WeightStore s4(deeper, ws::Sgd{});
  s4.initialize({.seed = 1});
  CHECK(same_bits(s4.read("wte"), s1.read("wte")));
  CHECK(same_bits(s4.read("h.1.attn.k.weight"), s1.read("h.1.attn.k.weight")));

  // The values are float(std * z) of the tensor's own stream.
  auto rng = ws::tensor_rng(1, "wpe");
  const auto wpe = s1.read("wpe");
  for (std::size_t i = 0; i < 10; ++i) CHECK(wpe[i] == static_cast<float>(0.02 * rng.normal()));

  // GPT-2's scaled residual projections.
  ws::WeightStore s5(m, ws::Sgd{});
  s5.initialize({.seed = 1, .scale_residual = true});
  auto out_rng = ws::tensor_rng(1, "h.0.attn.out.weight");
  const auto out5 = s5.read("h.0.attn.out.weight");
  for (std::size_t i = 0; i < 4; ++i) CHECK(out5[i] == static_cast<float>(0.02 / 2.0 * out_rng.normal()));  // sqrt(2 * 2 layers)
  CHECK(same_bits(s5.read("h.0.attn.q.weight"), s1.read("h.0.attn.q.weight")));
}

TEST_CASE("initialization statistics: normal(0, 0.02)") {
  const ws::ModelSpec m{.name = "stats", .vocab = 1024, .context = 8, .d_model = 256, .layers = 1, .heads = 1, .d_ff = 8};
  ws::WeightStore s(m, ws::Sgd{});
  s.initialize({.seed = 12345});
  const auto w = s.read("wte");  // 262144 values
  const double n = static_cast<double>(w.size());
  double sum = 0, sq = 0, within1 = 0, within2 = 0;
  for (const float x : w) {
    sum += x;
    sq += static_cast<double>(x) * x;
    within1 += std::fabs(x) < 0.02;
    within2 += std::fabs(x) < 0.04;
  }
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  CHECK(std::fabs(mean) < 4 * 0.02 / std::sqrt(n));
  CHECK(sd == doctest::Approx(0.02).epsilon(0.01));
  CHECK(within1 / n == doctest::Approx(0.682689).epsilon(0.01));
  CHECK(within2 / n == doctest::Approx(0.954500).epsilon(0.005));
}

TEST_CASE("the parameter file: parameters(spec) in order, fp32 little-endian, no header; round trips in both backings") {
  TempDir dir;
  const ws::ModelSpec m = ws::preset("tiny-j");
  ws::WeightStore mem(m, ws::AdamW{});
  mem.initialize({.seed = 9});
  mem.save(dir / "a.f32");
  const auto bytes = file_bytes(dir / "a.f32");
  REQUIRE(bytes.size() == ws::parameter_count(m) * 4);

  // Decode the file by hand: little-endian words, tensors back to back.
  std::size_t at = 0;
  for (const auto& t : ws::parameters(m)) {
    const auto v = mem.read(t.name);
    bool equal = true;
    for (std::size_t i = 0; i < v.size(); ++i, at += 4) {
      const std::uint32_t u = std::uint32_t{bytes[at]} | std::uint32_t{bytes[at + 1]} << 8 | std::uint32_t{bytes[at + 2]} << 16 |
                              std::uint32_t{bytes[at + 3]} << 24;
      equal = equal && u == std::bit_cast<std::uint32_t>(v[i]);
    }
    CHECK_MESSAGE(equal, t.name);
    CHECK(same_bits(ws::read_parameter(dir / "a.f32", m, t.name), v));
  }

  // Memory -> file-backed -> file -> memory, bit for bit.
  ws::WeightStore file(m, ws::AdamW{}, {.params = dir / "store.f32", .buffer_bytes = 256});
  CHECK(file.file_backed());
  CHECK(*file.state_file() == fs::path((dir / "store.f32").string() + ".state"));
  file.load(dir / "a.f32");
  file.save(dir / "b.f32");
  CHECK(file_bytes(dir / "b.f32") == bytes);
  file.flush();
  CHECK(file_bytes(dir / "store.f32") == bytes);  // the backing file is itself in the format
  ws::WeightStore back(m, ws::AdamW{});
  back.load(dir / "b.f32");
  for (const auto& t : ws::parameters(m))
    CHECK(same_bits(back.read(t.name), mem.read(t.name)));

  // write() then read() a tensor.
  std::vector<float> v(file.tensor("head.bias").elements());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.25f;
  file.write("head.bias", v);
  CHECK(same_bits(file.read("head.bias"), v));

  // An existing parameter file is used in place.
  file.flush();
  ws::WeightStore reopened(m, ws::AdamW{}, {.params = dir / "store.f32", .keep_existing = true});
  CHECK(same_bits(reopened.read("head.bias"), v));
  CHECK(same_bits(reopened.read("wte"), mem.read("wte")));
}

// The same test as emu/arena.hpp's WSE_EMU_ARENA_ASAN, which this test cannot include: the
// single-header build has only the umbrella headers, and <wse/stream.hpp> has no emulator.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool under_address_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool under_address_sanitizer = true;
#else
constexpr bool under_address_sanitizer = false;
#endif
#else
constexpr bool under_address_sanitizer = false;
#endif

TEST_CASE("file-backed: a model far larger than the buffers is initialized and stepped tensor by tensor") {
  TempDir dir;
  const ws::ModelSpec m = mid();
  const auto tensors = ws::parameters(m);
  std::uint64_t largest = 0;
  for (const auto& t : tensors) largest = std::max(largest, t.elements());
  std::vector<float> g(largest), before(largest), m0(largest, 0.0f), v0(largest, 0.0f);  // allocated before measuring

  const long long rss0 = rss_bytes();
  const std::size_t budget = small() ? 16 * 1024 : 64 * 1024;
  ws::WeightStore s(m, ws::AdamW{.lr = 1e-2}, {.params = dir / "mid.f32", .buffer_bytes = budget});
  s.initialize({.seed = 3});
  const auto wte = s.tensor("wte");
  REQUIRE(wte.elements() * 4 > 8 * budget);  // the tensor is many buffers long
  std::span<float> wte_before(before.data(), wte.elements());
  s.read("wte", wte_before);
  for (const auto& t : tensors) {
    std::span<float> gs(g.data(), t.elements());
    const auto gv = gradient(t, 1);
    std::copy(gv.begin(), gv.end(), gs.begin());
    s.apply_gradient(t.name, gs);
  }
  CHECK(s.end_step() == 1);
  const long long rss1 = rss_bytes();

  const std::uint64_t model_bytes = s.total_elements() * 4;
  MESSAGE("model ", model_bytes / 1000000.0, " MB (+", 2 * model_bytes / 1000000.0, " MB AdamW state); working buffers ",
          s.buffer_bytes(), " bytes; RSS growth ", (rss1 - rss0) / 1000000.0, " MB");
  CHECK(s.buffer_bytes() <= 4 * budget);  // parameters, gradient, exp_avg, exp_avg_sq
  // Resident memory says something only with the plain allocator: ASan keeps freed blocks in
  // its quarantine (25 MB here), and the TSan run is the small one.
  if (rss0 > 0 && !small() && !under_address_sanitizer) CHECK(rss1 - rss0 < static_cast<long long>(model_bytes / 2));

  // The chunked update equals one whole-tensor AdamW update.
  const auto gw = gradient(wte, 1);
  ws::adamw_update(ws::AdamW{.lr = 1e-2}, 1, wte_before, gw, std::span<float>(m0.data(), gw.size()),
                   std::span<float>(v0.data(), gw.size()));
  CHECK(same_bits(s.read("wte"), wte_before));
  CHECK(fs::file_size(dir / "mid.f32") == model_bytes);
  CHECK(fs::file_size(dir / "mid.f32.state") == 40 + 8 * tensors.size() + 2 * model_bytes);
}

TEST_CASE("the run size does not change results: memory and file-backed stores agree bit for bit") {
  TempDir dir;
  const ws::ModelSpec m = ws::preset("tiny-neox");
  for (const ws::Optimizer opt : {ws::Optimizer{ws::AdamW{.lr = 3e-3, .weight_decay = 0.1}},
                                  ws::Optimizer{ws::Sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3}}}) {
    ws::WeightStore a(m, opt);
    ws::WeightStore b(m, opt, {.params = dir / "p.f32", .buffer_bytes = 100});  // 25-element runs
    a.initialize({.seed = 5});
    b.initialize({.seed = 5});
    for (int step = 0; step < 3; ++step) {
      full_step(a, step);
      full_step(b, step);
    }
    for (const auto& t : a.tensors()) CHECK_MESSAGE(same_bits(a.read(t.name), b.read(t.name)), t.name);
  }
}

namespace {

// Runs `steps` full steps on a micro store and the same updates in double from the formulas
// of the PyTorch documentation; compares every element.
void check_against_formulas(const ws::Optimizer& opt, int steps) {
  const ws::ModelSpec m = micro();
  ws::WeightStore s(m, opt);
  s.initialize({.seed = 11});
  struct Ref {
    std::vector<double> p, buf, mom, var;
  };
  std::vector<Ref> ref;
  for (const auto& t : s.tensors()) {
    const auto v = s.read(t.name);
    ref.push_back({std::vector<double>(v.begin(), v.end()), std::vector<double>(v.size()), std::vector<double>(v.size()),
                   std::vector<double>(v.size())});
  }
  for (int step = 1; step <= steps; ++step) {
    for (std::size_t k = 0; k < s.tensors().size(); ++k) {
      const auto& t = s.tensors()[k];
      const auto g = gradient(t, step);
      s.apply_gradient(k, g);
      Ref& r = ref[k];
      for (std::size_t i = 0; i < g.size(); ++i) {
        double gi = g[i];
        if (const auto* o = std::get_if<ws::Sgd>(&opt)) {
          // torch.optim.SGD: g += wd p; b = g (first) | mu b + (1 - tau) g; g = nesterov ? g + mu b : b; p -= lr g
          gi += o->weight_decay * r.p[i];
          if (o->momentum != 0) {
            r.buf[i] = step == 1 ? gi : o->momentum * r.buf[i] + (1 - o->dampening) * gi;
            gi = o->nesterov ? gi + o->momentum * r.buf[i] : r.buf[i];
          }
          r.p[i] -= o->lr * gi;
        } else {
          // torch.optim.AdamW: p *= 1 - lr wd; m, v moving averages; p -= lr m_hat / (sqrt(v_hat) + eps)
          const auto& a = std::get<ws::AdamW>(opt);
          r.p[i] *= 1 - a.lr * a.weight_decay;
          r.mom[i] = a.beta1 * r.mom[i] + (1 - a.beta1) * gi;
          r.var[i] = a.beta2 * r.var[i] + (1 - a.beta2) * gi * gi;
          const double m_hat = r.mom[i] / (1 - std::pow(a.beta1, step));
          const double v_hat = r.var[i] / (1 - std::pow(a.beta2, step));
          r.p[i] -= a.lr * m_hat / (std::sqrt(v_hat) + a.eps);
        }
      }
    }
    CHECK(s.end_step() == static_cast<std::uint64_t>(step));
  }
  double worst = 0;
  for (std::size_t k = 0; k < s.tensors().size(); ++k) {
    const auto v = s.read(k);
    for (std::size_t i = 0; i < v.size(); ++i)
      worst = std::max(worst, std::fabs(v[i] - ref[k].p[i]) / (1e-3 + std::fabs(ref[k].p[i])));
  }
  CHECK(worst < 1e-5);
}

}  // namespace

TEST_CASE("SGD follows torch.optim.SGD") {
  check_against_formulas(ws::Sgd{.lr = 0.1}, 4);
  check_against_formulas(ws::Sgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01}, 5);
  check_against_formulas(ws::Sgd{.lr = 0.05, .momentum = 0.8, .dampening = 0.3}, 5);
  check_against_formulas(ws::Sgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true}, 5);

  // By hand, one element, momentum 0.9, lr 0.1: p0 = 1, g = 0.5, 0.25.
  // step 1: buf = 0.5, p = 1 - 0.05 = 0.95; step 2: buf = 0.45 + 0.25 = 0.7, p = 0.95 - 0.07 = 0.88.
  float p = 1.0f, buf = 0.0f;
  const ws::Sgd o{.lr = 0.1, .momentum = 0.9};
  const float g1 = 0.5f, g2 = 0.25f;
  ws::sgd_update(o, true, {&p, 1}, {&g1, 1}, {&buf, 1});
  CHECK(p == doctest::Approx(0.95).epsilon(1e-7));
  CHECK(buf == 0.5f);
  ws::sgd_update(o, false, {&p, 1}, {&g2, 1}, {&buf, 1});
  CHECK(buf == doctest::Approx(0.7).epsilon(1e-7));
  CHECK(p == doctest::Approx(0.88).epsilon(1e-7));
}

TEST_CASE("AdamW follows torch.optim.AdamW") {
  check_against_formulas(ws::AdamW{}, 5);
  check_against_formulas(ws::AdamW{.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1}, 5);

  // By hand: the first step moves by lr * g / (|g| + eps) after the decay p (1 - lr wd).
  float p = 2.0f, m = 0.0f, v = 0.0f;
  const float g = -0.3f;
  ws::adamw_update(ws::AdamW{.lr = 0.01, .weight_decay = 0.5}, 1, {&p, 1}, {&g, 1}, {&m, 1}, {&v, 1});
  CHECK(p == doctest::Approx(2.0 * (1 - 0.005) + 0.01 * 0.3 / (0.3 + 1e-8)).epsilon(1e-7));
  CHECK(m == doctest::Approx(0.1 * -0.3).epsilon(1e-6));
  CHECK(v == doctest::Approx(0.001 * 0.09).epsilon(1e-6));

  // The step count is per tensor: a tensor that joins late starts its own bias correction.
  const ws::ModelSpec mm = micro();
  ws::WeightStore s(mm, ws::AdamW{});
  s.initialize();
  full_step(s, 1);
  CHECK(s.updates("wte") == 1);
  CHECK(s.updates(0) == 1);
}

TEST_CASE("step protocol: one gradient per tensor per step") {
  ws::WeightStore s(micro(), ws::Sgd{.lr = 0.1, .momentum = 0.9});
  s.initialize();
  const auto& ts = s.tensors();
  CHECK(s.pending().size() == ts.size());
  for (std::size_t k = 0; k + 2 < ts.size(); ++k) s.apply_gradient(k, gradient(ts[k], 0));
  CHECK(s.pending() == std::vector<std::string>{ts[ts.size() - 2].name, ts.back().name});

  const auto before = s.read("wte");
  const std::string dup = error_of([&] { s.apply_gradient("wte", gradient(ts[0], 0)); });
  CHECK(dup.find("'wte'") != std::string::npos);
  CHECK(dup.find("step 1") != std::string::npos);
  CHECK(same_bits(s.read("wte"), before));  // refused before anything changed

  const std::string missing = error_of([&] { s.end_step(); });
  CHECK(missing.find("'lnf.weight'") != std::string::npos);
  CHECK(missing.find("'lnf.bias'") != std::string::npos);
  CHECK(missing.find("2 of " + std::to_string(ts.size()) + " tensors") != std::string::npos);
  CHECK(s.step() == 0);

  s.apply_gradient("lnf.weight", gradient(ts[ts.size() - 2], 0));
  s.apply_gradient(std::string("lnf.bias"), gradient(ts.back(), 0));
  CHECK(s.end_step() == 1);
  CHECK(s.pending().size() == ts.size());
  s.apply_gradient("wte", gradient(ts[0], 1));  // allowed again in step 2
  CHECK(s.updates("wte") == 2);
  CHECK(s.updates("wpe") == 1);
}

TEST_CASE("tree reduction: the documented pairwise order") {
  // Values of very different magnitudes, so the order of fp32 additions shows.
  std::mt19937 gen(17);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const std::size_t n = 64;
  std::vector<std::vector<float>> r(16, std::vector<float>(n));
  for (std::size_t k = 0; k < r.size(); ++k)
    for (auto& x : r[k]) x = u(gen) * std::ldexp(1.0f, static_cast<int>(k % 5) * 6 - 12);
  auto spans = [&](std::size_t first, std::size_t count) {
    std::vector<std::span<const float>> s;
    for (std::size_t k = first; k < first + count; ++k) s.emplace_back(r[k]);
    return s;
  };

  for (std::size_t i = 0; i < n; ++i) {
    auto at = [&](std::size_t k) { return r[k][i]; };
    CHECK(ws::tree_reduce(spans(0, 1))[i] == at(0));
    CHECK(ws::tree_reduce(spans(0, 3))[i] == (at(0) + at(1)) + at(2));
    CHECK(ws::tree_reduce(spans(0, 5))[i] == ((at(0) + at(1)) + (at(2) + at(3))) + at(4));
    CHECK(ws::tree_reduce(spans(0, 6))[i] == ((at(0) + at(1)) + (at(2) + at(3))) + (at(4) + at(5)));
    CHECK(ws::tree_reduce(spans(0, 7))[i] == ((at(0) + at(1)) + (at(2) + at(3))) + ((at(4) + at(5)) + at(6)));
    CHECK(ws::tree_reduce(spans(0, 8))[i] == ((at(0) + at(1)) + (at(2) + at(3))) + ((at(4) + at(5)) + (at(6) + at(7))));
  }
  // The order is real: a left-to-right sum differs somewhere.
  const auto tree = ws::tree_reduce(spans(0, 16));
  bool differs = false;
  for (std::size_t i = 0; i < n; ++i) {
    float seq = 0.0f;
    for (std::size_t k = 0; k < 16; ++k) seq += r[k][i];
    differs = differs || seq != tree[i];
  }
  CHECK(differs);

  // Aligned power-of-two groups reduced first give the same bits (racks of wafers).
  for (const std::size_t group : {1u, 2u, 4u, 8u, 16u}) {
    std::vector<std::vector<float>> partial;
    for (std::size_t first = 0; first < 16; first += group) partial.push_back(ws::tree_reduce(spans(first, group)));
    std::vector<std::span<const float>> ps(partial.begin(), partial.end());
    CHECK_MESSAGE(same_bits(ws::tree_reduce(ps), tree), "groups of ", group);
  }
  {  // 6 = 4 + 2
    const auto a = ws::tree_reduce(spans(0, 4)), b = ws::tree_reduce(spans(4, 2));
    const std::vector<std::span<const float>> ps{a, b};
    CHECK(same_bits(ws::tree_reduce(ps), ws::tree_reduce(spans(0, 6))));
  }

  // GradientTree: any arrival order, the same bits.
  for (const std::size_t replicas : {1u, 2u, 5u, 7u, 16u}) {
    const auto want = ws::tree_reduce(spans(0, replicas));
    std::vector<std::size_t> order(replicas);
    for (std::size_t k = 0; k < replicas; ++k) order[k] = k;
    for (int trial = 0; trial < 6; ++trial) {
      std::shuffle(order.begin(), order.end(), gen);
      ws::GradientTree t(replicas, n);
      for (std::size_t k = 0; k < replicas; ++k) {
        CHECK(!t.complete());
        t.add(order[k], r[order[k]]);
      }
      REQUIRE(t.complete());
      CHECK(same_bits(t.result(), want));
    }
  }
  ws::GradientTree t(3, n);
  t.add(1, r[1]);
  CHECK(error_of([&] { t.add(1, r[1]); }).find("replica 1 arrived twice") != std::string::npos);
  CHECK(error_of([&] { (void)t.result(); }).find("replicas 0, 2") != std::string::npos);
  CHECK(error_of([&] { t.add(0, std::span<const float>(r[0]).first(3)); }).find("3 elements, expected 64") != std::string::npos);
}

TEST_CASE("replicas: the same global batch split over 1, 2, 4, 8, 16 replicas gives the same update") {
  // 16 per-example gradients of every tensor. Each replica sums its contiguous examples with
  // the same tree; the store reduces the replica sums and divides by the global batch (sums
  // convention), or replicas send means and the store divides by the replica count.
  const ws::ModelSpec m = micro();
  const auto tensors = ws::parameters(m);
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<std::vector<std::vector<float>>> ex(tensors.size());  // [tensor][example][element]
  for (std::size_t k = 0; k < tensors.size(); ++k)
    for (int e = 0; e < 16; ++e) {
      ex[k].emplace_back(tensors[k].elements());
      for (auto& x : ex[k].back()) x = u(gen) * (e % 3 == 0 ? 100.0f : 0.01f);
    }

  std::vector<std::vector<float>> results[2];
  for (const int replicas : {1, 2, 4, 8, 16}) {
    for (const bool means : {false, true}) {
      ws::WeightStore s(m, ws::Sgd{.lr = 0.5});
      s.initialize({.seed = 2});
      for (std::size_t k = 0; k < tensors.size(); ++k) {
        const int local = 16 / replicas;
        std::vector<std::vector<float>> sent;
        for (int r = 0; r < replicas; ++r) {
          std::vector<std::span<const float>> mine(ex[k].begin() + r * local, ex[k].begin() + (r + 1) * local);
          sent.push_back(ws::tree_reduce(mine));
          if (means)
            for (auto& x : sent.back()) x /= static_cast<float>(local);
        }
        std::vector<std::span<const float>> parts(sent.begin(), sent.end());
        if (means)
          s.apply_gradients(k, parts);  // divides by the replica count
        else
          s.apply_gradients(k, parts, 16.0f);
      }
      s.end_step();
      std::vector<std::vector<float>> now;
      for (std::size_t k = 0; k < tensors.size(); ++k) now.push_back(s.read(k));
      auto& want = results[means];
      if (want.empty()) want = now;
      for (std::size_t k = 0; k < tensors.size(); ++k)
        CHECK_MESSAGE(same_bits(now[k], want[k]), replicas, " replicas, means ", means, ", ", tensors[k].name);
    }
  }
  CHECK(results[0] == results[1]);  // 16 is a power of two: both conventions are exact

  // apply_gradients == apply_gradient of the reduced mean; braced lists work too.
  ws::WeightStore a(m, ws::AdamW{}), b(m, ws::AdamW{});
  a.initialize();
  b.initialize();
  const auto& g0 = ex[0][0];
  const auto& g1 = ex[0][1];
  const auto& g2 = ex[0][2];
  a.apply_gradients("wte", {g0, g1, g2});
  std::vector<float> mean = ws::tree_reduce(std::vector<std::span<const float>>{g0, g1, g2});
  for (auto& x : mean) x /= 3.0f;
  b.apply_gradient("wte", mean);
  CHECK(same_bits(a.read("wte"), b.read("wte")));
  CHECK(error_of([&] { a.apply_gradients("wpe", {ex[1][0], ex[0][0]}); }).find("gradient of replica 1 for tensor 'wpe'") !=
        std::string::npos);
  CHECK(error_of([&] { a.apply_gradients("wpe", {ex[1][0]}, 0.0f); }).find("'wpe'") != std::string::npos);
}

TEST_CASE("optimizer state: saved, loaded, kept in a file-backed store across reopening") {
  TempDir dir;
  const ws::ModelSpec m = ws::preset("tiny-neo");
  const ws::AdamW opt{.lr = 1e-2, .weight_decay = 0.05};
  ws::WeightStore straight(m, opt);
  straight.initialize({.seed = 4});
  for (int step = 0; step < 3; ++step) full_step(straight, step);

  {  // in memory: save after 2 steps, load into a new store, one more step
    ws::WeightStore s(m, opt);
    s.initialize({.seed = 4});
    full_step(s, 0);
    full_step(s, 1);
    s.save(dir / "p.f32");
    s.save_state(dir / "p.state");
    ws::WeightStore t(m, opt);
    t.load(dir / "p.f32");
    t.load_state(dir / "p.state");
    CHECK(t.step() == 2);
    full_step(t, 2);
    for (const auto& x : ws::parameters(m))
      CHECK_MESSAGE(same_bits(t.read(x.name), straight.read(x.name)), x.name);
  }
  {  // file-backed: two steps, close, reopen keeping the files, third step
    {
      ws::WeightStore s(m, opt, {.params = dir / "f.f32", .state = dir / "f.opt"});
      s.initialize({.seed = 4});
      full_step(s, 0);
      full_step(s, 1);
    }
    ws::WeightStore s(m, opt, {.params = dir / "f.f32", .state = dir / "f.opt", .keep_existing = true});
    CHECK(s.step() == 2);
    CHECK(s.updates("wte") == 2);
    full_step(s, 2);
    for (const auto& x : ws::parameters(m)) CHECK_MESSAGE(same_bits(s.read(x.name), straight.read(x.name)), x.name);
    s.save_state(dir / "copy.state");
    ws::WeightStore t(m, opt);
    t.load_state(dir / "copy.state");
    CHECK(t.step() == 3);

    // reset_state: a fresh optimizer.
    s.reset_state();
    CHECK(s.step() == 0);
    CHECK(s.updates("wte") == 0);
  }
}

TEST_CASE("errors name the tensor and the file") {
  TempDir dir;
  const ws::ModelSpec m = micro();
  ws::WeightStore s(m, ws::AdamW{});
  auto has = [](const std::string& msg, const std::string& part) {
    INFO(msg);
    CHECK(msg.find(part) != std::string::npos);
  };
  has(error_of([&] { (void)s.read("h.0.attn.z.weight"); }), "no tensor 'h.0.attn.z.weight' in model 'micro'");
  has(error_of([&] { (void)s.read(99); }), "tensor index 99 out of range");
  has(error_of([&] { s.apply_gradient("h.0.mlp.fc.weight", std::vector<float>(5)); }),
      "gradient for tensor 'h.0.mlp.fc.weight' has 5 elements; it is 4 x 6 = 24");
  has(error_of([&] { s.write("lnf.bias", std::vector<float>(3)); }), "tensor 'lnf.bias'");

  // A short parameter file: the file and the tensor it ends in.
  s.save(dir / "full.f32");
  fs::copy_file(dir / "full.f32", dir / "short.f32");
  fs::resize_file(dir / "short.f32", (s.offset("h.0.attn.k.weight") + 3) * 4);
  const std::string short_msg = error_of([&] { s.load(dir / "short.f32"); });
  has(short_msg, (dir / "short.f32").string());
  has(short_msg, "ends inside tensor 'h.0.attn.k.weight'");
  has(error_of([&] { s.load(dir / "nonexistent.f32"); }), "nonexistent.f32");
  has(error_of([&] { (void)ws::read_parameter(dir / "short.f32", m, "lnf.bias"); }), "ends inside tensor 'lnf.bias'");

  // keep_existing with a file of the wrong size; a state file of another optimizer.
  has(error_of([&] { ws::WeightStore f(m, ws::AdamW{}, {.params = dir / "short.f32", .keep_existing = true}); }),
      "short.f32' has");
  s.save_state(dir / "adam.state");
  ws::WeightStore sgd(m, ws::Sgd{.momentum = 0.9});
  has(error_of([&] { sgd.load_state(dir / "adam.state"); }), "adam.state' does not match this store: it holds adamw state");
  has(error_of([&] { sgd.load_state(dir / "full.f32"); }), "full.f32' is not a wse state file");

  // One file for parameters and state would overwrite the weights.
  has(error_of([&] { ws::WeightStore x(m, ws::AdamW{}, {.params = dir / "both.f32", .state = dir / "both.f32"}); }),
      "are the same file");
  has(error_of([&] { ws::WeightStore x(m, ws::AdamW{}, {.params = dir / "both.f32", .state = dir / "." / "both.f32"}); }),
      "are the same file");

  // Hyperparameters PyTorch refuses.
  has(error_of([&] { ws::WeightStore x(m, ws::AdamW{.beta2 = 1.0}); }), "adamw: invalid beta2");
  has(error_of([&] { ws::WeightStore x(m, ws::Sgd{.nesterov = true}); }), "sgd: nesterov");
  has(error_of([&] { ws::WeightStore x(m, ws::Sgd{.lr = -1}); }), "invalid learning rate");
}
