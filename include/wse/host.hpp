#pragma once
/// \file
/// The host layer: Runtime over a Device (the emulator is one). Hosted.
#include "emu.hpp"
#include "host/device.hpp"
#include "host/emulator_device.hpp"
#include "host/runtime.hpp"
