#pragma once
/// \file
/// The program layer: grid, regions, routes, streams, validation. Hosted.
#include "fabric.hpp"
#include "program/collectives.hpp"
#include "program/program.hpp"
