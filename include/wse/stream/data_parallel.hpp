#pragma once
/// \file
/// Data parallel over several emulated wafers: N Executors, each with its own fabric and its
/// own slice of the batch, stream the same weights from one WeightStore; their gradients are
/// reduced in the store's fixed pairwise tree (tree_reduce) and averaged before the one update.
/// Replica r takes the token rows [r * batch, (r + 1) * batch) of a global batch of
/// replicas * batch sequences, so a step equals one wafer's step with the whole batch, up to
/// fp32 summation order. Stream layer; hosted.
///
///   wse::stream::DataParallel dp(preset("tiny-neo"), /*replicas*/ 4, /*batch each*/ 2, /*seq*/ 8, 4, 2);
///   const float loss = dp.step(store, tokens);   // tokens: [4 * 2, seq + 1] int32
///
/// The replicas run one after another on the host (each with EmuConfig::threads workers);
/// results do not depend on that order.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "executor.hpp"
#include "optimizer.hpp"
#include "store.hpp"

namespace wse::stream {

class DataParallel {
 public:
  DataParallel(const ModelSpec& spec, std::uint32_t replicas, std::uint32_t batch_per_replica, std::uint32_t seq,
               std::uint16_t width, std::uint16_t height, const arch::Arch& a = arch::wse2, emu::EmuConfig cfg = {})
      : batch_(batch_per_replica), seq_(seq) {
    if (replicas == 0) throw ExecutorError("data parallel: model '" + spec.name + "' needs at least one replica");
    replicas_.reserve(replicas);
    for (std::uint32_t r = 0; r < replicas; ++r)
      replicas_.push_back(std::make_unique<Executor>(spec, batch_per_replica, seq, width, height, a, cfg));
  }

  std::uint32_t replicas() const { return static_cast<std::uint32_t>(replicas_.size()); }
  /// Sequences in one step over all replicas.
  std::uint32_t global_batch() const { return replicas() * batch_; }
  Executor& replica(std::uint32_t r) { return *replicas_.at(r); }

  /// Forward and backward on every replica, then each tensor's replica gradients go to the
  /// store as one tree-reduced mean (WeightStore::apply_gradients) and the step ends. Returns
  /// the mean loss over the global batch (the replicas' losses, tree-reduced and averaged).
  float step(WeightStore& store, std::span<const std::int32_t> tokens) {
    const float loss = run(store, tokens);
    for (std::size_t i = 0; i < tensors(); ++i) store.apply_gradients(i, replica_gradients(i));
    store.end_step();
    return loss;
  }

  /// Forward and backward only; gradients() holds the tree-reduced mean gradient.
  float forward_backward(const WeightStore& store, std::span<const std::int32_t> tokens) {
    const float loss = run(store, tokens);
    mean_.assign(tensors(), {});
    const float n = static_cast<float>(replicas_.size());
    for (std::size_t i = 0; i < tensors(); ++i) {
      mean_[i] = tree_reduce(replica_gradients(i));
      for (float& x : mean_[i]) x = x / n;  // the store's apply_gradients divides the same way
    }
    return loss;
  }

  /// The mean gradients of the last forward_backward, in parameters(spec) order.
  const std::vector<std::vector<float>>& gradients() const { return mean_; }

 private:
  std::uint32_t batch_, seq_;
  std::vector<std::unique_ptr<Executor>> replicas_;
  std::vector<std::vector<float>> mean_;

  std::size_t tensors() const { return replicas_.front()->gradients().size(); }
  // Tensor i's gradient from every replica, in replica order (the tree's leaves).
  std::vector<std::span<const float>> replica_gradients(std::size_t i) const {
    std::vector<std::span<const float>> parts;
    for (const auto& r : replicas_) parts.emplace_back(r->gradients()[i]);
    return parts;
  }

  float run(const WeightStore& store, std::span<const std::int32_t> tokens) {
    const std::size_t per = std::size_t{batch_} * (seq_ + 1);
    if (tokens.size() != per * replicas_.size())
      throw ExecutorError("data parallel: tokens must hold replicas * batch * (seq + 1) = " +
                          std::to_string(per * replicas_.size()) + " ids, got " + std::to_string(tokens.size()));
    std::vector<float> losses(replicas_.size());
    for (std::size_t r = 0; r < replicas_.size(); ++r)
      losses[r] = replicas_[r]->forward_backward(store, tokens.subspan(r * per, per));
    std::vector<std::span<const float>> parts;
    for (const float& l : losses) parts.emplace_back(&l, 1);
    return tree_reduce(parts)[0] / static_cast<float>(replicas_.size());
  }
};

}  // namespace wse::stream
