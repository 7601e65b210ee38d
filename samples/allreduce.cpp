// allreduce: every PE of a large rectangle holds n floats; afterwards every PE holds the
// element-wise sum over all of them (wse/collectives). The program never names a color: the
// collective asks the program's channel allocator for its colors and task id, and the host
// builder picks the algorithm from the timing model unless one is given.
//
// The run is in timed mode, so it reports cycles; the sample prints them next to the
// model's prediction and the simple lower bound (hops to the farthest PE + n wavelets), and
// checks every PE's result exactly (the inputs are small integers, so float sums are exact).
//
// Usage: wse_sample_allreduce [width] [height] [n] [automatic|chain|tree|two_phase|all] [threads]
//        (default 256 256 64 automatic, threads = all cores; "all" runs each algorithm)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include <wse/wse.hpp>

namespace coll = wse::collectives;

// The kernel's parameters live outside the kernel template (the program layer needs them
// without a backend).
struct DemoParams {
  coll::Params sum;   // built by coll::allreduce on the host
  wse::TaskId done;   // runs when this PE's part of the allreduce is over
};

template <class PE> struct AllreduceDemo {
  using Params = DemoParams;
  coll::Collective<PE, float> sum;  // this PE's part of the allreduce
  wse::Array<float> values;         // n floats: the input, then the sums
  wse::Array<std::uint32_t> finished;
  wse::TaskId done{};

  void init(PE& pe, const Params& p) {
    wse::collectives::attach<&AllreduceDemo::sum>(pe, *this, p.sum);
    values = wse::alloc<float>(pe, coll::buffer_elements(p.sum));
    finished = wse::alloc<std::uint32_t>(pe, 1);
    done = p.done;
    wse::export_symbol(pe, "values", values);
    wse::export_symbol(pe, "finished", finished);
    wse::export_function<&AllreduceDemo::start>(pe, "start");
    wse::bind_local_task<&AllreduceDemo::on_done>(pe, done);
  }
  void start(PE& pe) { sum.start(pe, values, wse::then_activate(done)); }
  void on_done(PE&) { finished[0] += 1; }
};

// Small integers, different on every PE and element: -3..3.
static float input(std::uint32_t pe, std::uint32_t i) { return static_cast<float>(int((pe * 7u + i * 3u) % 7u) - 3); }

static bool parse_algorithm(const char* s, coll::Algorithm& a) {
  for (coll::Algorithm c : {coll::Algorithm::automatic, coll::Algorithm::chain, coll::Algorithm::tree, coll::Algorithm::two_phase})
    if (std::strcmp(s, coll::algorithm_name(c)) == 0) return a = c, true;
  return false;
}

// Builds, runs and checks one allreduce; returns false on a wrong result or a failed run.
static bool run_one(std::uint16_t w, std::uint16_t h, std::uint32_t n, coll::Algorithm algorithm, unsigned threads) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  wse::Program prog(wse::arch::wse2, w, h);
  const coll::Params sum = coll::allreduce<float>(prog, prog.grid(), n, {.algorithm = algorithm, .name = "demo"});
  const wse::TaskId done = prog.allocate_task("sample: done", prog.grid());
  prog.add_region<AllreduceDemo>(prog.grid(), DemoParams{sum, done});
  std::printf("%s\n", coll::describe(sum, prog.arch()).c_str());

  wse::emu::EmuConfig cfg;
  cfg.timed = true;
  cfg.threads = threads;
  wse::host::Runtime rt(prog, cfg);
  const std::uint32_t P = std::uint32_t{w} * h;
  std::vector<float> values(std::size_t{P} * n);
  std::vector<double> expect(n, 0.0);
  for (std::uint32_t pe = 0; pe < P; ++pe)
    for (std::uint32_t i = 0; i < n; ++i) {
      values[std::size_t{pe} * n + i] = input(pe, i);
      expect[i] += input(pe, i);
    }
  rt.memcpy_h2d<float>("values", values, prog.grid(), n);
  const auto t1 = clock::now();
  rt.launch("start");
  const wse::host::RunReport report = rt.run();
  const auto t2 = clock::now();
  if (!report.ok()) {
    std::printf("run failed: %s\n", report.to_string().c_str());
    return false;
  }
  const std::vector<float> out = rt.read<float>("values", prog.grid(), n);
  const std::vector<std::uint32_t> finished = rt.read<std::uint32_t>("finished", prog.grid(), 1);
  std::size_t wrong = 0, not_done = 0;
  for (std::uint32_t pe = 0; pe < P; ++pe) {
    not_done += finished[pe] != 1;
    for (std::uint32_t i = 0; i < n; ++i) wrong += out[std::size_t{pe} * n + i] != static_cast<float>(expect[i]);
  }
  const std::uint64_t bound = coll::lower_bound_cycles(prog.arch(), sum);
  const std::uint64_t predicted = coll::predict_cycles(prog.arch(), sum);
  std::printf("  check: %s (%u PEs x %u sums; %zu wrong, %zu PEs without completion)\n",
              wrong == 0 && not_done == 0 ? "every PE holds the exact sums" : "MISMATCH", P, n, wrong, not_done);
  std::printf("  cycles: %llu = %.2f us at 850 MHz; predicted %llu; lower bound %llu (%u hops + %u wavelets); ratio %.2f\n",
              static_cast<unsigned long long>(report.cycles), report.seconds * 1e6, static_cast<unsigned long long>(predicted),
              static_cast<unsigned long long>(bound), w - 1u + h - 1u, n, double(report.cycles) / double(bound));
  std::printf("  emulation: build+load %.2f s, run %.2f s on %u threads\n",
              std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count(), threads);
  return wrong == 0 && not_done == 0;
}

int main(int argc, char** argv) {
  const long w = argc > 1 ? std::atol(argv[1]) : 256, h = argc > 2 ? std::atol(argv[2]) : 256;
  const long n = argc > 3 ? std::atol(argv[3]) : 64;
  const char* alg = argc > 4 ? argv[4] : "automatic";
  const unsigned threads = argc > 5 ? static_cast<unsigned>(std::atol(argv[5])) : std::max(1u, std::thread::hardware_concurrency());
  if (w < 1 || h < 1 || w > wse::arch::wse2.fabric_width || h > wse::arch::wse2.fabric_height || n < 0 || n > 8192) {
    std::fprintf(stderr, "usage: wse_sample_allreduce [width 1..757] [height 1..996] [n 0..8192] [algorithm|all] [threads]\n");
    return 2;
  }
  std::vector<coll::Algorithm> which;
  coll::Algorithm a{};
  if (std::strcmp(alg, "all") == 0) which = {coll::Algorithm::chain, coll::Algorithm::tree, coll::Algorithm::two_phase};
  else if (parse_algorithm(alg, a)) which = {a};
  else {
    std::fprintf(stderr, "unknown algorithm '%s' (automatic, chain, tree, two_phase or all)\n", alg);
    return 2;
  }
  bool ok = true;
  for (coll::Algorithm c : which)
    ok &= run_one(static_cast<std::uint16_t>(w), static_cast<std::uint16_t>(h), static_cast<std::uint32_t>(n), c, threads);
  return ok ? 0 : 1;
}
