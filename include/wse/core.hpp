#pragma once
/// \file
/// The core layer: config, assertions, strong types, wavelets, element types. Freestanding.
#include "core/assert.hpp"
#include "core/config.hpp"
#include "core/elem_type.hpp"
#include "core/type_name.hpp"
#include "core/types.hpp"
#include "core/wavelet.hpp"
