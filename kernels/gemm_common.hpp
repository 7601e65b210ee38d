#pragma once
/// \file
/// Pieces shared by the GEMM kernels (gemm_summa.hpp, gemm_cannon.hpp): the local block
/// product as DSD ops, and parameter checks. Freestanding; written only against pe + fabric.
#include <cstdint>
#include <wse/kernel.hpp>

namespace wse::kernels {

namespace gemm_detail {

/// C += A_panel · B_panel on one PE, as `g` rank-1 updates, each ONE fused multiply-add DSD
/// op over the whole C block (mb·nb elements):
///   for l in [0, g):  C[i, j] = C[i, j] + A[i, a_col0 + l] * B[b_row0 + l, j]   (all i, j)
/// The A operand is column l of A repeated for every j (2-D DSD, strides {1, 0}); the B
/// operand is row l of B repeated for every i (strides {0, ldb}). Few long ops instead of
/// g·nb ops of length mb: what a SIMD DSD engine runs fastest. Each C element accumulates its
/// products in ascending l with one rounding per product (fused), so the result is
/// bit-reproducible.
///   C: (mb, nb) column-major, C[i + j*mb]
///   A: (mb, ·) column-major, A[i + l*mb]
///   B: (ldb, ·) column-major, B[l + j*ldb]
template <class PE>
void accumulate_panel(PE& pe, Array<float> C, std::uint32_t mb, std::uint32_t nb, Array<float> A,
                      std::uint32_t a_col0, Array<float> B, std::uint32_t ldb, std::uint32_t b_row0,
                      std::uint32_t g) {
  // (mb, nb) the whole C block, shaped like the sources so the SIMD engine takes the op
  const Mem4d<float> c = mem4d(C, {mb, nb}, {1, static_cast<std::int32_t>(mb)});
  for (std::uint32_t l = 0; l < g; ++l) {
    // (mb, nb) view of column a_col0 + l of A, repeated along j
    const Mem4d<float> a = mem4d(A, {mb, nb}, {1, 0}, (a_col0 + l) * mb);
    // (mb, nb) view of row b_row0 + l of B, repeated along i
    const Mem4d<float> b = mem4d(B, {mb, nb}, {0, static_cast<std::int32_t>(ldb)}, b_row0 + l);
    mac(pe, c, c, a, b);
  }
}

/// Greatest common divisor (freestanding; std::gcd lives in a hosted header).
constexpr std::uint32_t gcd(std::uint32_t a, std::uint32_t b) {
  while (b != 0) {
    const std::uint32_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/// True when a color is routable and not reserved on every known arch (0..20).
constexpr bool color_ok(Color c) { return arch::wse2.color_usable(c) && arch::wse3.color_usable(c); }
/// True when a local task id is valid on every known arch (8..30).
constexpr bool task_ok(TaskId t) {
  return t.value >= arch::wse2.local_task_first && t.value <= arch::wse2.local_task_last &&
         t.value >= arch::wse3.local_task_first && t.value <= arch::wse3.local_task_last;
}

/// nullptr when the n colors are usable and pairwise distinct, the m task ids are usable
/// local ids, pairwise distinct, and none equals a color number (a color's data-task id on
/// WSE-2); otherwise what is wrong.
constexpr const char* check_ids(const Color* colors, unsigned n, const TaskId* tasks, unsigned m) {
  for (unsigned i = 0; i < n; ++i) {
    if (!color_ok(colors[i])) return "a color is not usable (allowed 0..20; 21..23 are reserved)";
    for (unsigned j = 0; j < i; ++j)
      if (colors[i] == colors[j]) return "two colors are equal";
  }
  for (unsigned i = 0; i < m; ++i) {
    if (!task_ok(tasks[i])) return "a task id is not a local task id on every arch (allowed 8..30)";
    for (unsigned j = 0; j < i; ++j)
      if (tasks[i] == tasks[j]) return "two task ids are equal";
    for (unsigned j = 0; j < n; ++j)
      if (tasks[i].value == colors[j].value) return "a task id equals one of the colors (its data-task id on WSE-2)";
  }
  return nullptr;
}

/// The PE `hops` steps from `c` through port `p`.
constexpr Coord step(Coord c, Port p, int hops) {
  return Coord{static_cast<std::uint16_t>(c.x + port_dx(p) * hops), static_cast<std::uint16_t>(c.y + port_dy(p) * hops)};
}

}  // namespace gemm_detail

}  // namespace wse::kernels
