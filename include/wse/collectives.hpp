#pragma once
/// \file
/// The collectives layer, kernel side: Params, routes and the Collective state machine.
/// Freestanding. The host builder is wse/collectives/build.hpp (included by wse/wse.hpp).
#include "collectives/collective.hpp"
#include "collectives/params.hpp"
#include "collectives/routes.hpp"
