#pragma once
/// \file
/// Shared by the kernels' *_channels helpers (gemv_channels, summa_channels, ...): fills a
/// kernel's colors and local task ids from a program's channel allocator instead of fixed
/// numbers. Freestanding: the allocator is a template parameter (anything with
/// allocate_color(asker, Rect) -> Color and allocate_task(asker, Rect) -> TaskId, such as
/// wse::Program), so kernel headers never include the program layer.
///
/// How a helper picks the rectangle it asks for: it runs the kernel's own *_routes builder
/// with probe colors and takes, per color, the bounding rectangle of the PEs that get a route
/// on it. The kernels' *_params_error want all their colors distinct, not only those that
/// meet at a PE, so a color whose rectangle misses another color's rectangle asks over the
/// hull of all of them instead. A color the kernel never routes with these Params (the sum
/// colors of a one-column Gemv, x_colors[k] of a Wave25 narrower than k + 1) gets no grant,
/// only a value in 0..20 distinct from the kernel's other colors and task ids.
#include <cstdint>
#include <wse/kernel.hpp>

namespace wse::kernels::channels_detail {

/// Per color value (0..31), the bounding rectangle of the PEs where it has a route; width 0
/// when none.
struct Footprints {
  Rect box[32] = {};
  constexpr void add(Coord c, Color color) {
    if (color.value >= 32) return;
    Rect& b = box[color.value];
    if (b.width == 0) {
      b = Rect{c, 1, 1};
      return;
    }
    const std::uint16_t x0 = c.x < b.origin.x ? c.x : b.origin.x, y0 = c.y < b.origin.y ? c.y : b.origin.y;
    const int x1 = c.x + 1 > b.origin.x + b.width ? c.x + 1 : b.origin.x + b.width;
    const int y1 = c.y + 1 > b.origin.y + b.height ? c.y + 1 : b.origin.y + b.height;
    b = Rect{Coord{x0, y0}, static_cast<std::uint16_t>(x1 - x0), static_cast<std::uint16_t>(y1 - y0)};
  }
};

/// Where a kernel's routes builder puts each color: `routes(sink)` must call the builder
/// with `sink` and Params whose colors are the probe values Color{0}, Color{1}, ...
template <class Routes> constexpr Footprints footprints(Routes&& routes) {
  Footprints f;
  routes([&f](Coord c, Color color, const ColorRoute&) { f.add(c, color); });
  return f;
}

constexpr Rect hull(Rect a, Rect b) {
  if (a.width == 0) return b;
  if (b.width == 0) return a;
  const std::uint16_t x0 = a.origin.x < b.origin.x ? a.origin.x : b.origin.x;
  const std::uint16_t y0 = a.origin.y < b.origin.y ? a.origin.y : b.origin.y;
  const int ax = a.origin.x + a.width, bx = b.origin.x + b.width, ay = a.origin.y + a.height, by = b.origin.y + b.height;
  return Rect{Coord{x0, y0}, static_cast<std::uint16_t>((ax > bx ? ax : bx) - x0),
              static_cast<std::uint16_t>((ay > by ? ay : by) - y0)};
}

/// "<name> <what>" for the allocator's asker (grants and errors name it); cut to fit.
struct Asker {
  char text[80] = {};
  constexpr Asker(const char* name, const char* what) {
    unsigned n = 0;
    for (const char* s = name; s != nullptr && *s != '\0' && n + 1 < sizeof text; ++s) text[n++] = *s;
    if (n + 1 < sizeof text) text[n++] = ' ';
    for (const char* s = what; *s != '\0' && n + 1 < sizeof text; ++s) text[n++] = *s;
  }
};

/// One color field of a kernel's Params: where it goes, its field name, and the bounding
/// rectangle of its routes (width 0: not routed).
struct ColorSlot {
  Color* color;
  const char* what;
  Rect routed;
};
/// One local task id field of a kernel's Params.
struct TaskSlot {
  TaskId* task;
  const char* what;
};

/// Asks `prog` for the n colors (each over its routed rectangle, or the hull of all of them
/// when it misses one of the others), then the m task ids over `task_area`, then gives the
/// unrouted colors their free values (see the file comment). When no value is left for an
/// unrouted color it keeps its old one, and the kernel's *_params_error says so.
template <class Channels>
void fill(Channels& prog, const char* name, ColorSlot* colors, unsigned n, TaskSlot* tasks, unsigned m, Rect task_area) {
  Rect all{};
  for (unsigned i = 0; i < n; ++i) all = hull(all, colors[i].routed);
  for (unsigned i = 0; i < n; ++i) {
    if (colors[i].routed.width == 0) continue;
    bool meets_all = true;
    for (unsigned j = 0; j < n; ++j)
      if (colors[j].routed.width != 0 && !colors[i].routed.overlaps(colors[j].routed)) meets_all = false;
    *colors[i].color = prog.allocate_color(Asker(name, colors[i].what).text, meets_all ? colors[i].routed : all);
  }
  for (unsigned t = 0; t < m; ++t) *tasks[t].task = prog.allocate_task(Asker(name, tasks[t].what).text, task_area);
  // Values in use by this kernel so far: its routed colors and its task ids.
  std::uint32_t used = 0;
  for (unsigned i = 0; i < n; ++i)
    if (colors[i].routed.width != 0) used |= 1u << colors[i].color->value;
  for (unsigned t = 0; t < m; ++t)
    if (tasks[t].task->value < 32) used |= 1u << tasks[t].task->value;
  for (unsigned i = 0; i < n; ++i) {
    if (colors[i].routed.width != 0) continue;
    for (unsigned c = 0; c < 32; ++c) {
      const Color candidate{c};
      if (arch::wse2.color_usable(candidate) && arch::wse3.color_usable(candidate) && !((used >> c) & 1u)) {
        *colors[i].color = candidate;
        used |= 1u << c;
        break;
      }
    }
  }
}

}  // namespace wse::kernels::channels_detail
