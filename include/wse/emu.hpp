#pragma once
/// \file
/// The emu layer: the deterministic multithreaded emulator. Hosted.
#include "emu/engine.hpp"
#include "emu/kernel_host.hpp"
#include "emu/pe.hpp"
#include "emu/report.hpp"
#include "emu/simd.hpp"
#include "program.hpp"
