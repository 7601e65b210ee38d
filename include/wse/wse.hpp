#pragma once
/// \file
/// Everything: kernel-facing layers (core, arch, fabric, pe), program, emulator, host
/// runtime and weight streaming. Hosted. Kernel-only code includes <wse/kernel.hpp> instead.
#include "host.hpp"
#include "kernel.hpp"
#include "stream.hpp"
