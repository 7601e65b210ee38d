#pragma once
/// \file
/// The pe layer: what a kernel author writes against (tasks, DSDs, ops, backend helpers).
/// Freestanding.
#include "pe/array.hpp"
#include "pe/backend.hpp"
#include "pe/dsd.hpp"
#include "pe/ops.hpp"
#include "pe/task.hpp"
