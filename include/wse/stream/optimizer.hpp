#pragma once
/// \file
/// Optimizers of the weight store and the deterministic tree reduction of data-parallel
/// replica gradients. Stream layer; hosted.
///
/// The optimizers reproduce torch.optim (PyTorch 1.13, single-tensor path, maximize=False,
/// amsgrad=False) operation by operation in fp32: every hyperparameter is a double (a Python
/// float), combined in double where PyTorch combines Python floats, and rounded to fp32 where
/// PyTorch hands it to a tensor op. The result agrees with PyTorch to rounding; it is not
/// promised bit-identical, because PyTorch's vectorized CPU kernels fuse some multiply-adds
/// (`add(x, alpha=a)` is an FMA under AVX2) and this code, compiled with -ffp-contract=off, does
/// not. See docs/weight-store.md.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace wse::stream {

/// An error of the weight store, its optimizers or the gradient reduction; the message names
/// the tensor and the file involved.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// torch.optim.SGD. Per element, with g the gradient and p the parameter:
///   d = g + weight_decay * p                               (when weight_decay != 0)
///   buf = d on a tensor's first update, else buf = momentum * buf + (1 - dampening) * d
///   d = nesterov ? d + momentum * buf : buf                (when momentum != 0)
///   p = p - lr * d
/// PyTorch has no default lr; 1e-3 here.
struct Sgd {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

/// torch.optim.AdamW (decoupled weight decay), with t the tensor's own update count (1, 2, ...):
///   p = p * (1 - lr * weight_decay)
///   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
///   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// Defaults are PyTorch's.
struct AdamW {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

using Optimizer = std::variant<Sgd, AdamW>;

/// "sgd" or "adamw".
inline const char* optimizer_name(const Optimizer& o) { return std::holds_alternative<Sgd>(o) ? "sgd" : "adamw"; }

/// fp32 state values kept per parameter element: SGD with momentum 1 (momentum_buffer), SGD
/// without 0, AdamW 2 (exp_avg, exp_avg_sq).
inline std::size_t state_slots(const Optimizer& o) {
  if (const auto* s = std::get_if<Sgd>(&o)) return s->momentum != 0.0 ? 1 : 0;
  return 2;
}

/// Throws StoreError for the hyperparameters PyTorch's constructors refuse, naming the field.
inline void validate(const Optimizer& o) {
  auto fail = [&](const std::string& why) { throw StoreError(std::string(optimizer_name(o)) + ": " + why); };
  auto num = [](double v) { return std::to_string(v); };
  if (const auto* s = std::get_if<Sgd>(&o)) {
    if (!(s->lr >= 0.0)) fail("invalid learning rate " + num(s->lr));
    if (!(s->momentum >= 0.0)) fail("invalid momentum " + num(s->momentum));
    if (!(s->weight_decay >= 0.0)) fail("invalid weight_decay " + num(s->weight_decay));
    if (!std::isfinite(s->dampening)) fail("invalid dampening " + num(s->dampening));
    if (s->nesterov && (s->momentum <= 0.0 || s->dampening != 0.0))
      fail("nesterov momentum requires a momentum and zero dampening");
    return;
  }
  const auto& a = std::get<AdamW>(o);
  if (!(a.lr >= 0.0)) fail("invalid learning rate " + num(a.lr));
  if (!(a.eps >= 0.0)) fail("invalid eps " + num(a.eps));
  if (!(a.beta1 >= 0.0 && a.beta1 < 1.0)) fail("invalid beta1 " + num(a.beta1) + " (must be in [0, 1))");
  if (!(a.beta2 >= 0.0 && a.beta2 < 1.0)) fail("invalid beta2 " + num(a.beta2) + " (must be in [0, 1))");
  if (!(a.weight_decay >= 0.0)) fail("invalid weight_decay " + num(a.weight_decay));
}

/// One SGD update of a run of elements of one tensor. `first`: the tensor has never been
/// updated (the momentum buffer is set to the gradient, as PyTorch creates it). `buf` is
/// empty when momentum is 0.
inline void sgd_update(const Sgd& o, bool first, std::span<float> p, std::span<const float> g, std::span<float> buf) {
  const float wd = static_cast<float>(o.weight_decay);
  const float mom = static_cast<float>(o.momentum);
  const float keep = static_cast<float>(1.0 - o.dampening);
  const float neg_lr = static_cast<float>(-o.lr);
  for (std::size_t i = 0; i < p.size(); ++i) {
    float d = g[i];
    if (o.weight_decay != 0.0) d = d + wd * p[i];
    if (o.momentum != 0.0) {
      float b;
      if (first) {
        b = d;
      } else {
        b = buf[i] * mom;
        b = b + keep * d;
      }
      buf[i] = b;
      d = o.nesterov ? d + mom * b : b;
    }
    p[i] = p[i] + neg_lr * d;
  }
}

/// One AdamW update of a run of elements of one tensor; `step` is the tensor's update count
/// including this one (1 on its first update).
inline void adamw_update(const AdamW& o, std::uint64_t step, std::span<float> p, std::span<const float> g, std::span<float> m,
                         std::span<float> v) {
  const auto t = static_cast<double>(step);
  const float decay = static_cast<float>(1.0 - o.lr * o.weight_decay);
  const float b1 = static_cast<float>(o.beta1);
  const float one_b1 = static_cast<float>(1.0 - o.beta1);
  const float b2 = static_cast<float>(o.beta2);
  const float one_b2 = static_cast<float>(1.0 - o.beta2);
  const double bias1 = 1.0 - std::pow(o.beta1, t);
  const double bias2 = 1.0 - std::pow(o.beta2, t);
  const float neg_step = static_cast<float>(-(o.lr / bias1));
  const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  const float eps = static_cast<float>(o.eps);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const float pi = p[i] * decay;
    float mi = m[i] * b1;
    mi = mi + one_b1 * g[i];
    float vi = v[i] * b2;
    vi = vi + one_b2 * g[i] * g[i];
    const float denom = std::sqrt(vi) / bias2_sqrt + eps;
    p[i] = pi + neg_step * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

/// The element-wise sum of replica gradients `parts` (all of out.size() elements) in a fixed
/// pairwise tree, written to `out`. Level 0 holds the replicas in index order; each level adds
/// neighbours (0+1, 2+3, ...) in fp32, and an odd last node moves up unchanged; this repeats
/// until one node is left. Eight replicas: ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)); five:
/// ((r0+r1)+(r2+r3))+r4. The result depends only on the values and their replica indices, and
/// a group of 2^k replicas starting at a multiple of 2^k reduced first (another tree, a
/// GradientTree) gives the same node, so pre-reducing aligned power-of-two groups is
/// bit-identical to reducing all replicas at once.
inline void tree_reduce(std::span<const std::span<const float>> parts, std::span<float> out) {
  if (parts.empty()) throw StoreError("tree_reduce: no replica gradients");
  for (std::size_t r = 0; r < parts.size(); ++r)
    if (parts[r].size() != out.size())
      throw StoreError("tree_reduce: replica " + std::to_string(r) + " has " + std::to_string(parts[r].size()) +
                       " elements, expected " + std::to_string(out.size()));
  std::vector<float> vals(parts.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (std::size_t r = 0; r < parts.size(); ++r) vals[r] = parts[r][i];
    for (std::size_t n = vals.size(); n > 1; n = (n + 1) / 2) {
      for (std::size_t j = 0; j < n / 2; ++j) vals[j] = vals[2 * j] + vals[2 * j + 1];
      if (n % 2 == 1) vals[n / 2] = vals[n - 1];
    }
    out[i] = vals[0];
  }
}

/// tree_reduce into a new vector.
inline std::vector<float> tree_reduce(std::span<const std::span<const float>> parts) {
  std::vector<float> out(parts.empty() ? 0 : parts[0].size());
  tree_reduce(parts, out);
  return out;
}

/// The same tree as tree_reduce, fed one replica at a time in any arrival order: a node is
/// added as soon as both its children are there, so the result is bit-identical to
/// tree_reduce whatever the order. Holds one buffer per node waiting for its sibling (log2 N
/// when replicas arrive in index order, up to N/2 in the worst order).
class GradientTree {
 public:
  GradientTree(std::size_t replicas, std::size_t elements) : received_(replicas, false), elements_(elements) {
    if (replicas == 0) throw StoreError("GradientTree: no replicas");
    for (std::size_t n = replicas; n > 1; n = (n + 1) / 2) width_.push_back(n);
  }

  /// Replica `replica`'s gradient; each replica exactly once.
  void add(std::size_t replica, std::span<const float> grad) {
    if (replica >= received_.size())
      throw StoreError("GradientTree: replica " + std::to_string(replica) + " out of range (" +
                       std::to_string(received_.size()) + " replicas)");
    if (received_[replica]) throw StoreError("GradientTree: replica " + std::to_string(replica) + " arrived twice");
    if (grad.size() != elements_)
      throw StoreError("GradientTree: replica " + std::to_string(replica) + " has " + std::to_string(grad.size()) +
                       " elements, expected " + std::to_string(elements_));
    received_[replica] = true;
    std::vector<float> buf(grad.begin(), grad.end());
    std::size_t j = replica;
    for (std::size_t level = 0; level < width_.size(); ++level, j /= 2) {
      const std::size_t sibling = j ^ 1;
      if (sibling >= width_[level]) continue;  // the odd last node moves up unchanged
      const auto it = waiting_.find({level, sibling});
      if (it == waiting_.end()) {
        waiting_.emplace(std::pair{level, j}, std::move(buf));
        return;
      }
      const std::vector<float>& other = it->second;
      for (std::size_t i = 0; i < elements_; ++i) buf[i] = j < sibling ? buf[i] + other[i] : other[i] + buf[i];
      waiting_.erase(it);
    }
    result_ = std::move(buf);
    complete_ = true;
  }

  bool complete() const { return complete_; }

  /// The reduced gradient; throws naming the missing replicas before every one arrived.
  std::span<const float> result() const {
    if (!complete_) {
      std::string missing;
      for (std::size_t r = 0; r < received_.size(); ++r)
        if (!received_[r]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      throw StoreError("GradientTree: result requested before replicas " + missing + " arrived");
    }
    return result_;
  }

 private:
  std::vector<std::size_t> width_;  // nodes on each level below the root
  std::vector<bool> received_;
  std::size_t elements_;
  std::map<std::pair<std::size_t, std::size_t>, std::vector<float>> waiting_;  // (level, index) -> partial sum
  std::vector<float> result_;
  bool complete_ = false;
};

}  // namespace wse::stream
