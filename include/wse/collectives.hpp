#pragma once
/// \file
/// The collectives layer, kernel side: Params, routes and the Collective state machine.
/// Freestanding. The host builder is wse/program/collectives.hpp (hosted; in wse/program.hpp).
#include "collectives/collective.hpp"
#include "collectives/params.hpp"
#include "collectives/routes.hpp"
