#pragma once
/// \file
/// DSD operations. Every op is elementwise, destination first, over `length` elements (the
/// destination's length; source DSDs must have the same length; scalars broadcast).
/// Passing a Completion last makes an op asynchronous (it runs on a microthread; the
/// completion fires when the last element is done); ops with a fabric operand must be
/// asynchronous. See docs/ops.md for the catalogue. Freestanding.
#include <cstdint>
#include <type_traits>

#include "dsd.hpp"
#include "task.hpp"

namespace wse {

/// The operation of a DSD instruction. In the table, d = destination, a/b/c = sources.
enum class DsdOpCode : std::uint8_t {
  mov,   ///< d = a
  add,   ///< d = a + b
  sub,   ///< d = a - b
  mul,   ///< d = a * b
  mac,   ///< d = a + b * c   (floats: fused, one rounding; also d, a f32 with b, c f16)
  max,   ///< d = max(a, b)
  min,   ///< d = min(a, b)
  neg,   ///< d = -a
  abs,   ///< d = |a|
  band,  ///< d = a & b        (integers)
  bor,   ///< d = a | b        (integers)
  bxor,  ///< d = a ^ b        (integers)
  shl,   ///< d = a << b       (integers, b taken modulo the bit width)
  shr,   ///< d = a >> b       (integers: arithmetic for signed, logical for unsigned)
  cvt,   ///< d = a converted to d's type (to a float or from a float: round to nearest even)
};

namespace detail {
// At namespace scope: a local array would be rebuilt on every call (the emulator names the op
// of every DSD instruction it checks).
inline constexpr const char* op_names[] = {"mov", "add", "sub", "mul", "mac", "max", "min", "neg",
                                           "abs", "and", "or",  "xor", "shl", "shr", "cvt"};
}  // namespace detail

/// Name for messages: "mov", "add", ...
constexpr const char* op_name(DsdOpCode op) { return detail::op_names[static_cast<unsigned>(op)]; }

/// A DSD instruction as a backend receives it.
struct DsdInstr {
  DsdOpCode op = DsdOpCode::mov;
  Operand dst{}, a{}, b{}, c{};
  bool async = false;
  Completion done{};
};

namespace detail {
template <class X> struct ElemOfOperand { using type = X; };
template <class X> requires Dsd<X> struct ElemOfOperand<X> { using type = typename DsdTraits<X>::elem; };
template <class X> using elem_of_operand = typename ElemOfOperand<X>::type;

// A scalar fits a destination of element type T when it is the same kind of number: a float
// for float, a wse::f16 for f16 (likewise bf16); for integers the same size and signedness
// (so `7u` works for std::uint32_t whether the target spells that `unsigned int` or `unsigned long`).
template <class S, class T> constexpr bool scalar_fits() {
  if constexpr (std::is_same_v<S, T>) return true;
  else if constexpr (!std::is_arithmetic_v<S> || !std::is_arithmetic_v<T>) return false;  // f16, bf16
  else if constexpr (std::is_floating_point_v<T> || std::is_floating_point_v<S>) return false;
  else return std::is_integral_v<S> && !std::is_same_v<S, bool> && sizeof(S) == sizeof(T) &&
              std::is_signed_v<S> == std::is_signed_v<T>;
}
template <class S, class T> constexpr bool source_fits() {
  if constexpr (Dsd<S>) return std::is_same_v<typename DsdTraits<S>::elem, T>;
  else return scalar_fits<S, T>();
}
// The operand for a source: DSDs as they are, scalars converted to the element type T.
template <class T, class S> constexpr Operand source_operand(const S& s) {
  if constexpr (Dsd<S>) return to_operand(s);
  else return to_operand(static_cast<T>(s));
}

template <class X> constexpr bool is_fabric_operand() {
  if constexpr (Dsd<X>) return DsdTraits<X>::is_fabric; else return false;
}

template <class X> constexpr bool is_half_operand() {
  using E = elem_of_operand<X>;
  return std::is_same_v<E, f16> || std::is_same_v<E, bf16>;
}
// The mixed-precision mac: d and a f32, b and c f16 (DSDs or wse::f16 scalars).
template <DsdOpCode Op, class T, class... S> constexpr bool is_mixed_mac() {
  if constexpr (Op == DsdOpCode::mac && std::is_same_v<T, float> && sizeof...(S) == 3) {
    constexpr bool fits[3] = {source_fits<S, float>()...};
    constexpr bool half[3] = {source_fits<S, f16>()...};
    return fits[0] && half[1] && half[2];
  } else {
    return false;
  }
}
// An f32 mac with a 16-bit float source that is not exactly the mixed signature.
template <DsdOpCode Op, class T, class... S> constexpr bool is_near_mixed_mac() {
  return Op == DsdOpCode::mac && std::is_same_v<T, float> && (is_half_operand<S>() || ...) &&
         !is_mixed_mac<Op, T, S...>();
}

template <DsdOpCode Op, bool Async, class PE, class D, class... S>
void issue(PE& pe, const D& dst, Completion done, const S&... src) {
  static_assert(DestDsd<D>, "the destination must be a memory DSD or a fabric output DSD");
  static_assert((SourceOperand<S> && ...),
                "sources must be memory DSDs, fabric input DSDs, or scalars of a DSD element type");
  using T = typename DsdTraits<D>::elem;
  constexpr bool mixed = is_mixed_mac<Op, T, S...>();
  if constexpr (is_near_mixed_mac<Op, T, S...>()) {
    static_assert(!is_near_mixed_mac<Op, T, S...>(),
                  "mixed-precision mac is mac(pe, d, a, b, c) with d and a f32 and both b and c f16 "
                  "(f16 DSDs or wse::f16 scalars); bf16 has no mixed form");
  } else if constexpr (Op != DsdOpCode::cvt && !mixed) {
    static_assert((source_fits<S, T>() && ...),
                  "every source must have the destination's element type (use cvt to convert; "
                  "a scalar must be the same kind of number: 2.0f for float, wse::f16::from_float(2.0f) "
                  "for f16, an integer of the same size and signedness for integers, e.g. std::int16_t{2})");
  }
  if constexpr (Op == DsdOpCode::band || Op == DsdOpCode::bor || Op == DsdOpCode::bxor ||
                Op == DsdOpCode::shl || Op == DsdOpCode::shr) {
    static_assert(std::is_integral_v<T>, "bitwise and shift ops take integer elements only");
  }
  static_assert(Async || (!is_fabric_operand<D>() && (!is_fabric_operand<S>() && ...)),
                "an op with a fabric operand must be asynchronous: pass a completion such as "
                "wse::then_activate(task) as the last argument");
  DsdInstr ins;
  ins.op = Op;
  ins.dst = to_operand(dst);
  Operand* slots[3] = {&ins.a, &ins.b, &ins.c};
  if constexpr (Op == DsdOpCode::cvt) {
    int i = 0;
    ((*slots[i++] = to_operand(src)), ...);  // cvt's source keeps its own element type
  } else if constexpr (mixed) {
    [&](const auto& a, const auto& b, const auto& c) {
      *slots[0] = source_operand<float>(a);
      *slots[1] = source_operand<f16>(b);
      *slots[2] = source_operand<f16>(c);
    }(src...);
  } else if constexpr ((source_fits<S, T>() && ...)) {  // else a static_assert above has failed
    int i = 0;
    ((*slots[i++] = source_operand<T>(src)), ...);
  }
  ins.async = Async;
  ins.done = done;
  pe.dsd(ins);
}
}  // namespace detail

// Each op comes as a synchronous overload (memory operands only; finishes before returning)
// and an asynchronous one taking a Completion last. Kernel code.
#define WSE_DETAIL_UNARY_OP(name, code)                                                     \
  template <class PE, class D, class A> void name(PE& pe, const D& d, const A& a) {          \
    detail::issue<DsdOpCode::code, false>(pe, d, Completion{}, a);                          \
  }                                                                                         \
  template <class PE, class D, class A> void name(PE& pe, const D& d, const A& a, Completion done) { \
    detail::issue<DsdOpCode::code, true>(pe, d, done, a);                                   \
  }
#define WSE_DETAIL_BINARY_OP(name, code)                                                    \
  template <class PE, class D, class A, class B> void name(PE& pe, const D& d, const A& a, const B& b) { \
    detail::issue<DsdOpCode::code, false>(pe, d, Completion{}, a, b);                       \
  }                                                                                         \
  template <class PE, class D, class A, class B>                                            \
  void name(PE& pe, const D& d, const A& a, const B& b, Completion done) {                  \
    detail::issue<DsdOpCode::code, true>(pe, d, done, a, b);                                \
  }

/// d = a (copy; to/from the fabric when an operand is a fabric DSD).
WSE_DETAIL_UNARY_OP(mov, mov)
/// d = -a
WSE_DETAIL_UNARY_OP(neg, neg)
/// d = |a|
WSE_DETAIL_UNARY_OP(abs, abs)
/// d = a converted to d's element type.
WSE_DETAIL_UNARY_OP(cvt, cvt)
/// d = a + b
WSE_DETAIL_BINARY_OP(add, add)
/// d = a - b
WSE_DETAIL_BINARY_OP(sub, sub)
/// d = a * b
WSE_DETAIL_BINARY_OP(mul, mul)
/// d = max(a, b)
WSE_DETAIL_BINARY_OP(max, max)
/// d = min(a, b)
WSE_DETAIL_BINARY_OP(min, min)
/// d = a & b (integers)
WSE_DETAIL_BINARY_OP(bit_and, band)
/// d = a | b (integers)
WSE_DETAIL_BINARY_OP(bit_or, bor)
/// d = a ^ b (integers)
WSE_DETAIL_BINARY_OP(bit_xor, bxor)
/// d = a << b (integers)
WSE_DETAIL_BINARY_OP(shl, shl)
/// d = a >> b (integers)
WSE_DETAIL_BINARY_OP(shr, shr)
#undef WSE_DETAIL_UNARY_OP
#undef WSE_DETAIL_BINARY_OP

/// d = a + b * c (floats: fused multiply-add, one rounding). Also mixed precision: d and a
/// f32, b and c f16 (the f16 product is exact in f32; one rounding to f32). Synchronous.
template <class PE, class D, class A, class B, class C>
void mac(PE& pe, const D& d, const A& a, const B& b, const C& c) {
  detail::issue<DsdOpCode::mac, false>(pe, d, Completion{}, a, b, c);
}
/// d = a + b * c, asynchronous; `done` fires when it finishes.
template <class PE, class D, class A, class B, class C>
void mac(PE& pe, const D& d, const A& a, const B& b, const C& c, Completion done) {
  detail::issue<DsdOpCode::mac, true>(pe, d, done, a, b, c);
}

}  // namespace wse
