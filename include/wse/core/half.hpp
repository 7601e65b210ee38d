#pragma once
/// \file
/// 16-bit floating-point element types: wse::f16 (IEEE 754 binary16) and wse::bf16 (bfloat16,
/// the top half of a binary32). Each holds its raw bits; widening to float is exact, narrowing
/// rounds to nearest even with overflow to infinity and keeps subnormals. Freestanding,
/// constexpr, integer arithmetic only (no libm, no dependence on the FP rounding mode).
#include <cstdint>

namespace wse {

namespace detail {

/// A 16-bit binary format: 1 sign bit, then exponent and fraction. `precision` counts the
/// significand bits including the hidden one; `emin` is the exponent of the smallest normal.
struct HalfFormat {
  int precision;
  int emin;
};
inline constexpr HalfFormat f16_format{11, -14};
inline constexpr HalfFormat bf16_format{8, -126};

/// Bits of +infinity in format `f` (exponent field all ones, fraction zero).
constexpr std::uint16_t half_inf_bits(HalfFormat f) {
  return static_cast<std::uint16_t>((3 - 2 * f.emin) << (f.precision - 1));
}

/// `x` rounded once to format `f`: round to nearest, ties to even; magnitudes from the
/// midpoint above the largest finite value overflow to infinity. A NaN stays NaN with its sign
/// and top payload bits and the quiet bit set.
constexpr std::uint16_t round_to_half(double x, HalfFormat f) {
  const std::uint64_t bits = __builtin_bit_cast(std::uint64_t, x);
  const auto sign = static_cast<std::uint16_t>((bits >> 48) & 0x8000u);
  const std::uint64_t mag = bits & 0x7fffffffffffffffull;
  const int m = f.precision - 1;  // stored fraction bits
  const std::uint16_t inf = half_inf_bits(f);
  if (mag >= 0x7ff0000000000000ull) {
    if (mag == 0x7ff0000000000000ull) return static_cast<std::uint16_t>(sign | inf);
    const auto payload = static_cast<std::uint16_t>((mag >> (52 - m)) & ((1u << m) - 1));
    return static_cast<std::uint16_t>(sign | inf | (1u << (m - 1)) | payload);
  }
  if (mag == 0) return sign;
  const int biased = static_cast<int>(mag >> 52);
  std::uint64_t sig = mag & 0xfffffffffffffull;
  int e = -1022;  // exponent of a double subnormal
  if (biased != 0) {
    sig |= 1ull << 52;
    e = biased - 1023;
  }
  // value = sig * 2^(e-52); the result's quantum is 2^(max(e, emin) - m).
  const int qe = e < f.emin ? f.emin : e;
  const int shift = qe - m - (e - 52);  // low bits of sig below the quantum (>= 52 - m)
  if (shift >= 55) return sign;         // below a quarter quantum (sig < 2^53)
  std::uint64_t kept = sig >> shift;
  const std::uint64_t rem = sig & ((1ull << shift) - 1);
  const std::uint64_t half = 1ull << (shift - 1);
  if (rem > half || (rem == half && (kept & 1u) != 0)) ++kept;
  // Subnormal results (qe == emin, exponent field 0) and normal ones share this encoding; a
  // carry out of the fraction steps the exponent, up to infinity.
  const std::uint64_t enc = (static_cast<std::uint64_t>(qe - f.emin) << m) + kept;
  if (enc >= inf) return static_cast<std::uint16_t>(sign | inf);
  return static_cast<std::uint16_t>(sign | enc);
}

/// Value of binary16 bits as float bits, exactly (NaN payloads kept bit for bit).
constexpr std::uint32_t f16_to_f32_bits(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t frac = h & 0x3ffu;
  if (exp == 0x1f) return sign | 0x7f800000u | (frac << 13);
  if (exp != 0) return sign | ((exp + 127 - 15) << 23) | (frac << 13);
  if (frac == 0) return sign;
  int e = -14;  // subnormal: normalize the fraction (float's range covers 2^-24)
  while ((frac & 0x400u) == 0) {
    frac <<= 1;
    --e;
  }
  return sign | (static_cast<std::uint32_t>(e + 127) << 23) | ((frac & 0x3ffu) << 13);
}

}  // namespace detail

/// IEEE 754 binary16: 1 sign, 5 exponent, 10 fraction bits; largest finite 65504, smallest
/// subnormal 2^-24. A trivial type; == compares bits (so +0 != -0 and a NaN equals itself).
struct f16 {
  std::uint16_t bits;  // no initializer: a trivial type, like the integers (f16{} is +0)

  static constexpr f16 from_bits(std::uint16_t b) { return f16{b}; }
  /// `x` rounded to nearest even (65520 and above overflow to infinity); NaN stays NaN, quieted.
  static constexpr f16 from_float(float x) { return from_bits(detail::round_to_half(static_cast<double>(x), detail::f16_format)); }
  /// `x` rounded once to nearest even, as from_float.
  static constexpr f16 from_double(double x) { return from_bits(detail::round_to_half(x, detail::f16_format)); }
  /// The value as a float, exactly.
  constexpr float to_float() const { return __builtin_bit_cast(float, detail::f16_to_f32_bits(bits)); }

  friend constexpr bool operator==(const f16&, const f16&) = default;
};

/// bfloat16: the top 16 bits of a binary32 (1 sign, 8 exponent, 7 fraction bits), so float's
/// range with 8 significant bits. A trivial type; == compares bits.
struct bf16 {
  std::uint16_t bits;  // no initializer: a trivial type, like the integers (bf16{} is +0)

  static constexpr bf16 from_bits(std::uint16_t b) { return bf16{b}; }
  /// `x` rounded to nearest even (not truncated); NaN stays NaN, quieted.
  static constexpr bf16 from_float(float x) { return from_bits(detail::round_to_half(static_cast<double>(x), detail::bf16_format)); }
  /// `x` rounded once to nearest even, as from_float.
  static constexpr bf16 from_double(double x) { return from_bits(detail::round_to_half(x, detail::bf16_format)); }
  /// The value as a float, exactly.
  constexpr float to_float() const { return __builtin_bit_cast(float, static_cast<std::uint32_t>(bits) << 16); }

  friend constexpr bool operator==(const bf16&, const bf16&) = default;
};

static_assert(sizeof(f16) == 2 && sizeof(bf16) == 2, "f16 and bf16 are 16-bit");
static_assert(__is_trivial(f16) && __is_trivial(bf16), "f16 and bf16 copy like integers (memcpy, wavelets)");

}  // namespace wse
