// The host reference model (tests/reference_model.hpp) against an independent PyTorch model
// (tests/torch_reference.py): loss, every first-step gradient, and five optimizer steps, for
// every tiny preset and one held-out spec no preset has. Needs /usr/bin/python3 with torch
// (Debian python3-torch); WSE_SKIP_TORCH=1 skips the PyTorch comparison.
#include "reference_model.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using wse::stream::ModelSpec;
using wse::stream::reference::Activations;
using wse::stream::reference::Batch;
using wse::stream::reference::ReferenceModel;
using wse::stream::reference::Tensors;

// ---------------------------------------------------------------- deterministic data

struct Rng {  // splitmix64
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double normal() {  // Box-Muller
    return std::sqrt(-2.0 * std::log(uniform())) * std::cos(2.0 * 3.14159265358979323846 * uniform());
  }
};

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Small normal weights: matrices ~ N(0, 0.8^2 / fan_in), embeddings ~ N(0, 0.3^2), biases
// ~ N(0, 0.05^2), layer-norm weights 1 + N(0, 0.1^2).
Tensors init_weights(const ReferenceModel& model, std::uint64_t seed) {
  Rng rng{seed};
  Tensors w;
  for (const auto& t : model.tensors()) {
    const bool norm = t.name.rfind("ln", 0) == 0 || t.name.find(".ln") != std::string::npos;
    double mean = 0.0, sd;
    if (t.name == "wte" || t.name == "wpe") sd = 0.3;
    else if (norm && ends_with(t.name, ".weight")) mean = 1.0, sd = 0.1;
    else if (ends_with(t.name, ".bias")) sd = 0.05;
    else sd = 0.8 / std::sqrt(static_cast<double>(t.rows));
    std::vector<float> v(static_cast<std::size_t>(t.elements()));
    for (auto& x : v) x = static_cast<float>(mean + sd * rng.normal());
    w.push_back(std::move(v));
  }
  return w;
}

struct Optimizer {
  bool adamw = false;
  double lr = 0.0, momentum = 0.0, weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;

  std::string json() const {
    char buf[256];
    if (adamw)
      std::snprintf(buf, sizeof buf,
                    R"({"optimizer": "adamw", "lr": %.17g, "betas": [%.17g, %.17g], "eps": %.17g, "weight_decay": %.17g)",
                    lr, beta1, beta2, eps, weight_decay);
    else
      std::snprintf(buf, sizeof buf, R"({"optimizer": "sgd", "lr": %.17g, "momentum": %.17g, "weight_decay": %.17g)", lr,
                    momentum, weight_decay);
    return buf;
  }
};

// The same update rules torch.optim.SGD (dampening 0, no Nesterov) and torch.optim.AdamW
// apply, written out plainly; state in double, weights fp32.
struct OptimizerState {
  Optimizer opt;
  std::vector<std::vector<double>> m, v;
  int t = 0;

  void step(Tensors& w, const Tensors& g) {
    if (m.empty())
      for (const auto& x : w) m.emplace_back(x.size(), 0.0), v.emplace_back(x.size(), 0.0);
    ++t;
    for (std::size_t i = 0; i < w.size(); ++i)
      for (std::size_t j = 0; j < w[i].size(); ++j) {
        double p = w[i][j], gr = g[i][j];
        if (!opt.adamw) {
          gr += opt.weight_decay * p;
          m[i][j] = t == 1 ? gr : opt.momentum * m[i][j] + gr;
          p -= opt.lr * m[i][j];
        } else {
          p *= 1.0 - opt.lr * opt.weight_decay;
          m[i][j] = opt.beta1 * m[i][j] + (1.0 - opt.beta1) * gr;
          v[i][j] = opt.beta2 * v[i][j] + (1.0 - opt.beta2) * gr * gr;
          const double mhat = m[i][j] / (1.0 - std::pow(opt.beta1, t));
          const double vhat = v[i][j] / (1.0 - std::pow(opt.beta2, t));
          p -= opt.lr * mhat / (std::sqrt(vhat) + opt.eps);
        }
        w[i][j] = static_cast<float>(p);
      }
  }
};

// ---------------------------------------------------------------- files

template <class T>
void write_bin(const fs::path& p, const std::vector<T>& v) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
  REQUIRE_MESSAGE(f.good(), "cannot write " << p);
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p);
  f << s;
  REQUIRE_MESSAGE(f.good(), "cannot write " << p);
}

std::vector<float> read_floats(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / sizeof(float));
  std::copy(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(v.size() * sizeof(float)),
            reinterpret_cast<char*>(v.data()));
  return v;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

fs::path script_path() {
#ifdef WSE_TORCH_REFERENCE_SCRIPT
  return fs::path(WSE_TORCH_REFERENCE_SCRIPT);
#else
  return fs::absolute(fs::path(__FILE__).parent_path() / "torch_reference.py");
#endif
}

// The interpreter: /usr/bin/python3 (Debian's python3-torch), or $WSE_TORCH_PYTHON.
std::string python() {
  const char* e = std::getenv("WSE_TORCH_PYTHON");
  return e && *e ? e : "/usr/bin/python3";
}

bool skip_torch() {
  const char* e = std::getenv("WSE_SKIP_TORCH");
  return e && std::string(e) == "1";
}

// Fails the test (with how to fix it) when torch is missing; checked once per process.
bool torch_ready() {
  static const int status = std::system((python() + " -c 'import torch' >/dev/null 2>&1").c_str());
  REQUIRE_MESSAGE(status == 0, python() << " cannot import torch: install Debian's python3-torch "
                                          "(apt-get install python3-torch), or set WSE_SKIP_TORCH=1 to skip "
                                          "the PyTorch comparison");
  REQUIRE_MESSAGE(fs::exists(script_path()), "missing " << script_path());
  return true;
}

// ---------------------------------------------------------------- comparison

// Largest |a - b| over a tensor divided by max(largest |b| in the tensor, floor). `skip`, when
// given, marks elements left out.
double rel_max_diff(const std::vector<float>& a, const float* b, std::size_t n, double floor = 0.0,
                    const std::vector<bool>* skip = nullptr) {
  double diff = 0.0, scale = floor;
  for (std::size_t i = 0; i < n; ++i) {
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    if (!skip || !(*skip)[i]) diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

struct Case {
  ModelSpec spec;
  Optimizer opt;
  std::uint32_t batch = 2, seq = 12;
  std::uint32_t steps = 6;  // losses before each step: the last is the loss after 5 updates
  std::uint64_t seed = 1;
};

void compare_with_torch(const Case& c) {
  if (skip_torch()) {
    MESSAGE("WSE_SKIP_TORCH=1: skipping the PyTorch comparison for " << c.spec.name);
    return;
  }
  torch_ready();
  const ReferenceModel model(c.spec);
  const auto& specs = model.tensors();
  Tensors w = init_weights(model, c.seed);

  // Tokens [steps, batch, seq + 1]: mostly next = (3 * previous + 1) mod vocab, one token in
  // five random, so there is something to learn and the loss falls.
  Rng rng{c.seed * 7919 + 13};
  const std::uint32_t row = c.seq + 1;
  std::vector<std::int32_t> tokens(std::size_t{c.steps} * c.batch * row);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const bool random = i % row == 0 || rng.next() % 5 == 0;
    tokens[i] = static_cast<std::int32_t>(random ? rng.next() % c.spec.vocab : (3 * tokens[i - 1] + 1) % c.spec.vocab);
  }
  auto batch_of = [&](std::uint32_t step) {
    Batch b{c.batch, c.seq, {}, {}};
    for (std::uint32_t n = 0; n < c.batch; ++n)
      for (std::uint32_t s = 0; s < c.seq; ++s) {
        const std::size_t base = (std::size_t{step} * c.batch + n) * row;
        b.inputs.push_back(tokens[base + s]);
        b.targets.push_back(tokens[base + s + 1]);
      }
    return b;
  };

  // The input directory.
  const fs::path dir = fs::temp_directory_path() /
                       ("wse_torch_ref_" + c.spec.name + "_" + std::to_string(static_cast<long>(::getpid())));
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_text(dir / "model.json", wse::stream::to_json(c.spec));
  write_text(dir / "config.json", c.opt.json() + ", \"steps\": " + std::to_string(c.steps) +
                                      ", \"batch\": " + std::to_string(c.batch) + ", \"seq\": " + std::to_string(c.seq) + "}");
  {
    std::string list;
    std::vector<float> flat;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      list += specs[i].name + " " + std::to_string(specs[i].rows) + " " + std::to_string(specs[i].cols) + "\n";
      flat.insert(flat.end(), w[i].begin(), w[i].end());
    }
    write_text(dir / "tensors.txt", list);
    write_bin(dir / "weights.bin", flat);
  }
  write_bin(dir / "tokens.bin", tokens);

  const auto t0 = std::chrono::steady_clock::now();
  const std::string cmd = python() + " '" + script_path().string() + "' '" + dir.string() + "' > '" +
                          (dir / "log.txt").string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE_MESSAGE(rc == 0, "torch_reference.py failed for " << c.spec.name << " (inputs kept in " << dir.string() << "):\n" << read_text(dir / "log.txt"));

  std::size_t n_params = 0;
  for (const auto& t : specs) n_params += static_cast<std::size_t>(t.elements());
  const std::vector<float> out = read_floats(dir / "out.bin");
  REQUIRE(out.size() == c.steps + 2 * n_params);
  const float* torch_losses = out.data();
  const float* torch_grads = out.data() + c.steps;
  const float* torch_final = torch_grads + n_params;

  // Loss before every step; every gradient at the first step.
  OptimizerState opt{c.opt, {}, {}, 0};
  double worst_grad = 0.0, worst_loss = 0.0;
  std::string worst_grad_name;
  std::vector<std::vector<bool>> zero_grad;  // elements whose exact first-step gradient is 0
  std::size_t n_zero = 0;
  for (std::uint32_t step = 0; step < c.steps; ++step) {
    const auto r = model.loss_and_grads(w, batch_of(step));
    const double rel = std::abs(r.loss - torch_losses[step]) / std::abs(static_cast<double>(torch_losses[step]));
    worst_loss = std::max(worst_loss, rel);
    INFO(c.spec.name << " step " << step << ": C++ loss " << r.loss << ", torch " << torch_losses[step]);
    CHECK(rel <= (step == 0 ? 1e-5 : 1e-4));
    if (step == 0) {
      // Some gradients are exactly zero in exact arithmetic (the key bias on features without
      // rotary: softmax ignores a score offset shared by all keys); torch returns fp32 rounding
      // noise there. So each tensor's scale is at least 1e-3 of the model's largest gradient.
      double global = 0.0;
      for (std::size_t j = 0; j < n_params; ++j) global = std::max(global, std::abs(static_cast<double>(torch_grads[j])));
      const float* tg = torch_grads;
      for (std::size_t i = 0; i < specs.size(); ++i) {
        const double d = rel_max_diff(r.grads[i], tg, r.grads[i].size(), 1e-3 * global);
        if (d > worst_grad) worst_grad = d, worst_grad_name = specs[i].name;
        INFO(c.spec.name << " gradient " << specs[i].name << ": max |C++ - torch| / max |torch| = " << d);
        CHECK(d <= 1e-4);
        tg += r.grads[i].size();
        zero_grad.emplace_back(r.grads[i].size());
        for (std::size_t j = 0; j < r.grads[i].size(); ++j)
          if (std::abs(static_cast<double>(r.grads[i][j])) <= 1e-12 * global) zero_grad.back()[j] = true, ++n_zero;
      }
    }
    opt.step(w, r.grads);
  }

  // Final weights after the steps, relative to each tensor's largest weight. AdamW turns the
  // rounding noise torch has where the exact gradient is zero into steps of up to lr, so those
  // elements (found from the double-precision C++ gradient) are left out for AdamW.
  double worst_weight = 0.0;
  std::string worst_weight_name;
  const float* tf = torch_final;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const double d = rel_max_diff(w[i], tf, w[i].size(), 0.0, c.opt.adamw ? &zero_grad[i] : nullptr);
    if (d > worst_weight) worst_weight = d, worst_weight_name = specs[i].name;
    tf += w[i].size();
  }
  CHECK_MESSAGE(worst_weight <= 1e-4, c.spec.name << " final weights: worst tensor " << worst_weight_name);
  const std::string kind = c.opt.adamw ? "AdamW" : "SGD+momentum";
  MESSAGE(c.spec.name << " (" << kind << ", batch " << c.batch << ", seq " << c.seq << "): loss rel diff " << worst_loss
                      << " over " << c.steps << " steps (loss " << torch_losses[0] << " -> " << torch_losses[c.steps - 1]
                      << "); worst gradient " << worst_grad << " (" << worst_grad_name << "); final weights "
                      << worst_weight << " (" << worst_weight_name << ", " << n_zero
                      << " zero-gradient elements); torch run " << secs << " s");
  fs::remove_all(dir);
}

Optimizer sgd() { return Optimizer{.adamw = false, .lr = 0.1, .momentum = 0.9, .weight_decay = 0.01}; }
Optimizer adamw() { return Optimizer{.adamw = true, .lr = 1e-2, .weight_decay = 0.1}; }

// A model a new user would write: no preset has rotary "half" with sequential residuals, a
// local window on every layer, three heads of 8, an untied head without bias, odd sizes.
ModelSpec held_out() {
  return ModelSpec{.name = "held-out-24x3",
                   .vocab = 37,
                   .context = 20,
                   .d_model = 24,
                   .layers = 3,
                   .heads = 3,
                   .d_ff = 40,
                   .positions = wse::stream::Positions::rotary,
                   .rotary_dims = 4,
                   .rotary_style = wse::stream::RotaryStyle::half,
                   .residual = wse::stream::Residual::sequential,
                   .gelu = wse::stream::Gelu::erf,
                   .local_window = 5,
                   .local_layers = wse::stream::LocalLayers::all,
                   .scale_attention = true,
                   .qkv_bias = true,
                   .attn_out_bias = false,
                   .mlp_bias = true,
                   .tied_head = false,
                   .head_bias = false,
                   .layer_norm_eps = 1e-6f};
}

}  // namespace

TEST_CASE("torch reference: tiny-gpt2") {
  compare_with_torch({wse::stream::preset("tiny-gpt2"), sgd(), 2, 12, 6, 11});
}
TEST_CASE("torch reference: tiny-neo") {
  compare_with_torch({wse::stream::preset("tiny-neo"), adamw(), 2, 12, 6, 12});
}
TEST_CASE("torch reference: tiny-j") {
  compare_with_torch({wse::stream::preset("tiny-j"), sgd(), 2, 16, 6, 13});
}
TEST_CASE("torch reference: tiny-neox") {
  compare_with_torch({wse::stream::preset("tiny-neox"), adamw(), 2, 10, 6, 14});
}
TEST_CASE("torch reference: held-out spec (rotary half, sequential, all layers local, untied head without bias)") {
  compare_with_torch({held_out(), adamw(), 2, 14, 6, 15});
  compare_with_torch({held_out(), sgd(), 2, 8, 6, 16});
}

// The reference model on its own, without PyTorch: central differences in double.
TEST_CASE("reference model: gradients match finite differences") {
  for (const ModelSpec& spec : {wse::stream::preset("tiny-neo"), wse::stream::preset("tiny-j"), held_out()}) {
    const ReferenceModel model(spec);
    Tensors w = init_weights(model, 99);
    Batch b{2, 7, {}, {}};
    Rng rng{5};
    for (int i = 0; i < 14; ++i) {
      b.inputs.push_back(static_cast<std::int32_t>(rng.next() % spec.vocab));
      b.targets.push_back(static_cast<std::int32_t>(rng.next() % spec.vocab));
    }
    const auto r = model.loss_and_grads(w, b);
    for (std::size_t i = 0; i < w.size(); ++i) {
      for (int probe = 0; probe < 3; ++probe) {
        const std::size_t j = rng.next() % w[i].size();
        const float orig = w[i][j];
        const float h = 1.0f / 256;  // exact in fp32, so w +- h is exact for |w| < 2^15 h
        w[i][j] = orig + h;
        const double up = model.forward(w, b).loss;
        w[i][j] = orig - h;
        const double down = model.forward(w, b).loss;
        w[i][j] = orig;
        const double fd = (up - down) / (2.0 * static_cast<double>(h));
        INFO(spec.name << " " << model.tensors()[i].name << "[" << j << "]: analytic " << r.grads[i][j] << ", numeric " << fd);
        CHECK(std::abs(fd - r.grads[i][j]) <= 1e-4 + 1e-3 * std::abs(fd));
      }
    }
  }
}

// The per-block activations are exposed and consistent with the loss.
TEST_CASE("reference model: activations are inspectable") {
  const ReferenceModel model(wse::stream::preset("tiny-neox"));
  const Tensors w = init_weights(model, 3);
  Batch b{1, 5, {1, 2, 3, 4, 5}, {2, 3, 4, 5, 6}};
  const Activations a = model.forward(w, b);
  REQUIRE(a.blocks.size() == 2);
  CHECK(a.blocks[0].output == a.blocks[1].input);
  CHECK(a.blocks[1].probs.size() == 4u * 5 * 5);
  CHECK(a.blocks[0].probs[1] == 0.0);  // causal: position 0 does not see position 1
  CHECK(a.logits.size() == 5u * 64);
  CHECK(std::isfinite(a.loss));
}
