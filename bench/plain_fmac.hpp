#pragma once
// The plain Highway loop wse_bench compares the emulator's DSD fmac against (plain_fmac.cpp).
#include <cstddef>

namespace wse_bench {

/// reps times: y[i] = a[i] * b[i] + y[i] for i < n, one fused hn::MulAdd per vector, on the
/// Highway target chosen the same way as the emulator's SIMD engine (dynamic dispatch, or the
/// static target when the bench is built against the single header).
void plain_fmac(float* y, const float* a, const float* b, std::size_t n, std::size_t reps);

/// Name of the Highway target plain_fmac runs on ("AVX2", ...).
const char* plain_fmac_target();

/// True when that target has a fused multiply-add instruction (HWY_NATIVE_FMA), so
/// plain_fmac rounds once per element like the DSD mac.
bool plain_fmac_fused();

}  // namespace wse_bench
