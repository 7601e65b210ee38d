#pragma once
/// \file
/// Everything a kernel needs: core, arch, fabric and pe layers. Freestanding.
#include "arch.hpp"
#include "core.hpp"
#include "fabric.hpp"
#include "pe.hpp"
