#pragma once
/// \file
/// Scalar reference semantics of every DSD op on one element, operand addressing and bounds
/// checks. The emulator's DSD engine is built from these. Emulator internal.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "../pe/ops.hpp"

namespace wse::emu::detail {

/// Element offset (in elements from base) of element `i` of a memory operand; i0 fastest.
inline std::int64_t element_offset(const Operand& o, std::uint32_t i) {
  std::int64_t off = o.offset;
  for (int k = 0; k < 4; ++k) {
    const std::uint32_t d = o.dims[k] == 0 ? 1 : o.dims[k];
    off += static_cast<std::int64_t>(i % d) * o.strides[k];
    i /= d;
  }
  return off;
}

/// Checks that every element of memory operand `o` lies inside its array. On failure
/// returns false and fills `why` with the accessed range and the array size.
inline bool within_bounds(const Operand& o, std::string& why) {
  if (o.kind != OperandKind::mem || o.length() == 0) return true;
  std::int64_t lo = o.offset, hi = o.offset;
  for (int k = 0; k < 4; ++k) {
    const std::int64_t span = static_cast<std::int64_t>(o.dims[k] - 1) * o.strides[k];
    if (span < 0) lo += span; else hi += span;
  }
  if (lo >= 0 && hi < static_cast<std::int64_t>(o.extent)) return true;
  why = "accesses elements " + std::to_string(lo) + ".." + std::to_string(hi) + " of an array of " +
        std::to_string(o.extent) + " " + elem_name(o.type) + " (allowed 0.." +
        std::to_string(static_cast<std::int64_t>(o.extent) - 1) + ")";
  return false;
}

/// Loads element `i` of a memory operand as raw bits (16-bit types zero-extended).
inline std::uint32_t load(const Operand& o, std::uint32_t i) {
  const std::int64_t off = element_offset(o, i);
  if (elem_size(o.type) == 2) {
    std::uint16_t v;
    std::memcpy(&v, static_cast<const unsigned char*>(o.base) + off * 2, 2);
    return v;
  }
  std::uint32_t v;
  std::memcpy(&v, static_cast<const unsigned char*>(o.base) + off * 4, 4);
  return v;
}

/// Stores raw bits into element `i` of a memory operand (16-bit types take the low half).
inline void store(const Operand& o, std::uint32_t i, std::uint32_t bits) {
  const std::int64_t off = element_offset(o, i);
  if (elem_size(o.type) == 2) {
    const auto v = static_cast<std::uint16_t>(bits);
    std::memcpy(static_cast<unsigned char*>(o.base) + off * 2, &v, 2);
    return;
  }
  std::memcpy(static_cast<unsigned char*>(o.base) + off * 4, &bits, 4);
}

inline float as_f32(std::uint32_t b) { return std::bit_cast<float>(b); }
inline std::uint32_t bits_of(float f) { return std::bit_cast<std::uint32_t>(f); }

/// Value of raw bits of type `t` as a signed 64-bit integer (for integer ops and cvt).
inline std::int64_t as_int(ElemType t, std::uint32_t b) {
  switch (t) {
    case ElemType::i16: return static_cast<std::int16_t>(static_cast<std::uint16_t>(b));
    case ElemType::u16: return static_cast<std::uint16_t>(b);
    case ElemType::i32: return static_cast<std::int32_t>(b);
    default: return b;
  }
}

/// Raw bits of type `t` holding integer `v` (wrapped to the width).
inline std::uint32_t from_int(ElemType t, std::int64_t v) {
  return elem_size(t) == 2 ? static_cast<std::uint32_t>(static_cast<std::uint16_t>(v)) : static_cast<std::uint32_t>(v);
}

inline bool is_signed(ElemType t) { return t == ElemType::i16 || t == ElemType::i32; }

/// Converts bits of type `from` to type `to`. f32 -> integer rounds to nearest even and
/// saturates (NaN -> 0); integer -> integer wraps; integer -> f32 rounds to nearest even.
inline std::uint32_t convert(ElemType to, ElemType from, std::uint32_t b) {
  if (to == from) return b;
  if (from == ElemType::f32) {
    const double f = as_f32(b);
    if (std::isnan(f)) return 0;
    double lo, hi;
    switch (to) {
      case ElemType::i16: lo = -32768.0; hi = 32767.0; break;
      case ElemType::u16: lo = 0.0; hi = 65535.0; break;
      case ElemType::i32: lo = -2147483648.0; hi = 2147483647.0; break;
      default: lo = 0.0; hi = 4294967295.0; break;
    }
    const double r = std::nearbyint(f);
    const double c = r < lo ? lo : r > hi ? hi : r;
    return from_int(to, static_cast<std::int64_t>(c));
  }
  const std::int64_t v = as_int(from, b);
  if (to == ElemType::f32) return bits_of(static_cast<float>(v));
  return from_int(to, v);
}

/// One element of `op` in type `t` (sources already in type t, except cvt whose source is
/// in `src_type`). Returns the result bits.
inline std::uint32_t compute(DsdOpCode op, ElemType t, ElemType src_type, std::uint32_t a, std::uint32_t b,
                             std::uint32_t c) {
  if (op == DsdOpCode::mov) return a;
  if (op == DsdOpCode::cvt) return convert(t, src_type, a);
  if (t == ElemType::f32) {
    const float x = as_f32(a), y = as_f32(b);
    switch (op) {
      case DsdOpCode::add: return bits_of(x + y);
      case DsdOpCode::sub: return bits_of(x - y);
      case DsdOpCode::mul: return bits_of(x * y);
      case DsdOpCode::mac: return bits_of(std::fma(y, as_f32(c), x));
      // maxNum/minNum as docs/ops.md states: a NaN operand (quiet or signaling) yields the
      // other. std::fmax alone returns NaN for a signaling NaN on glibc.
      case DsdOpCode::max: return std::isnan(x) ? b : std::isnan(y) ? a : bits_of(std::fmax(x, y));
      case DsdOpCode::min: return std::isnan(x) ? b : std::isnan(y) ? a : bits_of(std::fmin(x, y));
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

/// Number of source operands `op` reads.
constexpr int source_count(DsdOpCode op) {
  switch (op) {
    case DsdOpCode::mov: case DsdOpCode::neg: case DsdOpCode::abs: case DsdOpCode::cvt: return 1;
    case DsdOpCode::mac: return 3;
    default: return 2;
  }
}

}  // namespace wse::emu::detail
