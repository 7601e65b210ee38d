#pragma once
/// \file
/// The non-linear transformer ops of the weight-streaming executor, as reusable kernel
/// components (structs a kernel owns as members, like collectives::Collective), each with a
/// forward and a backward pass:
///   LayerNorm<PE>     layer norm over features split across a PE row (row allreduces)
///   GeluOp<PE>        GELU, tanh or erf form (local, elementwise)
///   CrossEntropy<PE>  softmax cross-entropy over a vocab split across a PE row (row allreduces)
///   Attention<PE>     causal self-attention of whole sequences x whole heads (local), with
///                     scale, local window and rotary embedding
/// Freestanding: only wse headers; the transcendental functions the ops need (exp, log, sqrt,
/// tanh, erf, sin, cos) are in transformer_ops_math below, in double precision.
///
/// Activation layout (the executor's): on a grid of W columns x H rows, PE (x, y) holds whole
/// sequences band y (B/H sequences of S tokens) x feature band x (n/W features of an
/// n-feature activation), row-major [tokens, features] in PE memory, fp32. See
/// docs/kernels-transformer-ops.md for the use of every component and a complete test kernel.
///
/// Components with row collectives (LayerNorm, CrossEntropy) are state machines: forward() /
/// backward() do the local work and start a row allreduce on a Collective the kernel owns and
/// has attached; its completion activates the component's task (Shape::task), which the kernel
/// binds to a one-line method calling resume(pe). When the op is over the component fires the
/// Completion the kernel passed. GeluOp and Attention are synchronous.
///
/// Timing: DSD ops are counted by the emulator's timed mode; scalar C++ loops (the
/// transcendental functions, per-token sums, attention's dot products) cost nothing there.
#include <cstdint>
#include <wse/kernel.hpp>

namespace wse::kernels {

// ---- scalar math (double precision, freestanding) ----------------------------------------
namespace transformer_ops_math {

inline constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
inline constexpr double ln2 = 0.693147180559945309417232121458176568;
inline constexpr double pi = 3.14159265358979323846264338327950288;
inline constexpr double half_pi_hi = 1.57079632673412561417e+00, half_pi_lo = 6.07710050650619224932e-11;
inline constexpr double sqrt_half = 0.707106781186547524400844362104849039;
inline constexpr double two_over_sqrt_pi = 1.12837916709551257389615890312154517;
inline constexpr double inv_sqrt_two_pi = 0.398942280401432677939946059934381868;
inline constexpr double sqrt_two_over_pi = 0.797884560802865355879892119868763737;

/// 2^k for an integer k (binary powering; exact while in the normal range).
inline double pow2i(int k) {
  double r = 1.0, b = k < 0 ? 0.5 : 2.0;
  unsigned n = static_cast<unsigned>(k < 0 ? -k : k);
  while (n) {
    if (n & 1u) r *= b;
    b *= b;
    n >>= 1;
  }
  return r;
}

/// e^x: x = k ln2 + r, |r| <= ln2/2, Taylor series of e^r to degree 16.
inline double exp(double x) {
  if (x != x) return x;
  if (x < -745.0) return 0.0;
  if (x > 709.0) return 1e308 * 10.0;
  const double kd = x / ln2;
  const int k = static_cast<int>(kd < 0 ? kd - 0.5 : kd + 0.5);
  const double r = (x - k * ln2_hi) - k * ln2_lo;
  double term = 1.0, sum = 1.0;
  for (int i = 1; i <= 16; ++i) {
    term *= r / i;
    sum += term;
  }
  if (k < -1000) return sum * pow2i(k + 600) * pow2i(-600);
  return sum * pow2i(k);
}

/// Natural log for x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m-1)/(m+1)).
inline double log(double x) {
  if (!(x > 0.0)) return x == 0.0 ? -1e308 * 10.0 : (x - x) / (x - x);
  if (x > 1.7976931348623157e308) return x;  // +inf: the scaling loop below would never end
  int e = 0;
  double m = x;
  while (m >= 2.0 * 1.4142135623730951) { m *= 0.25; e += 2; }
  while (m >= 1.4142135623730951) { m *= 0.5; e += 1; }
  while (m < 0.5 * sqrt_half) { m *= 4.0; e -= 2; }
  while (m < sqrt_half) { m *= 2.0; e -= 1; }
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  double p = s, sum = s;
  for (int i = 3; i <= 31; i += 2) {
    p *= s2;
    sum += p / i;
  }
  return e * ln2 + 2.0 * sum;
}

/// Square root for x >= 0: scale into [1/4, 4) by powers of 4, then Newton.
inline double sqrt(double x) {
  if (!(x > 0.0)) return x == 0.0 ? 0.0 : (x - x) / (x - x);
  if (x > 1.7976931348623157e308) return x;  // +inf: the scaling loop below would never end
  double m = x, s = 1.0;
  while (m >= 4.0) { m *= 0.25; s *= 2.0; }
  while (m < 0.25) { m *= 4.0; s *= 0.5; }
  double y = 0.5 * (1.0 + m);
  for (int i = 0; i < 8; ++i) y = 0.5 * (y + m / y);
  return y * s;
}

inline double tanh(double x) {
  if (x > 20.0) return 1.0;
  if (x < -20.0) return -1.0;
  const double ax = x < 0 ? -x : x;
  if (ax < 1e-4) return x * (1.0 - x * x / 3.0);
  const double e = exp(2.0 * x);
  return (e - 1.0) / (e + 1.0);
}

/// erfc(z) for z >= 3: continued fraction erfc z = e^(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))).
inline double erfc_large(double z) {
  double k = z;
  for (int n = 80; n >= 1; --n) k = z + (n * 0.5) / k;
  return exp(-z * z) * (two_over_sqrt_pi * 0.5) / k;
}

/// erf(z) for |z| < 3: erf z = 2/sqrt(pi) e^(-z^2) sum_n 2^n z^(2n+1) / (1*3*...*(2n+1)) (positive terms).
inline double erf_small(double z) {
  const double z2 = z * z;
  double term = z, sum = z;
  for (int n = 1; n < 200; ++n) {
    term *= 2.0 * z2 / (2 * n + 1);
    sum += term;
    if (term < 1e-18 * (sum < 0 ? -sum : sum) && term > -1e-18 * (sum < 0 ? -sum : sum)) break;
  }
  return two_over_sqrt_pi * exp(-z2) * sum;
}

/// 1 + erf(z), accurate also when it is tiny (z << 0).
inline double one_plus_erf(double z) {
  if (z <= -3.0) return z < -27.0 ? 0.0 : erfc_large(-z);
  if (z >= 3.0) return z > 27.0 ? 2.0 : 2.0 - erfc_large(z);
  return 1.0 + erf_small(z);
}

/// sin and cos of t: t = n pi/2 + r, |r| <= pi/4, Taylor series.
inline void sincos(double t, double& s, double& c) {
  const double nd = t / (0.5 * pi);
  const long n = static_cast<long>(nd < 0 ? nd - 0.5 : nd + 0.5);
  const double r = (t - n * half_pi_hi) - n * half_pi_lo, r2 = r * r;
  double ts = r, ss = r, tc = 1.0, sc = 1.0;
  for (int i = 1; i <= 12; ++i) {
    ts *= -r2 / ((2 * i) * (2 * i + 1));
    ss += ts;
    tc *= -r2 / ((2 * i - 1) * (2 * i));
    sc += tc;
  }
  switch (((n % 4) + 4) % 4) {
    case 0: s = ss; c = sc; break;
    case 1: s = sc; c = -ss; break;
    case 2: s = -ss; c = -sc; break;
    default: s = -sc; c = ss; break;
  }
}

}  // namespace transformer_ops_math

namespace transformer_ops_detail {
inline void fire(auto& pe, Completion done) {
  if (done.action == Completion::Action::activate) pe.activate(done.task);
  else if (done.action == Completion::Action::unblock) pe.unblock(done.task);
}
/// [tokens, features] view of a row-major block (features innermost).
inline Mem4d<float> rows_view(Array<float> a, std::uint32_t tokens, std::uint32_t features) {
  return mem4d(a, {features, tokens}, {1, static_cast<std::int32_t>(features)});
}
/// A per-token value repeated along the features of its token.
inline Mem4d<float> per_token(Array<float> a, std::uint32_t tokens, std::uint32_t features) {
  return mem4d(a, {features, tokens}, {0, 1});
}
/// A per-feature value repeated for every token.
inline Mem4d<float> per_feature(Array<float> a, std::uint32_t tokens, std::uint32_t features) {
  return mem4d(a, {features, tokens}, {1, 0});
}
}  // namespace transformer_ops_detail

// ---- LayerNorm ---------------------------------------------------------------------------

/// Shape of a LayerNorm on one PE (the same on every PE of the region).
struct LayerNormShape {
  std::uint32_t tokens = 0;          ///< tokens this PE holds (B/H * S)
  std::uint32_t features = 0;        ///< features this PE holds (n/W)
  std::uint32_t total_features = 0;  ///< n: features of the whole activation (the row's sum)
  float eps = 1e-5f;                 ///< inside the square root
  TaskId task{};                     ///< local task the kernel binds to resume()
};

/// Layer norm over features split across the W PEs of a row. Needs a row allreduce
/// (Kind::allreduce, Op::sum, f32, count = tokens, area = this PE's row of the region).
/// Forward: two allreduces (the mean, then the variance about it: no cancellation);
/// backward: two (sum of dxhat, sum of dxhat * xhat).
template <class PE> struct LayerNorm {
  struct Forward {
    Array<float> x;      ///< [tokens, features] input
    Array<float> gamma;  ///< [features] this PE's band of the weight
    Array<float> beta;   ///< [features] and of the bias
    Array<float> y;      ///< [tokens, features] output (may not alias x)
    Array<float> xhat;   ///< [tokens, features] saved for backward: (x - mean) * rstd
    Array<float> rstd;   ///< [tokens] saved for backward: 1 / sqrt(var + eps)
  };
  struct Backward {
    Array<float> dy;      ///< [tokens, features] gradient of the output
    Array<float> xhat;    ///< from forward
    Array<float> rstd;    ///< from forward
    Array<float> gamma;   ///< [features]
    Array<float> dx;      ///< [tokens, features] gradient of the input (may alias dy)
    Array<float> dgamma;  ///< [features] += sum over tokens of dy * xhat (this PE's partial)
    Array<float> dbeta;   ///< [features] += sum over tokens of dy
  };

  /// Kernel init(): after attaching `row`. Allocates 3·tokens floats.
  void init(PE& pe, const LayerNormShape& s, collectives::Collective<PE, float>& row) {
    WSE_ASSERT(s.tokens > 0 && s.features > 0 && s.total_features >= s.features, "LayerNorm: bad shape");
    WSE_ASSERT(row.params().count == s.tokens && row.params().op == collectives::Op::sum &&
                   row.params().kind == collectives::Kind::allreduce,
               "LayerNorm: the row collective must be a sum allreduce of `tokens` elements");
    s_ = s;
    row_ = &row;
    red_ = alloc<float>(pe, s.tokens);
    t1_ = alloc<float>(pe, s.tokens);
    t2_ = alloc<float>(pe, s.tokens);
  }

  /// Starts the forward pass; `done` fires when y, xhat and rstd are complete.
  void forward(PE& pe, const Forward& a, Completion done) {
    fwd_ = a;
    done_ = done;
    const std::uint32_t T = s_.tokens, F = s_.features;
    for (std::uint32_t t = 0; t < T; ++t) {
      float acc = 0.0f;
      for (std::uint32_t c = 0; c < F; ++c) acc += a.x[t * F + c];
      red_[t] = acc;
    }
    phase_ = Phase::fwd_mean;
    row_->start(pe, red_, then_activate(s_.task));
  }

  /// Starts the backward pass; `done` fires when dx, dgamma and dbeta are complete.
  void backward(PE& pe, const Backward& a, Completion done) {
    using namespace transformer_ops_detail;
    bwd_ = a;
    done_ = done;
    const std::uint32_t T = s_.tokens, F = s_.features;
    for (std::uint32_t t = 0; t < T; ++t)
      for (std::uint32_t c = 0; c < F; ++c) {
        const float g = a.dy[t * F + c];
        a.dgamma[c] += g * a.xhat[t * F + c];
        a.dbeta[c] += g;
      }
    // dxhat = dy * gamma, kept in dx
    mul(pe, rows_view(a.dx, T, F), rows_view(a.dy, T, F), per_feature(a.gamma, T, F));
    for (std::uint32_t t = 0; t < T; ++t) {
      float s1 = 0.0f, s2 = 0.0f;
      for (std::uint32_t c = 0; c < F; ++c) {
        s1 += a.dx[t * F + c];
        s2 += a.dx[t * F + c] * a.xhat[t * F + c];
      }
      red_[t] = s1;
      t2_[t] = s2;
    }
    phase_ = Phase::bwd_sum;
    row_->start(pe, red_, then_activate(s_.task));
  }

  /// The component's task: the kernel binds Shape::task to a method that calls this.
  void resume(PE& pe) {
    using namespace transformer_ops_detail;
    const std::uint32_t T = s_.tokens, F = s_.features;
    const float inv_n = 1.0f / static_cast<float>(s_.total_features);
    switch (phase_) {
      case Phase::fwd_mean: {
        for (std::uint32_t t = 0; t < T; ++t) t1_[t] = red_[t] * inv_n;  // mean
        sub(pe, rows_view(fwd_.xhat, T, F), rows_view(fwd_.x, T, F), per_token(t1_, T, F));
        for (std::uint32_t t = 0; t < T; ++t) {
          float acc = 0.0f;
          for (std::uint32_t c = 0; c < F; ++c) acc += fwd_.xhat[t * F + c] * fwd_.xhat[t * F + c];
          red_[t] = acc;
        }
        phase_ = Phase::fwd_var;
        row_->start(pe, red_, then_activate(s_.task));
        return;
      }
      case Phase::fwd_var: {
        for (std::uint32_t t = 0; t < T; ++t)
          fwd_.rstd[t] = static_cast<float>(
              1.0 / transformer_ops_math::sqrt(static_cast<double>(red_[t] * inv_n) + static_cast<double>(s_.eps)));
        mul(pe, rows_view(fwd_.xhat, T, F), rows_view(fwd_.xhat, T, F), per_token(fwd_.rstd, T, F));
        mac(pe, rows_view(fwd_.y, T, F), per_feature(fwd_.beta, T, F), rows_view(fwd_.xhat, T, F),
            per_feature(fwd_.gamma, T, F));
        break;
      }
      case Phase::bwd_sum: {
        for (std::uint32_t t = 0; t < T; ++t) {
          t1_[t] = red_[t] * inv_n;  // mean of dxhat
          red_[t] = t2_[t];
        }
        phase_ = Phase::bwd_dot;
        row_->start(pe, red_, then_activate(s_.task));
        return;
      }
      case Phase::bwd_dot: {
        for (std::uint32_t t = 0; t < T; ++t) t2_[t] = -red_[t] * inv_n;  // -mean of dxhat * xhat
        // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        sub(pe, rows_view(bwd_.dx, T, F), rows_view(bwd_.dx, T, F), per_token(t1_, T, F));
        mac(pe, rows_view(bwd_.dx, T, F), rows_view(bwd_.dx, T, F), rows_view(bwd_.xhat, T, F), per_token(t2_, T, F));
        mul(pe, rows_view(bwd_.dx, T, F), rows_view(bwd_.dx, T, F), per_token(bwd_.rstd, T, F));
        break;
      }
      default: WSE_ASSERT(false, "LayerNorm::resume without a pass in progress"); return;
    }
    phase_ = Phase::idle;
    fire(pe, done_);
  }

 private:
  enum class Phase : std::uint8_t { idle, fwd_mean, fwd_var, bwd_sum, bwd_dot };
  LayerNormShape s_{};
  collectives::Collective<PE, float>* row_ = nullptr;
  Array<float> red_{}, t1_{}, t2_{};
  Forward fwd_{};
  Backward bwd_{};
  Completion done_{};
  Phase phase_ = Phase::idle;
};

// ---- GELU --------------------------------------------------------------------------------

enum class GeluKind : std::uint8_t {
  tanh,  ///< 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  erf,   ///< 0.5 x (1 + erf(x / sqrt 2))
};

/// GELU, elementwise and local (synchronous; no state but the kind).
template <class PE> struct GeluOp {
  GeluKind kind = GeluKind::tanh;

  void init(PE&, GeluKind k) { kind = k; }

  static double value(double x, GeluKind k) {
    namespace m = transformer_ops_math;
    if (k == GeluKind::erf) return 0.5 * x * m::one_plus_erf(x * m::sqrt_half);
    // 0.5 (1 + tanh u) = 1 / (1 + e^(-2u)): no cancellation where tanh u is near -1
    const double u = m::sqrt_two_over_pi * (x + 0.044715 * x * x * x);
    return u < -350.0 ? 0.0 : x / (1.0 + m::exp(-2.0 * u));
  }
  static double derivative(double x, GeluKind k) {
    namespace m = transformer_ops_math;
    if (k == GeluKind::erf) return 0.5 * m::one_plus_erf(x * m::sqrt_half) + x * m::inv_sqrt_two_pi * m::exp(-0.5 * x * x);
    const double u = m::sqrt_two_over_pi * (x + 0.044715 * x * x * x);
    if (u < -350.0) return 0.0;
    if (u > 350.0) return 1.0;
    const double e = m::exp(-2.0 * u), sig = 1.0 / (1.0 + e);  // sig = 0.5 (1 + tanh u)
    const double du = m::sqrt_two_over_pi * (1.0 + 3.0 * 0.044715 * x * x);
    return sig + 2.0 * x * e * sig * sig * du;  // 0.5 x (1 - tanh^2 u) = 2 x e sig^2
  }

  /// y[i] = gelu(x[i]) for i < n (y may alias x).
  void forward(PE&, Array<float> x, Array<float> y, std::uint32_t n) const {
    for (std::uint32_t i = 0; i < n; ++i) y[i] = static_cast<float>(value(x[i], kind));
  }
  /// dx[i] = dy[i] * gelu'(x[i]) for i < n, x the forward input (dx may alias dy, not x).
  void backward(PE& pe, Array<float> x, Array<float> dy, Array<float> dx, std::uint32_t n) const {
    if (dx.data() == dy.data()) {
      for (std::uint32_t i = 0; i < n; ++i) dx[i] = static_cast<float>(derivative(x[i], kind) * dy[i]);
      return;
    }
    for (std::uint32_t i = 0; i < n; ++i) dx[i] = static_cast<float>(derivative(x[i], kind));
    mul(pe, mem1d(dx).with_length(n), mem1d(dx).with_length(n), mem1d(dy).with_length(n));
  }
};

// ---- softmax cross-entropy -------------------------------------------------------------

/// Shape of a CrossEntropy on one PE.
struct CrossEntropyShape {
  std::uint32_t tokens = 0;        ///< tokens this PE holds
  std::uint32_t vocab = 0;         ///< logits this PE holds per token (V/W)
  std::uint32_t vocab_begin = 0;   ///< global index of its first logit (x * V/W)
  std::uint32_t total_tokens = 0;  ///< N = B * S: the loss is the mean over N tokens
  TaskId task{};                   ///< local task the kernel binds to resume()
};

/// Softmax cross-entropy over a vocab split across a row. Needs two row allreduces over this
/// PE's row: `row_max` (Op::max, count = tokens) and `row_sum` (Op::sum, count = 2·tokens:
/// the sums of exp and the target logits, which only their owner contributes).
template <class PE> struct CrossEntropy {
  struct Forward {
    Array<float> logits;          ///< [tokens, vocab]
    Array<std::int32_t> targets;  ///< [tokens] global target ids (the same on the whole row)
    Array<float> loss;            ///< [tokens] out: per-token loss (the same on the whole row)
    Array<float> partial;         ///< [1] out: this PE's share of the mean loss: on the row's
                                  ///< first column sum_t loss_t / N, elsewhere 0
  };
  struct Backward {
    Array<float> logits;          ///< [tokens, vocab] the forward input
    Array<std::int32_t> targets;  ///< [tokens]
    Array<float> dlogits;         ///< [tokens, vocab] out: (softmax - onehot) / N (may alias logits)
  };

  /// Kernel init(): after attaching both collectives. Allocates 4·tokens floats.
  void init(PE& pe, const CrossEntropyShape& s, collectives::Collective<PE, float>& row_max,
            collectives::Collective<PE, float>& row_sum) {
    WSE_ASSERT(s.tokens > 0 && s.vocab > 0 && s.total_tokens > 0, "CrossEntropy: bad shape");
    WSE_ASSERT(row_max.params().count == s.tokens && row_max.params().op == collectives::Op::max,
               "CrossEntropy: row_max must be a max allreduce of `tokens` elements");
    WSE_ASSERT(row_sum.params().count == 2 * s.tokens && row_sum.params().op == collectives::Op::sum,
               "CrossEntropy: row_sum must be a sum allreduce of 2 * tokens elements");
    s_ = s;
    max_ = &row_max;
    sum_ = &row_sum;
    mx_ = alloc<float>(pe, s.tokens);
    red_ = alloc<float>(pe, 2 * s.tokens);
    lse_ = alloc<float>(pe, s.tokens);
  }

  /// Starts the forward pass; `done` fires when loss and partial are complete. Keeps the
  /// log-sum-exp of every token for backward().
  void forward(PE& pe, const Forward& a, Completion done) {
    fwd_ = a;
    done_ = done;
    const std::uint32_t T = s_.tokens, V = s_.vocab;
    for (std::uint32_t t = 0; t < T; ++t) {
      float m = a.logits[t * V];
      for (std::uint32_t v = 1; v < V; ++v) m = a.logits[t * V + v] > m ? a.logits[t * V + v] : m;
      mx_[t] = m;
    }
    phase_ = Phase::max;
    max_->start(pe, mx_, then_activate(s_.task));
  }

  /// dlogits = (softmax - onehot) / N, local (after forward()).
  void backward(PE&, const Backward& a) const {
    const std::uint32_t T = s_.tokens, V = s_.vocab;
    const double inv_n = 1.0 / static_cast<double>(s_.total_tokens);
    for (std::uint32_t t = 0; t < T; ++t) {
      const std::int64_t target = static_cast<std::int64_t>(a.targets[t]) - s_.vocab_begin;
      for (std::uint32_t v = 0; v < V; ++v) {
        double p = transformer_ops_math::exp(static_cast<double>(a.logits[t * V + v]) - lse_[t]);
        if (target == static_cast<std::int64_t>(v)) p -= 1.0;
        a.dlogits[t * V + v] = static_cast<float>(p * inv_n);
      }
    }
  }

  void resume(PE& pe) {
    const std::uint32_t T = s_.tokens, V = s_.vocab;
    if (phase_ == Phase::max) {
      for (std::uint32_t t = 0; t < T; ++t) {
        double acc = 0.0;
        for (std::uint32_t v = 0; v < V; ++v)
          acc += transformer_ops_math::exp(static_cast<double>(fwd_.logits[t * V + v]) - mx_[t]);
        red_[t] = static_cast<float>(acc);
        const std::int64_t target = static_cast<std::int64_t>(fwd_.targets[t]) - s_.vocab_begin;
        red_[T + t] = target >= 0 && target < static_cast<std::int64_t>(V) ? fwd_.logits[t * V + target] : 0.0f;
      }
      phase_ = Phase::sum;
      sum_->start(pe, red_, then_activate(s_.task));
      return;
    }
    WSE_ASSERT(phase_ == Phase::sum, "CrossEntropy::resume without a pass in progress");
    double total = 0.0;
    for (std::uint32_t t = 0; t < T; ++t) {
      const double lse = static_cast<double>(mx_[t]) + transformer_ops_math::log(red_[t]);
      lse_[t] = static_cast<float>(lse);
      const double l = lse - red_[T + t];
      fwd_.loss[t] = static_cast<float>(l);
      total += l;
    }
    fwd_.partial[0] = s_.vocab_begin == 0 ? static_cast<float>(total / s_.total_tokens) : 0.0f;
    phase_ = Phase::idle;
    transformer_ops_detail::fire(pe, done_);
  }

 private:
  enum class Phase : std::uint8_t { idle, max, sum };
  CrossEntropyShape s_{};
  collectives::Collective<PE, float>* max_ = nullptr;
  collectives::Collective<PE, float>* sum_ = nullptr;
  Array<float> mx_{}, red_{}, lse_{};
  Forward fwd_{};
  Completion done_{};
  Phase phase_ = Phase::idle;
};

// ---- causal self-attention ---------------------------------------------------------------

/// Shape of an Attention on one PE.
struct AttentionShape {
  std::uint32_t seqs = 0;         ///< whole sequences this PE holds (B/H)
  std::uint32_t seq = 0;          ///< S tokens per sequence
  std::uint32_t heads = 0;        ///< whole heads this PE holds (heads/W)
  std::uint32_t head_dim = 0;     ///< features per head
  bool scale = true;              ///< scores times 1/sqrt(head_dim)
  std::uint32_t window = 0;       ///< 0: global; else keys j with i - window < j <= i
  std::uint32_t rotary_dims = 0;  ///< 0: no rotary; else rotate the first rotary_dims of each head
  bool rotary_half = false;       ///< pairs (i, i + r/2) instead of (2i, 2i+1)
  float rotary_base = 10000.0f;
};

/// Floats Attention::init allocates (the rotary cos and sin tables).
constexpr std::uint32_t attention_table_floats(const AttentionShape& s) { return s.rotary_dims ? s.seq * s.rotary_dims : 0; }

/// Causal multi-head self-attention of whole sequences x whole heads; local, synchronous.
/// q, k, v, context are [tokens, heads * head_dim] with tokens = seqs * seq (token s of
/// sequence b at row b * seq + s); probs is [seqs, heads, seq, seq] (0 where masked).
template <class PE> struct Attention {
  AttentionShape s{};
  Array<float> cos_{}, sin_{};  // [seq, rotary_dims/2]

  void init(PE& pe, const AttentionShape& shape) {
    WSE_ASSERT(shape.seqs > 0 && shape.seq > 0 && shape.heads > 0 && shape.head_dim > 0, "Attention: bad shape");
    WSE_ASSERT(shape.rotary_dims % 2 == 0 && shape.rotary_dims <= shape.head_dim, "Attention: bad rotary_dims");
    s = shape;
    if (!s.rotary_dims) return;
    const std::uint32_t half = s.rotary_dims / 2;
    cos_ = alloc<float>(pe, s.seq * half);
    sin_ = alloc<float>(pe, s.seq * half);
    const double lb = transformer_ops_math::log(static_cast<double>(s.rotary_base));
    for (std::uint32_t i = 0; i < half; ++i) {
      const double inv_freq = transformer_ops_math::exp(-2.0 * i / static_cast<double>(s.rotary_dims) * lb);
      for (std::uint32_t pos = 0; pos < s.seq; ++pos) {
        double sn, cs;
        transformer_ops_math::sincos(pos * inv_freq, sn, cs);
        cos_[pos * half + i] = static_cast<float>(cs);
        sin_[pos * half + i] = static_cast<float>(sn);
      }
    }
  }

  std::uint32_t tokens() const { return s.seqs * s.seq; }
  std::uint32_t features() const { return s.heads * s.head_dim; }
  bool visible(std::uint32_t i, std::uint32_t j) const { return j <= i && (s.window == 0 || i - j < s.window); }
  float scale_factor() const {
    return s.scale ? static_cast<float>(1.0 / transformer_ops_math::sqrt(static_cast<double>(s.head_dim))) : 1.0f;
  }

  /// Rotates x [tokens, features] in place (inverse: by the opposite angle).
  void rotate(Array<float> x, bool inverse) const {
    if (!s.rotary_dims) return;
    const std::uint32_t F = features(), half = s.rotary_dims / 2;
    for (std::uint32_t t = 0; t < tokens(); ++t) {
      const std::uint32_t pos = t % s.seq;
      for (std::uint32_t h = 0; h < s.heads; ++h) {
        float* xh = x.data() + t * F + h * s.head_dim;
        for (std::uint32_t i = 0; i < half; ++i) {
          const float c = cos_[pos * half + i], sn = inverse ? -sin_[pos * half + i] : sin_[pos * half + i];
          const std::uint32_t a = s.rotary_half ? i : 2 * i, b = s.rotary_half ? i + half : 2 * i + 1;
          const float xa = xh[a], xb = xh[b];
          xh[a] = xa * c - xb * sn;
          xh[b] = xa * sn + xb * c;
        }
      }
    }
  }

  /// context = softmax(mask(scale q k^T)) v per sequence and head. Applies the rotary
  /// embedding to q and k in place first (keep them: backward needs the rotated q, k), and
  /// keeps the probabilities in probs.
  void forward(PE&, Array<float> q, Array<float> k, Array<float> v, Array<float> context, Array<float> probs) const {
    rotate(q, false);
    rotate(k, false);
    const std::uint32_t S = s.seq, F = features(), hd = s.head_dim;
    const float scale = scale_factor();
    for (std::uint32_t n = 0; n < s.seqs; ++n)
      for (std::uint32_t h = 0; h < s.heads; ++h)
        for (std::uint32_t i = 0; i < S; ++i) {
          float* prow = probs.data() + ((n * s.heads + h) * S + i) * S;
          const float* qi = q.data() + (n * S + i) * F + h * hd;
          float mx = 0.0f;
          bool any = false;
          for (std::uint32_t j = 0; j < S; ++j) {
            prow[j] = 0.0f;
            if (!visible(i, j)) continue;
            const float* kj = k.data() + (n * S + j) * F + h * hd;
            float acc = 0.0f;
            for (std::uint32_t c = 0; c < hd; ++c) acc += qi[c] * kj[c];
            prow[j] = acc * scale;
            if (!any || prow[j] > mx) mx = prow[j];
            any = true;
          }
          double sum = 0.0;
          for (std::uint32_t j = 0; j < S; ++j)
            if (visible(i, j)) {
              const double e = transformer_ops_math::exp(static_cast<double>(prow[j]) - mx);
              prow[j] = static_cast<float>(e);
              sum += e;
            }
          const float inv = static_cast<float>(1.0 / sum);
          float* ci = context.data() + (n * S + i) * F + h * hd;
          for (std::uint32_t c = 0; c < hd; ++c) ci[c] = 0.0f;
          for (std::uint32_t j = 0; j < S; ++j) {
            if (!visible(i, j)) continue;
            prow[j] *= inv;
            const float* vj = v.data() + (n * S + j) * F + h * hd;
            for (std::uint32_t c = 0; c < hd; ++c) ci[c] += prow[j] * vj[c];
          }
        }
  }

  /// dq, dk, dv from dcontext, given the forward's rotated q, k, v and probs. dq and dk are
  /// with respect to the inputs before the rotary embedding. dq, dk, dv are overwritten and
  /// must not alias the inputs.
  void backward(PE&, Array<float> q, Array<float> k, Array<float> v, Array<float> probs, Array<float> dcontext,
                Array<float> dq, Array<float> dk, Array<float> dv) const {
    const std::uint32_t S = s.seq, F = features(), hd = s.head_dim, T = tokens();
    const float scale = scale_factor();
    for (std::uint32_t i = 0; i < T * F; ++i) dq[i] = dk[i] = dv[i] = 0.0f;
    for (std::uint32_t n = 0; n < s.seqs; ++n)
      for (std::uint32_t h = 0; h < s.heads; ++h)
        for (std::uint32_t i = 0; i < S; ++i) {
          const float* prow = probs.data() + ((n * s.heads + h) * S + i) * S;
          const float* dci = dcontext.data() + (n * S + i) * F + h * hd;
          // dp_j = dc_i . v_j and dot = sum_j p_j dp_j; dp_j is recomputed in the second loop
          // (no per-query scratch of S floats)
          float dot = 0.0f;
          for (std::uint32_t j = 0; j <= i; ++j) {
            if (!visible(i, j)) continue;
            const float* vj = v.data() + (n * S + j) * F + h * hd;
            float* dvj = dv.data() + (n * S + j) * F + h * hd;
            float dp = 0.0f;
            for (std::uint32_t c = 0; c < hd; ++c) {
              dp += dci[c] * vj[c];
              dvj[c] += prow[j] * dci[c];
            }
            dot += prow[j] * dp;
          }
          const float* qi = q.data() + (n * S + i) * F + h * hd;
          float* dqi = dq.data() + (n * S + i) * F + h * hd;
          for (std::uint32_t j = 0; j <= i; ++j) {
            if (!visible(i, j)) continue;
            const float* vj = v.data() + (n * S + j) * F + h * hd;
            float dp = 0.0f;
            for (std::uint32_t c = 0; c < hd; ++c) dp += dci[c] * vj[c];
            const float ds = prow[j] * (dp - dot) * scale;
            const float* kj = k.data() + (n * S + j) * F + h * hd;
            float* dkj = dk.data() + (n * S + j) * F + h * hd;
            for (std::uint32_t c = 0; c < hd; ++c) {
              dqi[c] += ds * kj[c];
              dkj[c] += ds * qi[c];
            }
          }
        }
    rotate(dq, true);
    rotate(dk, true);
  }
};

}  // namespace wse::kernels
