#pragma once
/// \file
/// The weight-streaming planner: maps a model's activations (tokens × features) onto a PE
/// grid, checks per-PE memory, decides activation checkpointing, and predicts the time of one
/// training step layer by layer from the arch's timing figures. Stream layer; hosted.
///
/// The execution scheme it plans for, the memory and timing formulas and their limits are in
/// docs/weight-streaming.md ("Execution scheme", "Planner"). In short: PE (x, y) holds token
/// band y × feature band x of every activation; each linear layer's weights stream in at the
/// north edge, one wavelet per cycle per column, multicast down the column; partial sums are
/// reduced along rows; weight gradients are reduced up the columns and leave at the north edge.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "../arch/arch.hpp"
#include "model.hpp"

namespace wse::stream {

/// A plan the planner cannot make: a layer's working set does not fit a PE, or an argument
/// (batch, sequence, grid) is out of range. The message names the layer or argument, the bytes
/// needed per PE against the PE memory, and what to change.
class PlanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Arithmetic and storage precision of the planned step.
enum class Precision : std::uint8_t {
  fp32,   ///< fp32 weights, activations and sums; fmac at the arch's fp32 width (1 on WSE-2)
  fp16,   ///< fp16 everywhere; fmac at the fp16 width (4 on WSE-2)
  mixed,  ///< fp16 weights and activations, fp32 sums, norms and softmax; mixed fmac width (2)
};
/// Whether activations are kept for backward or only block inputs (recomputing the rest).
enum class Checkpointing : std::uint8_t {
  automatic,  ///< keep everything when it fits, else checkpoint block inputs
  never,      ///< keep everything; refuse when it does not fit
  always,     ///< keep only block inputs
};
/// What limits a pass of a layer.
enum class Bound : std::uint8_t {
  compute,  ///< the PEs' multiply-adds and elementwise ops
  weights,  ///< weight wavelets in at the edge (or weight gradients out)
  fabric,   ///< activation traffic on the wafer: row reductions, gathers, keys/values
};
/// The sub-layers a model is cut into; each is one step of the layer-by-layer schedule.
enum class LayerKind : std::uint8_t {
  embedding,  ///< token (+ learned position) rows streamed in; gradients rows out
  qkv,        ///< ln1 + [d, 3d] projection (q, k, v fused)
  attention,  ///< scores, causal/local mask, softmax, weighted sum; no weights
  attn_out,   ///< [d, d] output projection (+ residual add)
  mlp_fc,     ///< (ln2 +) [d, d_ff] projection + GELU
  mlp_proj,   ///< [d_ff, d] projection (+ residual add)
  head,       ///< final norm + [d, vocab] projection (wte^T when tied) + softmax cross-entropy
};

inline const char* to_string(Precision p) {
  return p == Precision::fp32 ? "fp32" : p == Precision::fp16 ? "fp16" : "mixed";
}
inline const char* to_string(Bound b) {
  return b == Bound::compute ? "compute" : b == Bound::weights ? "weights" : "fabric";
}
inline const char* to_string(LayerKind k) {
  switch (k) {
    case LayerKind::embedding: return "embedding";
    case LayerKind::qkv: return "qkv";
    case LayerKind::attention: return "attention";
    case LayerKind::attn_out: return "attn_out";
    case LayerKind::mlp_fc: return "mlp_fc";
    case LayerKind::mlp_proj: return "mlp_proj";
    case LayerKind::head: return "head";
  }
  return "?";
}

/// The PEs a plan may use: a width × height rectangle of an arch's fabric.
struct Wafer {
  std::uint32_t width = 0;   ///< columns (at most arch.fabric_width)
  std::uint32_t height = 0;  ///< rows (at most arch.fabric_height)
  arch::Arch arch = arch::wse2;
};
/// The whole fabric of `a` (757 × 996 for WSE-2).
inline Wafer full_wafer(const arch::Arch& a) { return {a.fabric_width, a.fabric_height, a}; }

/// Choices the caller may fix; everything left at 0 is searched.
/// Longest DSD vector a plan may use (PlanOptions::chunk).
inline constexpr std::uint32_t max_chunk = 4096;

struct PlanOptions {
  Precision precision = Precision::fp32;
  Checkpointing checkpointing = Checkpointing::automatic;
  std::uint32_t feature_bands = 0;  ///< columns used for features; 0 = search 1..width
  std::uint32_t chunk = 0;          ///< DSD vector length / weight chunk width; 0 = search, else 1..max_chunk
  /// Bytes of each PE kept for code, task tables and runtime state (an estimate; the vendor
  /// does not publish it).
  std::uint32_t reserved_bytes = 4096;
};

/// One direction (forward or backward) of one layer. Cycles are those of the busiest PE or
/// link; the layer's weight stream for this pass overlaps its compute (prefetch), so the pass
/// costs the largest of the four streams of work plus the pipeline latency.
struct PassPlan {
  double flops = 0;                     ///< FLOPs executed over the wafer (2 per multiply-add)
  std::uint64_t compute_cycles = 0;     ///< busiest PE: DSD ops incl. issue and task switches
  std::uint64_t stream_in_cycles = 0;   ///< weight wavelets through one north-edge link
  std::uint64_t stream_out_cycles = 0;  ///< weight-gradient wavelets out through one edge link
  std::uint64_t fabric_cycles = 0;      ///< activation wavelets on the busiest on-wafer link
  std::uint64_t latency_cycles = 0;     ///< pipeline fill and drain that prefetch cannot hide
  std::uint64_t cycles = 0;             ///< max(compute, stream in, stream out, fabric) + latency
  Bound bound = Bound::compute;         ///< which of the three the max came from
};

/// One sub-layer of the schedule with its figures. Memory figures are bytes per PE.
struct LayerPlan {
  std::string name;                 ///< "embedding", "h.3.qkv", "h.3.attention", "head"
  LayerKind kind = LayerKind::embedding;
  std::int32_t block = -1;          ///< transformer block, -1 for embedding and head
  std::uint32_t in_features = 0;    ///< linear: rows of W (0 for attention and embedding)
  std::uint32_t out_features = 0;   ///< linear: columns of W
  std::uint64_t weight_elements = 0;  ///< elements streamed in per pass (backward re-streams them)
  std::uint64_t parameters = 0;     ///< parameters this layer owns in the store (sum = parameter_count)
  double weight_bytes = 0;          ///< weight_elements at the plan's precision
  PassPlan forward, backward;
  std::uint64_t recompute_cycles = 0;  ///< checkpointing: this layer's forward again during backward
  std::uint64_t saved_bytes = 0;    ///< kept from forward to backward, without checkpointing
  std::uint64_t working_bytes = 0;  ///< peak while it runs (fwd or bwd): buffers, transients
};

/// Per-PE memory of a plan, in bytes. total() <= budget for every plan returned.
struct MemoryPlan {
  std::uint64_t budget = 0;       ///< arch.pe_memory_bytes
  std::uint64_t reserved = 0;     ///< PlanOptions::reserved_bytes
  std::uint64_t saved = 0;        ///< activations kept for backward (all, or block inputs when checkpointing)
  std::uint64_t recompute = 0;    ///< checkpointing: one block's activations rebuilt during its backward
  std::uint64_t working = 0;      ///< the largest layer working set
  std::string working_layer;      ///< the layer that has it
  std::uint64_t total() const { return reserved + saved + recompute + working; }
};

/// A planned training step. Holds every layer in execution order (forward order; backward
/// runs them in reverse).
struct Plan {
  ModelSpec model;
  std::uint32_t batch = 0, seq = 0;
  std::uint64_t tokens = 0;          ///< batch · seq
  Wafer wafer;
  Precision precision = Precision::fp32;
  std::uint32_t feature_bands = 0;   ///< columns used: feature band x is column x
  std::uint32_t token_bands = 0;     ///< rows used: token band y is row y
  std::uint32_t tokens_per_pe = 0;   ///< tokens of the fullest band
  std::uint32_t features_per_pe = 0; ///< d_model features of the fullest band
  std::uint32_t chunk = 0;           ///< DSD vector length and weight chunk width
  bool checkpointing = false;        ///< only block inputs kept; blocks recomputed in backward
  std::vector<LayerPlan> layers;
  MemoryPlan memory;
  std::uint64_t forward_cycles = 0, backward_cycles = 0, recompute_cycles = 0;
  std::uint64_t step_cycles = 0;     ///< forward + backward + recompute
  double step_seconds = 0;           ///< step_cycles at arch.clock_hz
  double tokens_per_second = 0;
  double flops = 0;                  ///< executed per step (forward + backward + recompute)
  double step_ms() const { return step_seconds * 1e3; }
  std::uint64_t pes_used() const { return std::uint64_t{feature_bands} * token_bands; }
};

namespace detail {

inline std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return b ? (a + b - 1) / b : 0; }

/// Rough counts of DSD ops per element for elementwise work (estimates: exp, tanh and erf
/// are polynomials of fmacs on a PE; the vendor does not publish their cost).
struct ElementwiseOps {
  static constexpr std::uint32_t norm_fwd = 4;     // sum, sum of squares, subtract, scale
  static constexpr std::uint32_t norm_bwd = 8;
  static constexpr std::uint32_t gelu_fwd = 10;
  static constexpr std::uint32_t gelu_bwd = 12;
  static constexpr std::uint32_t softmax_fwd = 8;  // max, exp polynomial, sum, scale
  static constexpr std::uint32_t softmax_bwd = 11; // exp again, then P∘(dP − D)
  static constexpr std::uint32_t rotary = 3;       // two multiplies and an add per element
  static constexpr std::uint32_t xent = 10;        // exp, sums, softmax − one-hot
};

/// One candidate mapping and what the precision and arch imply for it.
struct Shape {
  const ModelSpec* m = nullptr;
  const arch::Arch* a = nullptr;
  std::uint64_t T = 0;          // tokens
  std::uint32_t S = 0, B = 0;   // sequence length, batch
  std::uint32_t Fc = 1, Tr = 1; // feature bands (columns), token bands (rows)
  std::uint32_t tpb = 1;        // tokens per PE (fullest band)
  std::uint32_t c = 64;         // chunk
  std::uint32_t act_bytes = 4, weight_bytes = 4, sum_bytes = 4;
  std::uint32_t mac_width = 1, ew_width = 1;
  std::uint64_t worst_band_keys = 0;   // sum over the busiest band's queries of keys seen (global layers)
  std::uint64_t worst_band_keys_local = 0;

  std::uint64_t fpb(std::uint64_t features) const { return ceil_div(features, Fc); }
  std::uint64_t hop() const { return a->hop_latency_cycles; }
  /// Wavelets for `elements` weights: packed 4 bytes a wavelet (a plain mov into a buffer).
  std::uint64_t weight_wavelets(std::uint64_t elements) const { return ceil_div(elements * weight_bytes, 4); }
  /// `rows` × a vector of n elements done as DSD ops of at most `len` elements at `width`.
  std::uint64_t vec_cycles(std::uint64_t rows, std::uint64_t n, std::uint64_t len, std::uint64_t width) const {
    if (rows == 0 || n == 0) return 0;
    len = std::max<std::uint64_t>(1, std::min<std::uint64_t>(len, n));
    const std::uint64_t issue = a->cycles.dsd_issue, full = n / len, rem = n % len;
    const std::uint64_t per = full * (issue + ceil_div(len, width)) + (rem ? issue + ceil_div(rem, width) : 0);
    return rows * per;
  }
  std::uint64_t macs(std::uint64_t rows, std::uint64_t n) const { return vec_cycles(rows, n, c, mac_width); }
  std::uint64_t ew(std::uint64_t elements, std::uint32_t ops) const { return ceil_div(elements * ops, ew_width); }
  /// Link load of a reduce-scatter (or allgather) of tpb × n along a row of Fc PEs.
  std::uint64_t row_exchange(std::uint64_t n) const { return ceil_div(std::uint64_t{tpb} * n * (Fc - 1), Fc); }
  /// Fill (first chunk down the column and across the row) and drain (last chunk's reduction).
  std::uint64_t latency() const { return (Tr + Fc) * hop() + Fc * (hop() + 1) + std::uint64_t{tpb} * c; }
};

inline void finish(PassPlan& p, std::uint64_t latency) {
  const std::uint64_t stream = std::max(p.stream_in_cycles, p.stream_out_cycles);
  std::uint64_t top = p.compute_cycles;
  p.bound = Bound::compute;
  if (stream > top) top = stream, p.bound = Bound::weights;
  if (p.fabric_cycles > top) top = p.fabric_cycles, p.bound = Bound::fabric;
  p.latency_cycles = latency;
  p.cycles = top + latency;
}

/// Y = X W (+ b), W [in, out]. Forward: column x gets W's rows of in-block x, PEs multiply
/// their X block by each chunk of c columns and reduce partial sums along the row to the
/// column owning each out-feature. Backward: column j gets W[:, out-block j] for dX = dY W^T
/// (reduced along the row like forward) and computes dW[:, out-block j] = X^T dY after
/// gathering X along the row (or, when out < in, gathers dY and computes dW[in-block, :]);
/// dW is reduced up the column and leaves at the north edge.
inline void linear(const Shape& s, LayerPlan& L, std::uint64_t in, std::uint64_t out, bool bias) {
  const std::uint64_t tpb = s.tpb, fin = s.fpb(in), fout = s.fpb(out), sw = s.a->cycles.task_switch;
  const double T = double(s.T);
  L.in_features = std::uint32_t(in);
  L.out_features = std::uint32_t(out);
  L.weight_elements += in * out + (bias ? out : 0);
  L.forward.flops += 2.0 * T * double(in) * double(out);
  L.forward.compute_cycles += s.macs(tpb * fin, out) + sw * ceil_div(out, s.c) + (bias ? s.ew(tpb * fout, 1) : 0);
  L.forward.stream_in_cycles += s.weight_wavelets(fin * out + (bias ? fout : 0));
  L.forward.fabric_cycles += s.row_exchange(out);
  const bool gather_x = in <= out;  // gather the smaller operand of dW = X^T dY along the row
  L.backward.flops += 4.0 * T * double(in) * double(out);
  L.backward.compute_cycles += s.macs(tpb * fout, in) + sw * ceil_div(in, s.c) +                // dX
                               (gather_x ? s.macs(tpb * fout, in) : s.macs(tpb * fin, out)) +  // dW
                               (bias ? s.ew(tpb * fout, 1) : 0);                               // db
  L.backward.stream_in_cycles += s.weight_wavelets(fout * in);
  L.backward.stream_out_cycles += s.weight_wavelets((gather_x ? fout * in : fin * out) + (bias ? fout : 0));
  L.backward.fabric_cycles += s.row_exchange(in) + s.row_exchange(std::min(in, out));
  // Double-buffered weight chunks and partial sums; backward adds the gathered chunk and dW partials.
  const std::uint64_t c = s.c;
  const std::uint64_t fwd = 2 * fin * c * s.weight_bytes + 2 * tpb * c * s.sum_bytes + tpb * fout * s.sum_bytes;
  const std::uint64_t bwd = 2 * fout * c * s.weight_bytes + 2 * tpb * c * s.sum_bytes + 2 * tpb * c * s.act_bytes +
                            2 * std::max(fin, fout) * c * s.sum_bytes + tpb * (fin + fout) * s.sum_bytes;
  L.working_bytes = std::max(L.working_bytes, std::max(fwd, bwd));
}

/// A layer norm over d_model features: per-token sum and sum of squares allreduced along the row.
inline void norm(const Shape& s, LayerPlan& L) {
  const std::uint64_t d = s.m->d_model, f = s.fpb(d), tpb = s.tpb;
  L.weight_elements += 2 * d;
  L.forward.compute_cycles += s.ew(tpb * f, ElementwiseOps::norm_fwd);
  L.forward.stream_in_cycles += s.weight_wavelets(2 * f);
  L.forward.fabric_cycles += 2 * s.row_exchange(2);
  L.backward.compute_cycles += s.ew(tpb * f, ElementwiseOps::norm_bwd);
  L.backward.stream_in_cycles += s.weight_wavelets(2 * f);
  L.backward.stream_out_cycles += s.weight_wavelets(2 * f);
  L.backward.fabric_cycles += 2 * s.row_exchange(2);
  L.working_bytes += tpb * f * s.act_bytes;  // the normalized copy (recomputed in backward, never kept)
}

/// Heads whose features meet the busiest PE's feature band (a band may straddle a boundary).
inline std::uint64_t heads_per_pe(const Shape& s) {
  const std::uint64_t hd = s.m->head_dim(), f = s.fpb(s.m->d_model);
  const std::uint64_t n = f >= hd ? ceil_div(f, hd) + (f % hd ? 1 : 0) : (hd % f ? 2 : 1);
  return std::min<std::uint64_t>(n, s.m->heads);
}

/// Sum over token positions 0..n-1 of the keys each query sees (causal, optional window).
inline std::uint64_t keys_prefix(std::uint64_t n, std::uint64_t window) {
  if (window == 0 || n <= window) return n * (n + 1) / 2;
  return window * (window + 1) / 2 + (n - window) * window;
}
/// The largest sum of keys over the queries of one token band (bands of tpb consecutive tokens).
inline std::uint64_t worst_band_keys(std::uint64_t T, std::uint64_t S, std::uint64_t tpb, std::uint64_t window) {
  auto upto = [&](std::uint64_t t) { return (t / S) * keys_prefix(S, window) + keys_prefix(t % S, window); };
  std::uint64_t worst = 0;
  for (std::uint64_t a = 0; a < T; a += tpb) worst = std::max(worst, upto(std::min(T, a + tpb)) - upto(a));
  return worst;
}

/// Causal attention per token band. Keys and values of earlier bands of the same sequence flow
/// down the column (K/V chunks of c keys, flash-style online softmax, so no band ever holds a
/// full score row); a head split over several columns allreduces its partial scores along the
/// row. Backward recomputes scores from the kept log-sum-exp and sends dK, dV partials back up.
inline void attention(const Shape& s, LayerPlan& L, bool local) {
  const ModelSpec& m = *s.m;
  const std::uint64_t d = m.d_model, f = s.fpb(d), tpb = s.tpb, hl = heads_per_pe(s);
  const std::uint64_t window = local ? m.local_window : 0;
  const std::uint64_t band = local ? s.worst_band_keys_local : s.worst_band_keys;  // query·key pairs
  const std::uint64_t kv_keys = std::min<std::uint64_t>(s.S, window ? window + tpb - 1 : s.S);
  const bool split_heads = f < m.head_dim();  // partial scores need a row allreduce
  const double pairs = double(s.B) * double(keys_prefix(s.S, window));
  const std::uint64_t rot = m.positions == Positions::rotary ? m.rotary_dims * f / m.head_dim() + 1 : 0;
  const std::uint64_t sw = s.a->cycles.task_switch;
  const std::uint64_t chunks = ceil_div(kv_keys, s.c) * tpb;

  // Forward: S = Q K^T over key chunks (vectors of c keys), softmax, O += P V (vectors of f).
  L.forward.flops = 4.0 * pairs * double(d);
  L.forward.compute_cycles = s.vec_cycles(f, band, s.c, s.mac_width) + s.vec_cycles(band, f, f, s.mac_width) +
                             s.ew(band * hl, ElementwiseOps::softmax_fwd) + s.ew(tpb * 2 * rot, ElementwiseOps::rotary) +
                             sw * chunks;
  const std::uint64_t kv_down = 2 * f * kv_keys;  // K and V chunks on the busiest southward link
  const std::uint64_t scores_row = split_heads ? 2 * band * hl : 0;
  L.forward.fabric_cycles = std::max(kv_down, scores_row);
  // Backward: S again, dV = P^T dO, dP = dO V^T, dS = P∘(dP − D), dQ = dS K, dK = dS^T Q.
  L.backward.flops = 10.0 * pairs * double(d);
  L.backward.compute_cycles = 2 * s.vec_cycles(f, band, s.c, s.mac_width) + 3 * s.vec_cycles(band, f, f, s.mac_width) +
                              s.ew(band * hl, ElementwiseOps::softmax_bwd) + s.ew(tpb * f, 1) +
                              s.ew(tpb * 2 * rot, ElementwiseOps::rotary) + 2 * sw * chunks;
  L.backward.fabric_cycles = std::max(kv_down, 2 * scores_row);  // dK, dV go up on the northward links
  const std::uint64_t lat = s.Tr * s.hop() + std::uint64_t{s.Fc} * (s.hop() + 1);
  finish(L.forward, lat);
  finish(L.backward, lat);
  // Kept: q, k, v and the log-sum-exp per (token, head). Working: K/V chunks (double-buffered),
  // a score chunk, running max/sum, the output accumulator; backward adds dQ, dK/dV partials, dP.
  L.saved_bytes = 3 * tpb * f * s.act_bytes + tpb * hl * 4;
  const std::uint64_t kc = s.c;
  const std::uint64_t fwd = 4 * kc * f * s.act_bytes + tpb * kc * hl * 4 + tpb * hl * 8 + tpb * f * 4;
  const std::uint64_t bwd = fwd + tpb * f * 4 + 4 * kc * f * 4 + tpb * kc * hl * 4 + tpb * f * s.act_bytes + tpb * hl * 4;
  L.working_bytes = std::max(fwd, bwd);
}

/// The five sub-layers of block `i` (names without the "h.i." prefix filled in by the caller).
inline void block_layers(const Shape& s, std::int32_t i, std::vector<LayerPlan>& out) {
  const ModelSpec& m = *s.m;
  const std::uint64_t d = m.d_model, f = s.fpb(d), fff = s.fpb(m.d_ff), tpb = s.tpb;
  const std::uint64_t x_bytes = tpb * f * s.act_bytes;
  const std::uint64_t lat = s.latency();
  auto start = [&](LayerKind k) -> LayerPlan& {
    out.push_back({});
    LayerPlan& L = out.back();
    L.kind = k;
    L.block = i;
    return L;
  };
  {
    LayerPlan& L = start(LayerKind::qkv);
    norm(s, L);
    linear(s, L, d, 3 * d, m.qkv_bias);
    L.saved_bytes = x_bytes + tpb * 8;  // block input + ln1 statistics
    L.parameters = L.weight_elements;
    finish(L.forward, lat);
    finish(L.backward, lat);
  }
  {
    LayerPlan& L = start(LayerKind::attention);
    attention(s, L, m.is_local(std::uint32_t(i)));
  }
  {
    LayerPlan& L = start(LayerKind::attn_out);
    linear(s, L, d, d, m.attn_out_bias);
    L.saved_bytes = x_bytes;  // attention output, the input of this projection
    if (m.residual == Residual::sequential) {  // x += attn: one add; x_mid kept for ln2
      L.forward.compute_cycles += s.ew(tpb * f, 1);
      L.saved_bytes += x_bytes;
    }
    L.parameters = L.weight_elements;
    finish(L.forward, lat);
    finish(L.backward, lat);
  }
  {
    LayerPlan& L = start(LayerKind::mlp_fc);
    if (m.residual != Residual::parallel_shared) norm(s, L);  // ln2 (GPT-J reuses ln1's output)
    linear(s, L, d, m.d_ff, m.mlp_bias);
    L.forward.compute_cycles += s.ew(tpb * fff, ElementwiseOps::gelu_fwd);
    L.backward.compute_cycles += s.ew(tpb * fff, ElementwiseOps::gelu_bwd);
    L.saved_bytes = (m.residual != Residual::parallel_shared ? tpb * 8 : 0);  // ln2 statistics
    L.working_bytes += tpb * f * s.act_bytes;  // the recomputed normalized input
    L.parameters = L.weight_elements;
    finish(L.forward, lat);
    finish(L.backward, lat);
  }
  {
    LayerPlan& L = start(LayerKind::mlp_proj);
    linear(s, L, m.d_ff, d, m.mlp_bias);
    L.forward.compute_cycles += s.ew(tpb * f, m.residual == Residual::sequential ? 1 : 2);  // residual add(s)
    L.saved_bytes = tpb * fff * s.act_bytes;        // pre-GELU u; GELU(u) is recomputed
    L.working_bytes += tpb * fff * s.act_bytes;     // GELU(u) (forward) or dGELU (backward)
    L.parameters = L.weight_elements;
    finish(L.forward, lat);
    finish(L.backward, lat);
  }
}

/// Embedding: the store streams the wte row slice of every token of the batch (and the
/// learned position rows once) down each column; a range filter gives each band its own
/// tokens. Backward streams dX rows out; the store scatter-adds them into dwte (and dwpe).
inline LayerPlan embedding_layer(const Shape& s) {
  const ModelSpec& m = *s.m;
  const std::uint64_t d = m.d_model, f = s.fpb(d), tpb = s.tpb;
  const bool learned = m.positions == Positions::learned;
  LayerPlan L;
  L.kind = LayerKind::embedding;
  L.weight_elements = s.T * d + (learned ? std::uint64_t{s.S} * d : 0);
  L.parameters = std::uint64_t{m.vocab} * d + (learned ? std::uint64_t{m.context} * d : 0);
  L.forward.compute_cycles = s.vec_cycles(tpb, f, f, s.a->cycles.f32_add_width) * (learned ? 2 : 1);
  L.forward.stream_in_cycles = s.weight_wavelets(s.T * f + (learned ? s.S * f : 0));
  L.backward.compute_cycles = 0;
  L.backward.stream_out_cycles = s.weight_wavelets(s.T * f);
  const std::uint64_t lat = s.Tr * s.hop();
  finish(L.forward, lat);
  finish(L.backward, lat);
  L.working_bytes = tpb * f * s.act_bytes + 2 * s.c * 4 + tpb * f * s.sum_bytes;
  return L;
}

/// Head: final norm, logits = x W (W = wte^T when tied), softmax cross-entropy along the row
/// (max and sum allreduced per token). Its forward and backward are adjacent in the schedule,
/// so logits and its input are working memory, never kept.
inline LayerPlan head_layer(const Shape& s) {
  const ModelSpec& m = *s.m;
  const std::uint64_t d = m.d_model, f = s.fpb(d), fv = s.fpb(m.vocab), tpb = s.tpb;
  LayerPlan L;
  L.kind = LayerKind::head;
  norm(s, L);
  L.parameters = 2 * d;
  linear(s, L, d, m.vocab, m.head_bias);
  if (!m.tied_head) L.parameters += std::uint64_t{d} * m.vocab + (m.head_bias ? m.vocab : 0);
  L.forward.compute_cycles += s.ew(tpb * fv, ElementwiseOps::xent);
  L.forward.fabric_cycles += 3 * s.row_exchange(1);  // max, sum of exp, the label's logit
  L.backward.compute_cycles += s.ew(tpb * fv, 2);
  // Logits are the linear's output (and, in place, its dY); add the kept input and its gradient.
  L.working_bytes += tpb * f * s.act_bytes + tpb * f * s.sum_bytes;
  finish(L.forward, s.latency());
  finish(L.backward, s.latency());
  return L;
}

/// Everything the search needs about one candidate, computed from the distinct layers only.
struct Evaluation {
  bool fits = false;
  bool checkpointing = false;
  std::uint64_t step_cycles = 0;
  MemoryPlan memory;
  std::uint64_t worst_layer_need = 0;   // reserved + the largest working set (+ checkpoint floor)
  std::string worst_layer;
};

inline std::string block_layer_name(std::int32_t i, LayerKind k) { return "h." + std::to_string(i) + "." + to_string(k); }

/// The distinct layers of a shape: embedding, a global block, a local block (if any), head.
struct Templates {
  LayerPlan embedding, head;
  std::vector<LayerPlan> global, local;
};
inline Templates templates(const Shape& s) {
  Templates t;
  t.embedding = embedding_layer(s);
  t.head = head_layer(s);
  // Blocks differ only in whether their attention is local: build the first of each kind.
  bool have_global = false, have_local = false;
  for (std::uint32_t i = 0; i < s.m->layers && !(have_global && have_local); ++i) {
    const bool local = s.m->is_local(i);
    if (local ? have_local : have_global) continue;
    block_layers(s, std::int32_t(i), local ? t.local : t.global);
    (local ? have_local : have_global) = true;
  }
  return t;
}

inline std::uint64_t pass_total(const std::vector<LayerPlan>& ls, bool fwd) {
  std::uint64_t t = 0;
  for (const auto& L : ls) t += fwd ? L.forward.cycles : L.backward.cycles;
  return t;
}
inline std::uint64_t saved_total(const std::vector<LayerPlan>& ls) {
  std::uint64_t t = 0;
  for (const auto& L : ls) t += L.saved_bytes;
  return t;
}

inline Evaluation evaluate(const Shape& s, const Templates& t, const PlanOptions& o) {
  const ModelSpec& m = *s.m;
  std::uint64_t n_local = 0;
  for (std::uint32_t i = 0; i < m.layers; ++i) n_local += m.is_local(i) ? 1 : 0;
  const std::uint64_t n_global = m.layers - n_local;
  Evaluation e;
  e.memory.budget = s.a->pe_memory_bytes;
  e.memory.reserved = o.reserved_bytes;
  // The largest working set of any layer.
  auto consider = [&](const LayerPlan& L, const std::string& name) {
    if (L.working_bytes > e.memory.working) e.memory.working = L.working_bytes, e.memory.working_layer = name;
  };
  consider(t.embedding, "embedding");
  for (const auto& L : t.global) consider(L, block_layer_name(L.block, L.kind));
  for (const auto& L : t.local) consider(L, block_layer_name(L.block, L.kind));
  consider(t.head, "head");
  const std::uint64_t block_saved = std::max(saved_total(t.global), n_local ? saved_total(t.local) : 0);
  const std::uint64_t x_bytes = std::uint64_t{s.tpb} * s.fpb(m.d_model) * s.act_bytes;
  const std::uint64_t all_saved = n_global * saved_total(t.global) + n_local * saved_total(t.local);
  // Checkpointing keeps block inputs; during a block's backward its own activations are rebuilt.
  const std::uint64_t ckpt_saved = std::uint64_t{m.layers} * x_bytes, ckpt_rebuilt = block_saved - x_bytes;
  const std::uint64_t budget = e.memory.budget;
  const bool keep_fits = o.reserved_bytes + all_saved + e.memory.working <= budget;
  const bool ckpt_fits = o.reserved_bytes + ckpt_saved + ckpt_rebuilt + e.memory.working <= budget;
  e.worst_layer_need = o.reserved_bytes + e.memory.working;
  e.worst_layer = e.memory.working_layer;
  if (o.checkpointing != Checkpointing::always && keep_fits) {
    e.fits = true;
    e.memory.saved = all_saved;
  } else if (o.checkpointing != Checkpointing::never && ckpt_fits) {
    e.fits = true;
    e.checkpointing = true;
    e.memory.saved = ckpt_saved;
    e.memory.recompute = ckpt_rebuilt;
  } else if (o.checkpointing == Checkpointing::never) {  // report the configuration that was tried
    e.memory.saved = all_saved;
  } else {
    e.memory.saved = ckpt_saved;
    e.memory.recompute = ckpt_rebuilt;
  }
  const std::uint64_t fwd = t.embedding.forward.cycles + n_global * pass_total(t.global, true) +
                            n_local * pass_total(t.local, true) + t.head.forward.cycles;
  const std::uint64_t bwd = t.embedding.backward.cycles + n_global * pass_total(t.global, false) +
                            n_local * pass_total(t.local, false) + t.head.backward.cycles;
  const std::uint64_t recompute =
      e.checkpointing ? n_global * pass_total(t.global, true) + n_local * pass_total(t.local, true) : 0;
  e.step_cycles = fwd + bwd + recompute;
  return e;
}

inline std::string with_commas(std::uint64_t v) {
  std::string s = std::to_string(v), r;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) r += ',';
    r += s[i];
  }
  return r;
}

}  // namespace detail

/// Plans one training step of `model` with `batch` sequences of `seq` tokens on `wafer`.
/// Searches the number of feature bands (columns) and the chunk width for the shortest
/// predicted step that fits per-PE memory, keeping all activations when they fit and
/// checkpointing block inputs otherwise (PlanOptions::checkpointing). Token bands use as many
/// rows as the tokens need (tokens per PE = ceil(tokens / height)). Throws ModelError for an
/// invalid spec and PlanError for bad arguments or when no mapping fits. Host; pure function.
inline Plan plan(const ModelSpec& model, std::uint32_t batch, std::uint32_t seq, const Wafer& wafer,
                 const PlanOptions& options = {}) {
  validate(model);
  const std::string where = "plan '" + model.name + "' on " + std::to_string(wafer.width) + "x" +
                            std::to_string(wafer.height) + " " + wafer.arch.name + ": ";
  if (batch == 0) throw PlanError(where + "batch must be at least 1");
  if (seq == 0 || seq > model.context)
    throw PlanError(where + "seq " + std::to_string(seq) + " must be in 1.." + std::to_string(model.context) +
                    " (the model's context)");
  if (wafer.width == 0 || wafer.height == 0 || wafer.width > wafer.arch.fabric_width ||
      wafer.height > wafer.arch.fabric_height)
    throw PlanError(where + "grid must be 1x1.." + std::to_string(wafer.arch.fabric_width) + "x" +
                    std::to_string(wafer.arch.fabric_height) + " (the arch's fabric)");
  if (options.feature_bands > wafer.width)
    throw PlanError(where + "feature_bands " + std::to_string(options.feature_bands) + " exceeds the grid width");
  if (options.reserved_bytes >= wafer.arch.pe_memory_bytes)
    throw PlanError(where + "reserved_bytes " + std::to_string(options.reserved_bytes) + " leaves no PE memory");
  if (options.chunk > max_chunk)
    throw PlanError(where + "chunk " + std::to_string(options.chunk) + " must be 0 (search) or 1.." + std::to_string(max_chunk));
  if (wafer.arch.clock_hz == 0) throw PlanError(where + "the arch's clock_hz is 0: step times need a clock");
  // Tokens per PE are a 32-bit count, and no PE holds even 2^20 tokens of activations: refuse
  // absurd batches here instead of overflowing.
  if (detail::ceil_div(std::uint64_t{batch} * seq, wafer.height) > (1u << 20))
    throw PlanError(where + "batch x seq = " + std::to_string(std::uint64_t{batch} * seq) + " tokens is more than 2^20 tokens per row of the " +
                    std::to_string(wafer.height) + "-row grid; no PE can hold that; use a smaller batch or sequence");

  detail::Shape s;
  s.m = &model;
  s.a = &wafer.arch;
  s.B = batch;
  s.S = seq;
  s.T = std::uint64_t{batch} * seq;
  s.tpb = std::uint32_t(detail::ceil_div(s.T, wafer.height));
  s.Tr = std::uint32_t(detail::ceil_div(s.T, s.tpb));  // rows the tokens need
  const auto& cc = wafer.arch.cycles;
  switch (options.precision) {
    case Precision::fp32: s.act_bytes = s.weight_bytes = s.sum_bytes = 4, s.mac_width = s.ew_width = cc.f32_mul_width; break;
    case Precision::fp16: s.act_bytes = s.weight_bytes = s.sum_bytes = 2, s.mac_width = s.ew_width = cc.f16_width; break;
    case Precision::mixed:
      s.act_bytes = s.weight_bytes = 2, s.sum_bytes = 4, s.mac_width = cc.mixed_mac_width, s.ew_width = cc.f32_mul_width;
      break;
  }
  s.worst_band_keys = detail::worst_band_keys(s.T, seq, s.tpb, 0);
  s.worst_band_keys_local = model.local_window ? detail::worst_band_keys(s.T, seq, s.tpb, model.local_window) : 0;

  // Search: every column count and chunk width; keep the fastest that fits (ties: fewer PEs).
  static constexpr std::uint32_t chunks[] = {256, 128, 64, 32, 16, 8};
  const std::uint32_t fc_lo = options.feature_bands ? options.feature_bands : 1;
  const std::uint32_t fc_hi = options.feature_bands ? options.feature_bands : std::min<std::uint32_t>(wafer.width, std::max(model.d_model, model.d_ff));
  bool found = false;
  detail::Evaluation best, smallest_layer, smallest_total;  // the last two explain a refusal
  detail::Shape best_shape = s, smallest_layer_shape = s, smallest_total_shape = s;
  bool any = false;
  for (std::uint32_t fc = fc_lo; fc <= fc_hi; ++fc) {
    for (const std::uint32_t c : chunks) {
      if (options.chunk && c != chunks[0]) continue;
      s.Fc = fc;
      s.c = options.chunk ? options.chunk : c;
      const detail::Evaluation e = detail::evaluate(s, detail::templates(s), options);
      if (e.fits) {
        if (!found || e.step_cycles < best.step_cycles) best = e, best_shape = s, found = true;
      } else if (!found) {
        if (!any || e.worst_layer_need < smallest_layer.worst_layer_need) smallest_layer = e, smallest_layer_shape = s;
        if (!any || e.memory.total() < smallest_total.memory.total()) smallest_total = e, smallest_total_shape = s;
        any = true;
      }
    }
  }
  if (!found) {
    const std::uint64_t budget = wafer.arch.pe_memory_bytes;
    const std::string kib = std::to_string(budget / 1024) + " KiB";
    auto mapping = [&](const detail::Shape& b) {
      return " (best mapping: " + std::to_string(b.tpb) + " tokens x " + std::to_string(b.fpb(model.d_model)) + " of " +
             std::to_string(model.d_model) + " features per PE on " + std::to_string(b.Fc) + "x" + std::to_string(b.Tr) +
             " PEs, chunk " + std::to_string(b.c) + ")";
    };
    const bool never = options.checkpointing == Checkpointing::never;
    if (smallest_layer.worst_layer_need > budget)
      throw PlanError(where + "layer '" + smallest_layer.worst_layer + "' needs " +
                      detail::with_commas(smallest_layer.worst_layer_need) + " bytes per PE (" +
                      detail::with_commas(options.reserved_bytes) + " reserved + " +
                      detail::with_commas(smallest_layer.memory.working) + " working set) but a PE has " +
                      detail::with_commas(budget) + " bytes (" + kib + ")" + mapping(smallest_layer_shape) +
                      "; use a smaller batch or sequence, or a bigger grid");
    const detail::Evaluation& e = smallest_total;
    throw PlanError(where + "activations need " + detail::with_commas(e.memory.total()) + " bytes per PE (" +
                    detail::with_commas(e.memory.saved + e.memory.recompute) + " kept for backward" +
                    (never ? " without checkpointing" : " with checkpointing") + ", largest working set " +
                    detail::with_commas(e.memory.working) + " in '" + e.memory.working_layer + "') but a PE has " +
                    detail::with_commas(budget) + " bytes (" + kib + ")" + mapping(smallest_total_shape) +
                    "; use a smaller batch or sequence, a bigger grid" + (never ? ", or allow checkpointing" : ""));
  }

  // Expand the winner into every layer, in forward order.
  const detail::Shape& b = best_shape;
  const detail::Templates t = detail::templates(b);
  Plan p;
  p.model = model;
  p.batch = batch;
  p.seq = seq;
  p.tokens = b.T;
  p.wafer = wafer;
  p.precision = options.precision;
  p.feature_bands = b.Fc;
  p.token_bands = b.Tr;
  p.tokens_per_pe = b.tpb;
  p.features_per_pe = std::uint32_t(b.fpb(model.d_model));
  p.chunk = b.c;
  p.checkpointing = best.checkpointing;
  p.memory = best.memory;
  p.layers.push_back(t.embedding);
  p.layers.back().name = "embedding";
  for (std::uint32_t i = 0; i < model.layers; ++i) {
    for (LayerPlan L : model.is_local(i) ? t.local : t.global) {
      L.block = std::int32_t(i);
      L.name = detail::block_layer_name(L.block, L.kind);
      if (p.checkpointing) L.recompute_cycles = L.forward.cycles;
      p.layers.push_back(std::move(L));
    }
  }
  p.layers.push_back(t.head);
  p.layers.back().name = "head";
  const double wb = options.precision == Precision::fp32 ? 4.0 : 2.0;
  for (auto& L : p.layers) {
    L.weight_bytes = double(L.weight_elements) * wb;
    p.forward_cycles += L.forward.cycles;
    p.backward_cycles += L.backward.cycles;
    p.recompute_cycles += L.recompute_cycles;
    p.flops += L.forward.flops + L.backward.flops + (L.recompute_cycles ? L.forward.flops : 0.0);
  }
  p.step_cycles = p.forward_cycles + p.backward_cycles + p.recompute_cycles;
  p.step_seconds = double(p.step_cycles) / double(wafer.arch.clock_hz);
  p.tokens_per_second = p.step_seconds > 0 ? double(p.tokens) / p.step_seconds : 0;
  return p;
}

/// The plan as a readable table: the mapping, memory per PE, totals, then one row per layer
/// (blocks with identical figures are shown once, as "blocks 0..27 (each)"). Host.
inline std::string report(const Plan& p) {
  std::string r;
  char line[512];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    r += line;
  };
  using detail::with_commas;
  const auto& a = p.wafer.arch;
  add("weight-streaming plan: %s (%s parameters), batch %u x seq %u = %s tokens, %s\n", p.model.name.c_str(),
      with_commas(parameter_count(p.model)).c_str(), p.batch, p.seq, with_commas(p.tokens).c_str(), to_string(p.precision));
  add("wafer: %s %u x %u PEs at %.0f MHz; using %u feature bands (columns) x %u token bands (rows) = %s PEs (%.0f%%)\n",
      a.name, p.wafer.width, p.wafer.height, a.clock_hz / 1e6, p.feature_bands, p.token_bands,
      with_commas(p.pes_used()).c_str(), 100.0 * double(p.pes_used()) / (double(p.wafer.width) * p.wafer.height));
  add("per PE: %u tokens x %u of %u features; chunk %u; activation checkpointing: %s\n", p.tokens_per_pe,
      p.features_per_pe, p.model.d_model, p.chunk, p.checkpointing ? "on (block inputs kept, blocks recomputed)" : "off");
  add("memory per PE: %s of %s bytes (reserved %s + kept for backward %s + recomputed block %s + working %s in %s)\n",
      with_commas(p.memory.total()).c_str(), with_commas(p.memory.budget).c_str(), with_commas(p.memory.reserved).c_str(),
      with_commas(p.memory.saved).c_str(), with_commas(p.memory.recompute).c_str(), with_commas(p.memory.working).c_str(),
      p.memory.working_layer.c_str());
  const double hz = a.clock_hz;
  add("step: %.2f ms (forward %.2f, backward %.2f, recompute %.2f) = %.0f tokens/s; %.1f TFLOP = %.1f TFLOP/s\n",
      p.step_ms(), p.forward_cycles / hz * 1e3, p.backward_cycles / hz * 1e3, p.recompute_cycles / hz * 1e3,
      p.tokens_per_second, p.flops / 1e12, p.flops / 1e12 / p.step_seconds);
  add("cycles in thousands (kc); compute = busiest PE, in/out = weight wavelets per edge link, fabric = busiest link\n");
  add("%-26s %9s | %8s %8s %8s %8s %8s %-7s | %8s %8s %8s %8s %8s %8s %-7s\n", "layer", "weight MB", "fwd GF", "compute",
      "in", "fabric", "total", "bound", "bwd GF", "compute", "in", "out", "fabric", "total", "bound");
  auto k = [](std::uint64_t c) { return double(c) / 1e3; };
  // Two decimals; three significant digits below 0.01 (a tiny model's layers: a few kFLOP).
  auto two_decimals = [](double v) {
    char text[32];
    std::snprintf(text, sizeof text, v != 0 && v < 0.01 && v > -0.01 ? "%.3g" : "%.2f", v);
    return std::string(text);
  };
  auto row = [&](const std::string& name, const LayerPlan& L) {
    const PassPlan &f = L.forward, &b = L.backward;
    add("%-26s %9s | %8s %8.1f %8.1f %8.1f %8.1f %-7s | %8s %8.1f %8.1f %8.1f %8.1f %8.1f %-7s\n", name.c_str(),
        two_decimals(L.weight_bytes / 1e6).c_str(), two_decimals(f.flops / 1e9).c_str(), k(f.compute_cycles),
        k(f.stream_in_cycles), k(f.fabric_cycles), k(f.cycles), to_string(f.bound), two_decimals(b.flops / 1e9).c_str(),
        k(b.compute_cycles), k(b.stream_in_cycles), k(b.stream_out_cycles), k(b.fabric_cycles), k(b.cycles),
        to_string(b.bound));
  };
  // Group blocks whose sub-layers have identical figures.
  auto same = [](const LayerPlan& x, const LayerPlan& y) {
    return x.kind == y.kind && x.weight_elements == y.weight_elements && x.forward.cycles == y.forward.cycles &&
           x.backward.cycles == y.backward.cycles && x.forward.compute_cycles == y.forward.compute_cycles &&
           x.backward.compute_cycles == y.backward.compute_cycles;
  };
  const std::size_t per_block = 5;
  std::vector<bool> shown(p.model.layers, false);
  for (const auto& L : p.layers) {
    if (L.block < 0) {
      row(L.name, L);
      continue;
    }
    const std::uint32_t i = std::uint32_t(L.block);
    if (shown[i] || L.kind != LayerKind::qkv) continue;
    const std::size_t base = 1 + i * per_block;
    std::vector<std::uint32_t> group;
    for (std::uint32_t j = i; j < p.model.layers; ++j) {
      const std::size_t other = 1 + j * per_block;
      bool eq = !shown[j];
      for (std::size_t q = 0; eq && q < per_block; ++q) eq = same(p.layers[base + q], p.layers[other + q]);
      if (eq) group.push_back(j), shown[j] = true;
    }
    std::string label;
    if (group.size() == 1) {
      label = "block " + std::to_string(i);
    } else {
      const std::uint32_t step = group[1] - group[0];
      bool progression = true;
      for (std::size_t q = 1; q < group.size(); ++q) progression = progression && group[q] - group[q - 1] == step;
      label = "blocks " + std::to_string(group.front()) + ".." + std::to_string(group.back());
      if (!progression) {
        label = "blocks ";
        for (std::size_t q = 0; q < group.size(); ++q) label += (q ? "," : "") + std::to_string(group[q]);
      } else if (step > 1) {
        label += " step " + std::to_string(step);
      }
      label += " (each)";
    }
    r += label + "\n";
    for (std::size_t q = 0; q < per_block; ++q)
      row(std::string("  ") + to_string(p.layers[base + q].kind), p.layers[base + q]);
  }
  return r;
}

}  // namespace wse::stream
