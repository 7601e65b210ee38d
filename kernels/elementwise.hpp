#pragma once
/// \file
/// Small elementwise and reduction helpers on memory DSDs, shared by the kernels in kernels/.
/// Kernel code (call them from init, tasks or exported functions). Freestanding; written only
/// against the pe layer.
///
/// Every helper is a thin, synchronous wrapper over DSD ops on memory operands (no fabric
/// operands), so it finishes before it returns and its result does not depend on timing.
/// Elementwise helpers take 1-D or N-D memory DSDs (`wse::mem1d`, `wse::mem4d`) of any DSD
/// element type; the reductions take 1-D DSDs of f32, i32 or u32 (any stride) and a scratch
/// array.
///
/// Reductions use a fixed pairwise tree of DSD ops: level 0 combines element i with element
/// i + n/2 (an odd middle element is carried), then the scratch array is folded in halves the
/// same way until one element is left. The order of operations depends only on n, so a sum is
/// bit-reproducible, and for f32 its rounding error grows like log2(n), not n.
#include <cstdint>
#include <wse/kernel.hpp>

namespace wse::kernels {

namespace elementwise_detail {
template <class D> struct MemElem;
template <class T> struct MemElem<Mem1d<T>> { using type = T; };
template <class T> struct MemElem<Mem4d<T>> { using type = T; };
}  // namespace elementwise_detail

/// The element type of a memory DSD (Mem1d<T> or Mem4d<T>).
template <class D> using mem_elem_t = typename elementwise_detail::MemElem<D>::type;

/// d[i] = v. Shape: any.
template <class PE, class D> void fill(PE& pe, const D& d, mem_elem_t<D> v) { mov(pe, d, v); }

/// d[i] = a[i]. d and a have the same length (any strides).
template <class PE, class D, class A> void copy(PE& pe, const D& d, const A& a) { mov(pe, d, a); }

/// d[i] = s * a[i]. d may be a (in place).
template <class PE, class D, class A> void scale(PE& pe, const D& d, const A& a, mem_elem_t<D> s) { mul(pe, d, a, s); }

/// y[i] += alpha * x[i]; one rounding per element for f32 (fused multiply-add).
template <class PE, class Y, class X> void axpy(PE& pe, const Y& y, mem_elem_t<Y> alpha, const X& x) {
  mac(pe, y, y, x, alpha);
}

/// y[i] = alpha * x[i] + beta * y[i] (f32: beta*y rounded, then fused alpha*x + that).
template <class PE, class Y, class X>
void axpby(PE& pe, const Y& y, mem_elem_t<Y> alpha, const X& x, mem_elem_t<Y> beta) {
  mul(pe, y, y, beta);
  mac(pe, y, y, x, alpha);
}

/// Scratch elements a reduction over `n` elements needs: ceil(n / 2), at least 1.
constexpr std::uint32_t reduce_scratch_size(std::uint32_t n) { return n < 2 ? 1u : (n + 1) / 2; }

namespace elementwise_detail {
// The DSD of elements [first, first + len) of `a` (a 1-D DSD of any stride).
template <class T> constexpr Mem1d<T> sub_range(const Mem1d<T>& a, std::uint32_t first, std::uint32_t len) {
  const std::int64_t off = std::int64_t{a.offset} + std::int64_t{first} * a.stride;
  return a.with_offset(static_cast<std::uint32_t>(off)).with_length(len);
}

// Folds scratch[0, m) in halves with `op` (op(d, a, b): d = a (+) b) until one element is
// left; returns it. Every op's destination and second source are disjoint.
template <class T, class PE, class Op> T fold(PE& pe, Array<T> scratch, std::uint32_t m, Op op) {
  const Mem1d<T> s = mem1d(scratch);
  while (m > 1) {
    const std::uint32_t h = m / 2;  // fold [m - h, m) onto [0, h); an odd middle element stays
    op(pe, s.with_length(h), s.with_length(h), sub_range(s, m - h, h));
    m -= h;
  }
  return scratch[0];
}

// First tree level of a reduction of `a` into scratch, then the fold.
template <class T, class PE, class Op> T reduce(PE& pe, const Mem1d<T>& a, Array<T> scratch, T empty, Op op) {
  const std::uint32_t n = a.length;
  if (n == 0) return empty;
  WSE_ASSERT(scratch.size() >= reduce_scratch_size(n), "reduction scratch smaller than reduce_scratch_size(n)");
  const Mem1d<T> s = mem1d(scratch);
  const std::uint32_t h = n / 2;
  if (h > 0) op(pe, s.with_length(h), sub_range(a, 0, h), sub_range(a, h, h));
  if (n % 2 != 0) mov(pe, sub_range(s, h, 1), sub_range(a, n - 1, 1));
  return fold(pe, scratch, h + n % 2, op);
}

struct AddOp {
  template <class PE, class D, class A, class B> void operator()(PE& pe, const D& d, const A& a, const B& b) const {
    add(pe, d, a, b);
  }
};
struct MaxOp {
  template <class PE, class D, class A, class B> void operator()(PE& pe, const D& d, const A& a, const B& b) const {
    max(pe, d, a, b);
  }
};
}  // namespace elementwise_detail

/// Sum of the n elements of `a`, by the fixed pairwise tree above. `scratch` holds at least
/// reduce_scratch_size(n) elements and is overwritten; `a` is only read. Returns 0 for n = 0.
template <class T, class PE> T reduce_sum(PE& pe, const Mem1d<T>& a, Array<T> scratch) {
  return elementwise_detail::reduce(pe, a, scratch, T{0}, elementwise_detail::AddOp{});
}

/// Largest element of `a` (f32: IEEE maxNum, NaNs are skipped), same tree and scratch as
/// reduce_sum. Returns `empty` for n = 0.
template <class T, class PE> T reduce_max(PE& pe, const Mem1d<T>& a, Array<T> scratch, T empty) {
  return elementwise_detail::reduce(pe, a, scratch, empty, elementwise_detail::MaxOp{});
}

/// Dot product sum_i a[i]*b[i] (a, b of equal length n): level 0 computes
/// scratch[i] = a[i]*b[i] + a[i+h]*b[i+h] (h = n/2; f32: product rounded, then fused), then the
/// reduce_sum fold. `scratch` holds at least reduce_scratch_size(n) elements.
template <class T, class PE> T dot(PE& pe, const Mem1d<T>& a, const Mem1d<T>& b, Array<T> scratch) {
  const std::uint32_t n = a.length;
  if (n == 0) return T{0};
  WSE_ASSERT(b.length == n, "dot: operands of different lengths");
  WSE_ASSERT(scratch.size() >= reduce_scratch_size(n), "dot: scratch smaller than reduce_scratch_size(n)");
  const Mem1d<T> s = mem1d(scratch);
  const std::uint32_t h = n / 2;
  if (h > 0) {
    mul(pe, s.with_length(h), elementwise_detail::sub_range(a, 0, h), elementwise_detail::sub_range(b, 0, h));
    mac(pe, s.with_length(h), s.with_length(h), elementwise_detail::sub_range(a, h, h), elementwise_detail::sub_range(b, h, h));
  }
  if (n % 2 != 0) mul(pe, elementwise_detail::sub_range(s, h, 1), elementwise_detail::sub_range(a, n - 1, 1), elementwise_detail::sub_range(b, n - 1, 1));
  return elementwise_detail::fold(pe, scratch, h + n % 2, elementwise_detail::AddOp{});
}

}  // namespace wse::kernels
