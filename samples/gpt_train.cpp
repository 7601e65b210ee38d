// wse_sample_gpt_train: trains a tiny GPT-Neo- or GPT-J-shaped model, character by character,
// on a public-domain text (samples/data/gettysburg.txt) with weight streaming on the emulated
// fabric: every forward, backward and weight gradient runs as PE kernels, weights stream in from
// an off-wafer WeightStore and gradients stream back to its AdamW optimizer. It prints the
// planner's report for the wafer first, then a progress bar with the running loss, and checks at
// the end that the held-out loss fell.
//
//   wse_sample_gpt_train [--family neo|j|gpt2|neox] [--steps N] [--wafers N] [--threads N]
//                        [--lr X] [--seed N] [--text FILE]      (--help: defaults and limits)
//
// --family picks the preset tiny-<family> (changing the model is changing that one name);
// --wafers N trains on N emulated wafers in data parallel (each with its own batch of 4
// sequences, gradients tree-reduced into the store; the wafers run one after another);
// --threads sets each wafer's emulator workers (a 4x4 wafer uses one whatever it says:
// EmuConfig::min_pes_per_thread). Exit status 0 when the held-out loss fell, 1 when it did
// not, 2 on a usage or input error.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <wse/executor.hpp>

#ifndef WSE_SAMPLE_TEXT
#define WSE_SAMPLE_TEXT "samples/data/gettysburg.txt"
#endif

namespace {

using namespace wse::stream;

// The layout of one wafer: 4 x 4 PEs, one sequence of 16 characters per PE row (tiny presets:
// d_model 32 and 4 heads, so at most 4 columns; the context is 16).
constexpr std::uint16_t kWidth = 4, kHeight = 4;
constexpr std::uint32_t kBatchPerWafer = 4, kSeq = 16;
constexpr std::uint32_t kHeldOutWindows = kBatchPerWafer;

struct Options {
  std::string family = "neo";
  std::uint32_t steps = 300, wafers = 1, threads = 1;
  double lr = 1e-2;
  std::uint64_t seed = 1;
  std::string text = WSE_SAMPLE_TEXT;
};

std::uint64_t whole(const std::string& flag, const char* text, long long lowest) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < lowest || v > 1000000)
    throw std::runtime_error(flag + " must be a whole number in " + std::to_string(lowest) + "..1000000, not '" + text + "'");
  return static_cast<std::uint64_t>(v);
}

void usage(const char* argv0) {
  std::printf(
      "usage: %s [options]\n"
      "  --family neo|j|gpt2|neox  the model: preset tiny-<family> (default neo)\n"
      "  --steps N                 optimizer steps (default 300)\n"
      "  --wafers N                emulated wafers in data parallel, 4 sequences each (default 1)\n"
      "  --threads N               emulator workers per wafer (default 1; a 4x4 wafer uses one)\n"
      "  --lr X                    AdamW learning rate in (0, 1] (default 0.01)\n"
      "  --seed N                  weights and sampling seed, 0..1000000 (default 1)\n"
      "  --text FILE               training text: at least %u bytes, at most 64 distinct bytes\n"
      "                            (default: the Gettysburg Address, samples/data/gettysburg.txt)\n",
      argv0, 10 * (kSeq + 1));
}

Options parse(int argc, char** argv) {
  Options o;
  const std::vector<std::string> known = {"--family", "--steps", "--wafers", "--threads", "--seed", "--text", "--lr"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(argv[0]);
      std::exit(0);
    }
    if (std::find(known.begin(), known.end(), a) == known.end()) throw std::runtime_error("unknown option '" + a + "' (see --help)");
    if (i + 1 >= argc) throw std::runtime_error("option " + a + " needs a value (see --help)");
    const char* v = argv[++i];
    if (a == "--family") o.family = v;
    else if (a == "--steps") o.steps = static_cast<std::uint32_t>(whole(a, v, 1));
    else if (a == "--wafers") o.wafers = static_cast<std::uint32_t>(whole(a, v, 1));
    else if (a == "--threads") o.threads = static_cast<std::uint32_t>(whole(a, v, 1));
    else if (a == "--seed") o.seed = whole(a, v, 0);
    else if (a == "--text") o.text = v;
    else {  // --lr
      char* end = nullptr;
      o.lr = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(o.lr > 0.0) || o.lr > 1.0) throw std::runtime_error("--lr must be in (0, 1], not '" + std::string(v) + "'");
    }
  }
  if (o.family != "neo" && o.family != "j" && o.family != "gpt2" && o.family != "neox")
    throw std::runtime_error("--family must be neo, j, gpt2 or neox, not '" + o.family + "'");
  return o;
}

// The text as character ids: the distinct bytes of the text, sorted, numbered from 0.
struct Corpus {
  std::string alphabet;
  std::vector<std::int32_t> ids;
};

Corpus load(const std::string& path, std::uint32_t vocab) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw std::runtime_error("the training text '" + path + "' is not a readable file (pass --text FILE)");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open the training text '" + path + "' (pass --text FILE)");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Corpus c;
  for (const char ch : text)
    if (c.alphabet.find(ch) == std::string::npos) c.alphabet += ch;
  std::sort(c.alphabet.begin(), c.alphabet.end());
  if (c.alphabet.size() > vocab)
    throw std::runtime_error("'" + path + "' has " + std::to_string(c.alphabet.size()) + " distinct characters; the model's vocabulary holds " +
                             std::to_string(vocab));
  if (text.size() < 10 * (kSeq + 1))
    throw std::runtime_error("'" + path + "' has " + std::to_string(text.size()) + " bytes; at least " + std::to_string(10 * (kSeq + 1)) + " are needed");
  for (const char ch : text) c.ids.push_back(static_cast<std::int32_t>(c.alphabet.find(ch)));
  return c;
}

// `rows` windows of kSeq + 1 ids starting at random offsets in [begin, end - kSeq - 1].
std::vector<std::int32_t> windows(const std::vector<std::int32_t>& ids, std::size_t begin, std::size_t end, std::uint32_t rows,
                                  wse::stream::SplitMix64& rng) {
  std::vector<std::int32_t> out;
  const std::size_t span = end - begin - kSeq;
  for (std::uint32_t r = 0; r < rows; ++r) {
    const std::size_t at = begin + static_cast<std::size_t>(rng.next() % span);
    out.insert(out.end(), ids.begin() + static_cast<std::ptrdiff_t>(at), ids.begin() + static_cast<std::ptrdiff_t>(at + kSeq + 1));
  }
  return out;
}

std::string clock_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return b;
}

// One progress line: redrawn in place on a terminal, every tenth of the run otherwise.
class Progress {
 public:
  explicit Progress(std::uint32_t total) : total_(total), tty_(::isatty(STDOUT_FILENO) != 0) {}
  void update(std::uint32_t done, float loss, double seconds) {
    const bool milestone = done == total_ || done * 10 / total_ != (done - 1) * 10 / total_;
    if (!tty_ && !milestone) return;
    constexpr int kBar = 30;
    const int filled = static_cast<int>(std::uint64_t{done} * kBar / total_);
    const double per = seconds / done;
    std::printf("%s[%.*s%*s] %4u/%u  loss %.3f  %.2f s/step  eta %s%s", tty_ ? "\r" : "", filled,
                "##############################", kBar - filled, "", done, total_, loss, per,
                clock_text(per * (total_ - done)).c_str(), tty_ && done != total_ ? "" : "\n");
    std::fflush(stdout);
  }

 private:
  std::uint32_t total_;
  bool tty_;
};

int run(const Options& o) {
  const ModelSpec model = preset("tiny-" + o.family);
  const Corpus corpus = load(o.text, model.vocab);
  const std::size_t split = corpus.ids.size() * 9 / 10;  // the last tenth is held out
  const std::uint32_t global_batch = o.wafers * kBatchPerWafer;

  std::printf("wse_sample_gpt_train: %s on '%s' (%zu characters, %zu distinct; the last %zu held out)\n", model.name.c_str(),
              o.text.c_str(), corpus.ids.size(), corpus.alphabet.size(), corpus.ids.size() - split);
  std::printf("model: %llu parameters, %u blocks, d_model %u, %u heads, %s positions, %s residual\n\n",
              static_cast<unsigned long long>(parameter_count(model)), model.layers, model.d_model, model.heads,
              model.positions == Positions::rotary ? "rotary" : "learned",
              model.residual == Residual::sequential        ? "sequential"
              : model.residual == Residual::parallel_shared ? "parallel with one shared norm (GPT-J)"
                                                            : "parallel with two norms (NeoX)");

  // What the planner predicts for this wafer, before anything runs.
  const Plan p = plan(model, kBatchPerWafer, kSeq, Wafer{kWidth, kHeight, wse::arch::wse2});
  std::printf("%s\n", report(p).c_str());

  WeightStore store(model, AdamW{.lr = o.lr, .weight_decay = 0.0});
  store.initialize({.seed = o.seed});
  wse::emu::EmuConfig cfg;
  cfg.threads = o.threads;
  DataParallel wafers(model, o.wafers, kBatchPerWafer, kSeq, kWidth, kHeight, wse::arch::wse2, cfg);
  std::printf("training: %u wafer%s of %ux%u PEs, %u sequences of %u characters per step, AdamW lr %g, %u steps\n", o.wafers,
              o.wafers == 1 ? "" : "s (data parallel)", kWidth, kHeight, global_batch, kSeq, o.lr, o.steps);
  std::printf("executor: %u of %u bytes of PE memory in use (it keeps whole sequences per PE row and every activation;\n"
              "          the planner's figure above is for its general layout)\n",
              wafers.replica(0).pe_memory_used(), wse::arch::wse2.pe_memory_bytes);

  SplitMix64 held_rng(o.seed ^ 0x5eed);
  std::vector<std::int32_t> held_out;
  for (std::uint32_t w = 0; w < o.wafers; ++w) {
    const auto win = windows(corpus.ids, split, corpus.ids.size(), kHeldOutWindows, held_rng);
    held_out.insert(held_out.end(), win.begin(), win.end());
  }
  const float held_before = wafers.forward_backward(store, held_out);
  std::printf("held-out loss before training: %.3f nats per character (guessing uniformly among the %zu characters: %.3f)\n", held_before, corpus.alphabet.size(),
              std::log(static_cast<double>(corpus.alphabet.size())));

  SplitMix64 rng(o.seed);
  Progress bar(o.steps);
  const auto t0 = std::chrono::steady_clock::now();
  float first = 0.0f, smoothed = 0.0f;
  for (std::uint32_t s = 1; s <= o.steps; ++s) {
    const float loss = wafers.step(store, windows(corpus.ids, 0, split, global_batch, rng));
    if (s == 1) first = smoothed = loss;
    smoothed = 0.9f * smoothed + 0.1f * loss;
    bar.update(s, smoothed, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const float held_after = wafers.forward_backward(store, held_out);

  std::printf("\ntraining loss: %.3f at step 1, %.3f (running mean) at step %u\n", first, smoothed, o.steps);
  std::printf("held-out loss: %.3f -> %.3f nats per character\n", held_before, held_after);
  std::printf("time: %.1f s, %.3f s per step, %.0f characters per second\n", seconds, seconds / o.steps,
              double(o.steps) * global_batch * kSeq / seconds);
  const bool fell = held_after < held_before;
  std::printf("%s\n", fell ? "ok: the held-out loss fell" : "FAILED: the held-out loss did not fall");
  return fell ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wse_sample_gpt_train: %s\n", e.what());
    return 2;
  }
}
