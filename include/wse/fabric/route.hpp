#pragma once
/// \file
/// Per-PE, per-color routing: switch positions (rx/tx port sets), ring mode and range filters.
/// Freestanding.
#include <cstdint>

#include "../core/types.hpp"

namespace wse {

/// One switch position: where wavelets of a color come from (rx) and go to (tx, may fan out).
struct RoutePosition {
  PortSet rx{};
  PortSet tx{};
  friend constexpr bool operator==(RoutePosition, RoutePosition) = default;
};

/// Maximum number of switch positions per color route.
inline constexpr unsigned max_switch_positions = 4;

/// The route of one color at one PE: 1..4 switch positions. A control wavelet that asks to
/// advance is routed with the current position; later wavelets use the next one. At the last
/// position, `ring` wraps to position 0; without it the switch stays at the last position.
struct ColorRoute {
  RoutePosition positions[max_switch_positions]{};
  std::uint8_t count = 1;
  bool ring = false;

  constexpr ColorRoute() = default;
  /// A fixed route with one position.
  constexpr ColorRoute(PortSet rx, PortSet tx) : positions{{rx, tx}}, count(1) {}
  /// Adds a switch position (at most 4 in all). Returns *this for chaining.
  constexpr ColorRoute& then(PortSet rx, PortSet tx) {
    if (count < max_switch_positions) positions[count] = RoutePosition{rx, tx};
    ++count;  // count > 4 is reported by program validation
    return *this;
  }
  /// Makes the switch wrap from the last position back to position 0.
  constexpr ColorRoute& ring_mode(bool on = true) {
    ring = on;
    return *this;
  }
  /// Union of rx ports over all positions.
  constexpr PortSet all_rx() const {
    PortSet s;
    for (unsigned i = 0; i < count && i < max_switch_positions; ++i) s = s | positions[i].rx;
    return s;
  }
  /// Union of tx ports over all positions.
  constexpr PortSet all_tx() const {
    PortSet s;
    for (unsigned i = 0; i < count && i < max_switch_positions; ++i) s = s | positions[i].tx;
    return s;
  }
  friend constexpr bool operator==(const ColorRoute&, const ColorRoute&) = default;
};

/// Range filter on a color at a PE: only data wavelets whose index (high 16 bits) lies in
/// [lo, hi] are delivered to the compute element. Filtered wavelets still travel on along
/// the route; control wavelets are never filtered.
struct RangeFilter {
  std::uint16_t lo = 0;
  std::uint16_t hi = 0xffff;
  constexpr bool passes(std::uint16_t index) const { return index >= lo && index <= hi; }
  friend constexpr bool operator==(RangeFilter, RangeFilter) = default;
};

}  // namespace wse
