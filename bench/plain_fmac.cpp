// The plain Highway loop of wse_bench's dsd_vs_simd_loop figure: y = a*b + y with hn::MulAdd.
// Compiled for every Highway target and picked at run time (HWY_DYNAMIC_DISPATCH), exactly
// like the emulator's SIMD engine (include/wse/emu/simd_dsd.hpp), so both run the same
// instruction set. With WSE_BENCH_STATIC_DISPATCH (the single-header build, whose engine
// uses Highway's static target) it compiles only the static target, again like the engine.
#include "plain_fmac.hpp"

#if defined(WSE_BENCH_STATIC_DISPATCH)
#include <hwy/highway.h>
#else
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "plain_fmac.cpp"  // this file, found through the bench include dir
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace wse_bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// No restrict qualifiers and an unrolled-by-nothing loop: the same shape as the engine's
// lane_run (load the operands, one MulAdd, store), minus the engine's per-op bookkeeping.
HWY_NOINLINE void PlainFmac(float* y, const float* a, const float* b, std::size_t n, std::size_t reps) {
  const hn::ScalableTag<float> d;
  const std::size_t lanes = hn::Lanes(d);
  for (std::size_t r = 0; r < reps; ++r) {
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes)
      hn::StoreU(hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), hn::LoadU(d, y + i)), d, y + i);
    for (; i < n; ++i) y[i] = __builtin_fmaf(a[i], b[i], y[i]);
  }
}

HWY_NOINLINE const char* PlainTarget() { return hwy::TargetName(HWY_TARGET); }
HWY_NOINLINE bool PlainFused() {
#if HWY_NATIVE_FMA
  return true;
#else
  return false;
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace wse_bench
HWY_AFTER_NAMESPACE();

#if defined(WSE_BENCH_STATIC_DISPATCH) || HWY_ONCE
namespace wse_bench {
#if defined(WSE_BENCH_STATIC_DISPATCH)
#define WSE_BENCH_CALL(fn) HWY_STATIC_DISPATCH(fn)
#else
HWY_EXPORT(PlainFmac);
HWY_EXPORT(PlainTarget);
HWY_EXPORT(PlainFused);
#define WSE_BENCH_CALL(fn) HWY_DYNAMIC_DISPATCH(fn)
#endif

void plain_fmac(float* y, const float* a, const float* b, std::size_t n, std::size_t reps) {
  WSE_BENCH_CALL(PlainFmac)(y, a, b, n, reps);
}
const char* plain_fmac_target() { return WSE_BENCH_CALL(PlainTarget)(); }
bool plain_fmac_fused() { return WSE_BENCH_CALL(PlainFused)(); }

}  // namespace wse_bench
#endif
