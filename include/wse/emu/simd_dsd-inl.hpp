// Per-target SIMD kernels of the emulator's DSD engine. Included once per Highway target by
// simd_dsd.hpp (through hwy/foreach_target.h), or once for the static target in the
// single-header edition. No include guard on purpose: see Highway's "-inl.h" convention.
// Every kernel reproduces pe/elementwise.hpp bit for bit; tests/test_simd.cpp checks it.
#if defined(WSE_DETAIL_SINGLE_HEADER) || defined(WSE_SIMD_STATIC_DISPATCH) || \
    (defined(WSE_EMU_SIMD_DSD_INL_HPP_) == defined(HWY_TARGET_TOGGLE))
#if !defined(WSE_DETAIL_SINGLE_HEADER) && !defined(WSE_SIMD_STATIC_DISPATCH)
#ifdef WSE_EMU_SIMD_DSD_INL_HPP_
#undef WSE_EMU_SIMD_DSD_INL_HPP_
#else
#define WSE_EMU_SIMD_DSD_INL_HPP_
#endif
#endif

#include <hwy/highway.h>

#include <limits>

HWY_BEFORE_NAMESPACE();
namespace wse::emu::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D, class T> HWY_INLINE hn::Vec<D> operand(D d, const T* p, T s, std::size_t i) {
  return p ? hn::LoadU(d, p + i) : hn::Set(d, s);
}
template <class T> HWY_INLINE T operand1(const T* p, T s, std::size_t i) { return p ? p[i] : s; }

// One run of any lane type: full vectors, then the tail on a partial vector.
template <class T, class Op> HWY_NOINLINE void lane_run(const Run<T>& run, Op op) {
  // A local copy: stores through r.d cannot alias it, so the loop keeps it in registers.
  const Run<T> r = run;
  const hn::ScalableTag<T> d;
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  if (r.a && r.b && r.c) {  // three arrays (mac): no per-vector operand tests
    for (; i + lanes <= r.n; i += lanes)
      hn::StoreU(op(d, hn::LoadU(d, r.a + i), hn::LoadU(d, r.b + i), hn::LoadU(d, r.c + i)), d, r.d + i);
  }
  for (; i + lanes <= r.n; i += lanes)
    hn::StoreU(op(d, operand(d, r.a, r.sa, i), operand(d, r.b, r.sb, i), operand(d, r.c, r.sc, i)), d, r.d + i);
  if (i < r.n) {
    HWY_ALIGN T ta[hn::MaxLanes(d)] = {}, tb[hn::MaxLanes(d)] = {}, tc[hn::MaxLanes(d)] = {}, td[hn::MaxLanes(d)];
    for (std::size_t k = 0; i + k < r.n; ++k) {
      ta[k] = operand1(r.a, r.sa, i + k);
      tb[k] = operand1(r.b, r.sb, i + k);
      tc[k] = operand1(r.c, r.sc, i + k);
    }
    hn::Store(op(d, hn::Load(d, ta), hn::Load(d, tb), hn::Load(d, tc)), d, td);
    for (std::size_t k = 0; i + k < r.n; ++k) r.d[i + k] = td[k];
  }
}

// NaN results of arithmetic become the canonical quiet NaN (pe/elementwise.hpp).
template <class D, class V> HWY_INLINE V canonical(D d, V r) {
  return hn::IfThenElse(hn::IsNaN(r), hn::BitCast(d, hn::Set(hn::RebindToUnsigned<D>(), 0x7fc00000u)), r);
}

// Returns false when this target cannot reproduce the reference for `op` (mac without a
// fused multiply-add instruction).
static HWY_NOINLINE bool RunF32(DsdOpCode op, const Run<float>& r) {
  switch (op) {
    case DsdOpCode::mov: lane_run(r, [](auto, auto a, auto, auto) { return a; }); return true;
    case DsdOpCode::add: lane_run(r, [](auto d, auto a, auto b, auto) { return canonical(d, hn::Add(a, b)); }); return true;
    case DsdOpCode::sub: lane_run(r, [](auto d, auto a, auto b, auto) { return canonical(d, hn::Sub(a, b)); }); return true;
    case DsdOpCode::mul: lane_run(r, [](auto d, auto a, auto b, auto) { return canonical(d, hn::Mul(a, b)); }); return true;
    case DsdOpCode::mac:
#if HWY_NATIVE_FMA
      lane_run(r, [](auto d, auto a, auto b, auto c) { return canonical(d, hn::MulAdd(b, c, a)); });
      return true;
#else
      return false;
#endif
    case DsdOpCode::max:  // a if (a >= b or b is NaN) and a is not NaN, else b
      lane_run(r, [](auto, auto a, auto b, auto) {
        const auto take_a = hn::AndNot(hn::IsNaN(a), hn::Or(hn::Ge(a, b), hn::IsNaN(b)));
        return hn::IfThenElse(take_a, a, b);
      });
      return true;
    case DsdOpCode::min:
      lane_run(r, [](auto, auto a, auto b, auto) {
        const auto take_a = hn::AndNot(hn::IsNaN(a), hn::Or(hn::Le(a, b), hn::IsNaN(b)));
        return hn::IfThenElse(take_a, a, b);
      });
      return true;
    case DsdOpCode::neg: lane_run(r, [](auto, auto a, auto, auto) { return hn::Neg(a); }); return true;
    case DsdOpCode::abs: lane_run(r, [](auto, auto a, auto, auto) { return hn::Abs(a); }); return true;
    default: return false;
  }
}

template <class T> HWY_INLINE bool RunInt(DsdOpCode op, const Run<T>& r) {
  switch (op) {
    case DsdOpCode::mov: lane_run(r, [](auto, auto a, auto, auto) { return a; }); return true;
    case DsdOpCode::add: lane_run(r, [](auto, auto a, auto b, auto) { return hn::Add(a, b); }); return true;
    case DsdOpCode::sub: lane_run(r, [](auto, auto a, auto b, auto) { return hn::Sub(a, b); }); return true;
    case DsdOpCode::mul: lane_run(r, [](auto, auto a, auto b, auto) { return hn::Mul(a, b); }); return true;
    case DsdOpCode::mac: lane_run(r, [](auto, auto a, auto b, auto c) { return hn::Add(a, hn::Mul(b, c)); }); return true;
    case DsdOpCode::max: lane_run(r, [](auto, auto a, auto b, auto) { return hn::Max(a, b); }); return true;
    case DsdOpCode::min: lane_run(r, [](auto, auto a, auto b, auto) { return hn::Min(a, b); }); return true;
    case DsdOpCode::neg: lane_run(r, [](auto d, auto a, auto, auto) { return hn::Sub(hn::Zero(d), a); }); return true;
    case DsdOpCode::abs:
      if constexpr (hwy::IsSigned<T>()) {
        lane_run(r, [](auto d, auto a, auto, auto) {  // wraps: |INT_MIN| = INT_MIN
          return hn::IfThenElse(hn::Lt(a, hn::Zero(d)), hn::Sub(hn::Zero(d), a), a);
        });
      } else {
        lane_run(r, [](auto, auto a, auto, auto) { return a; });
      }
      return true;
    case DsdOpCode::band: lane_run(r, [](auto, auto a, auto b, auto) { return hn::And(a, b); }); return true;
    case DsdOpCode::bor: lane_run(r, [](auto, auto a, auto b, auto) { return hn::Or(a, b); }); return true;
    case DsdOpCode::bxor: lane_run(r, [](auto, auto a, auto b, auto) { return hn::Xor(a, b); }); return true;
    case DsdOpCode::shl:
    case DsdOpCode::shr:
      // Highway 1.0.3's 16-bit variable shifts use an SSE4 intrinsic on its SSSE3 target:
      // 16-bit shifts stay on the scalar reference.
      if constexpr (sizeof(T) == 2) {
        return false;
      } else {
        constexpr T width_mask = static_cast<T>(sizeof(T) * 8 - 1);
        if (op == DsdOpCode::shl)
          lane_run(r, [](auto d, auto a, auto b, auto) { return hn::Shl(a, hn::And(b, hn::Set(d, width_mask))); });
        else
          lane_run(r, [](auto d, auto a, auto b, auto) { return hn::Shr(a, hn::And(b, hn::Set(d, width_mask))); });
        return true;
      }
    default: return false;
  }
}
static HWY_NOINLINE bool RunI32(DsdOpCode op, const Run<std::int32_t>& r) { return RunInt(op, r); }
static HWY_NOINLINE bool RunU32(DsdOpCode op, const Run<std::uint32_t>& r) { return RunInt(op, r); }
static HWY_NOINLINE bool RunI16(DsdOpCode op, const Run<std::int16_t>& r) { return RunInt(op, r); }
static HWY_NOINLINE bool RunU16(DsdOpCode op, const Run<std::uint16_t>& r) { return RunInt(op, r); }

// ---- f16 and bf16 ---------------------------------------------------------------------------
// Each 16-bit lane travels zero-extended in a 32-bit lane (raw bits): full u32 vectors where
// the math is in f32, half-width ones where it is in f64 (bf16 mac). Widening and rounding
// back use integer lane ops, not Highway 1.0.3's conversions: its DemoteTo to bf16 (and to
// f16 without F16C) truncates, and its f16 PromoteTo without F16C makes infinities and NaNs
// finite.

// One run of 16-bit lanes: `op(d32, a, b, c)` maps raw source bits to result bits (< 2^16).
template <class D32, class Op> HWY_NOINLINE void half_run(D32 d32, const Run<std::uint16_t>& r, Op op) {
  const hn::Rebind<std::uint16_t, D32> d16;
  const hn::Rebind<std::int32_t, D32> di32;
  const std::size_t lanes = hn::Lanes(d32);
  auto src = [&](const std::uint16_t* p, std::uint16_t s, std::size_t i) {
    return p ? hn::PromoteTo(d32, hn::LoadU(d16, p + i)) : hn::Set(d32, s);
  };
  // Results fit 16 bits, so the saturating DemoteTo just takes the low halves.
  auto narrow = [&](auto v) { return hn::DemoteTo(d16, hn::BitCast(di32, v)); };
  std::size_t i = 0;
  for (; i + lanes <= r.n; i += lanes)
    hn::StoreU(narrow(op(d32, src(r.a, r.sa, i), src(r.b, r.sb, i), src(r.c, r.sc, i))), d16, r.d + i);
  if (i < r.n) {
    HWY_ALIGN std::uint16_t ta[hn::MaxLanes(d16)] = {}, tb[hn::MaxLanes(d16)] = {}, tc[hn::MaxLanes(d16)] = {},
                            td[hn::MaxLanes(d16)];
    for (std::size_t k = 0; i + k < r.n; ++k) {
      ta[k] = operand1(r.a, r.sa, i + k);
      tb[k] = operand1(r.b, r.sb, i + k);
      tc[k] = operand1(r.c, r.sc, i + k);
    }
    const auto v = op(d32, hn::PromoteTo(d32, hn::Load(d16, ta)), hn::PromoteTo(d32, hn::Load(d16, tb)),
                      hn::PromoteTo(d32, hn::Load(d16, tc)));
    hn::Store(narrow(v), d16, td);
    for (std::size_t k = 0; i + k < r.n; ++k) r.d[i + k] = td[k];
  }
}

// f16 bits (in u32 lanes) to f32, exactly; NaN payloads kept.
template <class DU> HWY_INLINE hn::Vec<hn::Rebind<float, DU>> WidenF16(DU du, hn::Vec<DU> h) {
  const hn::Rebind<float, DU> df;
  const hn::Rebind<std::int32_t, DU> di;
  const auto exp = hn::And(h, hn::Set(du, 0x7c00u));
  const auto normal = hn::Add(hn::ShiftLeft<13>(hn::And(h, hn::Set(du, 0x7fffu))), hn::Set(du, (127u - 15u) << 23));
  const auto special = hn::Add(normal, hn::Set(du, (255u - 143u) << 23));  // exponent 31 -> 255
  const auto frac = hn::BitCast(di, hn::And(h, hn::Set(du, 0x3ffu)));
  const auto sub = hn::BitCast(du, hn::Mul(hn::ConvertTo(df, frac), hn::Set(df, 0x1p-24f)));  // exact
  auto r = hn::IfThenElse(hn::Eq(exp, hn::Set(du, 0x7c00u)), special, normal);
  r = hn::IfThenElse(hn::Eq(exp, hn::Zero(du)), sub, r);
  return hn::BitCast(df, hn::Or(r, hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)))));
}

// bf16 bits (in u32 lanes) to f32, exactly.
template <class DU> HWY_INLINE hn::Vec<hn::Rebind<float, DU>> WidenBF16(DU, hn::Vec<DU> h) {
  return hn::BitCast(hn::Rebind<float, DU>(), hn::ShiftLeft<16>(h));
}

// f32 to f16 bits, round to nearest even, overflow to infinity, NaN -> 0x7e00 (arithmetic).
template <class DU> HWY_INLINE hn::Vec<DU> NarrowF16(DU du, hn::Vec<hn::Rebind<float, DU>> v) {
  const hn::Rebind<float, DU> df;
  const auto ax = hn::Abs(v);
  const auto u = hn::BitCast(du, ax);
  // Normal results: round away the low 13 fraction bits (ties to even), rebias 127 -> 15.
  const auto lsb = hn::And(hn::ShiftRight<13>(u), hn::Set(du, 1u));
  const auto normal = hn::Sub(hn::ShiftRight<13>(hn::Add(hn::Add(u, hn::Set(du, 0xfffu)), lsb)),
                              hn::Set(du, (127u - 15u) << 10));
  // Below 2^-14: adding 0.5 rounds to a multiple of 2^-24 (the f16 subnormal step) in hardware.
  const auto tiny = hn::Sub(hn::BitCast(du, hn::Add(ax, hn::Set(df, 0.5f))), hn::Set(du, 0x3f000000u));
  auto r = hn::IfThenElse(hn::RebindMask(du, hn::Lt(ax, hn::Set(df, 0x1p-14f))), tiny, normal);
  r = hn::IfThenElse(hn::RebindMask(du, hn::Ge(ax, hn::Set(df, 65520.0f))), hn::Set(du, 0x7c00u), r);
  r = hn::Or(r, hn::ShiftRight<16>(hn::And(hn::BitCast(du, v), hn::Set(du, 0x80000000u))));
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Set(du, 0x7e00u), r);
}

// f32 to bf16 bits, round to nearest even (a carry into the exponent reaches infinity),
// NaN -> 0x7fc0 (arithmetic).
template <class DU> HWY_INLINE hn::Vec<DU> NarrowBF16(DU du, hn::Vec<hn::Rebind<float, DU>> v) {
  const auto u = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u));
  const auto r = hn::ShiftRight<16>(hn::Add(hn::Add(u, hn::Set(du, 0x7fffu)), lsb));
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), hn::Set(du, 0x7fc0u), r);
}

// x + p rounded to odd (TwoSum; step an inexact even result to its odd neighbour), in f32 or
// f64 lanes: rounding that once more to 16-bit precision is the correctly rounded x + p.
template <class DF> HWY_INLINE hn::Vec<DF> SumRoundToOdd(DF df, hn::Vec<DF> p, hn::Vec<DF> x) {
  using T = hn::TFromD<DF>;
  const hn::RebindToUnsigned<DF> du;
  using U = hn::TFromD<decltype(du)>;
  const auto s = hn::Add(x, p);
  const auto bp = hn::Sub(s, x);
  const auto ba = hn::Sub(s, bp);
  const auto err = hn::Add(hn::Sub(p, bp), hn::Sub(x, ba));
  const auto sb = hn::BitCast(du, s);
  const auto zero = hn::Zero(df);
  const auto finite = hn::Lt(hn::Abs(s), hn::Set(df, std::numeric_limits<T>::infinity()));
  const auto even = hn::Eq(hn::And(sb, hn::Set(du, U{1})), hn::Zero(du));
  const auto step = hn::And(hn::And(hn::Ne(err, zero), finite), hn::RebindMask(df, even));
  const auto toward_zero = hn::Xor(hn::Gt(err, zero), hn::Gt(s, zero));
  const auto delta = hn::IfThenElse(hn::RebindMask(du, toward_zero), hn::Set(du, static_cast<U>(~U{0})), hn::Set(du, U{1}));
  return hn::BitCast(df, hn::Add(sb, hn::IfThenElseZero(hn::RebindMask(du, step), delta)));
}

#if HWY_HAVE_FLOAT64
// bf16 mac in f64 lanes (DU: u32 lanes, one per f64 lane). The bf16 product is exact in f64
// (it may leave f32's range); the sum is rounded to odd, then once to bf16: integer rounding
// of the f64 bits in bf16's normal range, below it an add of 2^-81 (f64 step 2^-133, the bf16
// subnormal step). The rounded value converts to f32 exactly unless it is 2^128 or more,
// which DemoteTo makes infinity or (SCALAR, EMU128) the largest float: both mean overflow.
template <class DU> HWY_INLINE hn::Vec<DU> MacBF16F64(DU du, hn::Vec<DU> a, hn::Vec<DU> b, hn::Vec<DU> c) {
  const hn::Rebind<float, DU> df;
  const hn::Rebind<double, DU> dd;
  const hn::RebindToUnsigned<decltype(dd)> du64;
  const auto x = hn::PromoteTo(dd, WidenBF16(du, a));
  const auto p = hn::Mul(hn::PromoteTo(dd, WidenBF16(du, b)), hn::PromoteTo(dd, WidenBF16(du, c)));
  const auto s = SumRoundToOdd(dd, p, x);
  const auto as = hn::Abs(s);
  const auto ub = hn::BitCast(du64, as);
  const auto lsb = hn::And(hn::ShiftRight<45>(ub), hn::Set(du64, 1ull));
  const auto normal = hn::BitCast(dd, hn::And(hn::Add(hn::Add(ub, hn::Set(du64, (1ull << 44) - 1)), lsb),
                                              hn::Set(du64, ~((1ull << 45) - 1))));
  const auto tiny = hn::Sub(hn::Add(as, hn::Set(dd, 0x1p-81)), hn::Set(dd, 0x1p-81));
  auto m = hn::IfThenElse(hn::Lt(as, hn::Set(dd, 0x1p-126)), tiny, normal);
  m = hn::IfThenElse(hn::IsNaN(s), s, m);
  const auto f = hn::DemoteTo(df, hn::CopySign(m, s));
  auto r = hn::ShiftRight<16>(hn::BitCast(du, f));
  const auto overflow = hn::Ge(hn::Abs(f), hn::Set(df, std::numeric_limits<float>::max()));
  r = hn::IfThenElse(hn::RebindMask(du, overflow), hn::Or(hn::And(r, hn::Set(du, 0x8000u)), hn::Set(du, 0x7f80u)), r);
  return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(f)), hn::Set(du, 0x7fc0u), r);
}
#endif

// f16 (kBF16 false) or bf16 ops on raw bits. Returns false when this target cannot
// reproduce the reference (bf16 mac without f64 lanes).
template <bool kBF16> HWY_INLINE bool RunHalf(DsdOpCode op, const Run<std::uint16_t>& r) {
  const hn::ScalableTag<std::uint32_t> du;
  auto widen = [](auto d, auto h) {
    if constexpr (kBF16) return WidenBF16(d, h); else return WidenF16(d, h);
  };
  auto narrow = [](auto d, auto v) {
    if constexpr (kBF16) return NarrowBF16(d, v); else return NarrowF16(d, v);
  };
  // Float ops are exact or round once in f32 at 24 >= 2p+2 bits (p = 11 or 8), so rounding
  // the f32 result to 16 bits is correctly rounded; a bf16 product below f32's normal range
  // is inexact only when it is under a quarter of bf16's smallest subnormal, rounding to 0.
  auto arith = [&](auto fn) {
    half_run(du, r, [&](auto d, auto a, auto b, auto) { return narrow(d, fn(widen(d, a), widen(d, b))); });
    return true;
  };
  switch (op) {
    case DsdOpCode::mov: half_run(du, r, [](auto, auto a, auto, auto) { return a; }); return true;
    case DsdOpCode::neg: half_run(du, r, [](auto d, auto a, auto, auto) { return hn::Xor(a, hn::Set(d, 0x8000u)); }); return true;
    case DsdOpCode::abs: half_run(du, r, [](auto d, auto a, auto, auto) { return hn::And(a, hn::Set(d, 0x7fffu)); }); return true;
    case DsdOpCode::add: return arith([](auto x, auto y) { return hn::Add(x, y); });
    case DsdOpCode::sub: return arith([](auto x, auto y) { return hn::Sub(x, y); });
    case DsdOpCode::mul: return arith([](auto x, auto y) { return hn::Mul(x, y); });
    case DsdOpCode::max:  // the f32 rule on the widened values; the result is an operand's bits
      half_run(du, r, [&](auto d, auto a, auto b, auto) {
        const auto x = widen(d, a), y = widen(d, b);
        const auto take_a = hn::AndNot(hn::IsNaN(x), hn::Or(hn::Ge(x, y), hn::IsNaN(y)));
        return hn::IfThenElse(hn::RebindMask(d, take_a), a, b);
      });
      return true;
    case DsdOpCode::min:
      half_run(du, r, [&](auto d, auto a, auto b, auto) {
        const auto x = widen(d, a), y = widen(d, b);
        const auto take_a = hn::AndNot(hn::IsNaN(x), hn::Or(hn::Le(x, y), hn::IsNaN(y)));
        return hn::IfThenElse(hn::RebindMask(d, take_a), a, b);
      });
      return true;
    case DsdOpCode::mac:
      if constexpr (!kBF16) {  // the f16 product is exact in f32 (22 bits, >= 2^-48)
        half_run(du, r, [](auto d, auto a, auto b, auto c) {
          const hn::Rebind<float, decltype(d)> df;
          return NarrowF16(d, SumRoundToOdd(df, hn::Mul(WidenF16(d, b), WidenF16(d, c)), WidenF16(d, a)));
        });
        return true;
      } else {
#if HWY_HAVE_FLOAT64
        half_run(hn::Rebind<std::uint32_t, hn::ScalableTag<double>>(), r,
                 [](auto d, auto a, auto b, auto c) { return MacBF16F64(d, a, b, c); });
        return true;
#else
        return false;
#endif
      }
    default: return false;
  }
}
static HWY_NOINLINE bool RunF16(DsdOpCode op, const Run<std::uint16_t>& r) { return RunHalf<false>(op, r); }
static HWY_NOINLINE bool RunBF16(DsdOpCode op, const Run<std::uint16_t>& r) { return RunHalf<true>(op, r); }

// Mixed mac: f32 d = a + b * c with f16 b and c. The product is exact in f32, so one f32 add
// rounds once (a fused multiply-add would give the same bits).
static HWY_NOINLINE bool RunMixedMac(const Run<float, std::uint16_t>& r) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::Rebind<std::uint16_t, decltype(df)> d16;
  const std::size_t lanes = hn::Lanes(df);
  auto half = [&](auto v16) { return WidenF16(du, hn::PromoteTo(du, v16)); };
  auto half_src = [&](const std::uint16_t* p, std::uint16_t s, std::size_t i) {
    return p ? half(hn::LoadU(d16, p + i)) : half(hn::Set(d16, s));
  };
  std::size_t i = 0;
  for (; i + lanes <= r.n; i += lanes)
    hn::StoreU(canonical(df, hn::Add(operand(df, r.a, r.sa, i), hn::Mul(half_src(r.b, r.sb, i), half_src(r.c, r.sc, i)))), df,
               r.d + i);
  if (i < r.n) {
    HWY_ALIGN float ta[hn::MaxLanes(df)] = {}, td[hn::MaxLanes(df)];
    HWY_ALIGN std::uint16_t tb[hn::MaxLanes(d16)] = {}, tc[hn::MaxLanes(d16)] = {};
    for (std::size_t k = 0; i + k < r.n; ++k) {
      ta[k] = operand1(r.a, r.sa, i + k);
      tb[k] = operand1(r.b, r.sb, i + k);
      tc[k] = operand1(r.c, r.sc, i + k);
    }
    hn::Store(canonical(df, hn::Add(hn::Load(df, ta), hn::Mul(half(hn::Load(d16, tb)), half(hn::Load(d16, tc))))), df, td);
    for (std::size_t k = 0; i + k < r.n; ++k) r.d[i + k] = td[k];
  }
  return true;
}

// Name of this target, for reports.
static HWY_NOINLINE const char* TargetNameHere() { return hwy::TargetName(HWY_TARGET); }

}  // namespace wse::emu::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target guard
