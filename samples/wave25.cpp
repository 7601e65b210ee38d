// wave25: the 3-D acoustic wave equation with a 25-point stencil (radius 4 along x, y and z)
// and leapfrog time stepping (kernels/wave25.hpp), one z-pencil per PE, zero boundaries.
//
//   u(t+1) = 2·u(t) − u(t−1) + m ⊙ L(u(t)),
//   L(u) = c0·u + sum_{d=1..4} cx[d-1]·(u(i±d)) + cy[d-1]·(u(j±d)) + cz[d-1]·(u(k±d))
//
// Dataflow of one time step, at every PE (details in the kernel header):
//  1. send its pencil on its x-color (routers carry it up to 4 hops east and west, delivering
//     it at each PE) and on its y-color (4 hops north and south): 18 colors in all;
//  2. add the centre and the 8 z-neighbours from its own pencil (offset DSDs);
//  3. receive the 4 west pencils (concurrently), add them; then the 4 east, north, south ones;
//  4. u(t+1) = 2·u(t) − u(t−1) + m·acc; shift the time levels; next step.
// The 18 colors and 6 task ids come from the program's channel allocator (wave25_channels).
//
// Two cases on a 12 × 10 grid of PEs (wider and taller than 9, so colors are reused and
// interior PEs have all 16 halo pencils):
//  - integer case: integer coefficients (a different one per axis and distance), m in {0, 1}
//    per cell, small integer u: every value stays an integer below 2^24 (checked), so u must
//    equal the double-precision host reference exactly;
//  - physical case: the 8th-order Laplacian, a two-layer medium (m = v²dt²/h² of 0.12 above
//    and 0.05 below), a Gaussian pulse at rest, checked norm-wise (limit 1e-5).
// The summary prints no epoch counts, so it is identical for any thread count and jitter.
//
// Usage: wse_sample_wave25 [threads] [jitter percent]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <wse/wse.hpp>

#include "kernels/wave25.hpp"

constexpr std::uint16_t nx = 12, ny = 10;  // grid of PEs
constexpr std::uint32_t nz = 20;           // pencil length
constexpr std::size_t N = std::size_t{nx} * ny * nz;

using Field = std::vector<double>;  // (ny, nx, nz): PE (i, j) holds [(j*nx + i)*nz, +nz)

static std::size_t idx(int i, int j, int k) { return (std::size_t(j) * nx + i) * nz + k; }

// One host time step in double: the scheme of kernels/wave25.hpp.
static Field host_step(const wse::kernels::Wave25Params& p, const Field& m, const Field& u, const Field& u_prev) {
  auto at = [&](int i, int j, int k) -> double {
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= int(nz)) return 0.0;
    return u[idx(i, j, k)];
  };
  Field next(N);
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i)
      for (int k = 0; k < int(nz); ++k) {
        double l = p.c0 * at(i, j, k);
        for (int d = 1; d <= 4; ++d)
          l += p.cx[d - 1] * (at(i - d, j, k) + at(i + d, j, k)) + p.cy[d - 1] * (at(i, j - d, k) + at(i, j + d, k)) +
               p.cz[d - 1] * (at(i, j, k - d) + at(i, j, k + d));
        next[idx(i, j, k)] = 2 * u[idx(i, j, k)] - u_prev[idx(i, j, k)] + m[idx(i, j, k)] * l;
      }
  return next;
}

struct Result {
  std::vector<float> u, u_prev;  // (ny, nx, nz) after the launch
  wse::host::RunReport report;
  wse::emu::PeStats totals;
};

static Result run_device(wse::kernels::Wave25Params p, const std::vector<float>& m, const std::vector<float>& u0,
                         const std::vector<float>& u_prev0, unsigned threads, unsigned jitter) {
  wse::Program prog(wse::arch::wse2, nx, ny);
  wse::kernels::wave25_channels(prog, p);  // the 18 colors and 6 task ids from the program's allocator
  prog.add_region<wse::kernels::Wave25>(p.area, p);
  wse::kernels::wave25_routes(prog.route_sink(), p);

  wse::emu::EmuConfig cfg;
  cfg.threads = threads;
  cfg.jitter_percent = jitter;
  wse::host::Runtime rt(prog, cfg);
  rt.memcpy_h2d<float>("u", u0, p.area, nz);  // one pencil per PE, PEs in row-major order
  rt.memcpy_h2d<float>("u_prev", u_prev0, p.area, nz);
  rt.memcpy_h2d<float>("m", m, p.area, nz);
  rt.launch("run");
  Result r;
  r.report = rt.run();
  r.u = rt.read<float>("u", p.area, nz);
  r.u_prev = rt.read<float>("u_prev", p.area, nz);
  r.totals = rt.stats().totals;
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

static double max_abs(const Field& f) {
  double v = 0;
  for (double x : f) v = std::fmax(v, std::fabs(x));
  return v;
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

// Runs one case; prints its lines; returns true when it matches.
static bool run_case(const char* name, const wse::kernels::Wave25Params& p, const std::vector<float>& m,
                     const std::vector<float>& u0, const std::vector<float>& u_prev0, bool exact, unsigned threads,
                     unsigned jitter) {
  if (const char* e = wse::kernels::wave25_params_error(p)) {
    std::printf("  %s: %s\n", name, e);
    return false;
  }
  const Field md(m.begin(), m.end());
  Field u(u0.begin(), u0.end()), u_prev(u_prev0.begin(), u_prev0.end());
  // Largest magnitude any fp32 intermediate can reach: |partial sums of L| <= sum|c|·max|u|,
  // then |m·L| + 2|u| + |u_prev|. Below 2^24 with integer data, every op is exact.
  double sum_abs_c = std::fabs(p.c0), bound = 0;
  for (int d = 0; d < 4; ++d) sum_abs_c += 2 * (std::fabs(p.cx[d]) + std::fabs(p.cy[d]) + std::fabs(p.cz[d]));
  for (std::uint32_t s = 0; s < p.steps; ++s) {
    const double mu = max_abs(u), l = sum_abs_c * mu;
    bound = std::fmax(bound, std::fmax(l, max_abs(md) * l + 2 * mu + max_abs(u_prev)));
    Field next = host_step(p, md, u, u_prev);
    u_prev = std::move(u);
    u = std::move(next);
  }
  const Result r = run_device(p, m, u0, u_prev0, threads, jitter);
  if (!r.report.ok()) std::printf("%s", r.report.to_string().c_str());
  bool ok = r.report.ok();
  if (exact) {
    const std::size_t bad = count_inexact(r.u, u), bad_prev = count_inexact(r.u_prev, u_prev);
    ok = ok && bound < 16777216.0 && bad == 0 && bad_prev == 0;
    std::printf("  %s: %u steps, max |u| = %.0f (intermediates <= %.0f < 2^24), %zu of %zu values differ "
                "(u_prev: %zu): %s\n",
                name, p.steps, max_abs(u), bound, bad, N, bad_prev, ok ? "ok (exact)" : "MISMATCH");
  } else {
    const double e = rel_error(r.u, u), e_prev = rel_error(r.u_prev, u_prev);
    ok = ok && e < 1e-5 && e_prev < 1e-5;
    std::printf("  %s: %u steps, max |u| = %.4f, relative error %.2e (u_prev: %.2e, limit 1e-5): %s\n", name, p.steps,
                max_abs(u), e, e_prev, ok ? "ok" : "MISMATCH");
  }
  std::printf("    result hash %016llx; wavelets sent %llu, received %llu, link hops %llu\n",
              (unsigned long long)bits_hash(r.u), (unsigned long long)r.totals.sent,
              (unsigned long long)r.totals.received, (unsigned long long)r.totals.forwarded);
  return ok;
}

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 1;
  const unsigned jitter = argc > 2 ? unsigned(std::atoi(argv[2])) : 0;
  std::printf("wave25: 25-point wave stencil on a %ux%ux%u grid, %ux%u PEs with %u-value pencils\n", nx, ny, nz, nx, ny,
              nz);
  const wse::Rect area{{0, 0}, nx, ny};
  bool ok = true;

  // Integer case: every axis and distance has its own weight, so a mixed-up halo shows.
  {
    wse::kernels::Wave25Params p{.area = area, .nz = nz, .steps = 4, .c0 = 3,
                                 .cx = {2, -1, 1, -2}, .cy = {-2, 1, 2, -1}, .cz = {1, 2, -1, -2}};
    std::vector<float> m(N), u0(N), u_prev0(N);
    for (int j = 0; j < ny; ++j)
      for (int i = 0; i < nx; ++i)
        for (int k = 0; k < int(nz); ++k) {
          const std::size_t n = idx(i, j, k);
          m[n] = (i + 2 * j + k) % 3 == 0 ? 0.0f : 1.0f;
          u0[n] = float(int((n * 5 + n / 7) % 5) - 2);
          u_prev0[n] = float(int((n * 3 + n / 11) % 3) - 1);
        }
    ok &= run_case("integer case ", p, m, u0, u_prev0, true, threads, jitter);
  }
  // Physical case: 8th-order Laplacian (h = 1), two layers, a Gaussian pulse at rest.
  {
    const float a1 = 8.0f / 5, a2 = -1.0f / 5, a3 = 8.0f / 315, a4 = -1.0f / 560;
    wse::kernels::Wave25Params p{.area = area, .nz = nz, .steps = 24, .c0 = 3 * (-205.0f / 72),
                                 .cx = {a1, a2, a3, a4}, .cy = {a1, a2, a3, a4}, .cz = {a1, a2, a3, a4}};
    std::vector<float> m(N), u0(N);
    for (int j = 0; j < ny; ++j)
      for (int i = 0; i < nx; ++i)
        for (int k = 0; k < int(nz); ++k) {
          const double r2 = (i - 5.5) * (i - 5.5) + (j - 4.5) * (j - 4.5) + (k - 8.0) * (k - 8.0);
          u0[idx(i, j, k)] = float(std::exp(-r2 / 4.0));
          m[idx(i, j, k)] = k < 12 ? 0.12f : 0.05f;
        }
    ok &= run_case("physical case", p, m, u0, u0, false, threads, jitter);
  }
  std::printf("wave25: %s\n", ok ? "all match the host reference" : "MISMATCH");
  return ok ? 0 : 1;
}
