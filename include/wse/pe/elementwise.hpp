#pragma once
/// \file
/// The per-element semantics of every DSD op, in one place, freestanding: operand addressing,
/// bounds, raw loads and stores, and the result of one element of each op (docs/ops.md).
/// Every backend executes ops through these functions (the emulator's scalar reference in
/// emu/dsd_exec.hpp, the bare-metal port in target/), so their results are bit-identical.
/// Backend code, not kernel API. No libm: only compiler builtins and integer/IEEE arithmetic.
#include <bit>
#include <cstdint>
#include <limits>

#include "dsd.hpp"
#include "ops.hpp"

namespace wse::elementwise {

/// Element offset (in elements from base) of element `i` of a memory operand; i0 fastest.
constexpr std::int64_t element_offset(const Operand& o, std::uint32_t i) {
  std::int64_t off = o.offset;
  if (i == 0) return off;  // the first element of every run: no divisions
  for (int k = 0; k < 4; ++k) {
    const std::uint32_t d = o.dims[k] == 0 ? 1 : o.dims[k];
    off += static_cast<std::int64_t>(i % d) * o.strides[k];
    i /= d;
  }
  return off;
}

/// Lowest and highest element a memory operand touches (both `offset` when it is empty).
struct AccessRange {
  std::int64_t lo = 0, hi = 0;
};
constexpr AccessRange access_range(const Operand& o) {
  AccessRange r{o.offset, o.offset};
  if (o.dims[1] <= 1 && o.dims[2] <= 1 && o.dims[3] <= 1) {  // 1-D, the common case: one span
    const std::int64_t span = static_cast<std::int64_t>(o.dims[0] == 0 ? 0 : o.dims[0] - 1) * o.strides[0];
    (span < 0 ? r.lo : r.hi) += span;
    return r;
  }
  for (int k = 0; k < 4; ++k) {
    const std::int64_t span = static_cast<std::int64_t>(o.dims[k] == 0 ? 0 : o.dims[k] - 1) * o.strides[k];
    if (span < 0) r.lo += span; else r.hi += span;
  }
  return r;
}
/// True when every element of `o` lies inside its array (always true for non-memory operands).
constexpr bool within_bounds(const Operand& o) {
  if (o.kind != OperandKind::mem || o.length() == 0) return true;
  const AccessRange r = access_range(o);
  return r.lo >= 0 && r.hi < static_cast<std::int64_t>(o.extent);
}

/// Loads element `i` of a memory operand as raw bits (16-bit types zero-extended).
inline std::uint32_t load(const Operand& o, std::uint32_t i) {
  const std::int64_t off = element_offset(o, i);
  if (elem_size(o.type) == 2) {
    std::uint16_t v;
    __builtin_memcpy(&v, static_cast<const unsigned char*>(o.base) + off * 2, 2);
    return v;
  }
  std::uint32_t v;
  __builtin_memcpy(&v, static_cast<const unsigned char*>(o.base) + off * 4, 4);
  return v;
}

/// Stores raw bits into element `i` of a memory operand (16-bit types take the low half).
inline void store(const Operand& o, std::uint32_t i, std::uint32_t bits) {
  const std::int64_t off = element_offset(o, i);
  if (elem_size(o.type) == 2) {
    const auto v = static_cast<std::uint16_t>(bits);
    __builtin_memcpy(static_cast<unsigned char*>(o.base) + off * 2, &v, 2);
    return;
  }
  __builtin_memcpy(static_cast<unsigned char*>(o.base) + off * 4, &bits, 4);
}

constexpr float as_f32(std::uint32_t b) { return std::bit_cast<float>(b); }
constexpr std::uint32_t bits_of(float f) { return std::bit_cast<std::uint32_t>(f); }

/// Value of raw bits of type `t` as a signed 64-bit integer (for integer ops and cvt).
constexpr std::int64_t as_int(ElemType t, std::uint32_t b) {
  switch (t) {
    case ElemType::i16: return static_cast<std::int16_t>(static_cast<std::uint16_t>(b));
    case ElemType::u16: return static_cast<std::uint16_t>(b);
    case ElemType::i32: return static_cast<std::int32_t>(b);
    default: return b;
  }
}

/// Raw bits of type `t` holding integer `v` (wrapped to the width).
constexpr std::uint32_t from_int(ElemType t, std::int64_t v) {
  return elem_size(t) == 2 ? static_cast<std::uint32_t>(static_cast<std::uint16_t>(v)) : static_cast<std::uint32_t>(v);
}

constexpr bool is_signed(ElemType t) { return t == ElemType::i16 || t == ElemType::i32; }

/// `x` rounded to an integer, ties to even (IEEE roundTiesToEven; what nearbyint does in the
/// default rounding mode). Floats of magnitude >= 2^23 are integers already; below, adding
/// and subtracting 2^23 leaves exactly the rounded value. Needs float arithmetic in float
/// precision (FLT_EVAL_METHOD 0) in round-to-nearest, as IEEE targets have by default.
constexpr float round_half_even(float x) {
  if (!(x < 0x1p23f && x > -0x1p23f) || x == 0) return x;  // |x| >= 2^23, zeros, infinities, NaN
  const float m = x < 0 ? -x : x;
  const float r = (m + 0x1p23f) - 0x1p23f;
  return x < 0 ? -r : r;
}

/// p + a rounded to odd in binary64 (round to nearest, then TwoSum's exact error says whether
/// to step to the odd neighbour). Rounding that once more to a format of at most 51 bits gives
/// the correctly rounded p + a (Boldo & Melquiond, 2008). Infinities and NaN as IEEE adds them.
inline double sum_round_to_odd(double p, double a) {
  static_assert(std::numeric_limits<double>::is_iec559 && std::numeric_limits<double>::digits == 53,
                "the fused ops need IEEE binary64 doubles");
  static_assert(__FLT_EVAL_METHOD__ == 0, "the fused ops need double arithmetic without excess precision");
  const double s = p + a;
  if (!(s - s == 0.0)) return s;  // infinity or NaN
  const double bp = s - a, ba = s - bp;
  const double err = (p - bp) + (a - ba);  // p + a == s + err exactly (TwoSum)
  std::uint64_t bits = std::bit_cast<std::uint64_t>(s);
  if (err != 0.0 && (bits & 1u) == 0) {  // inexact with an even last bit: step to the odd neighbour
    const bool away = (err > 0.0) == (s > 0.0);
    bits = away ? bits + 1 : bits - 1;
  }
  return std::bit_cast<double>(bits);
}

/// b * c + a with one rounding (IEEE fusedMultiplyAdd, round to nearest even) computed in
/// binary64, for targets without a fused instruction or a correctly rounded fmaf: the product
/// of two floats is exact in double (48 bits) and the sum is rounded to odd at 53 >= 26 bits.
inline float fma_f32_binary64(float b, float c, float a) {
  return static_cast<float>(sum_round_to_odd(static_cast<double>(b) * static_cast<double>(c), a));
}

/// b * c + a with one rounding. Uses the compiler's fused instruction (__FP_FAST_FMAF) or
/// glibc's fmaf, both correctly rounded; elsewhere fma_f32_binary64, because a libm fmaf may
/// round twice (newlib's computes in double: fmaf(1+2^-12, 1+2^-12, 2^-60) gives 0x3f801000,
/// the correctly rounded result is 0x3f801001).
inline float fma_f32(float b, float c, float a) {
#if defined(__FP_FAST_FMAF) || defined(__GLIBC__)
  return __builtin_fmaf(b, c, a);
#else
  return fma_f32_binary64(b, c, a);
#endif
}

// ---- f16 and bf16 ------------------------------------------------------------------------

constexpr detail::HalfFormat half_format(ElemType t) {
  return t == ElemType::f16 ? detail::f16_format : detail::bf16_format;
}
/// Value of f16 or bf16 bits as a float, exactly (NaN payloads kept).
constexpr float half_to_f32(ElemType t, std::uint32_t b) {
  const auto h = static_cast<std::uint16_t>(b);
  return t == ElemType::f16 ? f16::from_bits(h).to_float() : bf16::from_bits(h).to_float();
}
/// `x` rounded once to f16 or bf16 (round to nearest even, overflow to infinity).
constexpr std::uint32_t round_to(ElemType t, double x) { return detail::round_to_half(x, half_format(t)); }

/// Converts bits of type `from` to type `to`. A float (f32, f16, bf16) -> integer rounds to
/// nearest even and saturates (NaN -> 0); integer -> integer wraps; to f32, f16 or bf16 rounds
/// to nearest even (f16/bf16 -> f32 is exact); a NaN stays NaN with its payload, quieted.
constexpr std::uint32_t convert(ElemType to, ElemType from, std::uint32_t b) {
  if (to == from) return b;
  if (is_float_type(from)) {
    const float f = from == ElemType::f32 ? as_f32(b) : half_to_f32(from, b);
    if (to == ElemType::f32) return __builtin_isnan(f) ? bits_of(f) | 0x00400000u : bits_of(f);
    if (to == ElemType::f16 || to == ElemType::bf16) return round_to(to, f);
    if (__builtin_isnan(f)) return 0;
    double lo, hi;
    switch (to) {
      case ElemType::i16: lo = -32768.0; hi = 32767.0; break;
      case ElemType::u16: lo = 0.0; hi = 65535.0; break;
      case ElemType::i32: lo = -2147483648.0; hi = 2147483647.0; break;
      default: lo = 0.0; hi = 4294967295.0; break;
    }
    const double r = round_half_even(f);
    const double c = r < lo ? lo : r > hi ? hi : r;
    return from_int(to, static_cast<std::int64_t>(c));
  }
  const std::int64_t v = as_int(from, b);
  if (to == ElemType::f32) return bits_of(static_cast<float>(v));
  if (to == ElemType::f16 || to == ElemType::bf16) return round_to(to, static_cast<double>(v));  // v exact in double
  return from_int(to, v);
}

/// The one NaN fp32 arithmetic (add, sub, mul, mac) returns: hosts differ in which NaN
/// payload they propagate (x86's default NaN is negative, ARM's positive), so wse makes every
/// NaN result this quiet NaN and stays bit-identical across hosts and SIMD widths.
inline constexpr std::uint32_t canonical_nan_bits = 0x7fc00000u;
constexpr std::uint32_t arith_result(float r) { return __builtin_isnan(r) ? canonical_nan_bits : bits_of(r); }

/// The one NaN f16 and bf16 arithmetic returns, for the same reason.
inline constexpr std::uint32_t canonical_nan_f16_bits = 0x7e00u;
inline constexpr std::uint32_t canonical_nan_bf16_bits = 0x7fc0u;
constexpr std::uint32_t half_arith_result(ElemType t, double r) {
  if (__builtin_isnan(r)) return t == ElemType::f16 ? canonical_nan_f16_bits : canonical_nan_bf16_bits;
  return round_to(t, r);
}

/// One element of `op` on f16 or bf16 operands, rounded to that type. Operands widen exactly
/// to double, where f16 sums and all f16/bf16 products are exact and a bf16 sum is rounded at
/// 53 >= 2*8+2 bits (harmless before rounding to 8 bits): each result is rounded once to the
/// 16-bit format, as arithmetic in that format rounds. mac rounds the exact product plus `a`
/// to odd first, so it too rounds once.
inline std::uint32_t compute_half(DsdOpCode op, ElemType t, std::uint32_t a, std::uint32_t b, std::uint32_t c) {
  const double x = half_to_f32(t, a), y = half_to_f32(t, b);
  switch (op) {
    case DsdOpCode::add: return half_arith_result(t, x + y);
    case DsdOpCode::sub: return half_arith_result(t, x - y);
    case DsdOpCode::mul: return half_arith_result(t, x * y);
    case DsdOpCode::mac: return half_arith_result(t, sum_round_to_odd(y * static_cast<double>(half_to_f32(t, c)), x));
    // As for f32: a NaN operand yields the other; of two equal operands the first.
    case DsdOpCode::max: return __builtin_isnan(x) ? b : __builtin_isnan(y) ? a : x >= y ? a : b;
    case DsdOpCode::min: return __builtin_isnan(x) ? b : __builtin_isnan(y) ? a : x <= y ? a : b;
    case DsdOpCode::neg: return (a ^ 0x8000u) & 0xffffu;
    case DsdOpCode::abs: return a & 0x7fffu;
    default: return 0;  // bitwise ops on floats are rejected at compile time
  }
}

/// The mixed-precision mac, a (f32) + b * c (f16): the f16 product is exact in float, so one
/// float add is the fused result, rounded once to f32.
inline std::uint32_t compute_mixed_mac(std::uint32_t a, std::uint32_t b, std::uint32_t c) {
  const float p = half_to_f32(ElemType::f16, b) * half_to_f32(ElemType::f16, c);
  return arith_result(as_f32(a) + p);
}

/// One element of `op` with destination type `t`. Sources are in type t except cvt's (in
/// `a_type`) and the mixed mac's b and c (`b_type` f16, destination f32). Returns the result bits.
inline std::uint32_t compute(DsdOpCode op, ElemType t, ElemType a_type, ElemType b_type, std::uint32_t a,
                             std::uint32_t b, std::uint32_t c) {
  if (op == DsdOpCode::mov) return a;
  if (op == DsdOpCode::cvt) return convert(t, a_type, a);
  if (t == ElemType::f16 || t == ElemType::bf16) return compute_half(op, t, a, b, c);
  if (t == ElemType::f32 && op == DsdOpCode::mac && b_type == ElemType::f16) return compute_mixed_mac(a, b, c);
  if (t == ElemType::f32) {
    const float x = as_f32(a), y = as_f32(b);
    switch (op) {
      case DsdOpCode::add: return arith_result(x + y);
      case DsdOpCode::sub: return arith_result(x - y);
      case DsdOpCode::mul: return arith_result(x * y);
      case DsdOpCode::mac: return arith_result(fma_f32(y, as_f32(c), x));
      // maxNum/minNum as docs/ops.md states: a NaN operand (quiet or signaling) yields the
      // other. Of two equal operands (+0 and -0) the first is returned, as glibc's fmaxf does.
      case DsdOpCode::max: return __builtin_isnan(x) ? b : __builtin_isnan(y) ? a : x >= y ? a : b;
      case DsdOpCode::min: return __builtin_isnan(x) ? b : __builtin_isnan(y) ? a : x <= y ? a : b;
      case DsdOpCode::neg: return a ^ 0x80000000u;
      case DsdOpCode::abs: return a & 0x7fffffffu;
      default: return 0;  // bitwise ops on floats are rejected at compile time
    }
  }
  const unsigned width = elem_size(t) * 8;
  const std::int64_t x = as_int(t, a), y = as_int(t, b);
  const std::uint64_t ux = a, uy = b;
  switch (op) {
    case DsdOpCode::add: return from_int(t, x + y);
    case DsdOpCode::sub: return from_int(t, x - y);
    case DsdOpCode::mul: return from_int(t, static_cast<std::int64_t>(ux * uy));
    case DsdOpCode::mac: return from_int(t, static_cast<std::int64_t>(ux + uy * c));
    case DsdOpCode::max: return from_int(t, x > y ? x : y);
    case DsdOpCode::min: return from_int(t, x < y ? x : y);
    case DsdOpCode::neg: return from_int(t, -x);
    case DsdOpCode::abs: return from_int(t, x < 0 ? -x : x);
    case DsdOpCode::band: return a & b;
    case DsdOpCode::bor: return a | b;
    case DsdOpCode::bxor: return a ^ b;
    case DsdOpCode::shl: return from_int(t, static_cast<std::int64_t>(ux << (b % width)));
    case DsdOpCode::shr:
      return is_signed(t) ? from_int(t, x >> (b % width)) : from_int(t, static_cast<std::int64_t>(ux >> (b % width)));
    default: return 0;
  }
}

/// One element of instruction `ins` from its source values (raw bits; 16-bit types in the low half).
inline std::uint32_t compute(const DsdInstr& ins, std::uint32_t a, std::uint32_t b, std::uint32_t c) {
  return compute(ins.op, ins.dst.type, ins.a.type, ins.b.type, a, b, c);
}

/// Number of source operands `op` reads.
constexpr int source_count(DsdOpCode op) {
  switch (op) {
    case DsdOpCode::mov: case DsdOpCode::neg: case DsdOpCode::abs: case DsdOpCode::cvt: return 1;
    case DsdOpCode::mac: return 3;
    default: return 2;
  }
}

}  // namespace wse::elementwise
