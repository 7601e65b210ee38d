#pragma once
// Helpers shared by the executor tests (test_executor.cpp, test_data_parallel.cpp): token
// batches in the reference model's form, the store's weights as reference tensors, and the
// error measures the tests bound.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>
#include <wse/stream.hpp>

#include "reference_model.hpp"
#include "support.hpp"

namespace wse_test {

/// tokens [batch, seq + 1] -> inputs tokens[:, :-1] and targets tokens[:, 1:].
inline wse::stream::reference::Batch batch_of(const std::vector<std::int32_t>& tok, std::uint32_t batch, std::uint32_t seq) {
  wse::stream::reference::Batch b{.batch = batch, .seq = seq, .inputs = {}, .targets = {}};
  for (std::uint32_t n = 0; n < batch; ++n)
    for (std::uint32_t s = 0; s < seq; ++s) {
      b.inputs.push_back(tok[n * (seq + 1) + s]);
      b.targets.push_back(tok[n * (seq + 1) + s + 1]);
    }
  return b;
}

/// Every tensor of the store, in parameters() order.
inline wse::stream::reference::Tensors weights(const wse::stream::WeightStore& s) {
  wse::stream::reference::Tensors w;
  for (const auto& t : s.tensors()) w.push_back(s.read(t.name));
  return w;
}

/// config() with `threads` workers (for comparisons across thread counts).
inline wse::emu::EmuConfig config_with(unsigned threads) {
  wse::emu::EmuConfig c = config();
  c.threads = threads;
  return c;
}

/// |a - b| / |b|.
inline double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); }

/// Max over tensors of (max abs difference) / max(the tensor's max-abs in `want`, 1e-3 of the
/// model's largest gradient); `worst` (if given) gets the name from `tensors` of the worst one.
inline double grad_error(const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& want,
                         const std::vector<wse::stream::TensorSpec>& tensors, std::string* worst = nullptr) {
  double model_max = 0;
  for (const auto& g : want)
    for (float v : g) model_max = std::max(model_max, double(std::abs(v)));
  double e = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (i >= got.size() || got[i].size() != want[i].size()) return HUGE_VAL;  // a missing or mis-sized tensor fails every bound
    double diff = 0, mx = 0;
    for (std::size_t k = 0; k < want[i].size(); ++k) {
      diff = std::max(diff, double(std::abs(got[i][k] - want[i][k])));
      mx = std::max(mx, double(std::abs(want[i][k])));
    }
    const double r = diff / std::max(mx, 1e-3 * model_max);
    if (r > e) {
      e = r;
      if (worst) *worst = tensors[i].name;
    }
  }
  return e;
}

}  // namespace wse_test
