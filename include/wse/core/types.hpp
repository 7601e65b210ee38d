#pragma once
/// \file
/// Strong types for the things a kernel names: coordinates, colors, task ids, ports.
/// Freestanding: no heap, no exceptions.
#include <concepts>
#include <cstdint>

namespace wse {

/// A PE position: x = column, y = row, origin at the north-west corner. Any caller.
struct Coord {
  std::uint16_t x = 0;
  std::uint16_t y = 0;
  friend constexpr bool operator==(Coord, Coord) = default;
};

/// A rectangle of PEs: `origin` is its north-west PE; `width` columns by `height` rows.
struct Rect {
  Coord origin{};
  std::uint16_t width = 0;
  std::uint16_t height = 0;
  /// True when `c` lies inside the rectangle.
  constexpr bool contains(Coord c) const {
    return c.x >= origin.x && c.y >= origin.y && c.x - origin.x < width && c.y - origin.y < height;
  }
  /// Number of PEs in the rectangle.
  constexpr std::uint32_t area() const { return std::uint32_t{width} * height; }
  /// True when the two rectangles share a PE (never for an empty one).
  constexpr bool overlaps(Rect o) const {
    return width != 0 && height != 0 && o.width != 0 && o.height != 0 && origin.x < o.origin.x + o.width &&
           o.origin.x < origin.x + width && origin.y < o.origin.y + o.height && o.origin.y < origin.y + height;
  }
  friend constexpr bool operator==(Rect, Rect) = default;
};

/// A fabric color (virtual channel), 0..23 routable on WSE-2/3. Distinct from task ids.
struct Color {
  std::uint8_t value = 0;
  constexpr Color() = default;
  /// Values outside 0..254 become 255, which every check then refuses as out of range.
  template <std::integral I>
  constexpr explicit Color(I v) : value(static_cast<std::uint8_t>(v >= 0 && v < 255 ? v : 255)) {}
  friend constexpr bool operator==(Color, Color) = default;
};

/// A task id (0..63). Data tasks use the id equal to their color (see data_task_id).
struct TaskId {
  std::uint8_t value = 0;
  constexpr TaskId() = default;
  /// Values outside 0..254 become 255, which every check then refuses as out of range.
  template <std::integral I>
  constexpr explicit TaskId(I v) : value(static_cast<std::uint8_t>(v >= 0 && v < 255 ? v : 255)) {}
  friend constexpr bool operator==(TaskId, TaskId) = default;
};

/// Number of task ids per PE (local, data and control tasks share one table).
inline constexpr unsigned max_task_ids = 64;
/// Number of color ids a wavelet can carry; the arch says which are routable.
inline constexpr unsigned max_colors = 24;

/// The task id that runs when a data wavelet arrives on `c` (WSE-2 convention: same number).
constexpr TaskId data_task_id(Color c) { return TaskId{c.value}; }

/// One of the five router ports. RAMP links the router to its own PE's compute element.
enum class Port : std::uint8_t { north = 0, east = 1, south = 2, west = 3, ramp = 4 };

/// A set of ports, used for a route's receive (rx) and transmit (tx) sides.
struct PortSet {
  std::uint8_t bits = 0;
  constexpr PortSet() = default;
  constexpr PortSet(Port p) : bits(static_cast<std::uint8_t>(1u << static_cast<unsigned>(p))) {}
  constexpr bool has(Port p) const { return (bits >> static_cast<unsigned>(p)) & 1u; }
  constexpr bool empty() const { return bits == 0; }
  constexpr unsigned count() const {
    unsigned n = 0;
    for (unsigned b = bits; b != 0; b &= b - 1) ++n;
    return n;
  }
  friend constexpr PortSet operator|(PortSet a, PortSet b) {
    PortSet r;
    r.bits = static_cast<std::uint8_t>(a.bits | b.bits);
    return r;
  }
  friend constexpr bool operator==(PortSet, PortSet) = default;
};
constexpr PortSet operator|(Port a, Port b) { return PortSet{a} | PortSet{b}; }

inline constexpr Port north = Port::north;
inline constexpr Port east = Port::east;
inline constexpr Port south = Port::south;
inline constexpr Port west = Port::west;
inline constexpr Port ramp = Port::ramp;

/// The port on the neighbor that faces `p` (north <-> south, east <-> west; ramp -> ramp).
constexpr Port opposite(Port p) {
  switch (p) {
    case Port::north: return Port::south;
    case Port::south: return Port::north;
    case Port::east: return Port::west;
    case Port::west: return Port::east;
    default: return Port::ramp;
  }
}

/// Short upper-case name of a port, for messages: "N", "E", "S", "W", "RAMP".
constexpr const char* port_name(Port p) {
  switch (p) {
    case Port::north: return "N";
    case Port::east: return "E";
    case Port::south: return "S";
    case Port::west: return "W";
    default: return "RAMP";
  }
}

/// Column/row step taken when leaving through `p` (north is y - 1).
constexpr int port_dx(Port p) { return p == Port::east ? 1 : p == Port::west ? -1 : 0; }
constexpr int port_dy(Port p) { return p == Port::south ? 1 : p == Port::north ? -1 : 0; }

}  // namespace wse
