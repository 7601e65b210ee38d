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

HWY_BEFORE_NAMESPACE();
namespace wse::emu::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D, class T> HWY_INLINE hn::Vec<D> operand(D d, const T* p, T s, std::size_t i) {
  return p ? hn::LoadU(d, p + i) : hn::Set(d, s);
}
template <class T> HWY_INLINE T operand1(const T* p, T s, std::size_t i) { return p ? p[i] : s; }

// One run of any lane type: full vectors, then the tail on a partial vector.
template <class T, class Op> HWY_NOINLINE void lane_run(const Run<T>& r, Op op) {
  const hn::ScalableTag<T> d;
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
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

// Name of this target, for reports.
static HWY_NOINLINE const char* TargetNameHere() { return hwy::TargetName(HWY_TARGET); }

}  // namespace wse::emu::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target guard
