// gemv_grid: y = A·x + b with the reusable kernel of kernels/gemv.hpp on an 8 × 6 grid of PEs,
// A 250 × 300 (neither divisible by the grid: PE blocks of 42 or 41 rows and 38 or 37 columns).
//
// Dataflow of one launch (details in the kernel header):
//  1. x enters every PE column at the north edge from a host stream (its 38 or 37 values)
//     and the routers multicast it down the column;
//  2. every PE computes its block's product with 2-D fused multiply-add DSD ops (8 running
//     sums per row, then a pairwise tree);
//  3. the partial sums stream west -> east along every row on two alternating colors, each PE
//     adding its own as the elements pass; the west column starts from b, the east column
//     keeps y, which the host reads with a memcpy.
// The three colors and the task id come from the program's channel allocator
// (kern::gemv_channels), not from fixed numbers; the sample prints what it handed out.
//
// Three variants of the kernel: fp32 (Gemv), mixed f16 x f16 + f32 (GemvMixed) and pure fp16
// (GemvF16). Each runs two cases on one loaded program (the second launch gets a new A, b and
// x), and each case is checked two ways: bit for bit against a host model that rounds exactly
// as the kernel does (same operations, same order, same rounding), and against a
// double-precision reference computed from the same (rounded) inputs:
//  - small integers: every partial sum is exact even in fp16, so y must equal the reference;
//  - random values in [-1, 1): norm-wise relative error below 1e-6 (fp32, mixed) or 5e-3
//    (fp16: unit roundoff 4.9e-4, about 17 roundings on the longest path).
//
// Usage: wse_sample_gemv_grid [threads]
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>
#include <wse/wse.hpp>

#include "kernels/gemv.hpp"

namespace kern = wse::kernels;

constexpr std::uint16_t px = 8, py = 6;  // grid: px columns, py rows
constexpr std::uint32_t M = 250, N = 300;

// Host arithmetic that rounds like the kernel's DSD ops, one struct per (T, Acc) pair.
struct F32Arith {  // kern::Gemv
  using T = float;
  using Acc = float;
  static constexpr const char* name = "fp32 (T = Acc = float)";
  static constexpr double limit = 1e-6;  // norm-wise relative error of the random case
  static float mac(float acc, float a, float x) { return std::fma(a, x, acc); }  // acc + a*x, one rounding
  static float add(float a, float b) { return a + b; }
  static double val(float v) { return v; }
  static float t_from(float v) { return v; }
  static float acc_from(float v) { return v; }
};
struct MixedArith {  // kern::GemvMixed: the f16 product is exact in float, then one f32 rounding
  using T = wse::f16;
  using Acc = float;
  static constexpr const char* name = "mixed (T = f16, Acc = float)";
  static constexpr double limit = 1e-6;
  static float mac(float acc, wse::f16 a, wse::f16 x) { return std::fma(a.to_float(), x.to_float(), acc); }
  static float add(float a, float b) { return a + b; }
  static double val(float v) { return v; }
  static double val(wse::f16 v) { return v.to_float(); }
  static wse::f16 t_from(float v) { return wse::f16::from_float(v); }
  static float acc_from(float v) { return v; }
};
struct F16Arith {  // kern::GemvF16: every op's exact result rounded once to f16
  using T = wse::f16;
  using Acc = wse::f16;
  static constexpr const char* name = "fp16 (T = Acc = f16)";
  // fp16 unit roundoff is 2^-11 = 4.9e-4, and the longest chain of roundings in this shape is
  // ~17 (5 macs, a 3-level tree, 8 columns, b); random signs make the errors partly cancel.
  static constexpr double limit = 5e-3;
  // With f16 operands, double holds b*c exactly and fma rounds a + b*c once; every finite f16
  // result then spans < 53 bits, so rounding that double to f16 is the single rounding.
  static wse::f16 mac(wse::f16 acc, wse::f16 a, wse::f16 x) {
    return wse::f16::from_double(std::fma(double(a.to_float()), double(x.to_float()), double(acc.to_float())));
  }
  static wse::f16 add(wse::f16 a, wse::f16 b) { return wse::f16::from_double(double(a.to_float()) + b.to_float()); }
  static double val(wse::f16 v) { return v.to_float(); }
  static wse::f16 t_from(float v) { return wse::f16::from_float(v); }
  static wse::f16 acc_from(float v) { return wse::f16::from_float(v); }
};

// The kernel's result computed on the host in the kernel's order (see kernels/gemv.hpp,
// "Rounding"). A is row-major m × n.
template <class Ar>
static std::vector<typename Ar::Acc> host_model(const kern::GemvParams& p, const std::vector<typename Ar::T>& A,
                                                const std::vector<typename Ar::T>& x,
                                                const std::vector<typename Ar::Acc>& b) {
  using Acc = typename Ar::Acc;
  std::vector<Acc> y(p.m);
  const std::uint32_t cols_w = kern::gemv_active_width(p);
  for (std::uint32_t j = 0; j < kern::gemv_active_height(p); ++j)
    for (std::uint32_t r = kern::gemv_row_begin(p, j); r < kern::gemv_row_begin(p, j) + kern::gemv_rows(p, j); ++r) {
      Acc s{};
      for (std::uint32_t i = 0; i < cols_w; ++i) {
        const std::uint32_t c0 = kern::gemv_col_begin(p, i), c = kern::gemv_cols(p, i);
        const std::uint32_t w = p.acc_cols < c ? p.acc_cols : c;
        std::vector<Acc> acc(w, Acc{});
        for (std::uint32_t g = 0; g < c; g += w)
          for (std::uint32_t k = 0; k < w && g + k < c; ++k)
            acc[k] = Ar::mac(acc[k], A[std::size_t(r) * p.n + c0 + g + k], x[c0 + g + k]);
        for (std::uint32_t cnt = w; cnt > 1;) {
          const std::uint32_t h = cnt / 2;
          for (std::uint32_t t = 0; t < h; ++t) acc[t] = Ar::add(acc[t], acc[cnt - h + t]);
          cnt -= h;
        }
        if (i == 0) s = p.bias ? Ar::add(acc[0], b[r]) : acc[0];
        else s = Ar::add(s, acc[0]);
      }
      y[r] = s;
    }
  return y;
}

// A loaded Gemv program: kernel K with element types (T, Acc). When the Params are not
// usable, `error` says why and nothing is loaded.
template <template <class> class K, class T, class Acc> class GemvDevice {
 public:
  GemvDevice(const kern::GemvParams& p, unsigned threads) : p_(p), prog_(wse::arch::wse2, px, py) {
    kern::gemv_channels(prog_, p_);  // x_color, sum_colors, tasks[0] from the program's allocator
    error = kern::gemv_params_error<T, Acc>(p_);
    if (error != nullptr) return;
    prog_.add_region<K>(p_.area, p_, "gemv");
    kern::gemv_routes(prog_.route_sink(), p_);
    kern::gemv_x_streams(p_, [&](std::uint32_t i, wse::Coord c, wse::Color col, wse::Port edge) {
      prog_.add_input_stream("x" + std::to_string(i), col, c, edge);
    });
    wse::emu::EmuConfig cfg;
    cfg.threads = threads;
    rt_.emplace(prog_, cfg);
  }

  const char* error = nullptr;
  // One line per color and task id the kernel was given.
  std::string channels() const { return prog_.channel_report(); }

  // Copies A (row-major m × n) into the per-PE slots and b into the west column.
  void load(const std::vector<T>& A, const std::vector<Acc>& b) {
    const std::uint32_t mb = kern::gemv_mb(p_), nb = kern::gemv_nb(p_);
    const wse::Rect act = kern::gemv_active_area(p_);
    std::vector<T> slots(std::size_t{act.area()} * mb * nb, T{});
    for (std::uint32_t j = 0; j < act.height; ++j)
      for (std::uint32_t i = 0; i < act.width; ++i) {
        T* slot = &slots[(std::size_t(j) * act.width + i) * mb * nb];
        for (std::uint32_t c = 0; c < kern::gemv_cols(p_, i); ++c)
          for (std::uint32_t r = 0; r < kern::gemv_rows(p_, j); ++r)
            slot[r + c * mb] = A[std::size_t(kern::gemv_row_begin(p_, j) + r) * p_.n + kern::gemv_col_begin(p_, i) + c];
      }
    rt_->template memcpy_h2d<T>("A", slots, act, mb * nb);
    if (p_.bias) {
      std::vector<Acc> bs(std::size_t{act.height} * mb, Acc{});
      for (std::uint32_t j = 0; j < act.height; ++j)
        for (std::uint32_t r = 0; r < kern::gemv_rows(p_, j); ++r) bs[j * mb + r] = b[kern::gemv_row_begin(p_, j) + r];
      rt_->template memcpy_h2d<Acc>("b", bs, kern::gemv_b_area(p_), mb);
    }
  }

  // Streams x in, launches "gemv", runs, returns y (m).
  std::vector<Acc> run(const std::vector<T>& x) {
    for (std::uint32_t i = 0; i < kern::gemv_active_width(p_); ++i) {
      const auto first = x.begin() + kern::gemv_col_begin(p_, i);
      rt_->template stream_in<T>("x" + std::to_string(i), std::vector<T>(first, first + kern::gemv_cols(p_, i)));
    }
    rt_->launch("gemv");
    before_ = rt_->stats().totals;
    const auto t0 = std::chrono::steady_clock::now();
    report = rt_->run();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    after_ = rt_->stats().totals;
    const std::uint32_t mb = kern::gemv_mb(p_);
    const std::vector<Acc> slots = rt_->template read<Acc>("y", kern::gemv_y_area(p_), mb);
    std::vector<Acc> y(p_.m);
    for (std::uint32_t j = 0; j < kern::gemv_active_height(p_); ++j)
      for (std::uint32_t r = 0; r < kern::gemv_rows(p_, j); ++r) y[kern::gemv_row_begin(p_, j) + r] = slots[j * mb + r];
    return y;
  }

  std::uint32_t bytes_per_pe() { return rt_->emulator()->pe(p_.area.origin)->memory_used(); }
  // Counters of the last run (the runtime's totals minus those before it).
  wse::emu::PeStats run_stats() const {
    const wse::emu::PeStats a = before_, b = after_;
    return wse::emu::PeStats{.tasks_run = b.tasks_run - a.tasks_run, .sent = b.sent - a.sent,
                             .received = b.received - a.received, .forwarded = b.forwarded - a.forwarded,
                             .delivered = b.delivered - a.delivered};
  }

  wse::host::RunReport report;
  double seconds = 0;

 private:
  kern::GemvParams p_;
  wse::Program prog_;
  std::optional<wse::host::Runtime> rt_;
  wse::emu::PeStats before_, after_;
};

// Checks one run: bit for bit against the host model, norm-wise against double. Prints a line.
template <class Ar, class Dev>
static bool check(const char* name, Dev& dev, const kern::GemvParams& p, const std::vector<typename Ar::T>& A,
                  const std::vector<typename Ar::T>& x, const std::vector<typename Ar::Acc>& b, double limit) {
  const std::vector<typename Ar::Acc> y = dev.run(x);
  if (!dev.report.ok()) std::printf("%s", dev.report.to_string().c_str());
  const std::vector<typename Ar::Acc> model = host_model<Ar>(p, A, x, b);
  std::uint32_t differ = 0;
  double diff = 0, norm = 0;
  bool exact = true;
  for (std::uint32_t r = 0; r < p.m; ++r) {
    differ += std::memcmp(&y[r], &model[r], sizeof(y[r])) != 0;
    double s = p.bias ? Ar::val(b[r]) : 0.0;
    for (std::uint32_t c = 0; c < p.n; ++c) s += Ar::val(A[std::size_t(r) * p.n + c]) * Ar::val(x[c]);
    const double d = Ar::val(y[r]) - s;
    exact &= d == 0;
    diff += d * d;
    norm += s * s;
  }
  const double err = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  const bool ok = dev.report.ok() && differ == 0 && (limit == 0 ? exact : err < limit);
  const wse::emu::PeStats st = dev.run_stats();
  char lim[32];
  if (limit == 0) std::snprintf(lim, sizeof lim, "0: exact");
  else std::snprintf(lim, sizeof lim, "%.0e", limit);
  std::printf("  %s: %u of %u rows differ from the host model; relative error vs double %.3g (limit %s): %s\n", name,
              differ, p.m, err, lim, ok ? "ok" : "MISMATCH");
  std::printf("    run: %llu epochs, %.2f ms; %llu tasks, %llu wavelets sent, %llu received, %llu router hops\n",
              (unsigned long long)dev.report.epochs, dev.seconds * 1e3, (unsigned long long)st.tasks_run,
              (unsigned long long)st.sent, (unsigned long long)st.received, (unsigned long long)st.forwarded);
  return ok;
}

// Both cases of one variant on one loaded program (the second is a second launch).
template <template <class> class K, class Ar> static bool run_variant(unsigned threads, bool show_channels) {
  using T = typename Ar::T;
  using Acc = typename Ar::Acc;
  const kern::GemvParams p{.area = {{0, 0}, px, py}, .m = M, .n = N, .bias = true};
  GemvDevice<K, T, Acc> dev(p, threads);
  if (dev.error != nullptr) {
    std::printf("  %s: %s\n", Ar::name, dev.error);
    return false;
  }
  if (show_channels) std::printf(" channels (Program::channel_report):\n%s", dev.channels().c_str());
  const std::uint64_t predicted = kern::gemv_bytes_per_pe<T, Acc>(p);
  std::printf(" %s: A slot %ux%u per PE, %u bytes per PE (gemv_bytes_per_pe: %llu)\n", Ar::name, kern::gemv_mb(p),
              kern::gemv_nb(p), dev.bytes_per_pe(), (unsigned long long)predicted);
  bool ok = dev.bytes_per_pe() == predicted;

  // Integers: |A|, |x| <= 2, |b| <= 50, so every partial sum is an integer of magnitude at
  // most 4*300 + 50 < 2048: exact in fp16 too.
  std::vector<T> A(std::size_t{M} * N), x(N);
  std::vector<Acc> b(M);
  for (std::uint32_t r = 0; r < M; ++r)
    for (std::uint32_t c = 0; c < N; ++c) A[std::size_t(r) * N + c] = Ar::t_from(float(int((r * 7 + c * 3 + r * c) % 5) - 2));
  for (std::uint32_t c = 0; c < N; ++c) x[c] = Ar::t_from(float(int(c % 5) - 2));
  for (std::uint32_t r = 0; r < M; ++r) b[r] = Ar::acc_from(float(int(r % 101) - 50));
  dev.load(A, b);
  ok &= check<Ar>("integer case", dev, p, A, x, b, 0);

  // Uniform random values in [-1, 1), rounded to T (A, x) and Acc (b).
  std::mt19937 rng(2024);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (T& v : A) v = Ar::t_from(uni(rng));
  for (T& v : x) v = Ar::t_from(uni(rng));
  for (Acc& v : b) v = Ar::acc_from(uni(rng));
  dev.load(A, b);
  ok &= check<Ar>("random case ", dev, p, A, x, b, Ar::limit);
  return ok;
}

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 1;
  std::printf("gemv_grid: y = A*x + b, A is %ux%u, on %ux%u PEs (%u columns x %u rows), %u thread(s)\n", M, N, px, py,
              px, py, threads);
  bool ok = run_variant<kern::Gemv, F32Arith>(threads, true);  // the variants share one shape, so one report
  ok &= run_variant<kern::GemvMixed, MixedArith>(threads, false);
  ok &= run_variant<kern::GemvF16, F16Arith>(threads, false);
  std::printf("gemv_grid: %s\n", ok ? "all match" : "MISMATCH");
  return ok ? 0 : 1;
}
