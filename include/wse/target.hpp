#pragma once
/// \file
/// The target layer: the reference bare-metal backend (wse::target::Pe), its fabric register
/// model and a loopback fabric for tests. Freestanding. See docs/targets.md.
#include "target/fabric_regs.hpp"
#include "target/loopback.hpp"
#include "target/pe.hpp"
