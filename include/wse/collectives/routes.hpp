#pragma once
/// \file
/// The routes of a collective, written through a sink (any callable sink(Coord, Color,
/// ColorRoute), e.g. Program::route_sink()). The host builder calls collective_routes with
/// the Params it built. Freestanding.
#include <cstdint>

#include "../fabric/route.hpp"
#include "params.hpp"

namespace wse::collectives {

/// One line of an area: row `index` (positions x, toward the root = west) or column 0
/// (positions y, toward the root = north).
struct Line {
  Rect area{};
  bool is_row = true;
  std::uint16_t index = 0;  ///< which row (rows); unused for column 0

  constexpr std::uint16_t length() const { return is_row ? area.width : area.height; }
  constexpr Coord at(std::uint32_t pos) const {
    return is_row ? Coord{static_cast<std::uint16_t>(area.origin.x + pos), static_cast<std::uint16_t>(area.origin.y + index)}
                  : Coord{area.origin.x, static_cast<std::uint16_t>(area.origin.y + pos)};
  }
  constexpr Port toward_root() const { return is_row ? Port::west : Port::north; }
  constexpr Port away() const { return is_row ? Port::east : Port::south; }
};

/// Routes of reduction level l along `line` (see Collective for the roles).
template <class Sink> constexpr void reduce_level_routes(Sink&& sink, const Line& line, const LinePlan& plan, unsigned l) {
  const std::uint32_t L = line.length(), g = plan.group, s = stride_at(g, l);
  const PortSet ramp{Port::ramp}, toward{line.toward_root()}, away{line.away()};
  for (std::uint32_t base = 0; base < L; base += s * g) {
    for (std::uint32_t k = 1; k < g && base + k * s < L; ++k) {
      const std::uint32_t sender = base + k * s, receiver = sender - s;
      const Color c = plan.reduce[l][k % 2];
      sink(line.at(sender), c, ColorRoute{ramp, toward});
      for (std::uint32_t q = receiver + 1; q < sender; ++q) sink(line.at(q), c, ColorRoute{away, toward});
      sink(line.at(receiver), c, ColorRoute{away, ramp});
    }
  }
}

/// Routes of a gather chain (toward the root) or scatter chain (away from it) along `line`:
/// position p sends on move[p % 2] and receives on move[(p + 1) % 2].
template <class Sink> constexpr void move_routes(Sink&& sink, const Line& line, const LinePlan& plan, bool toward_root) {
  const std::uint32_t L = line.length();
  const PortSet ramp{Port::ramp}, toward{line.toward_root()}, away{line.away()};
  for (std::uint32_t p = 0; p < L; ++p) {
    const bool sends = toward_root ? p > 0 : p + 1 < L;
    const bool receives = toward_root ? p + 1 < L : p > 0;
    if (sends) sink(line.at(p), plan.move[p % 2], ColorRoute{ramp, toward_root ? toward : away});
    if (receives) sink(line.at(p), plan.move[(p + 1) % 2], ColorRoute{toward_root ? away : toward, ramp});
  }
}

/// Routes of a broadcast from the north-west PE over the whole area on one color: along row
/// 0 eastward, and from every PE of row 0 down its column; every PE but the root delivers.
template <class Sink> constexpr void broadcast_routes(Sink&& sink, Rect area, Color color) {
  for (std::uint16_t y = 0; y < area.height; ++y)
    for (std::uint16_t x = 0; x < area.width; ++x) {
      PortSet tx{};
      if (y == 0 && x + 1 < area.width) tx = tx | PortSet{Port::east};
      if (y + 1 < area.height) tx = tx | PortSet{Port::south};
      const bool root = x == 0 && y == 0;
      if (!root) tx = tx | PortSet{Port::ramp};
      const PortSet rx = root ? PortSet{Port::ramp} : y == 0 ? PortSet{Port::west} : PortSet{Port::north};
      if (root && tx.empty()) continue;  // a single PE: nothing to send
      sink(Coord{static_cast<std::uint16_t>(area.origin.x + x), static_cast<std::uint16_t>(area.origin.y + y)}, color,
           ColorRoute{rx, tx});
    }
}

/// Every route of the collective `p`.
template <class Sink> constexpr void collective_routes(Sink&& sink, const Params& p) {
  const Rect a = p.area;
  const Line column{a, false, 0};
  if (reduces(p.kind)) {
    for (std::uint16_t y = 0; y < a.height; ++y)
      for (unsigned l = 0; l < p.row.levels; ++l) reduce_level_routes(sink, Line{a, true, y}, p.row, l);
    for (unsigned l = 0; l < p.col.levels; ++l) reduce_level_routes(sink, column, p.col, l);
  }
  if (chunked(p.kind)) {  // gather or scatter chains along every row and column 0
    for (std::uint16_t y = 0; y < a.height; ++y) move_routes(sink, Line{a, true, y}, p.row, gathers(p.kind));
    move_routes(sink, column, p.col, gathers(p.kind));
  }
  if (broadcasts(p.kind)) broadcast_routes(sink, a, p.bcast);
}

}  // namespace wse::collectives
