#pragma once
/// \file
/// A plain host reference of the decoder-only transformer described by a
/// wse::stream::ModelSpec: forward pass, mean cross-entropy loss and the full backward pass,
/// written for readability (loops over tokens, heads and features, no tricks). Test-only; uses
/// the C++ standard library and model.hpp, nothing else.
///
/// It is the oracle the weight-streaming executor is compared against, layer by layer, and it is
/// itself checked against an independent PyTorch model (tests/torch_reference.py) by
/// tests/test_torch_reference.cpp.
///
/// Conventions (from model.hpp): weights are fp32 tensors in parameters(spec) order, a linear
/// layer is y = x W + b with W stored [in, out] row-major. Internally every activation and every
/// gradient accumulator is a double, so the reference is more precise than any fp32 run;
/// gradients are returned as fp32 in parameters() order.
///
/// Rotary positions use ModelSpec::rotary_base (10000 by default): the pair with index i (0 <= i < rotary_dims/2)
/// is rotated by the angle pos * base^(-2i / rotary_dims), where pos is the token's index in
/// its sequence (starting at 0). The pair with index i is (2i, 2i+1) in the interleaved style
/// and (i, i + rotary_dims/2) in the half style; a pair (a, b) becomes
/// (a cos - b sin, a sin + b cos).
#include <wse/stream.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wse::stream::reference {

/// One fp32 vector per tensor, in parameters(spec) order (weights or gradients).
using Tensors = std::vector<std::vector<float>>;

/// Token ids for one step: `inputs` and `targets` are [batch, seq] row-major; the row of token
/// s of sequence b is t = b * seq + s.
struct Batch {
  std::uint32_t batch = 0;
  std::uint32_t seq = 0;
  std::vector<std::int32_t> inputs;
  std::vector<std::int32_t> targets;
  std::uint32_t tokens() const { return batch * seq; }
};

/// A layer norm's output and what its backward pass needs.
struct Norm {
  std::vector<double> out;   ///< [T, d]
  std::vector<double> xhat;  ///< [T, d] normalized input, before weight and bias
  std::vector<double> rstd;  ///< [T] 1 / sqrt(var + eps)
};

/// The forward activations of one transformer block, all row-major with T = batch * seq rows.
struct BlockActivations {
  std::vector<double> input;    ///< [T, d] residual stream entering the block
  Norm ln1;                     ///< attention input (and MLP input for parallel_shared)
  std::vector<double> q, k, v;  ///< [T, d] projections; q and k after the rotary embedding
  std::vector<double> probs;    ///< [batch, heads, seq, seq] softmax; 0 where masked
  std::vector<double> context;  ///< [T, d] heads concatenated, before the output projection
  std::vector<double> attn;     ///< [T, d] attention branch output (after the output projection)
  std::vector<double> mid;      ///< [T, d] sequential only: input + attn
  Norm ln2;                     ///< MLP input norm (empty for parallel_shared: the MLP reads ln1)
  std::vector<double> fc;       ///< [T, d_ff] first MLP projection, before GELU
  std::vector<double> act;      ///< [T, d_ff] after GELU
  std::vector<double> mlp;      ///< [T, d] MLP branch output
  std::vector<double> output;   ///< [T, d] residual stream leaving the block
};

/// Everything the forward pass computed for one batch.
struct Activations {
  std::uint32_t batch = 0, seq = 0;
  std::vector<double> embed;              ///< [T, d] token (+ learned position) embedding
  std::vector<BlockActivations> blocks;   ///< one per layer
  Norm lnf;                               ///< final norm
  std::vector<double> logits;             ///< [T, vocab]
  double loss = 0.0;                      ///< mean cross-entropy over the T targets
};

struct LossAndGrads {
  double loss = 0.0;
  Tensors grads;  ///< d loss / d tensor, parameters() order
};

namespace detail {

// y[T, out] = x[T, in] W[in, out] (+ b[out])
inline std::vector<double> linear(const std::vector<double>& x, std::size_t T, std::size_t in, std::size_t out,
                                  const std::vector<float>& W, const std::vector<float>* b) {
  std::vector<double> y(T * out, 0.0);
  for (std::size_t t = 0; t < T; ++t) {
    double* yr = &y[t * out];
    if (b)
      for (std::size_t o = 0; o < out; ++o) yr[o] = (*b)[o];
    for (std::size_t i = 0; i < in; ++i) {
      const double xi = x[t * in + i];
      const float* wr = &W[i * out];
      for (std::size_t o = 0; o < out; ++o) yr[o] += xi * wr[o];
    }
  }
  return y;
}

// Backward of linear(): accumulates dW += x^T dy and db += sum_t dy; returns dx = dy W^T.
inline std::vector<double> linear_backward(const std::vector<double>& x, const std::vector<double>& dy, std::size_t T,
                                           std::size_t in, std::size_t out, const std::vector<float>& W,
                                           std::vector<double>& dW, std::vector<double>* db) {
  std::vector<double> dx(T * in, 0.0);
  for (std::size_t t = 0; t < T; ++t) {
    const double* dyr = &dy[t * out];
    for (std::size_t i = 0; i < in; ++i) {
      const float* wr = &W[i * out];
      double* dwr = &dW[i * out];
      const double xi = x[t * in + i];
      double acc = 0.0;
      for (std::size_t o = 0; o < out; ++o) {
        acc += dyr[o] * wr[o];
        dwr[o] += xi * dyr[o];
      }
      dx[t * in + i] = acc;
    }
    if (db)
      for (std::size_t o = 0; o < out; ++o) (*db)[o] += dyr[o];
  }
  return dx;
}

inline Norm layer_norm(const std::vector<double>& x, std::size_t T, std::size_t d, const std::vector<float>& gamma,
                       const std::vector<float>& beta, double eps) {
  Norm n;
  n.out.resize(T * d);
  n.xhat.resize(T * d);
  n.rstd.resize(T);
  for (std::size_t t = 0; t < T; ++t) {
    const double* xr = &x[t * d];
    double mean = 0.0;
    for (std::size_t c = 0; c < d; ++c) mean += xr[c];
    mean /= static_cast<double>(d);
    double var = 0.0;
    for (std::size_t c = 0; c < d; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= static_cast<double>(d);  // biased variance, as every GPT layer norm
    const double rstd = 1.0 / std::sqrt(var + eps);
    n.rstd[t] = rstd;
    for (std::size_t c = 0; c < d; ++c) {
      const double xh = (xr[c] - mean) * rstd;
      n.xhat[t * d + c] = xh;
      n.out[t * d + c] = xh * gamma[c] + beta[c];
    }
  }
  return n;
}

// Accumulates dgamma, dbeta; returns dx.
inline std::vector<double> layer_norm_backward(const Norm& n, const std::vector<double>& dy, std::size_t T, std::size_t d,
                                               const std::vector<float>& gamma, std::vector<double>& dgamma,
                                               std::vector<double>& dbeta) {
  std::vector<double> dx(T * d);
  std::vector<double> dxhat(d);
  for (std::size_t t = 0; t < T; ++t) {
    double mean_dxhat = 0.0, mean_dxhat_xhat = 0.0;
    for (std::size_t c = 0; c < d; ++c) {
      const double g = dy[t * d + c];
      const double xh = n.xhat[t * d + c];
      dgamma[c] += g * xh;
      dbeta[c] += g;
      dxhat[c] = g * gamma[c];
      mean_dxhat += dxhat[c];
      mean_dxhat_xhat += dxhat[c] * xh;
    }
    mean_dxhat /= static_cast<double>(d);
    mean_dxhat_xhat /= static_cast<double>(d);
    for (std::size_t c = 0; c < d; ++c)
      dx[t * d + c] = n.rstd[t] * (dxhat[c] - mean_dxhat - n.xhat[t * d + c] * mean_dxhat_xhat);
  }
  return dx;
}

inline constexpr double kPi = 3.14159265358979323846;

inline double gelu(double x, Gelu kind) {
  if (kind == Gelu::erf) return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
  const double k = std::sqrt(2.0 / kPi);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

inline double gelu_derivative(double x, Gelu kind) {
  if (kind == Gelu::erf) {
    const double cdf = 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
    const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * kPi);
    return cdf + x * pdf;
  }
  const double k = std::sqrt(2.0 / kPi);
  const double u = k * (x + 0.044715 * x * x * x);
  const double th = std::tanh(u);
  const double du = k * (1.0 + 3.0 * 0.044715 * x * x);
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
}

// Rotates the first rotary_dims of every head of x [T, d] in place; `inverse` rotates by the
// opposite angle (the transpose, which is what the backward pass needs).
inline void rotary(std::vector<double>& x, const ModelSpec& m, std::uint32_t seq, std::size_t T, bool inverse) {
  const std::size_t d = m.d_model, hd = m.head_dim(), r = m.rotary_dims, half = r / 2;
  for (std::size_t t = 0; t < T; ++t) {
    const double pos = static_cast<double>(t % seq);
    for (std::size_t h = 0; h < m.heads; ++h) {
      double* xh = &x[t * d + h * hd];
      for (std::size_t i = 0; i < half; ++i) {
        const double theta = pos * std::pow(static_cast<double>(m.rotary_base), -2.0 * static_cast<double>(i) / static_cast<double>(r));
        const double c = std::cos(theta), s = inverse ? -std::sin(theta) : std::sin(theta);
        const std::size_t a = m.rotary_style == RotaryStyle::interleaved ? 2 * i : i;
        const std::size_t b = m.rotary_style == RotaryStyle::interleaved ? 2 * i + 1 : i + half;
        const double xa = xh[a], xb = xh[b];
        xh[a] = xa * c - xb * s;
        xh[b] = xa * s + xb * c;
      }
    }
  }
}

// May query position i attend to key position j in layer `layer`?
inline bool visible(const ModelSpec& m, std::uint32_t layer, std::uint32_t i, std::uint32_t j) {
  if (j > i) return false;  // causal
  if (m.is_local(layer) && i - j >= m.local_window) return false;  // window includes i itself
  return true;
}

inline double attention_scale(const ModelSpec& m) {
  return m.scale_attention ? 1.0 / std::sqrt(static_cast<double>(m.head_dim())) : 1.0;
}

}  // namespace detail

/// The reference model for one spec. Stateless apart from the spec and the tensor list:
/// weights are passed to every call.
class ReferenceModel {
 public:
  explicit ReferenceModel(ModelSpec spec) : m_(std::move(spec)), tensors_(parameters(m_)) {
    for (std::size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
  }

  const ModelSpec& spec() const { return m_; }
  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  /// Position of tensor `name` in parameters() order; throws std::out_of_range.
  std::size_t index(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw std::out_of_range("reference model '" + m_.name + "' has no tensor " + name);
    return it->second;
  }

  /// Zero-filled tensors of the right sizes (for weights or gradients).
  Tensors zeros() const {
    Tensors z;
    for (const auto& t : tensors_) z.emplace_back(static_cast<std::size_t>(t.elements()), 0.0f);
    return z;
  }

  /// Forward pass and loss for one batch.
  Activations forward(const Tensors& w, const Batch& batch) const {
    check(w, batch);
    const std::size_t T = batch.tokens(), d = m_.d_model, V = m_.vocab, ff = m_.d_ff;
    Activations a;
    a.batch = batch.batch;
    a.seq = batch.seq;

    // Embeddings.
    a.embed.assign(T * d, 0.0);
    const auto& wte = w[index("wte")];
    for (std::size_t t = 0; t < T; ++t) {
      const auto tok = static_cast<std::size_t>(batch.inputs[t]);
      for (std::size_t c = 0; c < d; ++c) a.embed[t * d + c] = wte[tok * d + c];
      if (m_.positions == Positions::learned) {
        const auto& wpe = w[index("wpe")];
        const std::size_t pos = t % batch.seq;
        for (std::size_t c = 0; c < d; ++c) a.embed[t * d + c] += wpe[pos * d + c];
      }
    }

    // Blocks.
    const std::vector<double>* x = &a.embed;
    a.blocks.resize(m_.layers);
    for (std::uint32_t l = 0; l < m_.layers; ++l) {
      BlockActivations& b = a.blocks[l];
      b.input = *x;
      b.ln1 = detail::layer_norm(b.input, T, d, w[index(p(l, "ln1.weight"))], w[index(p(l, "ln1.bias"))], eps());
      attention_forward(w, l, batch, b);
      if (m_.residual == Residual::sequential) {
        b.mid.resize(T * d);
        for (std::size_t i = 0; i < T * d; ++i) b.mid[i] = b.input[i] + b.attn[i];
        b.ln2 = detail::layer_norm(b.mid, T, d, w[index(p(l, "ln2.weight"))], w[index(p(l, "ln2.bias"))], eps());
      } else if (m_.residual == Residual::parallel) {
        b.ln2 = detail::layer_norm(b.input, T, d, w[index(p(l, "ln2.weight"))], w[index(p(l, "ln2.bias"))], eps());
      }
      const std::vector<double>& mlp_in = m_.residual == Residual::parallel_shared ? b.ln1.out : b.ln2.out;
      b.fc = detail::linear(mlp_in, T, d, ff, w[index(p(l, "mlp.fc.weight"))], bias(w, p(l, "mlp.fc.bias")));
      b.act.resize(b.fc.size());
      for (std::size_t i = 0; i < b.fc.size(); ++i) b.act[i] = detail::gelu(b.fc[i], m_.gelu);
      b.mlp = detail::linear(b.act, T, ff, d, w[index(p(l, "mlp.proj.weight"))], bias(w, p(l, "mlp.proj.bias")));
      b.output.resize(T * d);
      for (std::size_t i = 0; i < T * d; ++i)
        b.output[i] = m_.residual == Residual::sequential ? b.mid[i] + b.mlp[i] : b.input[i] + b.attn[i] + b.mlp[i];
      x = &b.output;
    }

    // Final norm, head, loss.
    a.lnf = detail::layer_norm(*x, T, d, w[index("lnf.weight")], w[index("lnf.bias")], eps());
    if (m_.tied_head) {
      a.logits.assign(T * V, 0.0);
      for (std::size_t t = 0; t < T; ++t)
        for (std::size_t v = 0; v < V; ++v) {
          double acc = 0.0;
          for (std::size_t c = 0; c < d; ++c) acc += a.lnf.out[t * d + c] * wte[v * d + c];
          a.logits[t * V + v] = acc;
        }
    } else {
      a.logits = detail::linear(a.lnf.out, T, d, V, w[index("head.weight")], bias(w, "head.bias"));
    }
    double total = 0.0;
    for (std::size_t t = 0; t < T; ++t) {
      const double* z = &a.logits[t * V];
      const double mx = *std::max_element(z, z + V);
      double sum = 0.0;
      for (std::size_t v = 0; v < V; ++v) sum += std::exp(z[v] - mx);
      total += mx + std::log(sum) - z[static_cast<std::size_t>(batch.targets[t])];
    }
    a.loss = total / static_cast<double>(T);
    return a;
  }

  /// Gradients of the mean loss with respect to every tensor, given the forward activations.
  Tensors backward(const Tensors& w, const Batch& batch, const Activations& a) const {
    check(w, batch);
    const std::size_t T = batch.tokens(), d = m_.d_model, V = m_.vocab, ff = m_.d_ff;
    std::vector<std::vector<double>> g;
    for (const auto& t : tensors_) g.emplace_back(static_cast<std::size_t>(t.elements()), 0.0);
    auto G = [&](const std::string& name) -> std::vector<double>& { return g[index(name)]; };
    auto Gopt = [&](const std::string& name) -> std::vector<double>* { return has(name) ? &g[index(name)] : nullptr; };

    // d loss / d logits = (softmax - onehot) / T.
    std::vector<double> dlogits(T * V);
    for (std::size_t t = 0; t < T; ++t) {
      const double* z = &a.logits[t * V];
      const double mx = *std::max_element(z, z + V);
      double sum = 0.0;
      for (std::size_t v = 0; v < V; ++v) sum += std::exp(z[v] - mx);
      for (std::size_t v = 0; v < V; ++v) dlogits[t * V + v] = std::exp(z[v] - mx) / sum / static_cast<double>(T);
      dlogits[t * V + static_cast<std::size_t>(batch.targets[t])] -= 1.0 / static_cast<double>(T);
    }

    // Head.
    const auto& wte = w[index("wte")];
    std::vector<double> dh;
    if (m_.tied_head) {
      dh.assign(T * d, 0.0);
      auto& dwte = G("wte");
      for (std::size_t t = 0; t < T; ++t)
        for (std::size_t v = 0; v < V; ++v) {
          const double gz = dlogits[t * V + v];
          for (std::size_t c = 0; c < d; ++c) {
            dh[t * d + c] += gz * wte[v * d + c];
            dwte[v * d + c] += gz * a.lnf.out[t * d + c];
          }
        }
    } else {
      dh = detail::linear_backward(a.lnf.out, dlogits, T, d, V, w[index("head.weight")], G("head.weight"), Gopt("head.bias"));
    }
    std::vector<double> dx =
        detail::layer_norm_backward(a.lnf, dh, T, d, w[index("lnf.weight")], G("lnf.weight"), G("lnf.bias"));

    // Blocks, last first. dx is d loss / d (block output).
    for (std::uint32_t li = m_.layers; li-- > 0;) {
      const BlockActivations& b = a.blocks[li];
      const std::vector<double>& dout = dx;
      // MLP branch: d mlp = dout in every residual kind.
      std::vector<double> dact = detail::linear_backward(b.act, dout, T, ff, d, w[index(p(li, "mlp.proj.weight"))],
                                                         G(p(li, "mlp.proj.weight")), Gopt(p(li, "mlp.proj.bias")));
      for (std::size_t i = 0; i < dact.size(); ++i) dact[i] *= detail::gelu_derivative(b.fc[i], m_.gelu);
      const std::vector<double>& mlp_in = m_.residual == Residual::parallel_shared ? b.ln1.out : b.ln2.out;
      std::vector<double> dmlp_in = detail::linear_backward(mlp_in, dact, T, d, ff, w[index(p(li, "mlp.fc.weight"))],
                                                            G(p(li, "mlp.fc.weight")), Gopt(p(li, "mlp.fc.bias")));
      std::vector<double> dnext(T * d);
      if (m_.residual == Residual::sequential) {
        // out = mid + mlp(ln2(mid)); mid = input + attn(ln1(input))
        std::vector<double> dmid = detail::layer_norm_backward(b.ln2, dmlp_in, T, d, w[index(p(li, "ln2.weight"))],
                                                               G(p(li, "ln2.weight")), G(p(li, "ln2.bias")));
        for (std::size_t i = 0; i < T * d; ++i) dmid[i] += dout[i];
        std::vector<double> dln1 = attention_backward(w, li, batch, b, dmid, g);
        std::vector<double> din = detail::layer_norm_backward(b.ln1, dln1, T, d, w[index(p(li, "ln1.weight"))],
                                                              G(p(li, "ln1.weight")), G(p(li, "ln1.bias")));
        for (std::size_t i = 0; i < T * d; ++i) dnext[i] = dmid[i] + din[i];
      } else if (m_.residual == Residual::parallel_shared) {
        // out = input + attn(ln1(input)) + mlp(ln1(input))
        std::vector<double> dln1 = attention_backward(w, li, batch, b, dout, g);
        for (std::size_t i = 0; i < T * d; ++i) dln1[i] += dmlp_in[i];
        std::vector<double> din = detail::layer_norm_backward(b.ln1, dln1, T, d, w[index(p(li, "ln1.weight"))],
                                                              G(p(li, "ln1.weight")), G(p(li, "ln1.bias")));
        for (std::size_t i = 0; i < T * d; ++i) dnext[i] = dout[i] + din[i];
      } else {
        // out = input + attn(ln1(input)) + mlp(ln2(input))
        std::vector<double> din2 = detail::layer_norm_backward(b.ln2, dmlp_in, T, d, w[index(p(li, "ln2.weight"))],
                                                               G(p(li, "ln2.weight")), G(p(li, "ln2.bias")));
        std::vector<double> dln1 = attention_backward(w, li, batch, b, dout, g);
        std::vector<double> din1 = detail::layer_norm_backward(b.ln1, dln1, T, d, w[index(p(li, "ln1.weight"))],
                                                               G(p(li, "ln1.weight")), G(p(li, "ln1.bias")));
        for (std::size_t i = 0; i < T * d; ++i) dnext[i] = dout[i] + din1[i] + din2[i];
      }
      dx = std::move(dnext);
    }

    // Embeddings.
    auto& dwte = G("wte");
    for (std::size_t t = 0; t < T; ++t) {
      const auto tok = static_cast<std::size_t>(batch.inputs[t]);
      for (std::size_t c = 0; c < d; ++c) dwte[tok * d + c] += dx[t * d + c];
      if (m_.positions == Positions::learned) {
        auto& dwpe = G("wpe");
        const std::size_t pos = t % batch.seq;
        for (std::size_t c = 0; c < d; ++c) dwpe[pos * d + c] += dx[t * d + c];
      }
    }

    Tensors out;
    out.reserve(g.size());
    for (const auto& gi : g) out.emplace_back(gi.begin(), gi.end());  // double -> fp32
    return out;
  }

  LossAndGrads loss_and_grads(const Tensors& w, const Batch& batch) const {
    Activations a = forward(w, batch);
    return {a.loss, backward(w, batch, a)};
  }

 private:
  ModelSpec m_;
  std::vector<TensorSpec> tensors_;
  std::map<std::string, std::size_t> index_;

  static std::string p(std::uint32_t layer, const char* rest) { return "h." + std::to_string(layer) + "." + rest; }
  double eps() const { return static_cast<double>(m_.layer_norm_eps); }
  const std::vector<float>* bias(const Tensors& w, const std::string& name) const {
    return has(name) ? &w[index(name)] : nullptr;
  }

  void check(const Tensors& w, const Batch& batch) const {
    if (w.size() != tensors_.size()) throw std::invalid_argument("reference model: wrong number of tensors");
    for (std::size_t i = 0; i < w.size(); ++i)
      if (w[i].size() != tensors_[i].elements())
        throw std::invalid_argument("reference model: tensor " + tensors_[i].name + " has the wrong size");
    if (batch.seq == 0 || batch.batch == 0) throw std::invalid_argument("reference model: empty batch");
    if (m_.positions == Positions::learned && batch.seq > m_.context)
      throw std::invalid_argument("reference model: seq is longer than the context");
    if (batch.inputs.size() != batch.tokens() || batch.targets.size() != batch.tokens())
      throw std::invalid_argument("reference model: inputs/targets must hold batch * seq tokens");
    for (std::size_t t = 0; t < batch.tokens(); ++t)
      if (batch.inputs[t] < 0 || static_cast<std::uint32_t>(batch.inputs[t]) >= m_.vocab || batch.targets[t] < 0 ||
          static_cast<std::uint32_t>(batch.targets[t]) >= m_.vocab)
        throw std::invalid_argument("reference model: token id out of range");
  }

  // Fills b.q, b.k, b.v, b.probs, b.context, b.attn from b.ln1.
  void attention_forward(const Tensors& w, std::uint32_t l, const Batch& batch, BlockActivations& b) const {
    const std::size_t T = batch.tokens(), d = m_.d_model, H = m_.heads, hd = m_.head_dim(), S = batch.seq;
    b.q = detail::linear(b.ln1.out, T, d, d, w[index(p(l, "attn.q.weight"))], bias(w, p(l, "attn.q.bias")));
    b.k = detail::linear(b.ln1.out, T, d, d, w[index(p(l, "attn.k.weight"))], bias(w, p(l, "attn.k.bias")));
    b.v = detail::linear(b.ln1.out, T, d, d, w[index(p(l, "attn.v.weight"))], bias(w, p(l, "attn.v.bias")));
    if (m_.positions == Positions::rotary) {
      detail::rotary(b.q, m_, batch.seq, T, false);
      detail::rotary(b.k, m_, batch.seq, T, false);
    }
    const double scale = detail::attention_scale(m_);
    b.probs.assign(batch.batch * H * S * S, 0.0);
    b.context.assign(T * d, 0.0);
    for (std::size_t n = 0; n < batch.batch; ++n)
      for (std::size_t h = 0; h < H; ++h)
        for (std::uint32_t i = 0; i < S; ++i) {
          double* prow = &b.probs[((n * H + h) * S + i) * S];
          const double* qi = &b.q[(n * S + i) * d + h * hd];
          double mx = -std::numeric_limits<double>::infinity();
          for (std::uint32_t j = 0; j < S; ++j) {
            if (!detail::visible(m_, l, i, j)) continue;
            const double* kj = &b.k[(n * S + j) * d + h * hd];
            double s = 0.0;
            for (std::size_t c = 0; c < hd; ++c) s += qi[c] * kj[c];
            prow[j] = s * scale;
            mx = std::max(mx, prow[j]);
          }
          double sum = 0.0;
          for (std::uint32_t j = 0; j < S; ++j)
            if (detail::visible(m_, l, i, j)) sum += (prow[j] = std::exp(prow[j] - mx));
          double* ci = &b.context[(n * S + i) * d + h * hd];
          for (std::uint32_t j = 0; j < S; ++j) {
            if (!detail::visible(m_, l, i, j)) continue;
            prow[j] /= sum;
            const double* vj = &b.v[(n * S + j) * d + h * hd];
            for (std::size_t c = 0; c < hd; ++c) ci[c] += prow[j] * vj[c];
          }
        }
    b.attn = detail::linear(b.context, T, d, d, w[index(p(l, "attn.out.weight"))], bias(w, p(l, "attn.out.bias")));
  }

  // Given d loss / d attn (the attention branch output), accumulates the attention weight
  // gradients into g and returns d loss / d ln1.out through the attention branch.
  std::vector<double> attention_backward(const Tensors& w, std::uint32_t l, const Batch& batch, const BlockActivations& b,
                                         const std::vector<double>& dattn, std::vector<std::vector<double>>& g) const {
    const std::size_t T = batch.tokens(), d = m_.d_model, H = m_.heads, hd = m_.head_dim(), S = batch.seq;
    auto gopt = [&](const std::string& name) -> std::vector<double>* { return has(name) ? &g[index(name)] : nullptr; };
    std::vector<double> dctx = detail::linear_backward(b.context, dattn, T, d, d, w[index(p(l, "attn.out.weight"))],
                                                       g[index(p(l, "attn.out.weight"))], gopt(p(l, "attn.out.bias")));
    const double scale = detail::attention_scale(m_);
    std::vector<double> dq(T * d, 0.0), dk(T * d, 0.0), dv(T * d, 0.0), dp(S);
    for (std::size_t n = 0; n < batch.batch; ++n)
      for (std::size_t h = 0; h < H; ++h)
        for (std::uint32_t i = 0; i < S; ++i) {
          const double* prow = &b.probs[((n * H + h) * S + i) * S];
          const double* dci = &dctx[(n * S + i) * d + h * hd];
          double dot = 0.0;  // sum_j p_ij dp_ij
          for (std::uint32_t j = 0; j < S; ++j) {
            dp[j] = 0.0;
            if (!detail::visible(m_, l, i, j)) continue;
            const double* vj = &b.v[(n * S + j) * d + h * hd];
            double* dvj = &dv[(n * S + j) * d + h * hd];
            for (std::size_t c = 0; c < hd; ++c) {
              dp[j] += dci[c] * vj[c];
              dvj[c] += prow[j] * dci[c];
            }
            dot += prow[j] * dp[j];
          }
          const double* qi = &b.q[(n * S + i) * d + h * hd];
          double* dqi = &dq[(n * S + i) * d + h * hd];
          for (std::uint32_t j = 0; j < S; ++j) {
            if (!detail::visible(m_, l, i, j)) continue;
            const double ds = prow[j] * (dp[j] - dot) * scale;  // d loss / d (q_i . k_j)
            const double* kj = &b.k[(n * S + j) * d + h * hd];
            double* dkj = &dk[(n * S + j) * d + h * hd];
            for (std::size_t c = 0; c < hd; ++c) {
              dqi[c] += ds * kj[c];
              dkj[c] += ds * qi[c];
            }
          }
        }
    if (m_.positions == Positions::rotary) {
      detail::rotary(dq, m_, batch.seq, T, true);
      detail::rotary(dk, m_, batch.seq, T, true);
    }
    std::vector<double> dln1(T * d, 0.0);
    const char* names[3] = {"attn.q", "attn.k", "attn.v"};
    const std::vector<double>* grads[3] = {&dq, &dk, &dv};
    for (int k = 0; k < 3; ++k) {
      const std::string base = p(l, names[k]);
      std::vector<double> part = detail::linear_backward(b.ln1.out, *grads[k], T, d, d, w[index(base + ".weight")],
                                                         g[index(base + ".weight")], gopt(base + ".bias"));
      for (std::size_t i = 0; i < T * d; ++i) dln1[i] += part[i];
    }
    return dln1;
  }
};

}  // namespace wse::stream::reference
