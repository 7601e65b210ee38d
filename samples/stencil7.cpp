// stencil7: the 3-D 7-point stencil SpMV y = A·x (kernels/stencil7.hpp) on an nx × ny × nz
// grid, one z-pencil of nz values per PE, with zero (Dirichlet) boundaries.
//
// Dataflow of one SpMV, at every PE (details in the kernel header):
//  1. send its pencil of x once on its own color; the router multicasts it to the four
//     neighbours (PE (i, j) sends on colors[(i + 2j) % 5], so no PE meets one color twice);
//  2. receive the four neighbours' pencils into four halo buffers, concurrently;
//  3. when all five ops are done, y = c0·x + (z neighbours, from its own memory, through
//     offset DSDs) + (the four halos); for the next sweep x <- y.
// The five colors and five task ids come from the program's channel allocator
// (stencil7_channels).
//
// Two cases, each `sweeps` SpMVs in one launch (y = A^sweeps · x):
//  - integer case: small integer x and coefficients, so every value is an integer below 2^24
//    and y must equal the double-precision host reference exactly;
//  - random case: x uniform in [-1, 1), real coefficients, checked norm-wise (limit 1e-5).
// Both also check x, which holds A^(sweeps-1) · x0 after the launch. The summary prints no
// epoch counts, so it is identical for any thread count and any jitter.
//
// Usage: wse_sample_stencil7 [threads] [jitter percent]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
#include <wse/wse.hpp>

#include "kernels/stencil7.hpp"

constexpr std::uint16_t nx = 9, ny = 7;  // grid of PEs
constexpr std::uint32_t nz = 40;         // pencil length
constexpr std::uint32_t sweeps = 4;      // SpMVs per launch
constexpr std::size_t N = std::size_t{nx} * ny * nz;

using Field = std::vector<double>;  // (ny, nx, nz): PE (i, j) holds [(j*nx + i)*nz, +nz)

// One host SpMV in double: the operator of kernels/stencil7.hpp.
static Field host_spmv(const wse::kernels::Stencil7Params& p, const Field& x) {
  Field y(N, 0.0);
  auto at = [&](int i, int j, int k) -> double {
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= int(nz)) return 0.0;
    return x[(std::size_t(j) * nx + i) * nz + k];
  };
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i)
      for (int k = 0; k < int(nz); ++k)
        y[(std::size_t(j) * nx + i) * nz + k] = p.c0 * at(i, j, k) + p.cxm * at(i - 1, j, k) + p.cxp * at(i + 1, j, k) +
                                               p.cym * at(i, j - 1, k) + p.cyp * at(i, j + 1, k) +
                                               p.czm * at(i, j, k - 1) + p.czp * at(i, j, k + 1);
  return y;
}

struct Result {
  std::vector<float> x, y;  // (ny, nx, nz) after the launch
  wse::host::RunReport report;
  wse::emu::PeStats totals;
  wse::emu::Stats stats;
};

static Result run_device(wse::kernels::Stencil7Params p, const std::vector<float>& x0, unsigned threads,
                         unsigned jitter, bool timed = false) {
  wse::Program prog(wse::arch::wse2, nx, ny);
  wse::kernels::stencil7_channels(prog, p);  // the 5 halo colors and 5 task ids from the program's allocator
  prog.add_region<wse::kernels::Stencil7>(p.area, p);
  wse::kernels::stencil7_routes(prog.route_sink(), p);

  wse::emu::EmuConfig cfg;
  cfg.threads = threads;
  cfg.jitter_percent = jitter;
  cfg.timed = timed;
  wse::host::Runtime rt(prog, cfg);
  rt.memcpy_h2d<float>("x", x0, p.area, nz);  // one pencil per PE, PEs in row-major order
  rt.launch("spmv");
  Result r;
  r.report = rt.run();
  r.x = rt.read<float>("x", p.area, nz);
  r.y = rt.read<float>("y", p.area, nz);
  r.stats = rt.stats();
  r.totals = r.stats.totals;
  return r;
}

static double rel_error(const std::vector<float>& got, const Field& ref) {
  double d = 0, r = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    d += (got[i] - ref[i]) * (got[i] - ref[i]);
    r += ref[i] * ref[i];
  }
  return std::sqrt(d / r);
}

static std::size_t count_inexact(const std::vector<float>& got, const Field& ref) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) n += double(got[i]) != ref[i];
  return n;
}

// FNV-1a over the bits of the result: equal output across runs means bit-identical results.
static std::uint64_t bits_hash(const std::vector<float>& v) {
  std::uint64_t h = 1469598103934665603ull;
  for (float f : v) {
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    for (int k = 0; k < 4; ++k) h = (h ^ ((b >> (8 * k)) & 0xffu)) * 1099511628211ull;
  }
  return h;
}

// Runs one case; prints one line; returns true when it matches.
static bool run_case(const char* name, const wse::kernels::Stencil7Params& p, const std::vector<float>& x0, bool exact,
                     unsigned threads, unsigned jitter) {
  if (const char* e = wse::kernels::stencil7_params_error(p)) {
    std::printf("  %s: %s\n", name, e);
    return false;
  }
  // Largest magnitude any fp32 intermediate can reach: every partial sum of a row is at most
  // (sum |c|)·max|x|. Below 2^24 with integer data, every op is exact.
  const double sum_abs_c = std::fabs(p.c0) + std::fabs(p.cxm) + std::fabs(p.cxp) + std::fabs(p.cym) +
                           std::fabs(p.cyp) + std::fabs(p.czm) + std::fabs(p.czp);
  Field ref(x0.begin(), x0.end()), ref_prev;
  double max_abs = 0, bound = 0;
  for (std::uint32_t s = 0; s < sweeps; ++s) {
    double mx = 0;
    for (double v : ref) mx = std::fmax(mx, std::fabs(v));
    bound = std::fmax(bound, sum_abs_c * mx);
    ref_prev = ref;
    ref = host_spmv(p, ref);
  }
  for (double v : ref) max_abs = std::fmax(max_abs, std::fabs(v));
  const Result r = run_device(p, x0, threads, jitter);
  if (!r.report.ok()) std::printf("%s", r.report.to_string().c_str());
  bool ok = r.report.ok();
  if (exact) {
    const std::size_t bad_y = count_inexact(r.y, ref), bad_x = count_inexact(r.x, ref_prev);
    ok = ok && bound < 16777216.0 && bad_y == 0 && bad_x == 0;
    std::printf("  %s: y = A^%u x, max |y| = %.0f (intermediates <= %.0f < 2^24), %zu of %zu values differ (x: %zu): %s\n",
                name, sweeps, max_abs, bound, bad_y, N, bad_x, ok ? "ok (exact)" : "MISMATCH");
  } else {
    const double ey = rel_error(r.y, ref), ex = rel_error(r.x, ref_prev);
    ok = ok && ey < 1e-5 && ex < 1e-5;
    std::printf("  %s: y = A^%u x, relative error %.2e (x: %.2e, limit 1e-5): %s\n", name, sweeps, ey, ex,
                ok ? "ok" : "MISMATCH");
  }
  std::printf("    result hash %016llx; wavelets sent %llu, received %llu, link hops %llu\n",
              (unsigned long long)bits_hash(r.y), (unsigned long long)r.totals.sent,
              (unsigned long long)r.totals.received, (unsigned long long)r.totals.forwarded);
  return ok;
}

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 1;
  const unsigned jitter = argc > 2 ? unsigned(std::atoi(argv[2])) : 0;
  std::printf("stencil7: 7-point stencil SpMV on a %ux%ux%u grid, %ux%u PEs with %u-value pencils, %u sweeps\n", nx,
              ny, nz, nx, ny, nz, sweeps);
  const wse::Rect area{{0, 0}, nx, ny};
  bool ok = true;

  // Integer case: distinct coefficients per direction, so a swapped direction shows.
  {
    wse::kernels::Stencil7Params p{.area = area, .nz = nz, .sweeps = sweeps,
                                   .c0 = 3, .cxm = 1, .cxp = -2, .cym = 2, .cyp = -1, .czm = 1, .czp = -3};
    std::vector<float> x0(N);
    for (std::size_t i = 0; i < N; ++i) x0[i] = float(int((i * 7 + i / 13) % 7) - 3);
    ok &= run_case("integer case", p, x0, true, threads, jitter);
  }
  // Random case: a diagonally dominant operator, values in [-1, 1).
  const wse::kernels::Stencil7Params p{.area = area, .nz = nz, .sweeps = sweeps,
                                       .c0 = 0.4f, .cxm = 0.11f, .cxp = 0.09f, .cym = -0.07f, .cyp = 0.13f,
                                       .czm = 0.1f, .czp = -0.05f};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> x0(N);
  for (float& v : x0) v = uni(rng);
  ok &= run_case("random case ", p, x0, false, threads, jitter);

  // Timed mode (docs/timing.md): the random case again with a WSE-2 clock. The results must
  // be bit-identical to functional mode; the cycle counts are the model's prediction.
  {
    const Result f = run_device(p, x0, threads, 0, false);
    const Result t = run_device(p, x0, threads, 0, true);
    const bool same = t.report.ok() && t.y == f.y && t.x == f.x;
    const double pe_cycles = double(nx) * ny * double(t.report.cycles);
    std::printf("  timed (wse2): %llu cycles = %.2f us at 850 MHz for %u sweeps; PEs busy %.0f%%, stalled %.1f%%; "
                "links %.0f%% busy (busiest %.0f%%); results %s\n",
                (unsigned long long)t.report.cycles, t.report.seconds * 1e6, sweeps,
                100.0 * double(t.totals.busy_cycles) / pe_cycles, 100.0 * double(t.totals.stall_cycles) / pe_cycles,
                100.0 * t.stats.link_utilization(), 100.0 * t.stats.busiest_link_utilization(),
                same ? "identical to functional mode" : "DIFFER");
    ok &= same && t.report.cycles > 0;
  }
  std::printf("stencil7: %s\n", ok ? "all match the host reference" : "MISMATCH");
  return ok ? 0 : 1;
}
