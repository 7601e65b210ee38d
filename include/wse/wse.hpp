#pragma once
/// \file
/// Everything: kernel-facing layers (core, arch, fabric, pe), program, emulator and host
/// runtime. Hosted. Kernel-only code includes <wse/kernel.hpp> instead.
#include "host.hpp"
#include "kernel.hpp"
