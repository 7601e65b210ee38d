#pragma once
/// \file
/// The fabric layer: routes, switches, filters and route builders. Freestanding.
#include "fabric/patterns.hpp"
#include "fabric/route.hpp"
