#pragma once
/// \file
/// The emulator's SIMD DSD engine: memory-only ops whose operands are contiguous runs run on
/// Highway vectors, chosen at run time for the best instruction set of the host (dynamic
/// dispatch), or for the compile-time target in the single-header edition. f16 and bf16 lanes
/// widen to f32 (bf16 mac to f64) and round back exactly as the reference does. Everything
/// else, and every target that cannot reproduce the scalar reference bit for bit (f32 mac
/// without a fused multiply-add, bf16 mac without f64 lanes), falls back to
/// pe/elementwise.hpp. Emulator internal; hosted.
///
/// Define WSE_SIMD_STATIC_DISPATCH to compile only the target the compiler flags select (no
/// libhwy needed at link time; used for cross builds and by the single header).
#include <cstddef>
#include <cstdint>

#include "../pe/elementwise.hpp"
#include "../pe/ops.hpp"

namespace wse::emu::simd {
/// One contiguous run for a SIMD kernel: n elements at d; each source is an array, or a
/// scalar (null pointer, value in the matching s*). f16 and bf16 runs hold raw bits
/// (T = std::uint16_t); the mixed mac has f32 d and a, f16 b and c (U = std::uint16_t).
/// Shared by every Highway target.
template <class T, class U = T> struct Run {
  T* d;
  const T* a;
  const U* b;
  const U* c;
  T sa;
  U sb, sc;
  std::size_t n;
};
}  // namespace wse::emu::simd

#if defined(WSE_HAVE_HIGHWAY) && __has_include(<hwy/highway.h>)
#define WSE_DETAIL_SIMD 1
#if defined(WSE_DETAIL_SINGLE_HEADER) || defined(WSE_SIMD_STATIC_DISPATCH)
#include <hwy/highway.h>
#include "simd_dsd-inl.hpp"
#else
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "wse/emu/simd_dsd-inl.hpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <wse/emu/simd_dsd-inl.hpp>  // the static target (angle brackets: not inlined by tools/amalgamate.py)
#endif
#endif

namespace wse::emu::simd {

#if defined(WSE_DETAIL_SIMD)
#if defined(WSE_DETAIL_SINGLE_HEADER) || defined(WSE_SIMD_STATIC_DISPATCH)
#define WSE_DETAIL_SIMD_CALL(fn) HWY_STATIC_DISPATCH(fn)
#else
HWY_EXPORT(RunF32);
HWY_EXPORT(RunI32);
HWY_EXPORT(RunU32);
HWY_EXPORT(RunI16);
HWY_EXPORT(RunU16);
HWY_EXPORT(RunF16);
HWY_EXPORT(RunBF16);
HWY_EXPORT(RunMixedMac);
HWY_EXPORT(TargetNameHere);
#define WSE_DETAIL_SIMD_CALL(fn) HWY_DYNAMIC_DISPATCH(fn)
#endif
#endif

/// Name of the instruction set the SIMD engine uses on this host ("AVX2", "NEON", ...), or
/// "scalar" when the emulator was built without Highway. Host code.
inline const char* target_name() {
#if defined(WSE_DETAIL_SIMD)
  return WSE_DETAIL_SIMD_CALL(TargetNameHere)();
#else
  return "scalar";
#endif
}

namespace detail {

// The byte range a memory operand touches.
inline void byte_range(const Operand& o, const unsigned char*& lo, const unsigned char*& hi) {
  const elementwise::AccessRange r = elementwise::access_range(o);
  const auto* base = static_cast<const unsigned char*>(o.base);
  lo = base + r.lo * elem_size(o.type);
  hi = base + (r.hi + 1) * elem_size(o.type);
}

// Same element layout: same base, offset, dims and strides.
inline bool same_layout(const Operand& x, const Operand& y) {
  if (x.base != y.base || x.offset != y.offset) return false;
  for (int k = 0; k < 4; ++k)
    if (x.dims[k] != y.dims[k] || x.strides[k] != y.strides[k]) return false;
  return true;
}

// One contiguous 1-D run (or a single element): the common case, whose elements are
// base[offset .. offset + length).
inline bool flat_run(const Operand& o) {
  return o.dims[1] <= 1 && o.dims[2] <= 1 && o.dims[3] <= 1 && (o.strides[0] == 1 || o.dims[0] <= 1);
}

// True when every memory operand of `ins` is a flat run of `length` elements of the
// destination's type (sources may be scalars) and no source overlaps the destination unless
// it is the destination itself: then one Run covers the op (no per-row address arithmetic).
inline bool all_flat(const DsdInstr& ins, const Operand* const* srcs, int nsrc, std::uint32_t length) {
  const Operand& dst = ins.dst;
  if (!flat_run(dst)) return false;
  const std::size_t size = elem_size(dst.type);
  const auto* dlo = static_cast<const unsigned char*>(dst.base) + std::size_t(dst.offset) * size;
  const auto* dhi = dlo + std::size_t(length) * size;
  for (int k = 0; k < nsrc; ++k) {
    const Operand& s = *srcs[k];
    if (s.kind == OperandKind::scalar) continue;
    if (s.kind != OperandKind::mem || s.type != dst.type || s.length() != length || !flat_run(s)) return false;
    const auto* lo = static_cast<const unsigned char*>(s.base) + std::size_t(s.offset) * size;
    if (lo != dlo && lo < dhi && dlo < lo + std::size_t(length) * size) return false;  // partial overlap: scalar order
  }
  return true;
}

}  // namespace detail

/// Runs memory-only `ins` over `length` elements on SIMD vectors when the destination is
/// contiguous in its innermost dimension (stride 1), every source is contiguous there or
/// repeats one value along it (stride 0: broadcast per row), and the destination either does not
/// overlap a source or has exactly its layout. Returns false, doing nothing, otherwise: the
/// caller then runs the scalar reference. Results are bit-identical to the reference.
inline bool try_execute(const DsdInstr& ins, std::uint32_t length) {
#if defined(WSE_DETAIL_SIMD)
  if (length == 0 || ins.op == DsdOpCode::cvt || ins.dst.kind != OperandKind::mem) return false;
  const Operand* srcs[3] = {&ins.a, &ins.b, &ins.c};
  const int nsrc = elementwise::source_count(ins.op);
  const Operand& dst = ins.dst;
  // f32 d = a + b * c with f16 b and c (pe/elementwise.hpp compute_mixed_mac).
  const bool mixed = ins.op == DsdOpCode::mac && dst.type == ElemType::f32 && ins.b.type == ElemType::f16;
  if (mixed && ins.c.type != ElemType::f16) return false;
  const bool flat = !mixed && detail::all_flat(ins, srcs, nsrc, length);
  if (!flat && dst.strides[0] != 1 && dst.dims[0] != 1) return false;
  const unsigned char *dlo = nullptr, *dhi = nullptr;
  if (!flat) detail::byte_range(dst, dlo, dhi);
  for (int k = 0; k < nsrc && !flat; ++k) {
    const Operand& s = *srcs[k];
    if (s.kind == OperandKind::scalar) continue;
    if (s.kind != OperandKind::mem || s.type != (mixed && k > 0 ? ElemType::f16 : dst.type)) return false;
    // Inner stride 1: a vector per row; inner stride 0: one value per row, broadcast.
    if (s.strides[0] != 1 && s.strides[0] != 0 && s.dims[0] != 1) return false;
    for (int j = 0; j < 4; ++j)
      if (s.dims[j] != dst.dims[j]) return false;  // same shape, so runs line up
    const unsigned char *lo, *hi;
    detail::byte_range(s, lo, hi);
    // Element-order semantics: a destination that partly overlaps a source (or aliases one of
    // another element size, in the mixed mac) must go scalar.
    if (lo < dhi && dlo < hi && !(s.type == dst.type && detail::same_layout(s, dst))) return false;
  }
  // Walk the outer dimensions; each inner row of dims[0] elements is one contiguous run.
  const std::uint32_t inner = flat ? length : dst.dims[0];
  const std::uint32_t outer = flat ? 1 : length / (inner ? inner : 1);
  // Source a is of lane type T, b and c of U (U = T except for the mixed mac).
  auto run_rows = [&](auto tag_t, auto tag_u, auto fn) -> bool {
    using T = decltype(tag_t);
    using U = decltype(tag_u);
    for (std::uint32_t row = 0; row < outer; ++row) {
      const std::uint32_t first = row * inner;  // flat index of this row's first element
      Run<T, U> r{};
      r.n = inner;
      r.d = static_cast<T*>(dst.base) + (flat ? std::int64_t(dst.offset) : elementwise::element_offset(dst, first));
      auto source = [&]<class X>(int k, const X*& p, X& value) {
        const Operand& s = *srcs[k];
        p = nullptr;
        if (s.kind == OperandKind::scalar) {
          const auto bits = s.scalar_bits;  // 16-bit types: the low half
          if constexpr (sizeof(X) == 4) value = __builtin_bit_cast(X, bits);
          else value = __builtin_bit_cast(X, static_cast<std::uint16_t>(bits));
        } else if (s.strides[0] == 0 && inner > 1) {
          value = static_cast<const X*>(s.base)[elementwise::element_offset(s, first)];
        } else {
          p = static_cast<const X*>(s.base) + (flat ? std::int64_t(s.offset) : elementwise::element_offset(s, first));
        }
      };
      if (nsrc > 0) source(0, r.a, r.sa);
      if (nsrc > 1) source(1, r.b, r.sb);
      if (nsrc > 2) source(2, r.c, r.sc);
      if (!fn(ins.op, r)) return false;
    }
    return true;
  };
  using std::uint16_t;
  switch (dst.type) {
    case ElemType::f32:
      if (mixed)
        return run_rows(float{}, uint16_t{}, [](DsdOpCode, const auto& r) { return WSE_DETAIL_SIMD_CALL(RunMixedMac)(r); });
      // A declined op (mac without FMA) declines on the first row, before any store.
      return run_rows(float{}, float{}, [](DsdOpCode op, const auto& r) { return WSE_DETAIL_SIMD_CALL(RunF32)(op, r); });
    case ElemType::i32:
      return run_rows(std::int32_t{}, std::int32_t{}, [](DsdOpCode op, const auto& r) { return WSE_DETAIL_SIMD_CALL(RunI32)(op, r); });
    case ElemType::u32:
      return run_rows(std::uint32_t{}, std::uint32_t{}, [](DsdOpCode op, const auto& r) { return WSE_DETAIL_SIMD_CALL(RunU32)(op, r); });
    case ElemType::i16:
      return run_rows(std::int16_t{}, std::int16_t{}, [](DsdOpCode op, const auto& r) { return WSE_DETAIL_SIMD_CALL(RunI16)(op, r); });
    case ElemType::u16:
      return run_rows(uint16_t{}, uint16_t{}, [](DsdOpCode op, const auto& r) { return WSE_DETAIL_SIMD_CALL(RunU16)(op, r); });
    case ElemType::f16:  // raw bits; a declined op (bf16 mac without f64 lanes) declines on the first row
      return run_rows(uint16_t{}, uint16_t{}, [](DsdOpCode op, const auto& r) { return WSE_DETAIL_SIMD_CALL(RunF16)(op, r); });
    case ElemType::bf16:
      return run_rows(uint16_t{}, uint16_t{}, [](DsdOpCode op, const auto& r) { return WSE_DETAIL_SIMD_CALL(RunBF16)(op, r); });
  }
  return false;
#else
  (void)ins;
  (void)length;
  return false;
#endif
}

}  // namespace wse::emu::simd
