// include/wse/stream/data_parallel.hpp: N emulated wafers in data parallel equal one wafer
// with N times the batch. Checked: the tree-reduced mean gradient of 2 replicas (batch 2 each)
// and of 4 replicas (batch 1 each) against one Executor with batch 4, within 2e-6 of each
// tensor's max-abs gradient, and both against tests/reference_model.hpp with the whole batch;
// three AdamW steps through the store keep losses within 1e-5 relative and weights within
// 1e-5 absolute of the one-wafer run; replica runs are bit-identical for 1 and 2 threads.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#include <wse/executor.hpp>

#include "executor_support.hpp"

using namespace wse;
using namespace wse::stream;
namespace ref = wse::stream::reference;

namespace {

constexpr std::uint32_t kSeq = 8, kGlobalBatch = 4;

std::vector<std::int32_t> tokens(const ModelSpec& m, std::uint64_t seed) {
  SplitMix64 r(seed);
  std::vector<std::int32_t> t(kGlobalBatch * (kSeq + 1));
  for (auto& x : t) x = static_cast<std::int32_t>(r.next() % m.vocab);
  return t;
}

emu::EmuConfig cfg(unsigned threads) { return wse_test::config_with(threads); }
ref::Batch batch_of(const std::vector<std::int32_t>& tok) { return wse_test::batch_of(tok, kGlobalBatch, kSeq); }
using wse_test::rel;
using wse_test::weights;

// `replicas` wafers of (4 / replicas) sequences each on a 4 x rows grid vs one 4 x 4 wafer
// with all four sequences, and both vs the reference model.
void same_as_one_wafer(const char* name, std::uint32_t replicas, std::uint16_t rows) {
  const ModelSpec m = preset(name);
  WeightStore store(m, Sgd{.lr = 0.1});
  store.initialize({.seed = 21, .std = 0.2});
  const auto tok = tokens(m, 33);
  Executor one(m, kGlobalBatch, kSeq, 4, 4, arch::wse2, cfg(wse_test::threads()));
  DataParallel dp(m, replicas, kGlobalBatch / replicas, kSeq, 4, rows, arch::wse2, cfg(wse_test::threads()));
  CHECK(dp.global_batch() == kGlobalBatch);
  const float l1 = one.forward_backward(store, tok);
  const float ln = dp.forward_backward(store, tok);
  const auto [rl, rg] = ref::ReferenceModel(m).loss_and_grads(weights(store), batch_of(tok));
  const double e_one = wse_test::grad_error(dp.gradients(), one.gradients(), store.tensors()),
               e_ref = wse_test::grad_error(dp.gradients(), rg, store.tensors());
  MESSAGE(std::string(name) << ", " << replicas << " wafers x batch " << kGlobalBatch / replicas << " vs one wafer x batch " << kGlobalBatch
               << ": loss " << ln << " vs " << l1 << " (rel " << rel(ln, l1) << "), gradients " << e_one
               << " of max-abs; vs the reference: loss rel " << rel(ln, rl) << ", gradients " << e_ref);
  CHECK(rel(ln, l1) < 1e-6);
  CHECK(e_one < 2e-6);
  CHECK(rel(ln, rl) < 1e-5);
  CHECK(e_ref < 1e-4);
}

}  // namespace

TEST_CASE("data parallel: 2 wafers x batch 2 give one wafer's batch-4 loss and gradients (tiny-neo)") {
  same_as_one_wafer("tiny-neo", 2, 2);
}

TEST_CASE("data parallel: 4 wafers x batch 1 give one wafer's batch-4 loss and gradients (tiny-j)") {
  if (wse_test::small()) {
    MESSAGE("WSE_TEST_SMALL: the 4-wafer case runs in the default, ASan and single-header suites");
    return;
  }
  same_as_one_wafer("tiny-j", 4, 1);
}

TEST_CASE("data parallel: three AdamW steps through the store track one wafer with the whole batch") {
  const ModelSpec m = preset("tiny-neo");
  const AdamW opt{.lr = 3e-3};
  WeightStore a(m, opt), b(m, opt);
  a.initialize({.seed = 4});
  b.initialize({.seed = 4});
  Executor one(m, kGlobalBatch, kSeq, 4, 4, arch::wse2, cfg(wse_test::threads()));
  DataParallel dp(m, 2, 2, kSeq, 4, 2, arch::wse2, cfg(wse_test::threads()));
  double worst = 0;
  for (int k = 0; k < 3; ++k) {
    const auto tok = tokens(m, 70 + k);
    const float la = one.step(a, tok), lb = dp.step(b, tok);
    worst = std::max(worst, rel(lb, la));
    CHECK(rel(lb, la) < 1e-5);
  }
  CHECK(b.step() == 3);
  double wdiff = 0;
  for (const auto& t : a.tensors()) {
    const auto x = a.read(t.name), y = b.read(t.name);
    for (std::size_t i = 0; i < x.size(); ++i) wdiff = std::max(wdiff, double(std::abs(x[i] - y[i])));
  }
  MESSAGE("tiny-neo AdamW, 2 wafers vs 1: losses within " << worst << " relative, weights within " << wdiff << " after 3 steps");
  CHECK(wdiff < 1e-5);
}

TEST_CASE("data parallel: replica results are bit-identical for 1 and 2 threads") {
  const ModelSpec m = preset("tiny-gpt2");
  std::vector<float> losses[2];
  std::vector<float> weights_after[2];
  for (const unsigned threads : {1u, 2u}) {
    WeightStore s(m, AdamW{.lr = 1e-3});
    s.initialize({.seed = 9});
    DataParallel dp(m, 2, 2, kSeq, 4, 2, arch::wse2, cfg(threads));
    for (int k = 0; k < 2; ++k) losses[threads - 1].push_back(dp.step(s, tokens(m, 90 + k)));
    weights_after[threads - 1] = s.read("h.0.attn.q.weight");
  }
  CHECK(std::memcmp(losses[0].data(), losses[1].data(), losses[0].size() * sizeof(float)) == 0);
  CHECK(std::memcmp(weights_after[0].data(), weights_after[1].data(), weights_after[0].size() * sizeof(float)) == 0);
}

TEST_CASE("data parallel: refuses no replicas and a token count that is not replicas x batch x (seq + 1)") {
  const ModelSpec m = preset("tiny-gpt2");
  CHECK_THROWS_AS(DataParallel(m, 0, 2, kSeq, 4, 2), ExecutorError);
  DataParallel dp(m, 2, 2, kSeq, 4, 2);
  WeightStore s(m, Sgd{.lr = 0.1});
  const std::vector<std::int32_t> short_tokens(2 * (kSeq + 1));
  try {
    dp.forward_backward(s, short_tokens);
    FAIL("no error");
  } catch (const ExecutorError& e) {
    CHECK(wse_test::contains(e.what(), "replicas * batch * (seq + 1) = 36"));
  }
  CHECK(s.step() == 0);
}
