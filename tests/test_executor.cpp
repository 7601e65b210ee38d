// include/wse/stream/executor.hpp + kernels/transformer_train.hpp: a whole tiny transformer
// trained as PE kernels on the emulated fabric. For tiny-gpt2, tiny-neo, tiny-j and
// tiny-neox: the first-step loss equals tests/reference_model.hpp's within 1e-5 relative,
// every gradient tensor within 1e-4 of the tensor's max-abs reference gradient (floor: 1e-3 of
// the model's largest); five optimizer steps through the store (tiny-gpt2: SGD with momentum
// and AdamW; the others one of them) track the reference's losses within 1e-4 relative; a
// held-out spec on a 1x2 grid; losses bit-identical for 1 and 2 threads; every tiny family and
// the held-out spec against tests/torch_reference.py (PyTorch; WSE_SKIP_TORCH=1 skips it).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>
#include <wse/executor.hpp>

#include "executor_support.hpp"

using namespace wse;
using namespace wse::stream;
namespace ref = wse::stream::reference;

namespace {

constexpr std::uint32_t kBatch = 2, kSeq = 8;
constexpr std::uint16_t kW = 4, kH = 2;

// Deterministic weights with every tensor non-trivial (biases and norms too).
void fill(WeightStore& s, std::uint64_t seed) {
  for (const auto& t : s.tensors()) {
    SplitMix64 r = tensor_rng(seed, t.name);
    std::vector<float> v(t.elements());
    const bool norm = init_kind(t) == InitKind::ones;
    for (float& x : v) x = static_cast<float>((norm ? 1.0 : 0.0) + 0.2 * r.normal());
    s.write(t.name, v);
  }
}

std::vector<std::int32_t> tokens(const ModelSpec& m, std::uint64_t seed, std::uint32_t seq = kSeq) {
  SplitMix64 r(seed);
  std::vector<std::int32_t> t(kBatch * (seq + 1));
  for (auto& x : t) x = static_cast<std::int32_t>(r.next() % m.vocab);
  return t;
}

ref::Batch batch_of(const std::vector<std::int32_t>& tok, std::uint32_t seq = kSeq) { return wse_test::batch_of(tok, kBatch, seq); }
emu::EmuConfig cfg(unsigned threads) { return wse_test::config_with(threads); }
using wse_test::grad_error;
using wse_test::rel;
using wse_test::weights;

void first_step(const ModelSpec& m, std::uint16_t gw = kW, std::uint16_t gh = kH, std::uint32_t seq = kSeq) {
  const std::string name = m.name;
  WeightStore store(m, Sgd{.lr = 0.1});
  fill(store, 7);
  const auto tok = tokens(m, 11, seq);
  ref::ReferenceModel model(m);
  const auto [ref_loss, ref_grads] = model.loss_and_grads(weights(store), batch_of(tok, seq));
  Executor ex(m, kBatch, seq, gw, gh, arch::wse2, cfg(wse_test::threads()));
  const float loss = ex.forward_backward(store, tok);
  std::string worst;
  const double ge = grad_error(ex.gradients(), ref_grads, store.tensors(), &worst);
  MESSAGE(std::string(name) << ": loss " << loss << " (reference " << ref_loss << ", rel " << rel(loss, ref_loss) << "), gradients "
               << ge << " (worst " << worst << ")");
  CHECK(rel(loss, ref_loss) < 1e-5);
  CHECK(ge < 1e-4);
}

// Six losses (five updates) through the store vs the reference model with the same optimizer.
void steps(const ModelSpec& m, const Optimizer& opt, unsigned threads, std::vector<float>* out, std::uint16_t gw = kW,
           std::uint16_t gh = kH, std::uint32_t seq = kSeq) {
  const std::string name = m.name;
  WeightStore store(m, opt), rstore(m, opt);
  fill(store, 3);
  fill(rstore, 3);
  ref::ReferenceModel model(m);
  Executor ex(m, kBatch, seq, gw, gh, arch::wse2, cfg(threads));
  double worst = 0;
  for (int k = 0; k < (out || gw == 1 ? 3 : 6); ++k) {  // the thread comparison and the 1-column grid: three steps
    const auto tok = tokens(m, 100 + k, seq);
    const float loss = ex.step(store, tok);
    const auto [rl, rg] = model.loss_and_grads(weights(rstore), batch_of(tok, seq));
    for (std::size_t i = 0; i < rg.size(); ++i) rstore.apply_gradient(i, rg[i]);
    rstore.end_step();
    worst = std::max(worst, rel(loss, rl));
    CHECK(rel(loss, rl) < 1e-4);
    if (out) out->push_back(loss);
  }
  MESSAGE(std::string(name) << " " << std::string(std::holds_alternative<Sgd>(opt) ? "sgd" : "adamw") << ": losses within " << worst
               << " relative of the reference");
}

}  // namespace

TEST_CASE("executor: tiny-gpt2 first step: loss and every gradient match the reference") { first_step(preset("tiny-gpt2")); }

TEST_CASE("executor: tiny-gpt2 five optimizer steps (SGD momentum, AdamW) track the reference") {
  steps(preset("tiny-gpt2"), Sgd{.lr = 0.05, .momentum = 0.9}, wse_test::threads(), nullptr);
  steps(preset("tiny-gpt2"), AdamW{.lr = 1e-3}, wse_test::threads(), nullptr);
}

TEST_CASE("executor: losses are bit-identical for 1 and 2 threads") {
  std::vector<float> a, b;
  steps(preset("tiny-gpt2"), AdamW{.lr = 1e-3}, 1, &a);
  steps(preset("tiny-gpt2"), AdamW{.lr = 1e-3}, 2, &b);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// One optimizer per family here (tiny-gpt2 above runs both; the PyTorch case runs tiny-neox
// with AdamW), to keep the run time of the 8-thread ctest down.
TEST_CASE("executor: tiny-neo, tiny-j, tiny-neox first step and five steps") {
  if (wse_test::small()) {  // the TSan run: tiny-gpt2 and the PyTorch case cover the threads
    MESSAGE("WSE_TEST_SMALL: the other families run in the default, ASan and single-header suites");
    return;
  }
  const Optimizer sgd = Sgd{.lr = 0.05, .momentum = 0.9}, adamw = AdamW{.lr = 1e-3};
  for (const auto& [name, opt] : {std::pair{"tiny-neo", adamw}, std::pair{"tiny-j", sgd}, std::pair{"tiny-neox", sgd}}) {
    const std::string family = name;
    CAPTURE(family);
    first_step(preset(name));
    steps(preset(name), opt, wse_test::threads(), nullptr);
  }
}

// The held-out spec of test_torch_reference.cpp (no preset has it): vocab 37 and 3 heads allow
// only one feature band, so a 1 x 2 grid, and seq 4 (2 x 8 tokens of 3 blocks do not fit a PE).
namespace {
// Written as a new user would: a shape no preset has.
ModelSpec held_out() {
  return ModelSpec{.name = "held-out-24x3", .vocab = 37, .context = 20, .d_model = 24, .layers = 3, .heads = 3, .d_ff = 40,
                   .positions = Positions::rotary, .rotary_dims = 4, .rotary_style = RotaryStyle::half,
                   .residual = Residual::sequential, .gelu = Gelu::erf, .local_window = 5, .local_layers = LocalLayers::all,
                   .scale_attention = true, .qkv_bias = true, .attn_out_bias = false, .mlp_bias = true, .tied_head = false,
                   .head_bias = false, .layer_norm_eps = 1e-6f};
}
}  // namespace

TEST_CASE("executor: a held-out spec (d 24, 3 heads, 3 blocks, rotary half, local window 5, erf, untied) on 1x2") {
  const ModelSpec m = held_out();
  if (wse_test::small()) {
    MESSAGE("WSE_TEST_SMALL: the held-out spec runs in the default, ASan and single-header suites");
    return;
  }
  first_step(m, 1, 2, 4);
  steps(m, AdamW{.lr = 1e-3}, wse_test::threads(), nullptr, 1, 2, 4);
}

namespace {
// The message of the ExecutorError `f()` throws ("" when it throws none).
std::string executor_error(auto&& f) {
  try {
    f();
  } catch (const ExecutorError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("executor: refuses what it cannot run, naming the model, the setup and the number at fault") {
  using wse_test::contains;
  const ModelSpec g = preset("tiny-gpt2");
  CHECK(contains(executor_error([&] { Executor(g, 3, 8, 4, 2); }), "the grid height 2 must divide the batch"));
  CHECK(contains(executor_error([&] { Executor(g, 2, 8, 3, 2); }), "the grid width 3 must divide d_model = 32"));
  CHECK(contains(executor_error([&] { Executor(g, 0, 8, 4, 2); }), "batch must be at least 1"));
  CHECK(contains(executor_error([&] { Executor(g, 2, 0, 4, 2); }), "seq must be at least 1"));
  // Rotary models too: seq may not exceed the context.
  CHECK(contains(executor_error([&] { Executor(preset("tiny-j"), 2, 17, 4, 2); }), "longer than the model's context 16"));
  // Too many tokens per PE row for 48 KiB: an ExecutorError (not a bare ProgramError) that names the setup.
  const std::string memory = executor_error([&] { Executor(g, 8, 16, 4, 1); });
  CHECK(contains(memory, "model 'tiny-gpt2', batch 8 x seq 16 on 4x1: cannot load"));
  CHECK(contains(memory, "PE memory over budget"));

  Executor ex(g, kBatch, kSeq, kW, kH, arch::wse2, cfg(wse_test::threads()));
  CHECK(ex.pe_memory_used() > 0);
  CHECK(ex.pe_memory_used() <= arch::wse2.pe_memory_bytes);
  WeightStore store(g, Sgd{.lr = 0.1});
  fill(store, 1);
  std::vector<std::int32_t> tok = tokens(g, 5);
  tok.pop_back();
  CHECK(contains(executor_error([&] { ex.forward_backward(store, tok); }), "batch * (seq + 1) = 18 ids, got 17"));
  tok.push_back(64);
  CHECK(contains(executor_error([&] { ex.forward_backward(store, tok); }), "token id 64 at [1, 8] is outside the vocab 0..63"));
  // A store of another model: refused before anything runs (it used to read past the weights).
  ModelSpec wider = g;
  wider.d_ff = 2 * g.d_ff;
  WeightStore other(wider, Sgd{.lr = 0.1});
  tok.back() = 1;
  CHECK(contains(executor_error([&] { ex.step(other, tok); }), "differs from the executor's (executor \"d_ff\": 128, store \"d_ff\": 256)"));
  CHECK(other.step() == 0);
  // Only the name differs: accepted.
  ModelSpec renamed = g;
  renamed.name = "my-copy-of-tiny-gpt2";
  WeightStore same(renamed, Sgd{.lr = 0.1});
  fill(same, 1);
  CHECK(std::isfinite(ex.forward_backward(same, tok)));
}

// ---- against PyTorch (tests/torch_reference.py; the directory format of docs/reference-model.md)

namespace {
namespace fs = std::filesystem;

bool skip_torch() {
  const char* e = std::getenv("WSE_SKIP_TORCH");
  return e && std::string(e) == "1";
}
std::string python() {
  const char* e = std::getenv("WSE_TORCH_PYTHON");
  return e && *e ? e : "/usr/bin/python3";
}
template <class T> void write_bin(const fs::path& p, const std::vector<T>& v) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
  REQUIRE(f.good());
}
void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p);
  f << s;
  REQUIRE(f.good());
}

struct TorchCase {
  ModelSpec model;
  Optimizer opt;
  std::string opt_json;
  std::uint16_t width = kW, height = kH;
  std::uint32_t seq = kSeq;
  fs::path dir{};
  std::vector<std::int32_t> all{};
};
constexpr std::uint32_t kTorchSteps = 6;

// Writes the script's input directory (weights from fill(store, 5), six batches of tokens).
void prepare(TorchCase& c) {
  const ModelSpec& m = c.model;
  WeightStore store(m, c.opt);
  fill(store, 5);
  for (std::uint32_t k = 0; k < kTorchSteps; ++k) {
    const auto t = tokens(m, 500 + k, c.seq);
    c.all.insert(c.all.end(), t.begin(), t.end());
  }
  c.dir = fs::temp_directory_path() / ("wse_exec_torch_" + m.name + "_" + std::to_string(static_cast<long>(::getpid())));
  fs::remove_all(c.dir);
  fs::create_directories(c.dir);
  write_text(c.dir / "model.json", to_json(m));
  write_text(c.dir / "config.json", c.opt_json + ", \"steps\": " + std::to_string(kTorchSteps) + ", \"batch\": " +
                                        std::to_string(kBatch) + ", \"seq\": " + std::to_string(c.seq) + "}");
  std::vector<float> flat;
  for (const auto& t : store.tensors()) {
    const auto v = store.read(t.name);
    flat.insert(flat.end(), v.begin(), v.end());
  }
  write_bin(c.dir / "weights.bin", flat);
  write_bin(c.dir / "tokens.bin", c.all);
}

// Runs the executor for six steps against the script's out.bin.
void check_against(const TorchCase& c) {
  const ModelSpec& m = c.model;
  WeightStore store(m, c.opt);
  fill(store, 5);
  std::size_t n_params = 0;
  for (const auto& t : store.tensors()) n_params += t.elements();
  std::ifstream f(c.dir / "out.bin", std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  REQUIRE_MESSAGE(out.size() == kTorchSteps + 2 * n_params, "torch_reference.py failed; see " << (c.dir / "log.txt").string());
  fs::remove_all(c.dir);

  Executor ex(m, kBatch, c.seq, c.width, c.height, arch::wse2, cfg(wse_test::threads()));
  double worst_loss = 0, grad_err = 0;
  std::string worst;
  const std::size_t per = std::size_t{kBatch} * (c.seq + 1);
  for (std::uint32_t k = 0; k < kTorchSteps; ++k) {
    const std::vector<std::int32_t> tok(c.all.begin() + static_cast<std::ptrdiff_t>(k * per),
                                        c.all.begin() + static_cast<std::ptrdiff_t>((k + 1) * per));
    float loss;
    if (k == 0) {
      loss = ex.forward_backward(store, tok);
      ref::Tensors tg;
      std::size_t at = kTorchSteps;
      for (const auto& t : store.tensors()) {
        tg.emplace_back(out.begin() + static_cast<std::ptrdiff_t>(at), out.begin() + static_cast<std::ptrdiff_t>(at + t.elements()));
        at += t.elements();
      }
      grad_err = grad_error(ex.gradients(), tg, store.tensors(), &worst);
      CHECK(rel(loss, out[0]) < 1e-5);
      CHECK(grad_err < 1e-4);
      for (std::size_t i = 0; i < store.tensors().size(); ++i) store.apply_gradient(i, ex.gradients()[i]);
      store.end_step();
    } else {
      loss = ex.step(store, tok);
    }
    worst_loss = std::max(worst_loss, rel(loss, out[k]));
    CHECK(rel(loss, out[k]) < 1e-4);
  }
  MESSAGE(m.name << " vs torch: losses within " << worst_loss << " relative, first-step gradients " << grad_err
                              << " (worst " << worst << ")");
}

void against_torch(std::vector<TorchCase> cases) {
  if (skip_torch()) {
    MESSAGE("WSE_SKIP_TORCH=1: skipping the PyTorch comparison");
    return;
  }
  const int has_torch = std::system((python() + " -c 'import torch' >/dev/null 2>&1").c_str());
  REQUIRE_MESSAGE(has_torch == 0, python() << " cannot import torch: apt-get install python3-torch, or WSE_SKIP_TORCH=1");
  const std::string script = fs::absolute(fs::path(__FILE__).parent_path() / "torch_reference.py").string();
  std::string cmd;
  for (auto& c : cases) {  // the python runs go in parallel (importing torch takes seconds)
    prepare(c);
    cmd += python() + " '" + script + "' '" + c.dir.string() + "' > '" + (c.dir / "log.txt").string() + "' 2>&1 & ";
  }
  cmd += "wait";
  REQUIRE(std::system(cmd.c_str()) == 0);
  for (const auto& c : cases) {
    CAPTURE(c.model.name);
    check_against(c);
  }
}
}  // namespace

// Every tiny family and the held-out spec, each with one optimizer (the python runs go in
// parallel; importing torch costs seconds each).
TEST_CASE("executor: against PyTorch, tiny-gpt2, tiny-neo, tiny-j, tiny-neox and the held-out spec") {
  if (wse_test::small()) {  // the TSan run: PyTorch agreement does not depend on threads
    MESSAGE("WSE_TEST_SMALL: the PyTorch comparison runs in the default, ASan and single-header suites");
    return;
  }
  const std::string sgd = R"({"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0)";
  const std::string adamw = R"({"optimizer": "adamw", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0.01)";
  const Optimizer sgd_opt = Sgd{.lr = 0.05, .momentum = 0.9};
  const Optimizer adamw_opt = AdamW{.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
  std::vector<TorchCase> cases{{.model = preset("tiny-gpt2"), .opt = sgd_opt, .opt_json = sgd},
                               {.model = preset("tiny-neo"), .opt = adamw_opt, .opt_json = adamw},
                               {.model = preset("tiny-j"), .opt = sgd_opt, .opt_json = sgd},
                               {.model = preset("tiny-neox"), .opt = adamw_opt, .opt_json = adamw},
                               {.model = held_out(), .opt = adamw_opt, .opt_json = adamw, .width = 1, .height = 2, .seq = 4}};
  against_torch(std::move(cases));
}
