#pragma once
/// \file
/// Route builders for common patterns. Each writes routes through a sink, any callable
/// `sink(Coord, Color, ColorRoute)` (a program's `route_sink()` is one). Freestanding.
#include <cstdint>

#include "../core/types.hpp"
#include "route.hpp"

namespace wse::routes {

namespace detail {
constexpr Coord step(Coord c, Port dir, int n) {
  return Coord{static_cast<std::uint16_t>(c.x + port_dx(dir) * n),
               static_cast<std::uint16_t>(c.y + port_dy(dir) * n)};
}
}  // namespace detail

/// A line of `length` PEs starting at `root` heading `dir`. The root sends from its RAMP
/// (or, when `root_rx` is not RAMP, forwards what enters from that port, e.g. a host stream
/// at the fabric edge); every later PE receives the wavelet on its RAMP and forwards it.
/// With `root_receives` the root also delivers to its own RAMP (only when root_rx != RAMP).
/// Shape: root --dir--> ... --dir--> last; every non-root PE gets every wavelet.
template <class Sink>
constexpr void broadcast_line(Sink&& sink, Color color, Coord root, Port dir, std::uint16_t length,
                              Port root_rx = Port::ramp, bool root_receives = false) {
  for (std::uint16_t i = 0; i < length; ++i) {
    const Coord c = detail::step(root, dir, i);
    const bool last = i + 1 == length;
    PortSet rx = i == 0 ? PortSet{root_rx} : PortSet{opposite(dir)};
    PortSet tx = last ? PortSet{} : PortSet{dir};
    if (i != 0 || (root_receives && root_rx != Port::ramp)) tx = tx | PortSet{Port::ramp};
    sink(c, color, ColorRoute{rx, tx});
  }
}

/// Row broadcast: the PE at `root` sends east to the next `length - 1` PEs of its row.
template <class Sink>
constexpr void row_broadcast(Sink&& sink, Color color, Coord root, std::uint16_t length) {
  broadcast_line(sink, color, root, Port::east, length);
}

/// Column broadcast: the PE at `root` sends south to the next `length - 1` PEs of its column.
template <class Sink>
constexpr void column_broadcast(Sink&& sink, Color color, Coord root, std::uint16_t length) {
  broadcast_line(sink, color, root, Port::south, length);
}

/// A point-to-point path: `from` sends (from RAMP, or forwards from `from_rx`) and only the
/// PE `length - 1` hops away in `dir` receives; PEs between forward without delivering.
template <class Sink>
constexpr void path(Sink&& sink, Color color, Coord from, Port dir, std::uint16_t length,
                    Port from_rx = Port::ramp) {
  for (std::uint16_t i = 0; i < length; ++i) {
    const Coord c = detail::step(from, dir, i);
    const bool last = i + 1 == length;
    PortSet rx = i == 0 ? PortSet{from_rx} : PortSet{opposite(dir)};
    PortSet tx = last ? PortSet{Port::ramp} : PortSet{dir};
    sink(c, color, ColorRoute{rx, tx});
  }
}

/// The color PE number `i` of a checkerboard_chain sends on.
constexpr Color checkerboard_send_color(const Color (&colors)[2], unsigned i) { return colors[i % 2]; }
/// The color PE number `i` of a checkerboard_chain receives on (PE 0: from the edge).
constexpr Color checkerboard_recv_color(const Color (&colors)[2], unsigned i) { return colors[(i + 1) % 2]; }

/// The two-color checkerboard chain used for reductions along a row or column: along
/// `length` PEs from `start` heading `dir`, PE i sends to PE i+1 and receives from PE i-1,
/// on alternating colors so no PE receives and sends on one color. PE i sends on
/// `colors[i % 2]` and receives on `colors[(i + 1) % 2]`. The first PE's receive route
/// takes `first_rx` (default: none; pass the edge port to feed a host stream in), and the
/// last PE's send route leaves through `dir` only when `last_tx_out` (e.g. to a host stream).
template <class Sink>
constexpr void checkerboard_chain(Sink&& sink, const Color (&colors)[2], Coord start, Port dir,
                                  std::uint16_t length, bool first_rx_from_edge = false,
                                  bool last_tx_out = false) {
  for (std::uint16_t i = 0; i < length; ++i) {
    const Coord c = detail::step(start, dir, i);
    const Color send = checkerboard_send_color(colors, i);
    const Color recv = checkerboard_recv_color(colors, i);
    if (i + 1 < length || last_tx_out) sink(c, send, ColorRoute{Port::ramp, dir});
    if (i > 0 || first_rx_from_edge) sink(c, recv, ColorRoute{opposite(dir), Port::ramp});
  }
}

/// Every PE of `area` sends to its neighbor in `dir` (where one exists inside `area`) and
/// receives from its neighbor on the opposite side. Two colors alternate by position
/// parity along `dir`: a PE at parity p sends on colors[p] and receives on colors[1 - p].
template <class Sink>
constexpr void neighbor_exchange(Sink&& sink, const Color (&colors)[2], Rect area, Port dir) {
  const bool horizontal = dir == Port::east || dir == Port::west;
  for (std::uint16_t dy = 0; dy < area.height; ++dy) {
    for (std::uint16_t dx = 0; dx < area.width; ++dx) {
      const Coord c{static_cast<std::uint16_t>(area.origin.x + dx),
                    static_cast<std::uint16_t>(area.origin.y + dy)};
      const unsigned pos = horizontal ? dx : dy;
      const unsigned parity = pos % 2;
      const Coord next = detail::step(c, dir, 1);
      const Coord prev = detail::step(c, opposite(dir), 1);
      // Wrap-around of uint16 on the low side makes `contains` false, as wanted.
      if (area.contains(next)) sink(c, colors[parity], ColorRoute{Port::ramp, dir});
      if (area.contains(prev)) sink(c, colors[1 - parity], ColorRoute{opposite(dir), Port::ramp});
    }
  }
}

}  // namespace wse::routes
