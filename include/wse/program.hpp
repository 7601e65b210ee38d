#pragma once
/// \file
/// The program layer: grid, regions, routes, streams, validation. Hosted.
#include "collectives/build.hpp"
#include "fabric.hpp"
#include "program/program.hpp"
