#pragma once
/// \file
/// The arch layer: constexpr chip descriptions. Freestanding.
#include "arch/arch.hpp"
