#pragma once
/// \file
/// Which SIMD instruction set the emulator's DSD engine was compiled for. Hosted.
#if defined(WSE_HAVE_HIGHWAY) && __has_include(<hwy/highway.h>)
#include <hwy/highway.h>
#define WSE_DETAIL_HIGHWAY 1
#endif

namespace wse::emu {

/// Name of the static SIMD target ("SSSE3", "AVX2", "NEON", ...), or "scalar" without
/// Highway. Host code.
inline const char* simd_target() {
#if defined(WSE_DETAIL_HIGHWAY)
  return hwy::TargetName(HWY_TARGET);
#else
  return "scalar";
#endif
}

}  // namespace wse::emu
