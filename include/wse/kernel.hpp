#pragma once
/// \file
/// Everything a kernel needs: core, arch, fabric, pe and collectives layers. Freestanding.
#include "arch.hpp"
#include "collectives.hpp"
#include "core.hpp"
#include "fabric.hpp"
#include "pe.hpp"
