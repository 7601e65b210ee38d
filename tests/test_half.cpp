// f16, bf16 and the mixed f16×f16+f32 mac. The reference (pe/elementwise.hpp, core/half.hpp)
// against independent expectations: known bit patterns, and an exact model (values as
// 128-bit integers times a power of two, rounded by searching the format's values for the
// nearest). The SIMD engine against the reference bit for bit, on every Highway target this
// host runs: every op, random and edge values (subnormals, signed zeros, infinities, quiet and
// signaling NaNs, ties, overflow), lengths around the vector widths, scalars, 2-D operands,
// row broadcasts, in place. And whole kernels through the emulator with SIMD on and off,
// fabric operands included.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

using namespace wse;

namespace {

constexpr std::uint32_t fbits(float x) { return std::bit_cast<std::uint32_t>(x); }

// ---- an exact model, written from the format definitions -----------------------------------

__extension__ typedef __int128 i128;  // GCC and Clang

/// A 16-bit binary float format: significand bits p (hidden bit included), exponent range.
struct Fmt {
  int p, emin, emax, ebits;
  ElemType type;
};
constexpr Fmt kF16{11, -14, 15, 5, ElemType::f16};
constexpr Fmt kBF16{8, -126, 127, 8, ElemType::bf16};

std::uint16_t inf_of(Fmt f) { return static_cast<std::uint16_t>(((1u << f.ebits) - 1) << (f.p - 1)); }
bool is_nan16(Fmt f, std::uint16_t b) { return (b & 0x7fffu) > inf_of(f); }
bool is_finite16(Fmt f, std::uint16_t b) { return (b & 0x7fffu) < inf_of(f); }

/// (-1)^neg * m * 2^e, exactly.
struct Q {
  bool neg = false;
  i128 m = 0;
  int e = 0;
};

Q value_of(Fmt f, std::uint16_t b) {
  const int fb = f.p - 1;
  const unsigned ex = (b & 0x7fffu) >> fb;
  const unsigned frac = b & ((1u << fb) - 1);
  Q q;
  q.neg = (b & 0x8000u) != 0;
  if (ex == 0) {
    q.m = frac;
    q.e = f.emin - fb;
  } else {
    q.m = frac + (1u << fb);
    q.e = static_cast<int>(ex) - f.emax - fb;  // bias = emax
  }
  return q;
}

int msb(i128 m) {  // m >= 0; -1 for 0
  const auto hi = static_cast<std::uint64_t>(m >> 64), lo = static_cast<std::uint64_t>(m);
  return hi ? 127 - __builtin_clzll(hi) : lo ? 63 - __builtin_clzll(lo) : -1;
}

/// Compares magnitudes: -1, 0, 1.
int cmp_mag(const Q& x, const Q& y) {
  if (x.m == 0 || y.m == 0) return (x.m != 0) - (y.m != 0);
  const int tx = msb(x.m) + x.e, ty = msb(y.m) + y.e;
  if (tx != ty) return tx < ty ? -1 : 1;
  i128 a = x.m, b = y.m;  // same top bit: aligning cannot overflow
  if (x.e > y.e) a <<= (x.e - y.e);
  else b <<= (y.e - x.e);
  return (a > b) - (a < b);
}

/// x + y exactly; false when the exponents are too far apart for 128 bits.
bool add_exact(const Q& x, const Q& y, Q& r) {
  if (x.m == 0) { r = y; return true; }
  if (y.m == 0) { r = x; return true; }
  const int e = std::min(x.e, y.e);
  const int sx = x.e - e, sy = y.e - e;
  if (msb(x.m) + sx > 120 || msb(y.m) + sy > 120) return false;
  const i128 a = (x.m << sx) * (x.neg ? -1 : 1), b = (y.m << sy) * (y.neg ? -1 : 1);
  const i128 s = a + b;
  r.neg = s < 0;
  r.m = s < 0 ? -s : s;
  r.e = e;
  return true;
}

Q mul_exact(const Q& x, const Q& y) { return Q{x.neg != y.neg, x.m * y.m, x.e + y.e}; }

/// The value nearest to v in format f, ties to the even encoding; from 2^(emax+1) (which
/// counts as even) on, infinity. `zero_neg` is the sign of an exact zero.
std::uint16_t round_exact(Fmt f, const Q& v, bool zero_neg) {
  if (v.m == 0) return zero_neg ? 0x8000u : 0u;
  const std::uint16_t sign = v.neg ? 0x8000u : 0u;
  const std::uint16_t inf = inf_of(f);
  const Q top{false, 1, f.emax + 1};
  if (cmp_mag(v, top) >= 0) return sign | inf;
  std::uint32_t lo = 0, hi = inf;  // |value(lo)| <= |v| < |value(hi)|, value(inf) := top
  while (hi - lo > 1) {
    const std::uint32_t mid = (lo + hi) / 2;
    if (cmp_mag(value_of(f, static_cast<std::uint16_t>(mid)), v) <= 0) lo = mid;
    else hi = mid;
  }
  Q vl = value_of(f, static_cast<std::uint16_t>(lo)), vh = hi == inf ? top : value_of(f, static_cast<std::uint16_t>(hi));
  Q sum;
  add_exact(vl, vh, sum);  // neighbours: always fits
  Q twice = v;
  twice.neg = false;
  twice.e += 1;
  const int c = cmp_mag(twice, sum);
  const std::uint32_t r = c < 0 ? lo : c > 0 ? hi : ((lo & 1u) ? hi : lo);
  return static_cast<std::uint16_t>(sign | r);
}

/// Expected f16/bf16 result of add, sub, mul or mac on finite operands from the exact model;
/// false when the model cannot hold the exact value.
bool expected_exact(Fmt f, DsdOpCode op, std::uint16_t a, std::uint16_t b, std::uint16_t c, std::uint16_t& out) {
  const Q x = value_of(f, a), y = value_of(f, b);
  Q r;
  bool zero_neg = false;
  switch (op) {
    case DsdOpCode::add:
      if (!add_exact(x, y, r)) return false;
      zero_neg = x.neg && y.neg;  // x + y == 0: -0 only for (-0) + (-0)
      break;
    case DsdOpCode::sub: {
      Q ny = y;
      ny.neg = !ny.neg;
      if (!add_exact(x, ny, r)) return false;
      zero_neg = x.neg && ny.neg;
      break;
    }
    case DsdOpCode::mul:
      r = mul_exact(x, y);
      zero_neg = r.neg;
      break;
    case DsdOpCode::mac: {
      const Q p = mul_exact(y, value_of(f, c));
      if (!add_exact(x, p, r)) return false;
      zero_neg = x.neg && p.neg && x.m == 0 && p.m == 0;
      break;
    }
    default: return false;
  }
  out = round_exact(f, r, zero_neg);
  return true;
}

std::string hex_message(DsdOpCode op, std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t got, std::uint32_t want) {
  std::ostringstream m;
  m << op_name(op) << std::hex << " a=0x" << a << " b=0x" << b << " c=0x" << c << ": got 0x" << got << ", want 0x" << want;
  return m.str();
}

std::uint32_t ref(DsdOpCode op, ElemType t, std::uint32_t a, std::uint32_t b = 0, std::uint32_t c = 0) {
  return elementwise::compute(op, t, t, t, a, b, c);
}

// ---- conversions ------------------------------------------------------------------------------

TEST_CASE("f16 conversions: known bit patterns, ties to even, overflow, subnormals, NaN") {
  struct Case {
    float x;
    std::uint16_t bits;
  };
  const Case cases[] = {
      {1.0f, 0x3c00},  {-2.0f, 0xc000},        {0.5f, 0x3800},         {65504.0f, 0x7bff},  {-65504.0f, 0xfbff},
      {65519.0f, 0x7bff}, {65519.998f, 0x7bff}, {65520.0f, 0x7c00},   {1e6f, 0x7c00},      {-1e30f, 0xfc00},
      {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000},   {0x1.000002p-25f, 0x0001}, {0x3p-25f, 0x0002},  // 1.5*2^-24 ties to 2
      {-0x1p-25f, 0x8000}, {0x1p-14f, 0x0400},  {0x1p-14f - 0x1p-25f, 0x0400},               // tie at the top subnormal
      {0x3ffp-24f, 0x03ff}, {0x1p-26f, 0x0000},
      {1.0f + 0x1p-11f, 0x3c00},   // tie: even
      {1.0f + 0x3p-11f, 0x3c02},   // tie: even (up)
      {1.0f + 0x1p-11f + 0x1p-23f, 0x3c01},  // just above the tie
      {2049.0f, 0x6800}, {2051.0f, 0x6802}, {0.0f, 0x0000}, {-0.0f, 0x8000}, {0.1f, 0x2e66}, {3.14159265f, 0x4248},
  };
  for (const Case& k : cases) {
    CAPTURE(k.x);
    CHECK(f16::from_float(k.x).bits == k.bits);
    CHECK(f16::from_double(static_cast<double>(k.x)).bits == k.bits);
  }
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(f16::from_float(inf).bits == 0x7c00);
  CHECK(f16::from_float(-inf).bits == 0xfc00);
  CHECK(f16::from_float(std::bit_cast<float>(0x7fc00000u)).bits == 0x7e00);
  CHECK(f16::from_float(std::bit_cast<float>(0x7fa00000u)).bits == 0x7f00);  // signaling: quieted, payload kept
  CHECK(f16::from_float(std::bit_cast<float>(0xff800001u)).bits == 0xfe00);  // payload below f16's: just quiet
  CHECK(f16::from_bits(0x3c00).to_float() == 1.0f);
  CHECK(f16::from_bits(0x7bff).to_float() == 65504.0f);
  CHECK(f16::from_bits(0x0001).to_float() == 0x1p-24f);
  CHECK(f16::from_bits(0x03ff).to_float() == 0x3ffp-24f);
  CHECK(fbits(f16::from_bits(0x8000).to_float()) == 0x80000000u);
  CHECK(fbits(f16::from_bits(0x7c00).to_float()) == 0x7f800000u);
  CHECK(fbits(f16::from_bits(0x7d00).to_float()) == 0x7fa00000u);  // exact: a signaling NaN stays one
  static_assert(f16::from_float(1.0f).bits == 0x3c00 && f16::from_bits(0x3c00).to_float() == 1.0f, "constexpr");
  static_assert(f16::from_bits(1) == f16::from_bits(1) && f16::from_bits(0) != f16::from_bits(0x8000));
  static_assert(std::is_trivially_copyable_v<f16> && std::is_trivially_copyable_v<bf16> && sizeof(bf16) == 2);
}

TEST_CASE("bf16 conversions: known bit patterns, ties to even (not truncation), overflow, subnormals, NaN") {
  struct Case {
    std::uint32_t x;
    std::uint16_t bits;
  };
  const Case cases[] = {
      {fbits(1.0f), 0x3f80}, {fbits(-1.0f), 0xbf80}, {0x3f808000u, 0x3f80},  // tie: even
      {0x3f818000u, 0x3f82},                                                  // tie: even (up)
      {0x3f808001u, 0x3f81}, {0x3f807fffu, 0x3f80}, {0x7f7f7fffu, 0x7f7f},   // largest finite stays
      {0x7f7f8000u, 0x7f80},                                                  // tie above the largest: infinity
      {0x7f7fffffu, 0x7f80}, {0x00008000u, 0x0000}, {0x00018000u, 0x0002}, {0x00010000u, 0x0001},
      {0x00000001u, 0x0000}, {0x80000001u, 0x8000}, {0x007fffffu, 0x0080},    // to the smallest normal
      {fbits(0.1f), 0x3dcd}, {fbits(3.14159265f), 0x4049}, {0x7f800000u, 0x7f80}, {0xff800000u, 0xff80},
      {0x7fc00000u, 0x7fc0}, {0x7fa00000u, 0x7fe0}, {0xff800001u, 0xffc0},
  };
  for (const Case& k : cases) {
    CAPTURE(k.x);
    CHECK(bf16::from_float(std::bit_cast<float>(k.x)).bits == k.bits);
  }
  CHECK(bf16::from_bits(0x3f80).to_float() == 1.0f);
  CHECK(fbits(bf16::from_bits(0x0001).to_float()) == 0x00010000u);
  static_assert(bf16::from_float(1.0f).bits == 0x3f80, "constexpr");
}

TEST_CASE("every f16 and bf16 value widens exactly and narrows back to itself") {
  for (const Fmt f : {kF16, kBF16}) {
    const std::string type = elem_name(f.type);
    CAPTURE(type);
    int bad = 0;
    for (std::uint32_t b = 0; b <= 0xffffu; ++b) {
      const auto h = static_cast<std::uint16_t>(b);
      const float x = f.type == ElemType::f16 ? f16::from_bits(h).to_float() : bf16::from_bits(h).to_float();
      const std::uint16_t back = f.type == ElemType::f16 ? f16::from_float(x).bits : bf16::from_float(x).bits;
      if (is_nan16(f, h)) {
        // NaN stays NaN with its sign and payload, quieted.
        if (!std::isnan(x) || back != (h | (1u << (f.p - 2)))) ++bad;
        continue;
      }
      if (back != h) ++bad;
      if (is_finite16(f, h)) {  // the value itself, from the format definition
        const Q q = value_of(f, h);
        const double want = std::ldexp(static_cast<double>(static_cast<std::int64_t>(q.m)), q.e) * (q.neg ? -1 : 1);
        if (std::bit_cast<std::uint64_t>(static_cast<double>(x)) != std::bit_cast<std::uint64_t>(want)) ++bad;
      }
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("float -> f16 / bf16 rounding equals the exact model around every value and midpoint") {
  std::mt19937 rng(7);
  for (const Fmt f : {kF16, kBF16}) {
    const std::string type = elem_name(f.type);
    CAPTURE(type);
    int bad = 0, checked = 0;
    auto check = [&](float x) {
      if (!std::isfinite(x)) return;
      const std::uint32_t u = fbits(x);
      // The float's exact value: (-1)^s * m * 2^e.
      const int ex = static_cast<int>((u >> 23) & 0xffu);
      Q q;
      q.neg = (u >> 31) != 0;
      q.m = ex == 0 ? (u & 0x7fffffu) : ((u & 0x7fffffu) | 0x800000u);
      q.e = (ex == 0 ? 1 : ex) - 127 - 23;
      const std::uint16_t want = round_exact(f, q, q.neg);
      const std::uint16_t got = f.type == ElemType::f16 ? f16::from_float(x).bits : bf16::from_float(x).bits;
      ++checked;
      if (got != want) {
        if (bad++ < 5) FAIL_CHECK(hex_message(DsdOpCode::cvt, u, 0, 0, got, want));
      }
    };
    for (std::uint32_t b = 0; b < inf_of(f); b += (f.type == ElemType::f16 ? 1 : 7)) {
      const float lo = f.type == ElemType::f16 ? f16::from_bits(static_cast<std::uint16_t>(b)).to_float()
                                               : bf16::from_bits(static_cast<std::uint16_t>(b)).to_float();
      const Q ql = value_of(f, static_cast<std::uint16_t>(b)), qh = value_of(f, static_cast<std::uint16_t>(b + 1));
      const double mid = (std::ldexp(static_cast<double>(static_cast<std::int64_t>(ql.m)), ql.e) +
                          (b + 1 == inf_of(f) ? std::ldexp(1.0, f.emax + 1)
                                              : std::ldexp(static_cast<double>(static_cast<std::int64_t>(qh.m)), qh.e))) / 2;
      const auto m = static_cast<float>(mid);  // exact: a midpoint has p + 1 <= 24 bits
      for (float x : {lo, std::nextafter(lo, 0.0f), std::nextafter(lo, 1e30f), m, std::nextafter(m, 0.0f), std::nextafter(m, 1e30f)}) {
        check(x);
        check(-x);
      }
    }
    for (int i = 0; i < 200000; ++i) check(std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
    MESSAGE(type, ": ", checked, " floats checked against the exact model");
    CHECK(bad == 0);
  }
}

TEST_CASE("cvt with f16 and bf16: rounding, saturation, NaN, integers") {
  using elementwise::convert;
  const auto F16 = ElemType::f16, BF16 = ElemType::bf16, F32 = ElemType::f32;
  CHECK(convert(F16, F32, fbits(65520.0f)) == 0x7c00);
  CHECK(convert(F16, F32, fbits(1.0f + 0x1p-11f)) == 0x3c00);
  CHECK(convert(F32, F16, 0x3555) == fbits(f16::from_bits(0x3555).to_float()));
  CHECK(convert(F32, F16, 0x7d00) == 0x7fe00000u);  // NaN: payload kept, quieted
  CHECK(convert(F32, BF16, 0x7fa0) == 0x7fe00000u);
  CHECK(convert(F32, BF16, 0xc049) == 0xc0490000u);
  CHECK(convert(F16, BF16, 0x3f81) == 0x3c08);       // 1 + 2^-7: exact in f16
  CHECK(convert(BF16, F16, 0x3c01) == 0x3f80);       // 1 + 2^-10 -> 1 (8 bits)
  CHECK(convert(BF16, F16, 0x7bff) == 0x4780);       // 65504 -> 65536 (ties/up to 8 bits)
  CHECK(convert(BF16, F16, 0x0001) == 0x3380);       // 2^-24: a normal bf16
  CHECK(convert(F16, BF16, 0x3380) == 0x0001);
  CHECK(convert(F16, BF16, 0x4780) == 0x7c00);       // 65536 overflows f16
  CHECK(convert(F16, ElemType::i32, 2049u) == 0x6800);   // 2049 -> 2048 (tie, even)
  CHECK(convert(F16, ElemType::i32, 2051u) == 0x6802);   // 2051 -> 2052 (tie, even)
  CHECK(convert(F16, ElemType::i32, 65519u) == 0x7bff);
  CHECK(convert(F16, ElemType::i32, 65520u) == 0x7c00);
  CHECK(convert(F16, ElemType::i16, 0x8000u) == 0xf800);  // -32768
  CHECK(convert(BF16, ElemType::u32, 0xffffffffu) == 0x4f80);  // 2^32 - 1 -> 2^32
  CHECK(convert(BF16, ElemType::i32, 0x01010001u) == 0x4b81);  // 2^24 + 2^16 + 1 -> once, not twice (via float: 0x4b80)
  CHECK(convert(F16, ElemType::u32, 0x7fffffffu) == 0x7c00);
  CHECK(convert(ElemType::i16, F16, 0x7c00) == 0x7fff);   // saturates
  CHECK(convert(ElemType::i16, F16, 0xfc00) == 0x8000);
  CHECK(convert(ElemType::i16, F16, 0x7e00) == 0);        // NaN -> 0
  CHECK(convert(ElemType::i32, F16, 0x3e00) == 2);        // 1.5 -> 2
  CHECK(convert(ElemType::i32, F16, 0x4100) == 2);        // 2.5 -> 2
  CHECK(convert(ElemType::u16, BF16, 0xbf80) == 0);       // -1 saturates to 0
  CHECK(convert(ElemType::u32, BF16, 0x4f80) == 0xffffffffu);
  CHECK(convert(ElemType::i32, BF16, 0x4b81) == 0x01020000u);
}

// ---- arithmetic reference against the exact model ---------------------------------------------

std::vector<std::uint16_t> edge_bits(ElemType t) {
  if (t == ElemType::f16)
    return {0x0000, 0x8000, 0x0001, 0x8001, 0x0002, 0x03ff, 0x83ff, 0x0400, 0x0401, 0x3c00, 0xbc00, 0x3c01, 0x3bff,
            0x7bff, 0xfbff, 0x7bfe, 0x5bff, 0x5c00, 0x5a00, 0x7c00, 0xfc00, 0x7e00, 0x7d00, 0xfe01, 0x3800, 0x4200,
            0x1000, 0x1400, 0x0c00, 0x1c00, 0xc200, 0x2e66, 0x6800, 0x1001, 0x3555, 0xb555};
  return {0x0000, 0x8000, 0x0001, 0x8001, 0x0002, 0x007f, 0x807f, 0x0080, 0x0081, 0x3f80, 0xbf80, 0x3f81, 0x3f7f,
          0x7f7f, 0xff7f, 0x7f7e, 0x5f80, 0x5f81, 0x1f80, 0x2000, 0x3f00, 0x3eff, 0x377f, 0x3b80, 0x3c00, 0x7f80,
          0xff80, 0x7fc0, 0x7fa0, 0xffc1, 0x3dcd, 0x4049, 0xc049, 0x0100, 0x6000, 0x1fff};
}

std::uint16_t random_bits(ElemType t, std::mt19937& rng) {
  switch (rng() % 4) {
    case 0: return static_cast<std::uint16_t>(rng());  // any pattern, NaN included
    case 1: {
      const auto e = edge_bits(t);
      return e[rng() % e.size()];
    }
    default: {  // moderate values: cancellation and ties are common
      std::uniform_real_distribution<float> u(-8.0f, 8.0f);
      const float x = std::round(u(rng) * 64.0f) / 64.0f;
      return t == ElemType::f16 ? f16::from_float(x).bits : bf16::from_float(x).bits;
    }
  }
}

std::uint16_t random_finite(Fmt f, std::mt19937& rng) {
  for (;;) {
    const std::uint16_t b = random_bits(f.type, rng);
    if (is_finite16(f, b)) return b;
  }
}

TEST_CASE("f16 add, sub, mul: the reference equals the exact model for every f16 against many") {
  std::mt19937 rng(11);
  std::vector<std::uint16_t> others = edge_bits(ElemType::f16);
  const std::size_t count = wse_test::small() ? 40 : 48;  // (the TSan run shrinks)
  while (others.size() < count) others.push_back(random_finite(kF16, rng));
  long checked = 0, bad = 0;
  for (std::uint32_t a = 0; a <= 0xffffu; ++a) {
    if (!is_finite16(kF16, static_cast<std::uint16_t>(a))) continue;
    for (std::uint16_t b : others) {
      if (!is_finite16(kF16, b)) continue;
      for (DsdOpCode op : {DsdOpCode::add, DsdOpCode::sub, DsdOpCode::mul}) {
        std::uint16_t want = 0;
        if (!expected_exact(kF16, op, static_cast<std::uint16_t>(a), b, 0, want)) {  // f16 always fits
          ++bad;
          continue;
        }
        const std::uint32_t got = ref(op, ElemType::f16, a, b);
        ++checked;
        if (got != want && bad++ < 5)
          FAIL_CHECK(hex_message(op, a, b, 0, got, want));
      }
    }
  }
  MESSAGE(checked, " f16 add/sub/mul results checked");
  CHECK(bad == 0);
}

TEST_CASE("f16 and bf16 mac (one rounding) and bf16 add/sub/mul: the reference equals the exact model") {
  for (const Fmt f : {kF16, kBF16}) {
    const std::string type = elem_name(f.type);
    CAPTURE(type);
    std::mt19937 rng(f.type == ElemType::f16 ? 21 : 22);
    long checked = 0, bad = 0, skipped = 0;
    auto check = [&](DsdOpCode op, std::uint16_t a, std::uint16_t b, std::uint16_t c) {
      std::uint16_t want = 0;
      if (!expected_exact(f, op, a, b, c, want)) {
        ++skipped;  // exponents too far apart for the model
        return;
      }
      const std::uint32_t got = ref(op, f.type, a, b, c);
      ++checked;
      if (got != want && bad++ < 5)
        FAIL_CHECK(hex_message(op, a, b, c, got, want));
    };
    const auto edges = edge_bits(f.type);
    for (std::uint16_t a : edges)
      for (std::uint16_t b : edges)
        for (std::uint16_t c : edges)
          if (is_finite16(f, a) && is_finite16(f, b) && is_finite16(f, c)) check(DsdOpCode::mac, a, b, c);
    const int samples = wse_test::small() ? 50000 : 300000;
    for (int i = 0; i < samples; ++i) {
      const std::uint16_t a = random_finite(f, rng), b = random_finite(f, rng), c = random_finite(f, rng);
      check(DsdOpCode::mac, a, b, c);
      // Ties: a + b*c halfway between two neighbours of a (b*c = half an ulp of a, or 1.5).
      if (f.type == ElemType::f16 || i % 2 == 0) {
        check(DsdOpCode::mac, a, static_cast<std::uint16_t>(b & 0x83ffu), c);  // b subnormal (f16) / tiny
        if (f.type == ElemType::bf16) {
          check(DsdOpCode::add, a, b, 0);
          check(DsdOpCode::sub, a, b, 0);
          check(DsdOpCode::mul, a, b, 0);
        }
      }
    }
    // Products that leave float's range but not the result's (bf16): 2^64 * 2^64 - max.
    if (f.type == ElemType::bf16) {
      check(DsdOpCode::mac, 0xff7f, 0x5f80, 0x5f80);
      check(DsdOpCode::mac, 0x7f7f, 0xdf80, 0x5f81);
      check(DsdOpCode::mac, 0x0001, 0x0001, 0x3f00);  // 2^-133 + 2^-134: a tie, to even (2^-132)
      check(DsdOpCode::mac, 0x0003, 0x8001, 0x3f00);  // 3*2^-133 - 2^-134: a tie, to even (2^-131)
      check(DsdOpCode::mul, 0x1f80, 0x1f80, 0);       // 2^-128: subnormal, exact
      check(DsdOpCode::mul, 0x0001, 0x3f00, 0);       // 2^-134: a tie, to 0
      check(DsdOpCode::mul, 0x0001, 0x3f01, 0);       // just above: the smallest subnormal
    }
    MESSAGE(type, ": ", checked, " results checked, ", skipped, " beyond the model");
    CHECK(bad == 0);
    CHECK(checked > samples / 3);
  }
}

TEST_CASE("f16 and bf16 arithmetic: NaN results are canonical, infinities, max/min and sign ops") {
  using elementwise::canonical_nan_bf16_bits;
  using elementwise::canonical_nan_f16_bits;
  const auto H = ElemType::f16, B = ElemType::bf16;
  CHECK(ref(DsdOpCode::sub, H, 0x7c00, 0x7c00) == canonical_nan_f16_bits);
  CHECK(ref(DsdOpCode::add, H, 0xfe12, 0x3c00) == canonical_nan_f16_bits);  // a payload does not propagate
  CHECK(ref(DsdOpCode::mul, H, 0x7d00, 0x3c00) == canonical_nan_f16_bits);  // nor does a signaling NaN
  CHECK(ref(DsdOpCode::mac, H, 0x3c00, 0x7c00, 0x0000) == canonical_nan_f16_bits);
  CHECK(ref(DsdOpCode::mac, H, 0xfc00, 0x7c00, 0x3c00) == canonical_nan_f16_bits);
  CHECK(ref(DsdOpCode::mul, B, 0x7f80, 0x0000) == canonical_nan_bf16_bits);
  CHECK(ref(DsdOpCode::add, B, 0xffc1, 0x0000) == canonical_nan_bf16_bits);
  CHECK(ref(DsdOpCode::add, H, 0x7bff, 0x7bff) == 0x7c00);   // overflow
  CHECK(ref(DsdOpCode::mul, H, 0x5c00, 0x5c00) == 0x7c00);   // 256 * 256
  CHECK(ref(DsdOpCode::mul, H, 0x5bff, 0x5bff) == 0x7bfe);   // 255.875^2 = 65472.015625
  CHECK(ref(DsdOpCode::mul, H, 0x0001, 0x3800) == 0x0000);   // 2^-25: tie to even (0)
  CHECK(ref(DsdOpCode::mul, H, 0x8001, 0x3800) == 0x8000);
  CHECK(ref(DsdOpCode::mul, H, 0x0003, 0x3800) == 0x0002);   // 1.5 * 2^-24: tie to even (2)
  CHECK(ref(DsdOpCode::add, H, 0x3c00, 0x1000) == 0x3c00);   // 1 + 2^-11: tie, even
  CHECK(ref(DsdOpCode::add, H, 0x3c01, 0x1000) == 0x3c02);
  CHECK(ref(DsdOpCode::mac, H, 0x3c00, 0x1000, 0x3c00) == 0x3c00);  // the same tie through mac
  CHECK(ref(DsdOpCode::mac, H, 0x3c00, 0x1000, 0x3c01) == 0x3c01);  // just above the tie: one rounding
  CHECK(ref(DsdOpCode::add, H, 0x8000, 0x8000) == 0x8000);
  CHECK(ref(DsdOpCode::add, H, 0x8000, 0x0000) == 0x0000);
  CHECK(ref(DsdOpCode::sub, H, 0x3c00, 0x3c00) == 0x0000);
  CHECK(ref(DsdOpCode::mac, H, 0x8000, 0x8000, 0x3c00) == 0x8000);  // -0 + (-0)(1)
  CHECK(ref(DsdOpCode::mac, B, 0xff7f, 0x5f80, 0x5f80) == 0x7b80);  // -max + 2^128 = 2^120
  // max/min: a NaN operand yields the other; of equal operands the first.
  CHECK(ref(DsdOpCode::max, H, 0x7e00, 0x3c00) == 0x3c00);
  CHECK(ref(DsdOpCode::max, H, 0x3c00, 0x7d00) == 0x3c00);
  CHECK(ref(DsdOpCode::max, H, 0x7d00, 0xfe00) == 0xfe00);
  CHECK(ref(DsdOpCode::max, H, 0x8000, 0x0000) == 0x8000);
  CHECK(ref(DsdOpCode::min, H, 0x0000, 0x8000) == 0x0000);
  CHECK(ref(DsdOpCode::min, B, 0xbf80, 0x3f80) == 0xbf80);
  CHECK(ref(DsdOpCode::max, B, 0xff80, 0x0001) == 0x0001);
  // neg/abs: the sign bit only, NaN bits kept; mov: bits as they are.
  CHECK(ref(DsdOpCode::neg, H, 0x7d00) == 0xfd00);
  CHECK(ref(DsdOpCode::abs, B, 0xffc1) == 0x7fc1);
  CHECK(ref(DsdOpCode::neg, B, 0x0000) == 0x8000);
  CHECK(ref(DsdOpCode::mov, H, 0x7d01) == 0x7d01);
}

TEST_CASE("mixed mac: f32 a + f16 b * f16 c with one rounding equals fmaf") {
  std::mt19937 rng(31);
  const std::vector<std::uint16_t> hedges = edge_bits(ElemType::f16);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> fedges = {0.0f, -0.0f, 1.0f, -1.0f, inf, -inf, std::bit_cast<float>(0x7fa00000u), 0x1p-149f,
                                     -0x1p-126f, 3.4e38f, -3.4e38f, 1.0f + 0x1p-23f, 0x1p-24f, 0x1p-25f, 65504.0f, -4.0e9f};
  long bad = 0, checked = 0;
  auto check = [&](float a, std::uint16_t b, std::uint16_t c) {
    const float fb = f16::from_bits(b).to_float(), fc = f16::from_bits(c).to_float();
    const float r = std::fma(fb, fc, a);
    const std::uint32_t want = std::isnan(r) ? elementwise::canonical_nan_bits : fbits(r);
    const std::uint32_t got = elementwise::compute(DsdOpCode::mac, ElemType::f32, ElemType::f32, ElemType::f16, fbits(a), b, c);
    ++checked;
    if (got != want && bad++ < 5) FAIL_CHECK(hex_message(DsdOpCode::mac, fbits(a), b, c, got, want));
  };
  for (float a : fedges)
    for (std::uint16_t b : hedges)
      for (std::uint16_t c : hedges) check(a, b, c);
  for (int i = 0; i < 200000; ++i) {
    const float a = (i % 2) ? std::bit_cast<float>(static_cast<std::uint32_t>(rng())) : std::ldexp(static_cast<float>(rng() % 4096) - 2048.0f, static_cast<int>(rng() % 40) - 30);
    check(a, random_bits(ElemType::f16, rng), random_bits(ElemType::f16, rng));
  }
  CHECK(bad == 0);
  MESSAGE(checked, " mixed mac results checked");
}

// ---- SIMD against the reference ---------------------------------------------------------------

// Every Highway target compiled in and supported here (one "static" entry without dispatch).
std::vector<std::int64_t> simd_targets() {
#if defined(WSE_HAVE_HIGHWAY) && !defined(WSE_DETAIL_SINGLE_HEADER) && !defined(WSE_SIMD_STATIC_DISPATCH)
  return hwy::SupportedAndGeneratedTargets();
#else
  return {0};
#endif
}
// Runs the SIMD engine on `target` while alive (dynamic dispatch only).
struct TargetScope {
  explicit TargetScope(std::int64_t target) {
#if defined(WSE_HAVE_HIGHWAY) && !defined(WSE_DETAIL_SINGLE_HEADER) && !defined(WSE_SIMD_STATIC_DISPATCH)
    if (target != 0) hwy::SetSupportedTargetsForTest(target);
#else
    (void)target;
#endif
  }
  ~TargetScope() {
#if defined(WSE_HAVE_HIGHWAY) && !defined(WSE_DETAIL_SINGLE_HEADER) && !defined(WSE_SIMD_STATIC_DISPATCH)
    hwy::SetSupportedTargetsForTest(0);
#endif
  }
  TargetScope(const TargetScope&) = delete;
  TargetScope& operator=(const TargetScope&) = delete;
};

template <class X> Operand mem_operand(std::vector<X>& v, ElemType t, std::uint32_t n0, std::uint32_t n1, std::int32_t row_stride,
                                       std::uint32_t offset) {
  Operand o;
  o.kind = OperandKind::mem;
  o.type = t;
  o.base = v.data();
  o.extent = static_cast<std::uint32_t>(v.size());
  o.dims[0] = n0;
  o.dims[1] = n1;
  o.strides[0] = 1;
  o.strides[1] = row_stride;
  o.offset = offset;
  return o;
}
Operand scalar_operand(ElemType t, std::uint32_t bits) {
  Operand o;
  o.kind = OperandKind::scalar;
  o.type = t;
  o.scalar_bits = bits;
  return o;
}

// The scalar reference, element by element in order (what the emulator does without SIMD).
void reference(const DsdInstr& ins, std::uint32_t length) {
  const Operand* srcs[3] = {&ins.a, &ins.b, &ins.c};
  const int n = elementwise::source_count(ins.op);
  for (std::uint32_t i = 0; i < length; ++i) {
    std::uint32_t v[3] = {0, 0, 0};
    for (int k = 0; k < n; ++k) v[k] = srcs[k]->kind == OperandKind::scalar ? srcs[k]->scalar_bits : elementwise::load(*srcs[k], i);
    elementwise::store(ins.dst, i, elementwise::compute(ins, v[0], v[1], v[2]));
  }
}

float random_f32(std::mt19937& rng) {
  static const float edges[] = {0.0f, -0.0f, 1.0f, -1.0f, std::numeric_limits<float>::infinity(), std::bit_cast<float>(0x7fa00000u),
                                std::bit_cast<float>(0xffc00001u), 0x1p-149f, 3.4e38f, 1.0f + 0x1p-23f, 0x1p-24f, -2.5f};
  if (rng() % 3 == 0) return edges[rng() % std::size(edges)];
  std::uniform_real_distribution<float> u(-100.0f, 100.0f);
  return u(rng);
}

struct Counts {
  long handled = 0, declined = 0, bad = 0;
};

// One case: destination and a of lane type TA (raw 16-bit bits, or float for the mixed mac),
// b and c raw 16-bit bits of type `bt`. SIMD and reference from identical inputs must match
// bit for bit when SIMD takes the op. `scalar_mask` bit k makes source k a scalar.
template <class TA>
void check_case(ElemType dt, ElemType bt, DsdOpCode op, std::uint32_t n0, std::uint32_t n1, std::int32_t row_stride,
                unsigned scalar_mask, bool in_place, bool row_broadcast, std::mt19937& rng, Counts& counts) {
  const std::size_t size = static_cast<std::size_t>(row_stride) * (n1 ? n1 : 1) + 3;
  auto gen_a = [&] {
    if constexpr (std::is_same_v<TA, float>) return random_f32(rng);
    else return random_bits(dt, rng);
  };
  auto vec_a = [&] {
    std::vector<TA> v(size);
    for (auto& x : v) x = gen_a();
    return v;
  };
  auto vec16 = [&] {
    std::vector<std::uint16_t> v(size);
    for (auto& x : v) x = random_bits(bt, rng);
    return v;
  };
  std::vector<TA> a = vec_a(), d_simd = vec_a();
  std::vector<std::uint16_t> b = vec16(), c = vec16();
  std::vector<TA> a_ref = a, d_ref = d_simd;
  std::vector<std::uint16_t> b_ref = b, c_ref = c;
  std::uint32_t scal[3];
  if constexpr (std::is_same_v<TA, float>) scal[0] = fbits(gen_a());
  else scal[0] = gen_a();
  scal[1] = random_bits(bt, rng);
  scal[2] = random_bits(bt, rng);
  const int nsrc = elementwise::source_count(op);
  auto build = [&](std::vector<TA>& dv, std::vector<TA>& av, std::vector<std::uint16_t>& bv, std::vector<std::uint16_t>& cv) {
    DsdInstr ins;
    ins.op = op;
    ins.dst = mem_operand(dv, dt, n0, n1, row_stride, 1);
    ins.a = (scalar_mask & 1u) ? scalar_operand(dt, scal[0]) : mem_operand(av, dt, n0, n1, row_stride, 1);
    if (nsrc > 1) ins.b = (scalar_mask & 2u) ? scalar_operand(bt, scal[1]) : mem_operand(bv, bt, n0, n1, row_stride, 1);
    if (nsrc > 2) ins.c = (scalar_mask & 4u) ? scalar_operand(bt, scal[2]) : mem_operand(cv, bt, n0, n1, row_stride, 2);
    if (in_place && ins.a.kind == OperandKind::mem) ins.a = ins.dst;
    Operand* last = nsrc == 3 ? &ins.c : nsrc == 2 ? &ins.b : &ins.a;
    if (row_broadcast && last->kind == OperandKind::mem) last->strides[0] = 0;
    return ins;
  };
  const DsdInstr simd_ins = build(d_simd, a, b, c);
  const DsdInstr ref_ins = build(d_ref, a_ref, b_ref, c_ref);
  const std::uint32_t length = n0 * (n1 ? n1 : 1);
  if (!emu::simd::try_execute(simd_ins, length)) {
    if (length > 0) ++counts.declined;  // length 0 always goes to the (empty) scalar loop
    return;
  }
  ++counts.handled;
  reference(ref_ins, length);
  if (std::memcmp(d_simd.data(), d_ref.data(), d_simd.size() * sizeof(TA)) != 0) {
    for (std::size_t i = 0; i < d_simd.size(); ++i) {
      if (std::memcmp(&d_simd[i], &d_ref[i], sizeof(TA)) != 0) {
        if (counts.bad++ < 5) {
          std::uint32_t got = 0, want = 0;
          std::memcpy(&got, &d_simd[i], sizeof(TA));
          std::memcpy(&want, &d_ref[i], sizeof(TA));
          std::ostringstream m;
          m << "SIMD and scalar differ: " << elem_name(dt) << " " << op_name(op) << " n0=" << n0 << " n1=" << n1
            << " mask=" << scalar_mask << " in_place=" << in_place << " bcast=" << row_broadcast << " i=" << i << std::hex
            << " got 0x" << got << " want 0x" << want;
          FAIL_CHECK(m.str());
        }
        break;
      }
    }
  }
}

template <class TA> Counts sweep(ElemType dt, ElemType bt, const std::vector<DsdOpCode>& ops, unsigned seed) {
  std::mt19937 rng(seed);
  Counts counts;
  for (DsdOpCode op : ops)
    for (std::uint32_t n0 : {0u, 1u, 2u, 3u, 4u, 5u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 32u, 33u, 64u, 100u, 257u, 300u}) {
      const int nsrc = elementwise::source_count(op);
      const auto rs = static_cast<std::int32_t>(n0 + 1);
      for (unsigned mask = 0; mask < (1u << nsrc); ++mask) {
        if (mask == (1u << nsrc) - 1) continue;  // all scalars: not a DSD op
        check_case<TA>(dt, bt, op, n0, 1, rs, mask, false, false, rng, counts);
      }
      check_case<TA>(dt, bt, op, n0, 3, rs + 4, 0, false, false, rng, counts);  // 2-D, padded rows
      check_case<TA>(dt, bt, op, n0, 3, rs + 4, 0, false, true, rng, counts);   // + a row broadcast
      check_case<TA>(dt, bt, op, n0, 1, rs, 0, true, false, rng, counts);       // d = op(d, ...)
      if (n0 > 0 && n0 < 40)  // many rows: a lot of random values per case
        for (int rep = 0; rep < 3; ++rep) check_case<TA>(dt, bt, op, n0, 40, rs, rep == 2 ? 2u : 0u, false, false, rng, counts);
    }
  return counts;
}

const std::vector<DsdOpCode> kHalfOps = {DsdOpCode::mov, DsdOpCode::add, DsdOpCode::sub, DsdOpCode::mul, DsdOpCode::mac,
                                         DsdOpCode::max, DsdOpCode::min, DsdOpCode::neg, DsdOpCode::abs};

}  // namespace

TEST_CASE("SIMD f16, bf16 and mixed mac equal the scalar reference bit for bit on every target") {
  const std::string best = emu::simd::target_name();
  for (const std::int64_t target : simd_targets()) {
    TargetScope scope(target);
    const std::string name = emu::simd::target_name();
    CAPTURE(name);
#if defined(WSE_HAVE_HIGHWAY) && !defined(WSE_DETAIL_SINGLE_HEADER) && !defined(WSE_SIMD_STATIC_DISPATCH)
    CHECK(name == hwy::TargetName(target));
#endif
    const Counts h = sweep<std::uint16_t>(ElemType::f16, ElemType::f16, kHalfOps, 101);
    const Counts g = sweep<std::uint16_t>(ElemType::bf16, ElemType::bf16, kHalfOps, 102);
    const Counts m = sweep<float>(ElemType::f32, ElemType::f16, {DsdOpCode::mac}, 103);
    MESSAGE(name, ": f16 ", h.handled, " cases on SIMD (", h.declined, " declined), bf16 ", g.handled, " (", g.declined,
            " declined), mixed mac ", m.handled, " (", m.declined, " declined)");
    CHECK(h.bad == 0);
    CHECK(g.bad == 0);
    CHECK(m.bad == 0);
#if defined(WSE_HAVE_HIGHWAY)
    CHECK(h.declined == 0);  // every f16 op and the mixed mac run on every target
    CHECK(m.declined == 0);
    CHECK(g.handled > 0);
#endif
  }
  CHECK(best == emu::simd::target_name());  // dispatch is back to this host's best target
}

TEST_CASE("SIMD declines strided f16 operands, mismatched mixed types and aliasing across element sizes") {
  std::vector<std::uint16_t> v(32, 0x3c00), d(16, 0);
  DsdInstr ins;
  ins.op = DsdOpCode::add;
  ins.dst = mem_operand(d, ElemType::f16, 16, 1, 16, 0);
  ins.a = mem_operand(v, ElemType::f16, 16, 1, 16, 0);
  ins.a.strides[0] = 2;
  ins.b = scalar_operand(ElemType::f16, 0x3c00);
  CHECK_FALSE(emu::simd::try_execute(ins, 16));
  // f32 destination with f16 b but an f32 c is not the mixed mac.
  std::vector<float> f(16, 1.0f), fd(16, 0.0f);
  DsdInstr mix;
  mix.op = DsdOpCode::mac;
  mix.dst = mem_operand(fd, ElemType::f32, 16, 1, 16, 0);
  mix.a = mem_operand(f, ElemType::f32, 16, 1, 16, 0);
  mix.b = mem_operand(v, ElemType::f16, 16, 1, 16, 0);
  mix.c = mem_operand(f, ElemType::f32, 16, 1, 16, 0);
  CHECK_FALSE(emu::simd::try_execute(mix, 16));
  // The mixed mac with an f16 source over the destination's own bytes: element order matters.
  mix.c = mix.b;
  mix.b.base = fd.data();
  CHECK_FALSE(emu::simd::try_execute(mix, 16));
  mix.b.base = v.data();
#if defined(WSE_HAVE_HIGHWAY)
  CHECK(emu::simd::try_execute(mix, 16));
#endif
}

// ---- whole kernels through the emulator, SIMD on and off --------------------------------------

namespace {

constexpr std::uint32_t kN = 40;  // elements per operand array
constexpr int kVariants = 4;      // contiguous, strided, 2-D with a row broadcast, scalar last source
constexpr int kOps = 9;

struct HalfLabParams {
  Color in, out;
};

/// Runs every f16 and bf16 op in four operand layouts, the mixed mac in four, and fabric
/// ops on f16/bf16 (in from stream "in", out to stream "out").
template <class PE> struct HalfLab {
  using Params = HalfLabParams;
  Params p;
  f16 h[3][kN] = {};
  bf16 g[3][kN] = {};
  float f[kN] = {};
  f16 ho[kOps * kVariants * kN] = {};
  bf16 go_[kOps * kVariants * kN] = {};
  float mo[6 * kN] = {};
  f16 fab16[kN] = {};
  std::uint32_t done[1] = {};

  void init(PE& pe, const Params& params) {
    p = params;
    wse::export_symbol(pe, "h", wse::Array<f16>(&h[0][0], 3 * kN));
    wse::export_symbol(pe, "g", wse::Array<bf16>(&g[0][0], 3 * kN));
    wse::export_symbol(pe, "f", f);
    wse::export_symbol(pe, "ho", ho);
    wse::export_symbol(pe, "go", go_);
    wse::export_symbol(pe, "mo", mo);
    wse::export_symbol(pe, "fab16", fab16);
    wse::export_symbol(pe, "done", done);
    wse::bind_local_task<&HalfLab::on_done>(pe, TaskId{9});
    wse::export_function<&HalfLab::run_all>(pe, "run_all");
    wse::export_function<&HalfLab::run_fabric>(pe, "run_fabric");
  }
  void on_done(PE&) { ++done[0]; }

  template <class T> void ops(PE& pe, T (&src)[3][kN], T* out) {
    const T s = src[2][5];  // a scalar operand
    for (int op = 0; op < kOps; ++op)
      for (int v = 0; v < kVariants; ++v) {
        T* o = out + (op * kVariants + v) * kN;
        auto run = [&](const auto& d, const auto& a, const auto& b, const auto& c) {
          switch (static_cast<DsdOpCode>(op)) {
            case DsdOpCode::mov: wse::mov(pe, d, a); break;
            case DsdOpCode::add: wse::add(pe, d, a, b); break;
            case DsdOpCode::sub: wse::sub(pe, d, a, b); break;
            case DsdOpCode::mul: wse::mul(pe, d, a, b); break;
            case DsdOpCode::mac: wse::mac(pe, d, a, b, c); break;
            case DsdOpCode::max: wse::max(pe, d, a, b); break;
            case DsdOpCode::min: wse::min(pe, d, a, b); break;
            case DsdOpCode::neg: wse::neg(pe, d, a); break;
            default: wse::abs(pe, d, a); break;
          }
        };
        const wse::Array<T> oa(o, kN);
        auto m = [&](int k) { return wse::mem1d(src[k]); };
        switch (v) {
          case 0: run(wse::mem1d(oa), m(0), m(1), m(2)); break;
          case 1: {  // stride 2 and -1: the scalar path
            auto st = [&](int k) { return m(k).with_length(kN / 2).with_stride(2); };
            run(wse::mem1d(oa).with_length(kN / 2), st(0), m(1).with_length(kN / 2).with_stride(-1).with_offset(kN - 1), st(2));
            break;
          }
          case 2: {  // 8 x 4, rows padded; the last source repeats one value per row
            const std::uint32_t dims[2] = {8, 4};
            const std::int32_t strides[2] = {1, 10}, bcast[2] = {0, 10};
            run(wse::mem4d(oa, dims, strides), wse::mem4d(wse::Array<T>(src[0]), dims, strides, 1),
                wse::mem4d(wse::Array<T>(src[1]), dims, strides, 2), wse::mem4d(wse::Array<T>(src[2]), dims, bcast, 3));
            break;
          }
          default: run(wse::mem1d(oa), m(0), s, s); break;
        }
      }
  }
  void run_all(PE& pe) {
    ops(pe, h, ho);
    ops(pe, g, go_);
    // The mixed mac: f32 d, a; f16 b, c, as DSDs and scalars, in place too.
    const wse::Array<float> m0(mo, kN), m1(mo + kN, kN), m2(mo + 2 * kN, kN), m3(mo + 3 * kN, kN), m4(mo + 4 * kN, kN);
    wse::mac(pe, wse::mem1d(m0), wse::mem1d(f), wse::mem1d(h[0]), wse::mem1d(h[1]));
    wse::mac(pe, wse::mem1d(m1), wse::mem1d(f), wse::mem1d(h[0]), f16::from_float(0.333f));
    wse::mac(pe, wse::mem1d(m2), 2.5f, f16::from_bits(0x3555), wse::mem1d(h[2]));
    wse::mac(pe, wse::mem1d(m3).with_length(kN / 2), wse::mem1d(f).with_length(kN / 2).with_stride(2),
             wse::mem1d(h[0]).with_length(kN / 2), wse::mem1d(h[1]).with_length(kN / 2).with_stride(2));
    wse::mov(pe, wse::mem1d(m4), wse::mem1d(f));
    wse::mac(pe, wse::mem1d(m4), wse::mem1d(m4), wse::mem1d(h[1]), wse::mem1d(h[2]));
    // Conversions through the same path.
    const wse::Array<float> m5(mo + 5 * kN, kN);
    wse::cvt(pe, wse::mem1d(m5), wse::mem1d(g[0]));
  }
  void run_fabric(PE& pe) {
    const auto fire = wse::then_activate(TaskId{9});
    // f16 in from the fabric (low halves), mixed mac with a fabric b; bf16 product out.
    wse::add(pe, wse::mem1d(fab16), wse::fabin<f16>(p.in, kN), wse::mem1d(h[0]), fire);
    wse::mac(pe, wse::mem1d(mo).with_length(kN), wse::mem1d(f), wse::fabin<f16>(p.in, kN), f16::from_float(-1.5f), fire);
    wse::mul(pe, wse::fabout<bf16>(p.out, kN), wse::mem1d(g[0]), wse::mem1d(g[1]), fire);
  }
};

struct HalfRig {
  static constexpr Color in{1}, out{2};
  static constexpr Rect cell{{0, 0}, 1, 1};
  wse::Program prog{wse::arch::wse2, 1, 1};
  std::unique_ptr<host::Runtime> rt;
  explicit HalfRig(bool simd) {
    prog.add_region<HalfLab>(prog.grid(), HalfLabParams{in, out});
    prog.set_route(Coord{0, 0}, in, ColorRoute{wse::west, wse::ramp});
    prog.set_route(Coord{0, 0}, out, ColorRoute{wse::ramp, wse::east});
    prog.add_input_stream("in", in, {0, 0}, wse::west);
    prog.add_output_stream("out", out, {0, 0}, wse::east);
    emu::EmuConfig cfg = wse_test::config();
    cfg.simd = simd;
    rt = std::make_unique<host::Runtime>(prog, cfg);
  }
};

template <class T> std::vector<std::uint16_t> raw(const std::vector<T>& v) {
  std::vector<std::uint16_t> r(v.size());
  std::memcpy(r.data(), v.data(), v.size() * 2);
  return r;
}

}  // namespace

TEST_CASE("kernels on f16, bf16 and the mixed mac give identical memory with SIMD on and off, and the reference's values") {
  std::mt19937 rng(41);
  std::vector<f16> h(3 * kN);
  std::vector<bf16> g(3 * kN);
  std::vector<float> f(kN);
  for (auto& x : h) x = f16::from_bits(random_bits(ElemType::f16, rng));
  for (auto& x : g) x = bf16::from_bits(random_bits(ElemType::bf16, rng));
  for (auto& x : f) x = random_f32(rng);
  std::vector<f16> fab_in(kN);
  for (auto& x : fab_in) x = f16::from_bits(random_bits(ElemType::f16, rng));

  std::vector<std::uint16_t> ho[2], go[2], fab16[2];
  std::vector<float> mo[2], mo_fab[2];
  std::vector<bf16> out_stream[2];
  for (int simd = 0; simd < 2; ++simd) {
    HalfRig rig(simd != 0);
    host::Runtime& rt = *rig.rt;
    rt.memcpy_h2d<f16>("h", h, HalfRig::cell, 3 * kN);
    rt.memcpy_h2d<bf16>("g", g, HalfRig::cell, 3 * kN);
    rt.memcpy_h2d<float>("f", f, HalfRig::cell, kN);
    auto report = rt.call("run_all");
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    ho[simd] = raw(rt.read<f16>("ho", HalfRig::cell, kOps * kVariants * kN));
    go[simd] = raw(rt.read<bf16>("go", HalfRig::cell, kOps * kVariants * kN));
    mo[simd] = rt.read<float>("mo", HalfRig::cell, 6 * kN);
    rt.stream_in<f16>("in", fab_in);
    rt.stream_in<f16>("in", fab_in);
    report = rt.call("run_fabric");
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    CHECK(rt.read<std::uint32_t>("done", HalfRig::cell, 1)[0] >= 1);  // completions may share one activation
    fab16[simd] = raw(rt.read<f16>("fab16", HalfRig::cell, kN));
    mo_fab[simd] = rt.read<float>("mo", HalfRig::cell, kN);
    out_stream[simd] = rt.stream_out_as<bf16>("out");
  }
  CHECK(ho[0] == ho[1]);
  CHECK(go[0] == go[1]);
  CHECK(std::memcmp(mo[0].data(), mo[1].data(), mo[0].size() * 4) == 0);
  CHECK(fab16[0] == fab16[1]);
  CHECK(std::memcmp(mo_fab[0].data(), mo_fab[1].data(), kN * 4) == 0);
  REQUIRE(out_stream[0].size() == kN);
  CHECK(out_stream[0] == out_stream[1]);

  // Against the reference, element by element, for the contiguous variants and the fabric ops.
  auto hb = [&](int k, std::uint32_t i) -> std::uint32_t { return h[k * kN + i].bits; };
  auto gb = [&](int k, std::uint32_t i) -> std::uint32_t { return g[k * kN + i].bits; };
  long bad = 0;
  for (int op = 0; op < kOps; ++op)
    for (std::uint32_t i = 0; i < kN; ++i) {
      const auto code = static_cast<DsdOpCode>(op);
      const std::size_t at = static_cast<std::size_t>(op * kVariants) * kN + i;
      if (ho[0][at] != ref(code, ElemType::f16, hb(0, i), hb(1, i), hb(2, i))) ++bad;
      if (go[0][at] != ref(code, ElemType::bf16, gb(0, i), gb(1, i), gb(2, i))) ++bad;
      const std::size_t sc = static_cast<std::size_t>(op * kVariants + 3) * kN + i;  // scalar last sources
      const bool unary = code == DsdOpCode::mov || code == DsdOpCode::neg || code == DsdOpCode::abs;
      if (ho[0][sc] != ref(code, ElemType::f16, hb(0, i), unary ? 0 : hb(2, 5), hb(2, 5))) ++bad;
      if (go[0][sc] != ref(code, ElemType::bf16, gb(0, i), unary ? 0 : gb(2, 5), gb(2, 5))) ++bad;
    }
  for (std::uint32_t i = 0; i < kN; ++i) {
    auto mixed = [](float a, std::uint32_t b, std::uint32_t c) {
      return elementwise::compute(DsdOpCode::mac, ElemType::f32, ElemType::f32, ElemType::f16, fbits(a), b, c);
    };
    if (fbits(mo[0][i]) != mixed(f[i], hb(0, i), hb(1, i))) ++bad;
    if (fbits(mo[0][kN + i]) != mixed(f[i], hb(0, i), f16::from_float(0.333f).bits)) ++bad;
    if (fbits(mo[0][2 * kN + i]) != mixed(2.5f, 0x3555, hb(2, i))) ++bad;
    if (i < kN / 2 && fbits(mo[0][3 * kN + i]) != mixed(f[2 * i], hb(0, i), hb(1, 2 * i))) ++bad;
    if (fbits(mo[0][4 * kN + i]) != mixed(f[i], hb(1, i), hb(2, i))) ++bad;
    if (fbits(mo[0][5 * kN + i]) != elementwise::convert(ElemType::f32, ElemType::bf16, gb(0, i))) ++bad;
    if (fab16[0][i] != ref(DsdOpCode::add, ElemType::f16, fab_in[i].bits, hb(0, i))) ++bad;
    if (fbits(mo_fab[0][i]) != mixed(f[i], fab_in[i].bits, f16::from_float(-1.5f).bits)) ++bad;
    if (out_stream[0][i].bits != ref(DsdOpCode::mul, ElemType::bf16, gb(0, i), gb(1, i))) ++bad;
  }
  CHECK(bad == 0);
}
