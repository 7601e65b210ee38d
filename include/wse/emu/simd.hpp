#pragma once
/// \file
/// Which SIMD instruction set the emulator's DSD engine uses. Hosted.
#include "simd_dsd.hpp"

namespace wse::emu {

/// Name of the instruction set the emulator's DSD engine runs on this host ("AVX2", "NEON",
/// ...), or "scalar" without Highway. Host code.
inline const char* simd_target() { return simd::target_name(); }

}  // namespace wse::emu
