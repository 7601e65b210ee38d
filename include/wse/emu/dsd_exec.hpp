#pragma once
/// \file
/// Scalar reference semantics of every DSD op on one element, operand addressing and bounds
/// checks (defined freestanding in pe/elementwise.hpp). The emulator's DSD engine is built
/// from these. Emulator internal.
#include <cstdint>
#include <string>

#include "../pe/elementwise.hpp"
#include "../pe/ops.hpp"

namespace wse::emu::detail {

// The per-element semantics live in pe/elementwise.hpp (freestanding), shared with the
// bare-metal backend in target/; the emulator uses them under its own names.
using elementwise::as_f32;
using elementwise::as_int;
using elementwise::bits_of;
using elementwise::compute;
using elementwise::convert;
using elementwise::element_offset;
using elementwise::from_int;
using elementwise::is_signed;
using elementwise::load;
using elementwise::source_count;
using elementwise::store;

/// Checks that every element of memory operand `o` lies inside its array. On failure
/// returns false and fills `why` with the accessed range and the array size.
inline bool within_bounds(const Operand& o, std::string& why) {
  if (elementwise::within_bounds(o)) return true;
  const elementwise::AccessRange r = elementwise::access_range(o);
  why = "accesses elements " + std::to_string(r.lo) + ".." + std::to_string(r.hi) + " of an array of " +
        std::to_string(o.extent) + " " + elem_name(o.type) + " (allowed 0.." +
        std::to_string(static_cast<std::int64_t>(o.extent) - 1) + ")";
  return false;
}

}  // namespace wse::emu::detail
