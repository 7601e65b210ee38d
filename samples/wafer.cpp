// wafer: fabric-wide programs on the whole WSE-2 fabric (757 × 996 = 753,972 PEs) on one
// small machine. Each workload loads a program onto every PE, runs it with a progress
// display, checks every PE's result, and prints wall time, memory (resident set size) and
// the emulator's work:
//   allreduce  n floats summed over every PE, result on every PE (wse/collectives); in timed
//              mode (the default for it) it also prints the cycles, the model's prediction
//              and the lower bound
//   broadcast  n floats from the north-west PE to every PE (wse/collectives)
//   stencil    one 7-point stencil SpMV over every PE, a z-pencil of nz values each
//              (kernels/stencil7.hpp), checked against a host reference
//
// Usage: wse_sample_wafer [allreduce|broadcast|stencil|all] [width] [height] [n] [threads] [timed|functional]
//        (default: allreduce 757 996 16, all cores; allreduce timed, the others functional)
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>
#include <wse/wse.hpp>

#include "kernels/collective_join.hpp"
#include "kernels/stencil7.hpp"

namespace coll = wse::collectives;
using Clock = std::chrono::steady_clock;

// ---- measurement helpers ------------------------------------------------------------------

// A line of /proc/self/status in MiB ("VmRSS", "VmHWM"), or -1 where there is none.
static double proc_status_mib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::atof(line.c_str() + std::strlen(key) + 1) / 1024.0;
  return -1;
}
static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Progress display: one line, rewritten in place, from the emulator's progress callback.
static wse::emu::EmuConfig config(unsigned threads, bool timed) {
  wse::emu::EmuConfig cfg;
  cfg.threads = threads;
  cfg.timed = timed;
  cfg.progress_every = timed ? 100 : 50;
  const auto start = Clock::now();
  cfg.progress = [start, timed](const wse::emu::RunProgress& p) {
    std::fprintf(stderr, "\r  running: %8llu %s, %9llu of %llu PEs awake, %6.1f s since load", static_cast<unsigned long long>(timed ? p.cycles : p.epochs),
                 timed ? "cycles" : "epochs", static_cast<unsigned long long>(p.awake_pes),
                 static_cast<unsigned long long>(p.loaded_pes), seconds_since(start));
  };
  return cfg;
}
static void end_progress() { std::fprintf(stderr, "\r%78s\r", ""); }

struct Timing {
  Clock::time_point t0 = Clock::now();
  double build = 0, load = 0, run = 0;
  double rss_before = proc_status_mib("VmRSS");
};
static void print_figures(wse::host::Runtime& rt, const Timing& t, const wse::host::RunReport& r, std::uint64_t pes) {
  const double rss = proc_status_mib("VmRSS");
  std::printf("  time: build %.2f s, load %.2f s, run %.2f s (%llu epochs)\n", t.build, t.load, t.run,
              static_cast<unsigned long long>(r.epochs));
  std::printf("  memory: resident %.0f MiB (peak %.0f MiB); %.0f bytes per PE for this program\n", rss,
              proc_status_mib("VmHWM"), (rss - t.rss_before) * 1048576.0 / double(pes));
  // The emulator's own count (Engine::memory): its state per PE beyond what the kernels use.
  const wse::emu::EmuMemory m = rt.emulator()->memory();
  std::printf("  emulator state: %.0f bytes per PE beyond the kernel's %.0f; %.1f MiB of wavelet buffers pooled\n",
              m.state_per_pe(), double(m.kernel_bytes) / double(m.pes), double(m.ring_pool_bytes) / 1048576.0);
}

// Launches `function` on every PE and runs, timing the run; prints the report when it fails.
static wse::host::RunReport launch_and_run(wse::host::Runtime& rt, const char* function, Timing& t) {
  const auto t1 = Clock::now();
  rt.launch(function);
  const wse::host::RunReport r = rt.run();
  t.run = seconds_since(t1);
  end_progress();
  if (!r.ok()) std::printf("  run failed: %s\n", r.to_string().substr(0, 2000).c_str());
  return r;
}

// ---- workloads ----------------------------------------------------------------------------

// allreduce (sum) or broadcast of n floats over the whole grid; checks every PE.
static bool run_collective(coll::Kind kind, std::uint16_t w, std::uint16_t h, std::uint32_t n, unsigned threads, bool timed) {
  Timing t;
  wse::Program prog(wse::arch::wse2, w, h);
  const coll::Params cp = coll::build<float>(prog, kind, prog.grid(), n, {.name = "wafer"});
  prog.add_region<wse::kernels::CollectiveJoin>(prog.grid(),
                                                wse::kernels::CollectiveJoinParams{cp, prog.allocate_task("wafer: done", prog.grid())});
  std::printf("%s%s\n", coll::describe(cp, prog.arch()).c_str(), timed ? " [timed]" : " [functional]");
  t.build = seconds_since(t.t0);

  const auto t1 = Clock::now();
  wse::host::Runtime rt(std::move(prog), config(threads, timed));  // no copy of the routes
  const wse::Rect grid = rt.program().grid();
  const std::uint64_t P = std::uint64_t{w} * h;
  std::vector<float> values(P * n);
  std::vector<double> expect(n, 0.0);
  for (std::uint64_t pe = 0; pe < P; ++pe)
    for (std::uint32_t i = 0; i < n; ++i) {
      const float v = static_cast<float>(int((pe * 7 + i * 3) % 5) - 2);  // small integers: exact sums
      values[pe * n + i] = v;
      if (kind == coll::Kind::allreduce) expect[i] += v;
      else if (pe == 0) expect[i] = v;
    }
  rt.memcpy_h2d<float>("buf", values, grid, n);
  t.load = seconds_since(t1);

  const wse::host::RunReport r = launch_and_run(rt, "go", t);
  if (!r.ok()) return false;
  const std::vector<float> out = rt.read<float>("buf", grid, n);
  std::uint64_t wrong = 0;
  for (std::uint64_t pe = 0; pe < P; ++pe)
    for (std::uint32_t i = 0; i < n; ++i) wrong += out[pe * n + i] != static_cast<float>(expect[i]);
  std::printf("  check: %s (%llu PEs x %u values, %llu wrong)\n", wrong == 0 ? "every PE holds the expected values" : "MISMATCH",
              static_cast<unsigned long long>(P), n, static_cast<unsigned long long>(wrong));
  if (timed)
    std::printf("  cycles: %llu = %.2f us at 850 MHz; predicted %llu; lower bound %llu\n", static_cast<unsigned long long>(r.cycles),
                r.seconds * 1e6, static_cast<unsigned long long>(coll::predict_cycles(rt.program().arch(), cp)),
                static_cast<unsigned long long>(coll::lower_bound_cycles(rt.program().arch(), cp)));
  print_figures(rt, t, r, P);
  return wrong == 0;
}

// One 7-point stencil SpMV over every PE; checks against a host reference.
static bool run_stencil(std::uint16_t w, std::uint16_t h, std::uint32_t nz, unsigned threads, bool timed) {
  Timing t;
  wse::Program prog(wse::arch::wse2, w, h);
  wse::kernels::Stencil7Params p{.area = prog.grid(), .nz = nz, .sweeps = 1, .c0 = 6, .cxm = -1, .cxp = -1, .cym = -1, .cyp = -1, .czm = -1, .czp = -1};
  wse::kernels::stencil7_channels(prog, p);
  prog.add_region<wse::kernels::Stencil7>(p.area, p);
  wse::kernels::stencil7_routes(prog.route_sink(), p);
  std::printf("stencil7 SpMV over (0,0)+%ux%u, nz=%u%s\n", w, h, nz, timed ? " [timed]" : " [functional]");
  t.build = seconds_since(t.t0);

  const auto t1 = Clock::now();
  wse::host::Runtime rt(std::move(prog), config(threads, timed));  // no copy of the routes
  const std::uint64_t P = std::uint64_t{w} * h;
  std::vector<float> x(P * nz);
  for (std::uint64_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(int(i % 11) - 5);
  rt.memcpy_h2d<float>("x", x, p.area, nz);
  t.load = seconds_since(t1);

  const wse::host::RunReport r = launch_and_run(rt, "spmv", t);
  if (!r.ok()) return false;
  const std::vector<float> y = rt.read<float>("y", p.area, nz);
  auto at = [&](long i, long j, long k) -> float {
    if (i < 0 || j < 0 || k < 0 || i >= w || j >= h || k >= long(nz)) return 0.0f;
    return x[(std::uint64_t(j) * w + std::uint64_t(i)) * nz + std::uint64_t(k)];
  };
  std::uint64_t wrong = 0;  // integer data: every value is exact
  for (long j = 0; j < h; ++j)
    for (long i = 0; i < w; ++i)
      for (long k = 0; k < long(nz); ++k) {
        const float ref = 6 * at(i, j, k) - at(i - 1, j, k) - at(i + 1, j, k) - at(i, j - 1, k) - at(i, j + 1, k) -
                          at(i, j, k - 1) - at(i, j, k + 1);
        wrong += y[(std::uint64_t(j) * w + std::uint64_t(i)) * nz + std::uint64_t(k)] != ref;
      }
  std::printf("  check: %s (%llu values, %llu wrong)\n", wrong == 0 ? "every value equals the host reference" : "MISMATCH",
              static_cast<unsigned long long>(y.size()), static_cast<unsigned long long>(wrong));
  if (timed) std::printf("  cycles: %llu = %.2f us at 850 MHz\n", static_cast<unsigned long long>(r.cycles), r.seconds * 1e6);
  print_figures(rt, t, r, P);
  return wrong == 0;
}

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "allreduce";
  const long w = argc > 2 ? std::atol(argv[2]) : wse::arch::wse2.fabric_width;
  const long h = argc > 3 ? std::atol(argv[3]) : wse::arch::wse2.fabric_height;
  const long n = argc > 4 ? std::atol(argv[4]) : 16;
  const unsigned threads = argc > 5 ? static_cast<unsigned>(std::atol(argv[5])) : std::max(1u, std::thread::hardware_concurrency());
  const std::string mode = argc > 6 ? argv[6] : "";
  const bool known = what == "allreduce" || what == "broadcast" || what == "stencil" || what == "all";
  if (!known || w < 1 || h < 1 || w > wse::arch::wse2.fabric_width || h > wse::arch::wse2.fabric_height || n < 1 || n > 2048 ||
      threads < 1 || (!mode.empty() && mode != "timed" && mode != "functional")) {
    std::fprintf(stderr, "usage: wse_sample_wafer [allreduce|broadcast|stencil|all] [width 1..757] [height 1..996] [n 1..2048] "
                         "[threads] [timed|functional]\n");
    return 2;
  }
  const auto W = static_cast<std::uint16_t>(w), H = static_cast<std::uint16_t>(h);
  const auto N = static_cast<std::uint32_t>(n);
  std::printf("WSE-2 fabric %ux%u (%lu PEs), %u threads\n", W, H, w * h, threads);
  bool ok = true;
  if (what == "allreduce" || what == "all") ok &= run_collective(coll::Kind::allreduce, W, H, N, threads, mode != "functional");
  if (what == "broadcast" || what == "all") ok &= run_collective(coll::Kind::broadcast, W, H, N, threads, mode == "timed");
  if (what == "stencil" || what == "all") ok &= run_stencil(W, H, N, threads, mode == "timed");
  return ok ? 0 : 1;
}
