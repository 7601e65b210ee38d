// wse_sample_plan: prints the weight-streaming planner's report (include/wse/stream/plan.hpp) for
// a model preset on a wafer: per layer, the predicted forward/backward time and whether it is
// bound by weight bandwidth or compute; or the reason the model cannot be planned.
//   wse_sample_plan [preset] [batch] [seq] [wse2|wse3] [fp32|fp16|mixed] [width height]
//   wse_sample_plan --summary   (the prediction table in docs/weight-streaming.md)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include <wse/stream.hpp>

namespace {

wse::stream::Precision precision_named(const std::string& s) {
  if (s == "fp16") return wse::stream::Precision::fp16;
  if (s == "mixed") return wse::stream::Precision::mixed;
  if (s != "fp32") throw std::runtime_error("precision must be fp32, fp16 or mixed, not '" + s + "'");
  return wse::stream::Precision::fp32;
}

// A positive count from the command line, or an error naming the argument.
std::uint32_t count_named(const char* what, const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < 1 || v > 0xffffffffLL)
    throw std::runtime_error(std::string(what) + " must be a positive whole number, not '" + text + "'");
  return static_cast<std::uint32_t>(v);
}

// One line per (model, batch, precision) on the full WSE-2: the docs' prediction table.
int summary() {
  using namespace wse::stream;
  std::printf("| model | batch x seq | precision | columns x rows | tokens x features per PE | checkpointing | memory per PE (bytes) | step (ms) | tokens/s | weight stream / compute, block forward |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (const char* name : {"gpt-j-6b", "gpt-neox-20b"})
    for (const std::uint32_t batch : {1u, 4u, 8u})
      for (const Precision prec : {Precision::fp32, Precision::mixed}) {
        const ModelSpec m = preset(name);
        try {
          const Plan p = plan(m, batch, 2048, full_wafer(wse::arch::wse2), {.precision = prec});
          // How close the blocks come to being bound by weight bandwidth (100% = as long as compute).
          double stream = 0, compute = 0;
          for (const auto& L : p.layers)
            if (L.block >= 0) stream += double(L.forward.stream_in_cycles), compute += double(L.forward.compute_cycles);
          std::printf("| %s | %u x %u | %s | %u x %u | %u x %u | %s | %llu | %.1f | %.0f | %.0f%% |\n", name, batch, 2048u,
                      to_string(prec), p.feature_bands, p.token_bands, p.tokens_per_pe, p.features_per_pe,
                      p.checkpointing ? "on" : "off", static_cast<unsigned long long>(p.memory.total()), p.step_ms(),
                      p.tokens_per_second, 100.0 * stream / compute);
        } catch (const PlanError& e) {
          std::printf("| %s | %u x %u | %s | refused: %s |\n", name, batch, 2048u, to_string(prec), e.what());
        }
      }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::strcmp(argv[1], "--summary") == 0) return summary();
    const std::string model = argc > 1 ? argv[1] : "gpt-j-6b";
    const auto batch = count_named("batch", argc > 2 ? argv[2] : "8");
    const auto seq = count_named("seq", argc > 3 ? argv[3] : "2048");
    const std::string arch = argc > 4 ? argv[4] : "wse2";
    if (arch != "wse2" && arch != "wse3") throw std::runtime_error("arch must be wse2 or wse3, not '" + arch + "'");
    const wse::arch::Arch& a = arch == "wse3" ? wse::arch::wse3 : wse::arch::wse2;
    wse::stream::Wafer wafer = wse::stream::full_wafer(a);
    const auto prec = precision_named(argc > 5 ? argv[5] : "fp32");
    if (argc == 7) throw std::runtime_error("give both width and height, or neither");
    if (argc > 7) wafer.width = count_named("width", argv[6]), wafer.height = count_named("height", argv[7]);
    const auto p = wse::stream::plan(wse::stream::preset(model), batch, seq, wafer, {.precision = prec});
    std::fputs(wse::stream::report(p).c_str(), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wse_sample_plan: %s\n", e.what());
    return 1;
  }
}
