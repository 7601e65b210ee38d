// fp32 mac (1024 elements, 20000 times) on one PE: scalar reference vs the SIMD engine, same
// run, same result. See docs/performance.md.
#include <wse/wse.hpp>
#include <chrono>
#include <cstdio>
struct P { std::uint32_t reps; };
template <class PE> struct Fmac {
  using Params = P;
  float a[1024], b[1024], y[1024];
  P p;
  void init(PE& pe, const Params& q) { p = q; for (int i = 0; i < 1024; ++i) { a[i] = i * 0.5f; b[i] = 1.0f / (i + 1); y[i] = 0; }
    wse::export_function<&Fmac::go>(pe, "go"); wse::export_symbol(pe, "y", y); }
  void go(PE& pe) { for (std::uint32_t r = 0; r < p.reps; ++r) wse::mac(pe, wse::mem1d(y), wse::mem1d(y), wse::mem1d(a), wse::mem1d(b)); }
};
double run(bool simd, std::vector<float>& out) {
  wse::Program prog(wse::arch::wse2, 1, 1);
  prog.add_region<Fmac>(prog.grid(), P{20000});
  wse::emu::EmuConfig cfg; cfg.simd = simd;
  wse::host::Runtime rt(prog, cfg);
  auto t0 = std::chrono::steady_clock::now();
  rt.call("go");
  auto t1 = std::chrono::steady_clock::now();
  out = rt.read<float>("y", prog.grid(), 1024);
  return std::chrono::duration<double>(t1 - t0).count();
}
int main() {
  std::vector<float> o1, o2;
  double ts = run(false, o1), tv = run(true, o2);
  std::printf("fmac 1024 x 20000: scalar %.3f s, SIMD (%s) %.3f s, speedup %.1fx, identical %d, %.2f GFLOP/s SIMD\n", ts, wse::emu::simd_target(), tv, ts / tv, o1 == o2, 2.0 * 1024 * 20000 / tv / 1e9);
}
