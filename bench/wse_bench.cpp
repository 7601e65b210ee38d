// wse_bench: the emulator's performance figures, each a ratio of two quantities measured in
// the same run (the machine may be shared and noisy: every pair is measured interleaved,
// several times, and the best time of each side is kept). Prints a table, then, as its very
// last line, one JSON object with every figure (null when a figure could not be measured,
// with the reason under "notes"). docs/performance.md records the figures and the command.
//
//   dsd_vs_simd_loop   DSD fmac on one emulated PE vs a plain Highway MulAdd loop, same
//                      arrays, same Highway target
//   gemm_vs_openblas   functional-mode GEMM 1024^3 on 32x32 emulated PEs (Cannon; SUMMA too
//                      with WSE_BENCH_GEMM_BOTH=1, the faster counts) vs OpenBLAS cblas_sgemm,
//                      same matrices and thread count
//   hops_vs_memcpy     wavelet-hop bytes per second (4 bytes per hop, hops from the
//                      emulator's `forwarded` counters) vs memcpy bytes per second
//   threads2_vs_1      7-point stencil on a large grid: 2 worker threads vs 1
//   timed_pe_cycles_per_s_per_core   timed mode: simulated PE-cycles per wall second per
//                      worker thread on the 7-point stencil
//   full_wafer_allreduce_s   wall seconds of one functional allreduce over the whole WSE-2
//                      fabric (757x996 PEs, 16 floats each; not a ratio)
//   threads_max_vs_1   the allreduce over 512x512 PEs on 1, 2 and (where the machine has
//                      them) 4 and all hardware threads: 1-thread time / time with the most
//
// Usage: wse_bench [--quick] [--only=name,name,...] [--threads=N]
//   --quick    small sizes (a smoke test, a few seconds; the figures are not meaningful)
//   --only     run only these figures (the others are reported as null)
//   --threads  worker threads of the emulator for gemm_vs_openblas and full_wafer_allreduce_s,
//              and of OpenBLAS (default 2)
// Exit status 1 when a run failed or a result check did not pass.
// Sizes can be overridden for experiments with environment variables WSE_BENCH_<NAME>, NAME
// being the first argument of a knob() call below (e.g. WSE_BENCH_GEMM_N=512); the notes
// always print the sizes used.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <unistd.h>
#include <wse/wse.hpp>

#include "kernels/collective_join.hpp"
#include "kernels/gemm_cannon.hpp"
#include "kernels/gemm_summa.hpp"
#include "kernels/stencil7.hpp"

#if defined(WSE_BENCH_HAVE_HWY)
#include "plain_fmac.hpp"
#endif
#if defined(WSE_BENCH_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

template <class F> double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU time of the whole process (all threads), seconds.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Keeps the compiler from dropping or merging memory operations around this point.
inline void clobber_memory(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

template <class... A> std::string fmt(const char* f, A... v) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, v...);
  return buf;
}

// "3.21 G" style: value with an SI prefix.
std::string si(double v, const char* unit) {
  const char* prefixes[] = {"", "k", "M", "G", "T"};
  int k = 0;
  while (std::fabs(v) >= 1000.0 && k < 4) {
    v /= 1000.0;
    ++k;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g %s%s", v, prefixes[k], unit);
  return buf;
}

// One figure: two measured quantities, their ratio, the goal.
struct Figure {
  Figure() = default;
  explicit Figure(std::string k, double g = 0) : key(std::move(k)), goal(g), simd(wse::emu::simd::target_name()) {}
  std::string key;
  std::string a, b;             // the two measured quantities, formatted
  std::optional<double> ratio;  // a / b (throughputs), null when not measured
  double goal = 0;              // 0: no goal
  std::string simd;             // SIMD target that applies
  std::string note;             // size, kernel, checks; the reason when ratio is null
  bool failed = false;          // a run or a result check failed
};

struct Options {
  bool quick = false;
  unsigned threads = 2;
  std::vector<std::string> only;
  bool wants(const char* key) const {
    return only.empty() || std::find(only.begin(), only.end(), std::string(key)) != only.end();
  }
};

std::string emu_target() { return wse::emu::simd::target_name(); }

// A size: `def`, unless the environment variable WSE_BENCH_<name> holds a positive number.
std::uint32_t knob(const char* name, std::uint32_t def) {
  const std::string var = std::string("WSE_BENCH_") + name;
  const char* v = std::getenv(var.c_str());
  const long n = v ? std::atol(v) : 0;
  return n > 0 ? static_cast<std::uint32_t>(n) : def;
}

// The 1-minute load average (Linux), to show how busy the machine was.
std::string loadavg() {
  std::string s = "?";
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[64] = {};
    if (std::fgets(buf, sizeof buf, f)) s = std::string(buf, std::strcspn(buf, " "));
    std::fclose(f);
  }
  return s;
}

// ------------------------------------------------------------------------------------------
// dsd_vs_simd_loop: one PE whose exported function runs `reps` DSD fmacs y = y + a*b over n
// fp32 elements (wse::mac on three Mem1d operands, in PE memory, in cache).

struct FmacParams {
  std::uint32_t n = 0, reps = 0;
};
template <class PE> struct FmacLoop {
  using Params = FmacParams;
  Params p{};
  wse::Array<float> y, a, b;
  void init(PE& pe, const Params& q) {
    p = q;
    y = wse::alloc<float>(pe, p.n);
    a = wse::alloc<float>(pe, p.n);
    b = wse::alloc<float>(pe, p.n);
    wse::export_symbol(pe, "y", y);
    wse::export_symbol(pe, "a", a);
    wse::export_symbol(pe, "b", b);
    wse::export_function<&FmacLoop::go>(pe, "go");
  }
  void go(PE& pe) {
    for (std::uint32_t r = 0; r < p.reps; ++r) wse::mac(pe, wse::mem1d(y), wse::mem1d(y), wse::mem1d(a), wse::mem1d(b));
  }
};

Figure dsd_case(const Options& o) {
  Figure f("dsd_vs_simd_loop", 0.6);
#if !defined(WSE_BENCH_HAVE_HWY)
  f.note = "built without Highway: no plain SIMD loop to compare with";
  (void)o;
  return f;
#else
  const std::uint32_t n = knob("DSD_N", 2048), reps = knob("DSD_REPS", o.quick ? 2000 : 20000);
  const int rounds = int(knob("DSD_ROUNDS", o.quick ? 3 : 21));
  wse::Program prog(wse::arch::wse2, 1, 1);
  prog.add_region<FmacLoop>(prog.grid(), FmacParams{n, reps});
  wse::host::Runtime rt(prog);
  // Values that stay normal and bounded over many reps (no denormals, no overflow).
  std::vector<float> a(n), b(n), y0(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    a[i] = 1e-3f * float(i % 7 + 1);
    b[i] = 1e-3f * (float(i % 5) - 2.5f);
    y0[i] = 0.25f + float(i % 11);
  }
  rt.memcpy_h2d<float>("a", a, prog.grid(), n);
  rt.memcpy_h2d<float>("b", b, prog.grid(), n);
  // The plain loop runs on the very same arrays, in the PE's memory.
  wse::emu::Pe* pe = rt.emulator()->pe({0, 0});
  float* py = static_cast<float*>(pe->find_symbol("y")->data);
  const float* pa = static_cast<const float*>(pe->find_symbol("a")->data);
  const float* pb = static_cast<const float*>(pe->find_symbol("b")->data);

  double t_dsd = 1e30, t_plain = 1e30;
  std::vector<float> y_dsd, y_plain;
  bool ok = true;
  auto run_dsd = [&] {
    rt.memcpy_h2d<float>("y", y0, prog.grid(), n);
    wse::host::RunReport r;
    t_dsd = std::min(t_dsd, seconds([&] { r = rt.call("go"); }));
    ok &= r.ok();
    y_dsd = rt.read<float>("y", prog.grid(), n);
  };
  auto run_plain = [&] {
    std::copy(y0.begin(), y0.end(), py);
    t_plain = std::min(t_plain, seconds([&] { wse_bench::plain_fmac(py, pa, pb, n, reps); }));
    clobber_memory(py);
    y_plain.assign(py, py + n);
  };
  for (int r = 0; r < rounds; ++r) {  // ABBA order: neither side always runs first
    if (r % 2 == 0) run_dsd(), run_plain();
    else run_plain(), run_dsd();
  }
  const double elems = double(n) * reps;
  const std::string plain_target = wse_bench::plain_fmac_target();
  const bool same_target = plain_target == f.simd;
  const bool comparable = same_target && wse_bench::plain_fmac_fused();
  const bool identical = y_dsd == y_plain;
  f.a = "DSD fmac, 1 PE: " + si(elems / t_dsd, "elem/s") + fmt(" (%.3f s)", t_dsd);
  f.b = "hn::MulAdd loop: " + si(elems / t_plain, "elem/s") + fmt(" (%.3f s)", t_plain);
  f.ratio = t_plain / t_dsd;
  f.note = "fp32 n=" + std::to_string(n) + " x " + std::to_string(reps) + " ops, best of " + std::to_string(rounds) +
           "; plain loop on " + plain_target + (same_target ? " (same target, " : " (DIFFERENT target, ") +
#if defined(WSE_BENCH_STATIC_DISPATCH)
           "static dispatch)" +
#else
           "dynamic dispatch)" +
#endif
           (comparable ? (identical ? "; results identical" : "; results DIFFER") : "; plain loop not fused here, results not compared");
  f.failed = !ok || !same_target || (comparable && !identical);
  return f;
#endif
}

// ------------------------------------------------------------------------------------------
// gemm_vs_openblas

// Block (bi, bj) (rb x cb) of the row-major matrix X with `cols` columns, appended column-major.
void append_block(std::vector<float>& out, const std::vector<float>& X, std::uint32_t cols, std::uint32_t bi,
                  std::uint32_t bj, std::uint32_t rb, std::uint32_t cb) {
  for (std::uint32_t j = 0; j < cb; ++j)
    for (std::uint32_t i = 0; i < rb; ++i) out.push_back(X[std::size_t(bi * rb + i) * cols + bj * cb + j]);
}
// Writes the column-major (rb x cb) block at `src` into block (bi, bj) of the row-major X.
void place_block(std::vector<float>& X, std::uint32_t cols, std::uint32_t bi, std::uint32_t bj, std::uint32_t rb,
                 std::uint32_t cb, const float* src) {
  for (std::uint32_t j = 0; j < cb; ++j)
    for (std::uint32_t i = 0; i < rb; ++i) X[std::size_t(bi * rb + i) * cols + bj * cb + j] = *src++;
}

struct GemmResult {
  std::string kernel;
  double load = 0, run = 0;  // seconds: program load + copies in; launch + run
  std::vector<float> C;      // row-major
  bool ok = false;
};

// C = A·B (n x n, row-major) on p x p emulated PEs, blocks of n/p, with SUMMA or Cannon.
GemmResult emulated_gemm(bool cannon, const std::vector<float>& A, const std::vector<float>& B, std::uint32_t n,
                         std::uint16_t p, unsigned threads) {
  namespace wk = wse::kernels;
  const std::uint32_t blk = n / p;
  GemmResult g;
  g.kernel = cannon ? "Cannon" : "SUMMA";
  wse::emu::EmuConfig cfg;
  cfg.threads = threads;
  std::unique_ptr<wse::host::Runtime> rt;
  const wse::Rect area{{0, 0}, p, p};
  std::vector<float> a_blocks, b_blocks;
  a_blocks.reserve(A.size());
  b_blocks.reserve(B.size());
  g.load = seconds([&] {
    wse::Program prog(wse::arch::wse2, p, p);
    if (cannon) {
      wk::CannonParams prm{.area = area, .mb = blk, .nb = blk, .kb = blk};
      prog.add_region<wk::GemmCannon>(area, prm);
      wk::cannon_routes(prog.route_sink(), prm);
      for (std::uint32_t y = 0; y < p; ++y)
        for (std::uint32_t x = 0; x < p; ++x) {
          const std::uint32_t i = wk::cannon_logical(p, y), j = wk::cannon_logical(p, x);
          append_block(a_blocks, A, n, i, wk::cannon_a_block(p, i, j), blk, blk);
          append_block(b_blocks, B, n, wk::cannon_b_block(p, i, j), j, blk, blk);
        }
    } else {
      wk::SummaParams prm{.area = area, .mb = blk, .nb = blk, .k = n};
      prog.add_region<wk::GemmSumma>(area, prm);
      wk::summa_routes(prog.route_sink(), prm);
      for (std::uint32_t y = 0; y < p; ++y)
        for (std::uint32_t x = 0; x < p; ++x) {
          append_block(a_blocks, A, n, y, x, blk, blk);
          append_block(b_blocks, B, n, y, x, blk, blk);
        }
    }
    rt = std::make_unique<wse::host::Runtime>(prog, cfg);
    rt->memcpy_h2d<float>("A", a_blocks, area, blk * blk);
    rt->memcpy_h2d<float>("B", b_blocks, area, blk * blk);
  });
  wse::host::RunReport report;
  g.run = seconds([&] {
    rt->launch("gemm");
    report = rt->run();
  });
  g.ok = report.ok();
  if (!g.ok) std::printf("%s", report.to_string().c_str());
  const std::vector<float> c_blocks = rt->read<float>("C", area, blk * blk);
  g.C.assign(std::size_t(n) * n, 0.0f);
  std::size_t k = 0;
  for (std::uint32_t y = 0; y < p; ++y)
    for (std::uint32_t x = 0; x < p; ++x, k += std::size_t(blk) * blk) {
      if (cannon) place_block(g.C, n, wk::cannon_logical(p, y), wk::cannon_logical(p, x), blk, blk, &c_blocks[k]);
      else place_block(g.C, n, y, x, blk, blk, &c_blocks[k]);
    }
  return g;
}

Figure gemm_case(const Options& o) {
  Figure f("gemm_vs_openblas");
#if !defined(WSE_BENCH_HAVE_OPENBLAS)
  f.note = WSE_BENCH_OPENBLAS_MISSING;
  (void)o;
  return f;
#else
  // The size, 1024^3 on 32x32 PEs, with Cannon only (the faster kernel in every
  // measurement, docs/performance.md; SUMMA too with WSE_BENCH_GEMM_BOTH=1): 15-35 s.
  const std::uint16_t p = std::uint16_t(knob("GEMM_P", o.quick ? 8 : 32));
  const std::uint32_t n = knob("GEMM_N", o.quick ? 128 : 1024);
  const bool both_kernels = o.quick || knob("GEMM_BOTH", 0) != 0;
  const int blas_rounds = o.quick ? 2 : 5;
  std::mt19937 rng(2024);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> A(std::size_t(n) * n), B(std::size_t(n) * n), Cb(std::size_t(n) * n);
  for (float& v : A) v = uni(rng);
  for (float& v : B) v = uni(rng);
  openblas_set_num_threads(int(o.threads));
  double t_blas = 1e30;
  auto blas = [&] {
    t_blas = std::min(t_blas, seconds([&] {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.0f, A.data(),
                                    int(n), B.data(), int(n), 0.0f, Cb.data(), int(n));
                      }));
  };
  blas();  // warm-up (thread pool start, first touch)
  t_blas = 1e30;
  for (int r = 0; r < blas_rounds; ++r) blas();
  GemmResult best;
  std::string both;
  for (bool cannon : {false, true}) {
    if (!cannon && !both_kernels) continue;
    GemmResult g = emulated_gemm(cannon, A, B, n, p, o.threads);
    std::printf("  gemm %ux%ux%u on %ux%u PEs, %s: load+copy-in %.2f s, launch+run %.2f s%s\n", n, n, n, p, p,
                g.kernel.c_str(), g.load, g.run, g.ok ? "" : " (RUN FAILED)");
    std::fflush(stdout);
    f.failed |= !g.ok;
    both += (both.empty() ? "" : ", ") + g.kernel + fmt(" %.2f s", g.run);
    if (best.C.empty() || g.run < best.run) best = std::move(g);
    for (int r = 0; r < blas_rounds; ++r) blas();  // interleave: BLAS before and after each emulated run
  }
  double max_diff = 0, max_ref = 0;
  for (std::size_t i = 0; i < Cb.size(); ++i) {
    max_diff = std::max(max_diff, double(std::fabs(best.C[i] - Cb[i])));
    max_ref = std::max(max_ref, double(std::fabs(Cb[i])));
  }
  const double rel = max_diff / max_ref;
  const double flops = 2.0 * n * n * n;
  f.a = "emulated " + best.kernel + ": " + si(flops / best.run, "FLOP/s") + fmt(" (%.2f s)", best.run);
  f.b = "OpenBLAS sgemm: " + si(flops / t_blas, "FLOP/s") + fmt(" (%.4f s)", t_blas);
  f.ratio = t_blas / best.run;
  f.note = std::to_string(n) + "^3 fp32 on " + std::to_string(p) + "x" + std::to_string(p) + " PEs, " +
           std::to_string(o.threads) + " threads each; emulated " + both + "; max |C_emu - C_blas| / max |C_blas| = " +
           fmt("%.2e", rel);
  f.failed |= !(rel < 1e-5);
  return f;
#endif
}

// ------------------------------------------------------------------------------------------
// hops_vs_memcpy: every row of a W x H grid carries two long streams, one eastbound on color 0
// from column 0 to column W-1 and one westbound on color 1 back; the W-2 PEs in between only
// route. Each wavelet makes W-1 hops (counted by the routers' `forwarded` counters).

struct StreamParams {
  wse::Color send{}, recv{};
  std::uint32_t chunk = 0, chunks = 0;
};
template <class PE> struct StreamEnd {
  using Params = StreamParams;
  static constexpr wse::TaskId sent_task{24}, got_task{25};
  Params p{};
  wse::Array<float> out, in;
  std::uint32_t sent = 0, got = 0;
  void init(PE& pe, const Params& q) {
    p = q;
    out = wse::alloc<float>(pe, p.chunk);
    in = wse::alloc<float>(pe, p.chunk);
    wse::export_symbol(pe, "out", out);
    wse::export_symbol(pe, "in", in);
    wse::export_function<&StreamEnd::go>(pe, "go");
    wse::bind_local_task<&StreamEnd::on_sent>(pe, sent_task);
    wse::bind_local_task<&StreamEnd::on_got>(pe, got_task);
  }
  void go(PE& pe) {
    sent = got = 0;
    send(pe);
    receive(pe);
  }
  void send(PE& pe) { wse::mov(pe, wse::fabout<float>(p.send, p.chunk), wse::mem1d(out), wse::then_activate(sent_task)); }
  void receive(PE& pe) { wse::mov(pe, wse::mem1d(in), wse::fabin<float>(p.recv, p.chunk), wse::then_activate(got_task)); }
  void on_sent(PE& pe) {
    if (++sent < p.chunks) send(pe);
  }
  void on_got(PE& pe) {
    if (++got < p.chunks) receive(pe);
  }
};

Figure hops_case(const Options& o) {
  Figure f("hops_vs_memcpy", 0.25);
  const std::uint16_t W = std::uint16_t(knob("HOPS_W", o.quick ? 32 : 128)), H = std::uint16_t(knob("HOPS_H", o.quick ? 8 : 32));
  const std::uint32_t chunk = 1024, chunks = knob("HOPS_CHUNKS", o.quick ? 2 : 4);
  const int rounds = int(knob("HOPS_ROUNDS", o.quick ? 2 : 5));
  const wse::Color east{0}, west{1};
  wse::Program prog(wse::arch::wse2, W, H);
  prog.add_region<StreamEnd>(wse::Rect{{0, 0}, 1, H}, StreamParams{east, west, chunk, chunks});
  prog.add_region<StreamEnd>(wse::Rect{{std::uint16_t(W - 1), 0}, 1, H}, StreamParams{west, east, chunk, chunks});
  for (std::uint16_t y = 0; y < H; ++y)
    for (std::uint16_t x = 0; x < W; ++x) {
      using wse::Port;
      const wse::Coord c{x, y};
      if (x == 0) {
        prog.set_route(c, east, wse::ColorRoute{Port::ramp, Port::east});
        prog.set_route(c, west, wse::ColorRoute{Port::east, Port::ramp});
      } else if (x == W - 1) {
        prog.set_route(c, east, wse::ColorRoute{Port::west, Port::ramp});
        prog.set_route(c, west, wse::ColorRoute{Port::ramp, Port::west});
      } else {
        prog.set_route(c, east, wse::ColorRoute{Port::west, Port::east});
        prog.set_route(c, west, wse::ColorRoute{Port::east, Port::west});
      }
    }
  wse::emu::EmuConfig cfg;
  cfg.threads = 1;
  cfg.router_buffer_depth = knob("HOPS_DEPTH", wse::emu::Ring::max_capacity);  // deepest link buffers (16)
  wse::host::Runtime rt(prog, cfg);
  const wse::Rect west_col{{0, 0}, 1, H}, east_col{{std::uint16_t(W - 1), 0}, 1, H};
  std::vector<float> data(std::size_t(H) * chunk), data2(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = float(i), data2[i] = -float(i);
  rt.memcpy_h2d<float>("out", data, west_col, chunk);
  rt.memcpy_h2d<float>("out", data2, east_col, chunk);

  const std::uint64_t expect = std::uint64_t{2} * H * chunk * chunks * (W - 1);
  // memcpy of the same number of bytes, in copies of a 1 MiB buffer (in L2/L3, like the
  // emulator's working set of link buffers).
  const std::size_t block = std::size_t{1} << 20;
  std::vector<unsigned char> src(block, 1), dst(block, 0);
  const std::uint64_t total_bytes = 4 * expect;
  double t_emu = 1e30, t_copy = 1e30;
  bool ok = true;
  std::uint64_t hops = 0;
  auto run_emu = [&] {
    const std::uint64_t before = rt.stats().totals.forwarded;
    wse::host::RunReport r;
    t_emu = std::min(t_emu, seconds([&] { r = rt.call("go"); }));
    ok &= r.ok();
    hops = rt.stats().totals.forwarded - before;
  };
  auto run_copy = [&] {
    t_copy = std::min(t_copy, seconds([&] {
                        for (std::uint64_t done = 0; done < total_bytes; done += block) {
                          std::memcpy(dst.data(), src.data(), std::min<std::uint64_t>(block, total_bytes - done));
                          clobber_memory(dst.data());
                        }
                      }));
  };
  for (int r = 0; r < rounds; ++r) {
    if (r % 2 == 0) run_emu(), run_copy();
    else run_copy(), run_emu();
  }
  ok &= hops == expect;
  ok &= rt.read<float>("in", east_col, chunk) == data && rt.read<float>("in", west_col, chunk) == data2;
  const double hop_bytes_s = 4.0 * double(hops) / t_emu, copy_bytes_s = double(total_bytes) / t_copy;
  f.a = "hops: " + si(double(hops) / t_emu, "hop/s") + " = " + si(hop_bytes_s, "B/s") + fmt(" (%.2f s)", t_emu);
  f.b = "memcpy: " + si(copy_bytes_s, "B/s") + fmt(" (%.3f s)", t_copy);
  f.ratio = hop_bytes_s / copy_bytes_s;
  f.note = std::to_string(W) + "x" + std::to_string(H) + " PEs, 2 streams per row x " + std::to_string(chunk * chunks) +
           " wavelets x " + std::to_string(W - 1) + " hops = " + std::to_string(hops) +
           " hops, 1 thread, link buffers " + std::to_string(cfg.router_buffer_depth) + "; memcpy in 1 MiB copies; best of " + std::to_string(rounds) +
           (ok ? "; data and hop count checked" : "; CHECK FAILED");
  f.failed = !ok;
  return f;
}

// ------------------------------------------------------------------------------------------
// The 7-point stencil (kernels/stencil7.hpp), shared by threads2_vs_1 and the timed figure.

std::unique_ptr<wse::host::Runtime> make_stencil(std::uint16_t nx, std::uint16_t ny, std::uint32_t nz,
                                                 const wse::emu::EmuConfig& cfg) {
  wse::kernels::Stencil7Params p{.area = {{0, 0}, nx, ny}, .nz = nz, .sweeps = 1,
                                 .c0 = 0.4f, .cxm = 0.11f, .cxp = 0.09f, .cym = -0.07f, .cyp = 0.13f,
                                 .czm = 0.1f, .czp = -0.05f};
  wse::Program prog(wse::arch::wse2, nx, ny);
  prog.add_region<wse::kernels::Stencil7>(p.area, p);
  wse::kernels::stencil7_routes(prog.route_sink(), p);
  auto rt = std::make_unique<wse::host::Runtime>(prog, cfg);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> x(std::size_t(nx) * ny * nz);
  for (float& v : x) v = uni(rng);
  rt->memcpy_h2d<float>("x", x, p.area, nz);
  return rt;
}

Figure threads_case(const Options& o) {
  Figure f("threads2_vs_1", 1.7);
  const std::uint16_t nx = std::uint16_t(knob("THREADS_NX", o.quick ? 32 : 128)), ny = nx;
  const std::uint32_t nz = knob("THREADS_NZ", o.quick ? 16 : 64);
  const int launches = int(knob("THREADS_LAUNCHES", 1)), rounds = int(knob("THREADS_ROUNDS", o.quick ? 1 : 7));
  wse::emu::EmuConfig c1, c2;
  c1.threads = 1;
  c2.threads = 2;
  auto rt1 = make_stencil(nx, ny, nz, c1), rt2 = make_stencil(nx, ny, nz, c2);
  struct Best {
    double wall = 1e30, cpu = 0;  // the fastest timing and the process CPU time it used
    std::uint64_t epochs = 0;
  } b1, b2;
  bool ok = true;
  auto run = [&](wse::host::Runtime& rt, Best& b) {
    const double c0 = cpu_seconds();
    const double t = seconds([&] {
      for (int l = 0; l < launches; ++l) {
        const wse::host::RunReport r = rt.call("spmv");
        ok &= r.ok();
        b.epochs = r.epochs;
      }
    });
    if (t < b.wall) b.wall = t, b.cpu = cpu_seconds() - c0;
  };
  for (int r = 0; r < rounds; ++r) {
    if (r % 2 == 0) run(*rt1, b1), run(*rt2, b2);
    else run(*rt2, b2), run(*rt1, b1);
  }
  const wse::Rect area{{0, 0}, nx, ny};
  const bool same = rt1->read<float>("y", area, nz) == rt2->read<float>("y", area, nz) &&
                    rt1->stats().totals == rt2->stats().totals && b1.epochs == b2.epochs;
  ok &= same;
  // CPU time / wall time: how many cores the process really had (the machine may be shared).
  f.a = "2 threads: " + fmt("%.3f s", b2.wall) + fmt(" (CPU %.2f cores)", b2.cpu / b2.wall);
  f.b = "1 thread: " + fmt("%.3f s", b1.wall) + fmt(" (CPU %.2f cores)", b1.cpu / b1.wall);
  f.ratio = b1.wall / b2.wall;
  // Load-independent view: CPU time of the 2-thread run over the 1-thread run (work added by
  // threading, including barrier waits); with two free cores the speedup would be 2 / that.
  const double inflation = (b2.cpu / double(launches)) / (b1.cpu / double(launches));
  f.note = std::to_string(nx) + "x" + std::to_string(ny) + " PEs, nz=" + std::to_string(nz) + ", " +
           fmt("CPU time 2T/1T %.2f (2 free cores would give %.2fx), ", inflation, 2.0 / inflation) +
           std::to_string(launches) + " SpMV per timing (" + std::to_string(b1.epochs) + " epochs each), best of " +
           std::to_string(rounds) + (same ? "; y, stats and epochs identical" : "; RESULTS DIFFER");
  f.failed = !ok;
  return f;
}

// ------------------------------------------------------------------------------------------
// full_wafer_allreduce_s and threads_max_vs_1: the fabric-wide allreduce of samples/wafer.cpp
// (kernels/collective_join.hpp), functional mode, n floats per PE of small integers (exact
// sums), every PE's result checked.

// Resident set size of this process in MiB (Linux), -1 elsewhere.
double resident_mib() {
  double mib = -1;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    long pages = 0, resident = 0;
    if (std::fscanf(f, "%ld %ld", &pages, &resident) == 2)
      mib = double(resident) * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
    std::fclose(f);
  }
  return mib;
}

struct Allreduce {
  std::unique_ptr<wse::host::Runtime> rt;
  std::uint16_t w = 0, h = 0;
  std::uint32_t n = 0;
  double load_s = 0;
  // Launches and runs the allreduce once; returns the wall time of run(), or -1 on failure.
  double run_once() {
    rt->launch("go");
    wse::host::RunReport r;
    const double t = seconds([&] { r = rt->run(); });
    return r.ok() ? t : -1.0;
  }
  // Every PE's buffer (after one run: the sums; later runs sum the sums again).
  std::vector<float> result() const { return rt->read<float>("buf", rt->program().grid(), n); }
};

Allreduce make_allreduce(std::uint16_t w, std::uint16_t h, std::uint32_t n, unsigned threads) {
  namespace coll = wse::collectives;
  Allreduce a;
  a.w = w, a.h = h, a.n = n;
  a.load_s = seconds([&] {
    wse::Program prog(wse::arch::wse2, w, h);
    const coll::Params cp = coll::build<float>(prog, coll::Kind::allreduce, prog.grid(), n, {.name = "bench"});
    prog.add_region<wse::kernels::CollectiveJoin>(
        prog.grid(), wse::kernels::CollectiveJoinParams{cp, prog.allocate_task("bench: done", prog.grid())});
    wse::emu::EmuConfig cfg;
    cfg.threads = threads;
    a.rt = std::make_unique<wse::host::Runtime>(std::move(prog), cfg);
    // Values 0 or 1 (PE index parity): the sums are exact in float up to 2^24 PEs.
    std::vector<float> values(std::size_t{w} * h * n);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = float((i / n + i % n) % 2);
    a.rt->memcpy_h2d<float>("buf", values, a.rt->program().grid(), n);
  });
  return a;
}

// Every PE holds the sum over the grid of the loaded values (one run after loading).
bool allreduce_exact(const Allreduce& a) {
  const std::vector<float> out = a.result();
  const std::size_t P = std::size_t{a.w} * a.h;
  for (std::uint32_t i = 0; i < a.n; ++i) {
    std::size_t sum = 0;
    for (std::size_t pe = 0; pe < P; ++pe) sum += (pe + i) % 2;
    for (std::size_t pe = 0; pe < P; ++pe)
      if (out[pe * a.n + i] != float(sum)) return false;
  }
  return true;
}

Figure wafer_case(const Options& o) {
  Figure f("full_wafer_allreduce_s");
  const auto w = std::uint16_t(knob("WAFER_W", o.quick ? 64 : wse::arch::wse2.fabric_width));
  const auto h = std::uint16_t(knob("WAFER_H", o.quick ? 64 : wse::arch::wse2.fabric_height));
  const std::uint32_t n = knob("WAFER_N", 16);
  const double rss0 = resident_mib();
  Allreduce a = make_allreduce(w, h, n, o.threads);
  const double rss_loaded = resident_mib();
  const double run_s = a.run_once();
  const double rss_run = resident_mib();
  const wse::emu::EmuMemory m = a.rt->emulator()->memory();
  const bool ok = run_s >= 0 && allreduce_exact(a);
  f.ratio = run_s;
  f.a = fmt("run %.2f s", run_s) + " (" + std::to_string(std::size_t{w} * h) + " PEs, " + std::to_string(o.threads) + " threads)";
  f.b = fmt("load %.2f s", a.load_s);
  f.note = std::to_string(w) + "x" + std::to_string(h) + " PEs, n=" + std::to_string(n) +
           fmt(", resident %.0f MiB after load, %.0f after the run (%.0f before)", rss_loaded, rss_run, rss0) +
           fmt(", emulator state %.0f B per PE beyond the kernel's %.0f B", m.state_per_pe(), double(m.kernel_bytes) / double(m.pes)) +
           ", " + std::to_string(m.color_plans) + " color plans" + (ok ? "; every PE holds the exact sum" : "; RESULT WRONG");
  f.failed = !ok;
  return f;
}

Figure thread_scaling_case(const Options& o) {
  Figure f("threads_max_vs_1");
  const auto side = std::uint16_t(knob("SCALING_SIDE", o.quick ? 32 : 512));
  const std::uint32_t n = knob("SCALING_N", 16);
  const int rounds = int(knob("SCALING_ROUNDS", o.quick ? 1 : 3));
  std::vector<unsigned> counts{1, 2};
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw >= 4) counts.push_back(4);
  if (hw > 4) counts.push_back(hw);
  std::vector<double> best(counts.size(), 1e30), cores(counts.size(), 0);
  std::vector<float> reference;
  bool ok = true;
  for (std::size_t k = 0; k < counts.size(); ++k) {
    Allreduce a = make_allreduce(side, side, n, counts[k]);
    for (int r = 0; r < rounds; ++r) {
      const double c0 = cpu_seconds();
      const double t = a.run_once();
      ok &= t >= 0;
      if (t >= 0 && t < best[k]) best[k] = t, cores[k] = (cpu_seconds() - c0) / t;
      if (r == 0) {  // the first run's result, compared across thread counts
        ok &= allreduce_exact(a);
        if (k == 0) reference = a.result();
        else ok &= a.result() == reference;
      }
    }
  }
  f.ratio = best.front() / best.back();
  f.a = std::to_string(counts.back()) + fmt(" threads: %.3f s", best.back()) + fmt(" (CPU %.2f cores)", cores.back());
  f.b = fmt("1 thread: %.3f s", best.front());
  f.note = std::to_string(side) + "x" + std::to_string(side) + " PEs allreduce, n=" + std::to_string(n) + ", best of " +
           std::to_string(rounds) + ":";
  for (std::size_t k = 0; k < counts.size(); ++k)
    f.note += " " + std::to_string(counts[k]) + fmt("T %.3f s", best[k]) + fmt(" (%.2f cores)", cores[k]) + (k + 1 < counts.size() ? "," : "");
  f.note += std::string(ok ? "; every result exact and identical across thread counts" : "; RESULTS WRONG OR DIFFER") +
            (hw < 4 ? "; this machine has " + std::to_string(hw) + " hardware threads" : "");
  f.failed = !ok;
  return f;
}

// ------------------------------------------------------------------------------------------
// timed_pe_cycles_per_s_per_core: the stencil in timed mode (EmuConfig::timed, with the
// simulated cycles in RunReport::cycles). Compiled only when this build's emulator has them.

template <class C> concept HasTimedMode = requires(C c) { c.timed = true; };
template <class R> concept HasCycles = requires(R r) { { r.cycles } -> std::convertible_to<std::uint64_t>; };

template <class Cfg = wse::emu::EmuConfig, class Rep = wse::host::RunReport> Figure timed_case(const Options& o) {
  Figure f("timed_pe_cycles_per_s_per_core");
  if constexpr (HasTimedMode<Cfg> && HasCycles<Rep>) {
    const std::uint16_t nx = std::uint16_t(knob("TIMED_NX", o.quick ? 16 : 64)), ny = nx;
    const std::uint32_t nz = knob("TIMED_NZ", o.quick ? 16 : 32);
    const int rounds = int(knob("TIMED_ROUNDS", o.quick ? 1 : 3));
    Cfg cfg;
    cfg.threads = 1;
    cfg.timed = true;
    auto rt = make_stencil(nx, ny, nz, cfg);
    const double pes = double(rt->emulator()->live_pes());
    double t = 1e30;
    std::uint64_t cycles = 0;
    bool ok = true;
    for (int r = 0; r < rounds; ++r) {
      Rep rep;
      t = std::min(t, seconds([&] { rep = rt->call("spmv"); }));
      ok &= rep.ok();
      cycles = rep.cycles;
    }
    f.a = "simulated: " + si(pes * double(cycles), "PE-cycles") + " (" + fmt("%.0f", pes) + " PEs x " +
          std::to_string(cycles) + " cycles)";
    f.b = "wall: " + fmt("%.3f s", t) + " on 1 worker thread";
    f.ratio = cycles ? std::optional<double>(pes * double(cycles) / t) : std::nullopt;
    f.note = "7-point stencil SpMV in timed mode, " + std::to_string(nx) + "x" + std::to_string(ny) +
             " PEs, nz=" + std::to_string(nz) + ", best of " + std::to_string(rounds) + (ok ? "" : "; RUN FAILED");
    if (!cycles) f.note += "; the run reported 0 cycles";
    f.failed = !ok;
  } else {
    (void)o;
    f.note = "timed mode missing: this build's EmuConfig has no `timed` (or RunReport no `cycles`)";
  }
  return f;
}

// ------------------------------------------------------------------------------------------

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
    else out += c;
  }
  return out + "\"";
}

std::string json_number(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", *v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      o.quick = true;
    } else if (arg.rfind("--only=", 0) == 0) {
      std::string list = arg.substr(7);
      for (std::size_t pos = 0; pos <= list.size();) {
        const std::size_t comma = std::min(list.find(',', pos), list.size());
        if (comma > pos) o.only.push_back(list.substr(pos, comma - pos));
        pos = comma + 1;
      }
    } else if (arg.rfind("--threads=", 0) == 0) {
      o.threads = unsigned(std::max(1, std::atoi(arg.c_str() + 10)));
    } else {
      std::printf("usage: wse_bench [--quick] [--only=name,...] [--threads=N]\n");
      return arg == "--help" || arg == "-h" ? 0 : 2;
    }
  }
  const std::string target = emu_target();
  const std::string load_start = loadavg();
  std::printf("wse_bench%s: SIMD target %s, %u hardware threads, %u worker threads for gemm, load average %s\n",
              o.quick ? " --quick (smoke-test sizes; figures not meaningful)" : "", target.c_str(),
              std::thread::hardware_concurrency(), o.threads, load_start.c_str());
  std::fflush(stdout);

  struct Case {
    const char* key;
    std::function<Figure(const Options&)> run;
  };
  const Case cases[] = {
      {"dsd_vs_simd_loop", dsd_case},
      {"gemm_vs_openblas", gemm_case},
      {"hops_vs_memcpy", hops_case},
      {"threads2_vs_1", threads_case},
      {"timed_pe_cycles_per_s_per_core", [](const Options& op) { return timed_case(op); }},
      {"full_wafer_allreduce_s", wafer_case},
      {"threads_max_vs_1", thread_scaling_case},
  };
  std::vector<Figure> figs;
  const auto t_start = Clock::now();
  for (const Case& c : cases) {
    if (!o.wants(c.key)) {
      figs.emplace_back(c.key).note = "not run (--only)";
      continue;
    }
    std::printf("[%s]\n", c.key);
    std::fflush(stdout);
    Figure f;
    const double t = seconds([&] {
      try {
        f = c.run(o);
      } catch (const std::exception& e) {
        f = Figure(c.key);
        f.note = std::string("error: ") + e.what();
        f.failed = true;
      }
    });
    std::printf("  A  %s\n  B  %s\n  ratio A/B %s  goal %s  SIMD %s  checks %s  [%.1f s]\n  %s\n", f.a.c_str(),
                f.b.c_str(), json_number(f.ratio).c_str(), f.goal ? fmt(">= %.2g", f.goal).c_str() : "-", f.simd.c_str(),
                f.failed ? "FAILED" : "ok", t, f.note.c_str());
    std::fflush(stdout);
    figs.push_back(std::move(f));
  }
  const double total = std::chrono::duration<double>(Clock::now() - t_start).count();
  const std::string load_end = loadavg();

  std::printf("\n%-31s %-10s %-8s %-6s %-7s %s\n", "figure", "ratio", "goal", "met", "target", "A / B");
  bool failed = false;
  for (const Figure& f : figs) {
    const char* met = !f.ratio ? "-" : !f.goal ? "" : *f.ratio >= f.goal ? "yes" : "NO";
    std::printf("%-31s %-10s %-8s %-6s %-7s %s\n", f.key.c_str(), json_number(f.ratio).c_str(),
                f.goal ? fmt(">= %.2g", f.goal).c_str() : "-", met, f.simd.c_str(),
                f.ratio ? (f.a + "  /  " + f.b).c_str() : f.note.c_str());
    failed |= f.failed;
  }
  std::printf("total %.1f s, load average %s%s\n", total, load_end.c_str(), failed ? "; SOME CHECKS FAILED" : "");

  std::string json = "{";
  for (const Figure& f : figs) json += json_string(f.key) + ":" + json_number(f.ratio) + ",";
  json += "\"simd_target\":" + json_string(target) + ",\"mode\":" + json_string(o.quick ? "quick" : "full") +
          ",\"seconds\":" + json_number(total) + ",\"load_average\":[" + json_number(std::atof(load_start.c_str())) + "," +
          json_number(std::atof(load_end.c_str())) + "]" + ",\"ok\":" + (failed ? "false" : "true") + ",\"notes\":{";
  for (std::size_t i = 0; i < figs.size(); ++i)
    json += (i ? "," : "") + json_string(figs[i].key) + ":" + json_string(figs[i].note);
  json += "}}";
  std::printf("%s\n", json.c_str());
  return failed ? 1 : 0;
}
