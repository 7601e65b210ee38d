// The weight-streaming planner (include/wse/stream/plan.hpp, docs/weight-streaming.md):
// GPT-J 6B and GPT-NeoX 20B plan on a full WSE-2 with per-layer figures; the figures obey the
// identities the model is built on (FLOPs = 6 · matmul weights · tokens, a pass costs its
// largest stream of work plus latency, parameters add up to the spec's count); the predictions
// move the right way when batch or grid width change; layers too big for a PE are refused
// with the layer, the bytes and the 48 KiB; the tiny presets plan on small grids.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include <wse/stream.hpp>

using wse::stream::Bound;
using wse::stream::Checkpointing;
using wse::stream::LayerKind;
using wse::stream::LayerPlan;
using wse::stream::ModelSpec;
using wse::stream::PassPlan;
using wse::stream::Plan;
using wse::stream::PlanError;
using wse::stream::PlanOptions;
using wse::stream::Precision;
using wse::stream::Wafer;

namespace {

const Wafer full_wse2 = wse::stream::full_wafer(wse::arch::wse2);

Wafer grid(std::uint32_t w, std::uint32_t h) { return Wafer{w, h, wse::arch::wse2}; }

bool is_linear(const LayerPlan& L) { return L.kind != LayerKind::attention && L.kind != LayerKind::embedding; }

// A pass costs the largest of its four streams of work plus its latency, and says which.
void check_pass(const PassPlan& p, const std::string& where) {
  INFO(where);
  const std::uint64_t stream = std::max(p.stream_in_cycles, p.stream_out_cycles);
  const std::uint64_t top = std::max({p.compute_cycles, stream, p.fabric_cycles});
  CHECK(p.cycles == top + p.latency_cycles);
  if (p.bound == Bound::compute) CHECK(p.compute_cycles == top);
  if (p.bound == Bound::weights) CHECK(stream == top);
  if (p.bound == Bound::fabric) CHECK(p.fabric_cycles == top);
  CHECK(p.cycles > 0);
}

// Every structural property any plan must have.
void check_plan(const Plan& p) {
  const ModelSpec& m = p.model;
  REQUIRE(p.layers.size() == 2 + 5 * std::size_t{m.layers});
  CHECK(p.layers.front().kind == LayerKind::embedding);
  CHECK(p.layers.back().kind == LayerKind::head);
  std::uint64_t params = 0, fwd = 0, bwd = 0, rec = 0;
  for (std::size_t i = 0; i < p.layers.size(); ++i) {
    const LayerPlan& L = p.layers[i];
    INFO(L.name);
    if (i > 0 && i + 1 < p.layers.size()) {  // block i / 5, sub-layers in order
      CHECK(L.block == std::int32_t((i - 1) / 5));
      CHECK(L.name.rfind("h." + std::to_string(L.block) + ".", 0) == 0);
    }
    check_pass(L.forward, L.name + " forward");
    check_pass(L.backward, L.name + " backward");
    if (is_linear(L)) {
      CHECK(L.weight_elements > 0);
      CHECK(L.forward.stream_in_cycles > 0);
      CHECK(L.backward.stream_in_cycles > 0);   // weights are streamed again for dX
      CHECK(L.backward.stream_out_cycles > 0);  // and dW leaves the wafer
      CHECK(L.forward.flops > 0);
      CHECK(L.backward.flops == doctest::Approx(2 * L.forward.flops));
    }
    if (L.kind == LayerKind::attention) {
      CHECK(L.weight_elements == 0);
      CHECK(L.forward.stream_in_cycles == 0);
      CHECK(L.forward.flops > 0);
    }
    CHECK(L.recompute_cycles == (p.checkpointing && L.block >= 0 ? L.forward.cycles : 0));
    params += L.parameters;
    fwd += L.forward.cycles;
    bwd += L.backward.cycles;
    rec += L.recompute_cycles;
  }
  CHECK(params == wse::stream::parameter_count(m));
  CHECK(p.forward_cycles == fwd);
  CHECK(p.backward_cycles == bwd);
  CHECK(p.recompute_cycles == rec);
  CHECK(p.step_cycles == fwd + bwd + rec);
  CHECK(p.step_seconds == doctest::Approx(double(p.step_cycles) / p.wafer.arch.clock_hz));
  CHECK(p.step_seconds > 0);
  CHECK(p.tokens_per_second == doctest::Approx(double(p.tokens) / p.step_seconds));
  CHECK(p.memory.total() <= p.memory.budget);
  CHECK(p.memory.budget == p.wafer.arch.pe_memory_bytes);
  CHECK(p.feature_bands <= p.wafer.width);
  CHECK(p.token_bands <= p.wafer.height);
  CHECK(std::uint64_t{p.tokens_per_pe} * p.token_bands >= p.tokens);  // every token has a band
  CHECK(std::uint64_t{p.features_per_pe} * p.feature_bands >= m.d_model);
}

// Matmul FLOPs of forward + backward over the layers with weights.
double linear_flops(const Plan& p) {
  double f = 0;
  for (const auto& L : p.layers)
    if (is_linear(L)) f += L.forward.flops + L.backward.flops;
  return f;
}

std::uint64_t forward_compute(const Plan& p) {
  std::uint64_t c = 0;
  for (const auto& L : p.layers) c += L.forward.compute_cycles;
  return c;
}

}  // namespace

TEST_CASE("plan: GPT-J 6B and GPT-NeoX 20B on a full WSE-2, with per-layer figures") {
  for (const char* name : {"gpt-j-6b", "gpt-neox-20b"}) {
    for (const std::uint32_t batch : {1u, 8u}) {
      const ModelSpec m = wse::stream::preset(name);
      const Precision prec = std::string(name) == "gpt-neox-20b" && batch == 8 ? Precision::mixed : Precision::fp32;
      const Plan p = wse::stream::plan(m, batch, 2048, full_wse2, {.precision = prec});
      INFO(name, " batch ", batch);
      check_plan(p);
      CHECK(p.tokens == std::uint64_t{batch} * 2048);
      // A full wafer: nearly every column carries features.
      CHECK(p.feature_bands > 700);
      // The report has one row per distinct layer and the grouped blocks.
      const std::string r = wse::stream::report(p);
      CHECK(r.find("blocks 0.." + std::to_string(m.layers - 1) + " (each)") != std::string::npos);
      for (const char* row : {"embedding", "  qkv", "  attention", "  attn_out", "  mlp_fc", "  mlp_proj", "head"})
        CHECK(r.find(row) != std::string::npos);
      CHECK(r.find("tokens/s") != std::string::npos);
    }
  }
}

TEST_CASE("plan: matmul FLOPs are 6 x weights x tokens, within 5% of 6 x parameters x tokens") {
  // Tolerance: the difference is the embedding tables and the norm/bias vectors (no matmul
  // FLOPs in a lookup), 3.4% of GPT-J's and 1.5% of NeoX's parameters. Attention is excluded.
  for (const char* name : {"gpt-j-6b", "gpt-neox-20b", "gpt2-small", "gpt-neo-125m"}) {
    INFO(name);
    const ModelSpec m = wse::stream::preset(name);
    const Plan p = wse::stream::plan(m, 1, std::min<std::uint32_t>(m.context, 1024), full_wse2);
    const double T = double(p.tokens);
    double matrices = 0;  // elements of the weight matrices that multiply activations
    for (const auto& L : p.layers)
      if (is_linear(L)) matrices += double(L.in_features) * L.out_features;
    CHECK(linear_flops(p) == doctest::Approx(6.0 * matrices * T).epsilon(1e-12));
    const double six_nt = 6.0 * double(wse::stream::parameter_count(m)) * T;
    if (m.tied_head) {
      // The tied head multiplies by wte, so only the position table and vectors are missing.
      CHECK(linear_flops(p) <= six_nt);
      CHECK(linear_flops(p) >= 0.9 * six_nt);
    } else {
      CHECK(linear_flops(p) < six_nt);
      CHECK(linear_flops(p) == doctest::Approx(six_nt).epsilon(0.05));
    }
  }
}

TEST_CASE("plan: more batch means more compute; a half-width grid streams weights slower") {
  const ModelSpec m = wse::stream::preset("gpt-j-6b");
  const Plan one = wse::stream::plan(m, 1, 2048, full_wse2);
  const Plan two = wse::stream::plan(m, 2, 2048, full_wse2);
  CHECK(two.tokens_per_pe > one.tokens_per_pe);
  CHECK(forward_compute(two) > forward_compute(one));
  CHECK(two.step_cycles > one.step_cycles);

  const Plan half = wse::stream::plan(m, 1, 2048, grid(full_wse2.width / 2, full_wse2.height));
  check_plan(half);
  CHECK(half.feature_bands <= full_wse2.width / 2);
  for (std::size_t i = 0; i < one.layers.size(); ++i) {
    if (!is_linear(one.layers[i])) continue;
    INFO(one.layers[i].name);
    CHECK(half.layers[i].forward.stream_in_cycles > one.layers[i].forward.stream_in_cycles);
    CHECK(half.layers[i].backward.stream_out_cycles > one.layers[i].backward.stream_out_cycles);
  }
  CHECK(half.step_cycles > one.step_cycles);
}

TEST_CASE("plan: a tiny model is bound by what its own figures say") {
  // One token per PE in fp16: a weight element costs ceil-ish 1/4 cycle of fmac (+ issue) on
  // the PEs but 1/2 wavelet on the edge link, so the linear layers cannot be compute-bound.
  const ModelSpec m = wse::stream::preset("tiny-gpt2");
  const Plan few = wse::stream::plan(m, 1, 16, grid(16, 16), {.precision = Precision::fp16});
  check_plan(few);
  REQUIRE(few.tokens_per_pe == 1);
  for (const auto& L : few.layers) {
    if (!is_linear(L)) continue;
    INFO(L.name);
    CHECK(L.forward.stream_in_cycles > L.forward.compute_cycles);
    CHECK(L.forward.bound != Bound::compute);
  }
  // Many tokens per PE in fp32: every weight element is used by each of the PE's tokens at
  // one fmac a cycle, so compute exceeds the stream by about tokens_per_pe.
  const Plan many = wse::stream::plan(m, 8, 16, grid(8, 8));
  check_plan(many);
  REQUIRE(many.tokens_per_pe >= 16);
  for (const auto& L : many.layers) {
    if (!is_linear(L)) continue;
    INFO(L.name);
    CHECK(L.forward.compute_cycles > 8 * L.forward.stream_in_cycles);
    CHECK(L.forward.bound == Bound::compute);
  }
}

TEST_CASE("plan: a layer too large for a PE is refused with the layer, the bytes and 48 KiB") {
  ModelSpec huge = wse::stream::preset("tiny-gpt2");
  huge.name = "huge-d";
  huge.d_model = 65536;
  huge.heads = 64;
  huge.d_ff = 4 * 65536;
  try {
    (void)wse::stream::plan(huge, 1, 16, grid(4, 4));
    FAIL("expected PlanError");
  } catch (const PlanError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("huge-d") != std::string::npos);
    CHECK(msg.find("layer '") != std::string::npos);
    CHECK(msg.find("bytes per PE") != std::string::npos);
    CHECK(msg.find("49,152 bytes (48 KiB)") != std::string::npos);
    CHECK(msg.find("bigger grid") != std::string::npos);
  }
  // Too many tokens: GPT-J with 64 x 2048 tokens puts 132 tokens on every PE.
  try {
    (void)wse::stream::plan(wse::stream::preset("gpt-j-6b"), 64, 2048, full_wse2);
    FAIL("expected PlanError");
  } catch (const PlanError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("layer '") != std::string::npos);
    CHECK(msg.find("48 KiB") != std::string::npos);
    CHECK(msg.find("smaller batch or sequence") != std::string::npos);
  }
}

TEST_CASE("plan: checkpointing is used when keeping every activation does not fit") {
  const ModelSpec m = wse::stream::preset("gpt-j-6b");
  const Plan small = wse::stream::plan(m, 1, 2048, full_wse2);
  CHECK_FALSE(small.checkpointing);
  CHECK(small.recompute_cycles == 0);
  const Plan big = wse::stream::plan(m, 8, 2048, full_wse2);
  CHECK(big.checkpointing);
  CHECK(big.recompute_cycles > 0);
  CHECK(big.memory.recompute > 0);
  // Forced on, a plan that did not need it is slower (blocks run forward twice).
  const Plan forced = wse::stream::plan(m, 1, 2048, full_wse2, {.checkpointing = Checkpointing::always});
  CHECK(forced.checkpointing);
  CHECK(forced.step_cycles > small.step_cycles);
  // Forbidden, the big one is refused and the message says what would help.
  try {
    (void)wse::stream::plan(m, 8, 2048, full_wse2, {.checkpointing = Checkpointing::never});
    FAIL("expected PlanError");
  } catch (const PlanError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("activations need") != std::string::npos);
    CHECK(msg.find("allow checkpointing") != std::string::npos);
  }
}

TEST_CASE("plan: tiny presets plan on 8x8 and 16x16 grids") {
  for (const auto& name : {"tiny-gpt2", "tiny-neo", "tiny-j", "tiny-neox"}) {
    for (const std::uint32_t side : {8u, 16u}) {
      INFO(name, " on ", side, "x", side);
      const ModelSpec m = wse::stream::preset(name);
      const Plan p = wse::stream::plan(m, 4, 16, grid(side, side));
      check_plan(p);
      CHECK(wse::stream::report(p).find(m.name) != std::string::npos);
    }
  }
  // GPT-Neo's odd blocks attend to a window of 4 of the 16 positions: fewer FLOPs, and the
  // report shows the two kinds of block apart.
  const Plan neo = wse::stream::plan(wse::stream::preset("tiny-neo"), 4, 16, grid(8, 8));
  CHECK(neo.layers[1 + 5 + 1].forward.flops < neo.layers[1 + 1].forward.flops);
  const std::string r = wse::stream::report(neo);
  CHECK(r.find("block 0\n") != std::string::npos);
  CHECK(r.find("block 1\n") != std::string::npos);
}

TEST_CASE("plan: options and arguments") {
  const ModelSpec m = wse::stream::preset("gpt-j-6b");
  const Plan fixed = wse::stream::plan(m, 1, 2048, full_wse2, {.feature_bands = 512, .chunk = 8});
  CHECK(fixed.feature_bands == 512);
  CHECK(fixed.chunk == 8);
  CHECK(fixed.features_per_pe == 8);
  // fp16 and mixed are faster than fp32 on WSE-2 (wider fmac), never slower.
  const Plan fp32 = wse::stream::plan(m, 1, 2048, full_wse2);
  const Plan mixed = wse::stream::plan(m, 1, 2048, full_wse2, {.precision = Precision::mixed});
  const Plan fp16 = wse::stream::plan(m, 1, 2048, full_wse2, {.precision = Precision::fp16});
  CHECK(mixed.step_cycles < fp32.step_cycles);
  CHECK(fp16.step_cycles <= mixed.step_cycles);
  // WSE-3 plans too (more rows, slower hops).
  check_plan(wse::stream::plan(m, 1, 2048, wse::stream::full_wafer(wse::arch::wse3)));

  CHECK_THROWS_WITH_AS(wse::stream::plan(m, 0, 2048, full_wse2), doctest::Contains("batch"), PlanError);
  CHECK_THROWS_WITH_AS(wse::stream::plan(m, 1, 4096, full_wse2), doctest::Contains("seq 4096"), PlanError);
  CHECK_THROWS_WITH_AS(wse::stream::plan(m, 1, 2048, grid(800, 10)), doctest::Contains("grid"), PlanError);
  CHECK_THROWS_WITH_AS(wse::stream::plan(m, 1, 2048, grid(10, 10), {.feature_bands = 11}),
                       doctest::Contains("feature_bands 11"), PlanError);
  CHECK_THROWS_WITH_AS(wse::stream::plan(m, 1, 2048, full_wse2, {.chunk = 5000}), doctest::Contains("chunk 5000"), PlanError);
  // Absurd batches are refused, not overflowed (a 32-bit tokens-per-PE count once wrapped to 0
  // and looped forever): 2^21 x 2048 tokens on one row.
  CHECK_THROWS_WITH_AS(wse::stream::plan(m, 2097152, 2048, grid(1, 1)), doctest::Contains("tokens per row"), PlanError);
  CHECK_THROWS_WITH_AS(wse::stream::plan(wse::stream::preset("tiny-gpt2"), 268435457, 16, grid(16, 1)),
                       doctest::Contains("tokens per row"), PlanError);
  wse::stream::Wafer stopped = full_wse2;
  stopped.arch.clock_hz = 0;
  CHECK_THROWS_WITH_AS(wse::stream::plan(m, 1, 2048, stopped), doctest::Contains("clock_hz"), PlanError);
  ModelSpec bad = m;
  bad.heads = 3;
  CHECK_THROWS_AS(wse::stream::plan(bad, 1, 16, full_wse2), wse::stream::ModelError);
}
