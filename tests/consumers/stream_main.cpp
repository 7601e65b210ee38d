// A consumer of the weight-streaming executor: <wse/executor.hpp> (which needs the kernels
// library, target wse::kernels) trains tiny-gpt2 on two emulated wafers for two steps and
// checks that the loss is finite and the store took both updates. Built by each consumer test.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>
#include <wse/executor.hpp>

int main() {
  using namespace wse::stream;
  const ModelSpec m = preset("tiny-gpt2");
  WeightStore store(m, AdamW{.lr = 1e-3});
  store.initialize({.seed = 1});
  DataParallel wafers(m, /*replicas*/ 2, /*batch each*/ 1, /*seq*/ 8, /*grid*/ 4, 1);
  std::vector<std::int32_t> tokens(2 * 9);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((5 * i + 3) % m.vocab);
  const float first = wafers.step(store, tokens), second = wafers.step(store, tokens);
  const bool ok = std::isfinite(first) && second < first && store.step() == 2;
  std::printf("consumer of the executor: loss %.4f -> %.4f: %s\n", first, second, ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
