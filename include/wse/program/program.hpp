#pragma once
/// \file
/// The program layer: a host-side description of what runs where. A Program holds the grid
/// and its arch, rectangular regions each running one kernel with its parameters, per-color
/// routes and filters at each PE, and the host streams at the fabric edge. validate() refuses
/// a bad program with an error naming the PE, color, region or stream. Hosted.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../arch/arch.hpp"
#include "../core/type_name.hpp"
#include "../core/types.hpp"
#include "../fabric/route.hpp"
#include "../pe/backend.hpp"

namespace wse {

namespace emu {
class Pe;
}

/// Thrown for a program or host call that cannot be carried out; the message names the place.
class ProgramError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "(x,y)" for messages.
inline std::string to_string(Coord c) {
  return "(" + std::to_string(c.x) + "," + std::to_string(c.y) + ")";
}
/// "(x,y)+WxH" for messages.
inline std::string to_string(Rect r) {
  return to_string(r.origin) + "+" + std::to_string(r.width) + "x" + std::to_string(r.height);
}
/// "N|E|RAMP" for messages; "-" for the empty set.
inline std::string to_string(PortSet s) {
  std::string out;
  for (Port p : {Port::north, Port::east, Port::south, Port::west, Port::ramp}) {
    if (!s.has(p)) continue;
    if (!out.empty()) out += "|";
    out += port_name(p);
  }
  return out.empty() ? "-" : out;
}

namespace detail {
/// Creates kernel K in `pe` and runs its init with `params`. Declared here, defined by the
/// emulator (wse/emu/kernel_host.hpp), so the program layer never depends on the emulator.
template <template <class> class K, class P> void emu_create_kernel(emu::Pe& pe, const P& params);
}  // namespace detail

/// One rectangular region of PEs running one kernel.
struct Region {
  std::string name;                 ///< given name, or the kernel type's name
  std::string kernel_name;          ///< the kernel type's name
  std::string display_name;         ///< how reports name it: "name: Kernel", or "Kernel"
  Rect rect{};
  std::uint32_t kernel_bytes = 0;   ///< sizeof the kernel object
  std::function<void(emu::Pe&, Coord)> create_on_emulator;  ///< builds the kernel at one PE
};

/// One color route at one PE.
struct RouteEntry {
  Coord pe{};
  Color color{};
  ColorRoute route{};
};

/// A range filter at one PE.
struct FilterEntry {
  Coord pe{};
  Color color{};
  RangeFilter filter{};
};

/// A host stream at the fabric edge: wavelets enter (input) or leave (output) PE `pe`
/// through its port `edge`, which must face off the grid.
struct StreamSpec {
  std::string name;
  Color color{};
  Coord pe{};
  Port edge = Port::west;
  bool input = true;
};

/// A color or local task id the program builder handed out (or that someone reserved): who
/// asked, and the rectangle of PEs where it is in use. Elsewhere it is free for others.
struct ChannelGrant {
  enum class Kind : std::uint8_t { color, task };
  Kind kind = Kind::color;
  std::uint8_t value = 0;  ///< the color or task id
  std::string asker;       ///< e.g. "allreduce 'loss': row reduce level 0"
  Rect area{};
  bool reserved = false;   ///< named by hand (reserve_*), not chosen by the allocator
};

/// A complete program for one wafer (or part of one). Host code; builds up, then validate()s.
class Program {
 public:
  /// A `width` x `height` grid on `arch`. Throws ProgramError when it exceeds the fabric.
  Program(const arch::Arch& a, std::uint16_t width, std::uint16_t height) : arch_(&a), width_(width), height_(height) {
    if (width == 0 || height == 0 || width > a.fabric_width || height > a.fabric_height)
      throw ProgramError("program grid " + std::to_string(width) + "x" + std::to_string(height) +
                         " does not fit the " + a.name + " fabric (" + std::to_string(a.fabric_width) + "x" +
                         std::to_string(a.fabric_height) + ")");
  }

  const arch::Arch& arch() const { return *arch_; }
  std::uint16_t width() const { return width_; }
  std::uint16_t height() const { return height_; }
  /// The whole grid as a rectangle.
  Rect grid() const { return Rect{{0, 0}, width_, height_}; }
  bool in_grid(Coord c) const { return c.x < width_ && c.y < height_; }

  /// Runs kernel K on every PE of `rect`, each initialised with the same `params`.
  /// The kernel object must fit the PE memory (checked at compile time). Throws when `rect`
  /// leaves the grid or overlaps an earlier region.
  template <template <class> class K>
    requires KernelTemplate<K>
  Region& add_region(Rect rect, const typename K<ProbeBackend>::Params& params, std::string name = {}) {
    using P = typename K<ProbeBackend>::Params;
    auto shared = std::make_shared<const P>(params);
    return add_region_impl<K>(rect, std::move(name),
                              [shared](emu::Pe& pe, Coord) { detail::emu_create_kernel<K>(pe, *shared); });
  }

  /// Runs kernel K on every PE of `rect`; `params_at(Coord)` gives each PE its parameters.
  /// It is called right here, once per PE in row-major order, so it may capture locals by
  /// reference.
  template <template <class> class K, class F>
    requires KernelTemplate<K> && std::is_invocable_r_v<typename K<ProbeBackend>::Params, F, Coord>
  Region& add_region(Rect rect, F&& params_at, std::string name = {}) {
    using P = typename K<ProbeBackend>::Params;
    auto all = std::make_shared<std::vector<P>>();
    if (rect.width != 0 && rect.height != 0 && rect.origin.x + rect.width <= width_ && rect.origin.y + rect.height <= height_) {
      all->reserve(rect.area());
      for (std::uint16_t dy = 0; dy < rect.height; ++dy)
        for (std::uint16_t dx = 0; dx < rect.width; ++dx)
          all->push_back(params_at(Coord{static_cast<std::uint16_t>(rect.origin.x + dx), static_cast<std::uint16_t>(rect.origin.y + dy)}));
    }
    return add_region_impl<K>(rect, std::move(name), [all, rect](emu::Pe& pe, Coord c) {
      const std::size_t i = std::size_t{static_cast<std::uint16_t>(c.y - rect.origin.y)} * rect.width + (c.x - rect.origin.x);
      detail::emu_create_kernel<K>(pe, (*all)[i]);
    });
  }

  /// Sets the route of `color` at PE `pe`. Throws when the PE is off the grid, the color is
  /// not routable or is reserved, a position receives from more than one port, the route has
  /// more than 4 positions, or the PE already has a different route on that color (a PE has
  /// one route per color; two builders giving one PE two roles on a color is a bug).
  /// Setting the same route again is allowed.
  void set_route(Coord pe, Color color, const ColorRoute& route) {
    check_route(pe, color, route);
    const auto it = route_index_.find(key(pe, color));
    if (it != route_index_.end()) {
      const ColorRoute& old = routes_[it->second].route;
      if (old == route) return;
      throw ProgramError("route at PE " + to_string(pe) + " on color " + std::to_string(color.value) +
                         " is already set (position 0: rx " + to_string(old.positions[0].rx) + ", tx " +
                         to_string(old.positions[0].tx) + "); a PE has one route per color: use another color, "
                         "or replace_route to change it");
    }
    route_index_.emplace(key(pe, color), routes_.size());
    routes_.push_back(RouteEntry{pe, color, route});
    sorted_ = false;
  }
  /// Sets the route of `color` at `pe`, replacing any earlier one. Same checks as set_route.
  void replace_route(Coord pe, Color color, const ColorRoute& route) {
    check_route(pe, color, route);
    const auto it = route_index_.find(key(pe, color));
    if (it == route_index_.end()) return set_route(pe, color, route);
    routes_[it->second].route = route;
    sorted_ = false;
  }
  /// Sets the same route of `color` at every PE of `area`.
  void set_routes(Rect area, Color color, const ColorRoute& route) {
    for (std::uint16_t dy = 0; dy < area.height; ++dy)
      for (std::uint16_t dx = 0; dx < area.width; ++dx)
        set_route(Coord{static_cast<std::uint16_t>(area.origin.x + dx), static_cast<std::uint16_t>(area.origin.y + dy)},
                  color, route);
  }
  /// A sink for the builders in wse/fabric/patterns.hpp: routes::row_broadcast(prog.route_sink(), ...).
  auto route_sink() {
    return [this](Coord pe, Color c, const ColorRoute& r) { set_route(pe, c, r); };
  }

  /// Sets a range filter on `color` at `pe`; the PE must have a route for that color.
  void set_filter(Coord pe, Color color, RangeFilter f) {
    if (!in_grid(pe)) throw ProgramError("filter at PE " + to_string(pe) + ": outside the " + grid_text() + " grid");
    filters_.push_back(FilterEntry{pe, color, f});
  }

  /// Declares a host input stream: host wavelets enter PE `pe` through `edge` on `color`.
  void add_input_stream(std::string name, Color color, Coord pe, Port edge) {
    add_stream(StreamSpec{std::move(name), color, pe, edge, true});
  }
  /// Declares a host output stream: wavelets that PE `pe` sends out through `edge` on
  /// `color` are collected for the host.
  void add_output_stream(std::string name, Color color, Coord pe, Port edge) {
    add_stream(StreamSpec{std::move(name), color, pe, edge, false});
  }
  /// Declares a host input stream on a color the channel allocator picks over `route_area`
  /// (the PEs the stream's route will cover; by default only `pe`) and returns it: route that
  /// color from `edge` at `pe` onwards. The asker is "input stream '<name>'".
  Color add_input_stream(std::string name, Coord pe, Port edge, std::optional<Rect> route_area = std::nullopt) {
    return add_allocated_stream(std::move(name), pe, edge, route_area, true);
  }
  /// Declares a host output stream on an allocated color (see the input overload); the route
  /// that leaves through `edge` at `pe` uses the returned color.
  Color add_output_stream(std::string name, Coord pe, Port edge, std::optional<Rect> route_area = std::nullopt) {
    return add_allocated_stream(std::move(name), pe, edge, route_area, false);
  }

  /// Channel allocation. Routes are static, so a color or task id is in use over a rectangle
  /// of PEs for the whole program; outside that rectangle it is free again. allocate_color
  /// returns the lowest usable color that no grant overlapping `area` holds and that no route
  /// already set inside `area` uses; allocate_task the first local task id valid on every arch
  /// (24..30 first: those are never a color's data task id on WSE-2, then 8..20) that no
  /// overlapping grant holds and that is no color granted there. `asker` names who asked, for
  /// errors and channel_report(). Throws ProgramError listing every grant in the way when
  /// nothing is free.
  Color allocate_color(std::string_view asker, Rect area) {
    check_grant_area(asker, area);
    const std::uint32_t taken = colors_taken(area);
    for (unsigned c = 0; c < arch_->routable_colors; ++c)
      if (arch_->color_usable(Color{c}) && !((taken >> c) & 1u)) {
        grants_.push_back(ChannelGrant{ChannelGrant::Kind::color, static_cast<std::uint8_t>(c), std::string(asker), area, false});
        return Color{c};
      }
    throw ProgramError(exhausted_message("color", asker, area));
  }
  /// See allocate_color.
  TaskId allocate_task(std::string_view asker, Rect area) {
    check_grant_area(asker, area);
    const std::uint32_t taken = colors_taken(area);  // the same set keeps tasks off colors
    for (unsigned t : task_candidates())
      if (!((taken >> t) & 1u)) {
        grants_.push_back(ChannelGrant{ChannelGrant::Kind::task, static_cast<std::uint8_t>(t), std::string(asker), area, false});
        return TaskId{t};
      }
    throw ProgramError(exhausted_message("local task id", asker, area));
  }
  /// Records a color picked by hand so the allocator keeps off it inside `area`. Throws when a
  /// grant overlapping `area` already holds it (naming that grant) or the color is not usable.
  void reserve_color(std::string_view asker, Rect area, Color c) {
    check_grant_area(asker, area);
    if (!arch_->color_usable(c))
      throw ProgramError(std::string(asker) + ": color " + std::to_string(c.value) + " is not usable on " + arch_->name);
    reserve(ChannelGrant::Kind::color, c.value, asker, area);
  }
  /// Records a local task id picked by hand (see reserve_color).
  void reserve_task(std::string_view asker, Rect area, TaskId t) {
    check_grant_area(asker, area);
    if (t.value < arch_->local_task_first || t.value > arch_->local_task_last)
      throw ProgramError(std::string(asker) + ": task id " + std::to_string(t.value) + " is not a local task id on " +
                         arch_->name + " (" + std::to_string(arch_->local_task_first) + ".." +
                         std::to_string(arch_->local_task_last) + ")");
    reserve(ChannelGrant::Kind::task, t.value, asker, area);
  }
  /// How many usable colors allocate_color could still hand out over `area`.
  unsigned free_color_count(Rect area) const {
    const std::uint32_t taken = colors_taken(area);
    unsigned n = 0;
    for (unsigned c = 0; c < arch_->routable_colors; ++c) n += arch_->color_usable(Color{c}) && !((taken >> c) & 1u);
    return n;
  }
  /// Drops the grants made after channel_grants().size() was `count` (a builder that fails
  /// halfway gives back what it took, so the program is as before the attempt).
  void release_grants_after(std::size_t count) {
    if (count < grants_.size()) grants_.resize(count);
  }
  /// Every color and task id handed out or reserved, in the order asked.
  const std::vector<ChannelGrant>& channel_grants() const { return grants_; }
  /// One line per grant: "color  3  (0,0)+15x15  allreduce 'x': broadcast".
  std::string channel_report() const {
    std::string out;
    for (const ChannelGrant& g : grants_) out += grant_text(g) + "\n";
    return out;
  }

  /// Checks the whole program: every transmitted direction reaches a PE whose route for that
  /// color receives from it (or an output stream), every input stream enters a route that
  /// receives from its edge, filters sit on routed colors. Throws ProgramError naming the PE
  /// and color. Devices call it on load.
  void validate() const;

  const std::vector<Region>& regions() const { return regions_; }
  /// Routes sorted by (y, x, color), one per PE and color.
  const std::vector<RouteEntry>& routes() const {
    normalize();
    return sorted_routes_;
  }
  const std::vector<FilterEntry>& filters() const { return filters_; }
  const std::vector<StreamSpec>& streams() const { return streams_; }
  /// The route of `color` at `pe`, or nullptr.
  const ColorRoute* find_route(Coord pe, Color color) const {
    const auto it = route_index_.find(key(pe, color));
    return it == route_index_.end() ? nullptr : &routes_[it->second].route;
  }
  /// The region containing `pe`, or nullptr.
  const Region* region_at(Coord pe) const {
    for (const auto& r : regions_)
      if (r.rect.contains(pe)) return &r;
    return nullptr;
  }
  /// The stream entering or leaving `pe` through `edge` on `color`, or nullptr.
  const StreamSpec* find_stream(Coord pe, Port edge, Color color) const {
    for (const auto& s : streams_)
      if (s.pe == pe && s.edge == edge && s.color == color) return &s;
    return nullptr;
  }

 private:
  static std::uint64_t key(Coord pe, Color c) {
    return (std::uint64_t{pe.y} << 24) | (std::uint64_t{pe.x} << 8) | c.value;
  }
  std::string grid_text() const { return std::to_string(width_) + "x" + std::to_string(height_); }

  template <template <class> class K>
  Region& add_region_impl(Rect rect, std::string name, std::function<void(emu::Pe&, Coord)> create) {
    static_assert(fits_in_pe_memory<K>,
                  "kernel object is larger than the PE memory (48 KiB): move large arrays to "
                  "wse::alloc in init() or shrink them");
    std::string kernel_name{detail::type_name<K<ProbeBackend>>()};
    // "Gemv<wse::ProbeBackend>" -> "Gemv": the backend is not part of the kernel's name.
    if (const auto at = kernel_name.rfind("<wse::ProbeBackend>"); at != std::string::npos &&
                                                                  at + 19 == kernel_name.size())
      kernel_name.erase(at);
    if (name.empty()) name = kernel_name;
    if (rect.width == 0 || rect.height == 0 || rect.origin.x + rect.width > width_ ||
        rect.origin.y + rect.height > height_)
      throw ProgramError("region '" + name + "' at " + to_string(rect) + " lies outside the " + grid_text() + " grid");
    for (const auto& r : regions_) {
      const int x0 = std::max(r.rect.origin.x, rect.origin.x), y0 = std::max(r.rect.origin.y, rect.origin.y);
      const int x1 = std::min(r.rect.origin.x + r.rect.width, rect.origin.x + rect.width);
      const int y1 = std::min(r.rect.origin.y + r.rect.height, rect.origin.y + rect.height);
      if (x0 < x1 && y0 < y1)
        throw ProgramError("region '" + name + "' at " + to_string(rect) + " overlaps region '" + r.name + "' at " +
                           to_string(r.rect) + " (first shared PE " +
                           to_string(Coord{static_cast<std::uint16_t>(x0), static_cast<std::uint16_t>(y0)}) + ")");
    }
    std::string display = name == kernel_name ? kernel_name : name + ": " + kernel_name;
    regions_.push_back(Region{std::move(name), kernel_name, std::move(display), rect,
                              static_cast<std::uint32_t>(sizeof(K<ProbeBackend>)), std::move(create)});
    return regions_.back();
  }

  void check_route(Coord pe, Color color, const ColorRoute& route) const {
    const std::string where = "route at PE " + to_string(pe) + " on color " + std::to_string(color.value);
    if (!in_grid(pe)) throw ProgramError(where + ": PE is outside the " + grid_text() + " grid");
    if (color.value >= arch_->routable_colors)
      throw ProgramError(where + ": color is not routable on " + arch_->name + " (routable colors are 0.." +
                         std::to_string(arch_->routable_colors - 1) + ")");
    if (arch_->color_reserved(color))
      throw ProgramError(where + ": color is reserved for the runtime on " + arch_->name +
                         " (reserved: 21, 22, 23)");
    if (route.count == 0 || route.count > max_switch_positions)
      throw ProgramError(where + ": " + std::to_string(route.count) + " switch positions (allowed 1..4)");
    for (unsigned i = 0; i < route.count; ++i) {
      const RoutePosition& p = route.positions[i];
      if (p.rx.count() > 1)
        throw ProgramError(where + ", switch position " + std::to_string(i) + ": receives from " + to_string(p.rx) +
                           " at once; two inputs into one color are undefined on hardware (use one "
                           "input per position, or another color)");
      if (!p.rx.empty() && p.tx.empty())
        throw ProgramError(where + ", switch position " + std::to_string(i) + ": receives from " + to_string(p.rx) +
                           " but transmits nowhere");
      if (p.tx.has(Port::ramp) && p.rx.has(Port::ramp))
        throw ProgramError(where + ", switch position " + std::to_string(i) +
                           ": RAMP both receives and transmits; a PE cannot send to itself");
    }
  }

  void check_grant_area(std::string_view asker, Rect area) const {
    if (area.width == 0 || area.height == 0 || area.origin.x + area.width > width_ || area.origin.y + area.height > height_)
      throw ProgramError(std::string(asker) + ": channel area " + to_string(area) + " is empty or leaves the " +
                         grid_text() + " grid");
  }
  std::uint32_t taken_mask(ChannelGrant::Kind kind, Rect area) const {
    std::uint32_t m = 0;
    for (const ChannelGrant& g : grants_)
      if (g.kind == kind && g.value < 32 && g.area.overlaps(area)) m |= 1u << g.value;
    return m;
  }
  // Colors (and task ids, as bits of the same mask) the allocator must not hand out over
  // `area`: granted colors, granted task ids (an id below 24 is also a color's data-task id on
  // WSE-2) and colors of routes already set there.
  std::uint32_t colors_taken(Rect area) const {
    return taken_mask(ChannelGrant::Kind::color, area) | taken_mask(ChannelGrant::Kind::task, area) | routed_colors_in(area);
  }
  // Colors of routes already set inside `area` (hand-written routes keep their colors).
  std::uint32_t routed_colors_in(Rect area) const {
    std::uint32_t m = 0;
    for (const RouteEntry& e : routes_)
      if (area.contains(e.pe)) m |= 1u << e.color.value;
    return m;
  }
  std::vector<unsigned> task_candidates() const {
    std::vector<unsigned> ids;
    const unsigned first = std::max(arch::wse2.local_task_first, arch::wse3.local_task_first);
    const unsigned last = std::min(arch::wse2.local_task_last, arch::wse3.local_task_last);
    for (unsigned t = 24; t <= last; ++t) ids.push_back(t);
    for (unsigned t = first; t < 24 && t <= last; ++t)
      if (arch_->color_usable(Color{t})) ids.push_back(t);
    return ids;
  }
  void reserve(ChannelGrant::Kind kind, std::uint8_t value, std::string_view asker, Rect area) {
    for (const ChannelGrant& g : grants_)
      if (g.kind == kind && g.value == value && g.area.overlaps(area))
        throw ProgramError(std::string(asker) + ": " + (kind == ChannelGrant::Kind::color ? "color " : "task id ") +
                           std::to_string(value) + " at " + to_string(area) + " is already held by: " + grant_text(g));
    grants_.push_back(ChannelGrant{kind, value, std::string(asker), area, true});
  }
  static std::string grant_text(const ChannelGrant& g) {
    std::string v = std::to_string(g.value);
    if (v.size() < 2) v = " " + v;
    return std::string(g.kind == ChannelGrant::Kind::color ? "color " : "task  ") + v + "  " + to_string(g.area) + "  " +
           g.asker + (g.reserved ? " (reserved by hand)" : "");
  }
  std::string exhausted_message(const char* what, std::string_view asker, Rect area) const {
    std::string out = "no free " + std::string(what) + " for " + std::string(asker) + " on " + to_string(area) + " (" +
                      arch_->name + "): every one is in use there. In the way:";
    for (const ChannelGrant& g : grants_)
      if (g.area.overlaps(area)) out += "\n  " + grant_text(g);
    const std::uint32_t routed = routed_colors_in(area) & ~taken_mask(ChannelGrant::Kind::color, area);
    for (unsigned c = 0; c < 32; ++c)
      if ((routed >> c) & 1u) out += "\n  color " + std::to_string(c) + " has routes set by hand inside the area";
    return out + "\nUse a smaller area, fewer collectives over the same PEs, or algorithms with fewer colors.";
  }

  Color add_allocated_stream(std::string name, Coord pe, Port edge, std::optional<Rect> route_area, bool input) {
    const std::string asker = std::string(input ? "input" : "output") + " stream '" + name + "'";
    const Rect area = route_area.value_or(Rect{pe, 1, 1});
    if (!area.contains(pe)) throw ProgramError(asker + ": route_area " + to_string(area) + " does not contain its PE " + to_string(pe));
    const std::size_t before = grants_.size();
    const Color c = allocate_color(asker, area);
    try {
      add_stream(StreamSpec{std::move(name), c, pe, edge, input});
    } catch (const ProgramError&) {
      release_grants_after(before);  // a refused stream takes no color
      throw;
    }
    return c;
  }

  void add_stream(StreamSpec s) {
    const std::string where = std::string(s.input ? "input" : "output") + " stream '" + s.name + "'";
    if (!in_grid(s.pe)) throw ProgramError(where + ": PE " + to_string(s.pe) + " is outside the " + grid_text() + " grid");
    if (s.edge == Port::ramp) throw ProgramError(where + ": the edge port must be N, E, S or W, not RAMP");
    const int nx = s.pe.x + port_dx(s.edge), ny = s.pe.y + port_dy(s.edge);
    if (nx >= 0 && ny >= 0 && nx < width_ && ny < height_)
      throw ProgramError(where + ": port " + port_name(s.edge) + " of PE " + to_string(s.pe) +
                         " faces another PE, not the fabric edge");
    if (!arch_->color_usable(s.color))
      throw ProgramError(where + ": color " + std::to_string(s.color.value) + " is not usable on " + arch_->name);
    for (const auto& o : streams_)
      if (o.name == s.name) throw ProgramError(where + ": a stream with this name already exists");
    streams_.push_back(std::move(s));
  }

  void normalize() const {
    if (sorted_) return;
    sorted_routes_ = routes_;  // keys are unique (route_index_)
    std::sort(sorted_routes_.begin(), sorted_routes_.end(),
              [](const RouteEntry& a, const RouteEntry& b) { return key(a.pe, a.color) < key(b.pe, b.color); });
    sorted_ = true;
  }

  const arch::Arch* arch_;
  std::uint16_t width_, height_;
  std::vector<Region> regions_;
  std::vector<RouteEntry> routes_;                        // in the order set
  std::unordered_map<std::uint64_t, std::size_t> route_index_;  // (pe, color) -> routes_ index
  mutable std::vector<RouteEntry> sorted_routes_;         // routes_ sorted by (y, x, color)
  mutable bool sorted_ = true;
  std::vector<FilterEntry> filters_;
  std::vector<StreamSpec> streams_;
  std::vector<ChannelGrant> grants_;
};

inline void Program::validate() const {
  normalize();
  for (const RouteEntry& e : routes_) {
    const std::string where = "route at PE " + to_string(e.pe) + " on color " + std::to_string(e.color.value);
    const PortSet tx = e.route.all_tx();
    for (Port d : {Port::north, Port::east, Port::south, Port::west}) {
      if (!tx.has(d)) continue;
      const int nx = e.pe.x + port_dx(d), ny = e.pe.y + port_dy(d);
      if (nx < 0 || ny < 0 || nx >= width_ || ny >= height_) {
        const StreamSpec* s = find_stream(e.pe, d, e.color);
        if (s == nullptr || s->input)
          throw ProgramError(where + ": transmits " + port_name(d) +
                             " off the fabric edge, and no output stream is declared there "
                             "(add_output_stream)");
        continue;
      }
      const Coord n{static_cast<std::uint16_t>(nx), static_cast<std::uint16_t>(ny)};
      const ColorRoute* r = find_route(n, e.color);
      if (r == nullptr || !r->all_rx().has(opposite(d)))
        throw ProgramError(where + ": transmits " + port_name(d) + " to PE " + to_string(n) +
                           ", whose route on color " + std::to_string(e.color.value) +
                           (r == nullptr ? " does not exist" : " does not receive from " + std::string(port_name(opposite(d)))) +
                           (r ? " (it receives from " + to_string(r->all_rx()) + ")" : std::string()));
    }
  }
  for (const StreamSpec& s : streams_) {
    const ColorRoute* r = find_route(s.pe, s.color);
    const std::string where = std::string(s.input ? "input" : "output") + " stream '" + s.name + "' at PE " +
                              to_string(s.pe) + " port " + port_name(s.edge) + " on color " + std::to_string(s.color.value);
    if (r == nullptr) throw ProgramError(where + ": the PE has no route for this color");
    if (s.input && !r->all_rx().has(s.edge)) throw ProgramError(where + ": the route does not receive from " + port_name(s.edge));
    if (!s.input && !r->all_tx().has(s.edge)) throw ProgramError(where + ": the route does not transmit to " + port_name(s.edge));
  }
  for (const FilterEntry& f : filters_) {
    const ColorRoute* r = find_route(f.pe, f.color);
    if (r == nullptr || !r->all_tx().has(Port::ramp))
      throw ProgramError("filter at PE " + to_string(f.pe) + " on color " + std::to_string(f.color.value) +
                         ": the PE's route for this color does not deliver to RAMP, so the filter would do nothing");
  }
}

}  // namespace wse
