#pragma once
/// \file
/// Element types a DSD can describe, and the mapping from C++ types. Freestanding.
#include <cstdint>

#include "half.hpp"

namespace wse {

/// Element type of a DSD operand.
enum class ElemType : std::uint8_t { f32, i32, u32, i16, u16, f16, bf16 };

/// Size in bytes of one element.
constexpr unsigned elem_size(ElemType t) {
  return (t == ElemType::i16 || t == ElemType::u16 || t == ElemType::f16 || t == ElemType::bf16) ? 2u : 4u;
}

/// True for the floating-point types: f32, f16, bf16.
constexpr bool is_float_type(ElemType t) { return t == ElemType::f32 || t == ElemType::f16 || t == ElemType::bf16; }

/// Name for messages: "f32", "i32", ...
constexpr const char* elem_name(ElemType t) {
  switch (t) {
    case ElemType::f32: return "f32";
    case ElemType::i32: return "i32";
    case ElemType::u32: return "u32";
    case ElemType::i16: return "i16";
    case ElemType::u16: return "u16";
    case ElemType::f16: return "f16";
    case ElemType::bf16: return "bf16";
  }
  return "?";
}

namespace detail {
template <class T> struct ElemOf;
template <> struct ElemOf<float> { static constexpr ElemType value = ElemType::f32; };
template <> struct ElemOf<std::int32_t> { static constexpr ElemType value = ElemType::i32; };
template <> struct ElemOf<std::uint32_t> { static constexpr ElemType value = ElemType::u32; };
template <> struct ElemOf<std::int16_t> { static constexpr ElemType value = ElemType::i16; };
template <> struct ElemOf<std::uint16_t> { static constexpr ElemType value = ElemType::u16; };
template <> struct ElemOf<f16> { static constexpr ElemType value = ElemType::f16; };
template <> struct ElemOf<bf16> { static constexpr ElemType value = ElemType::bf16; };
template <class T> concept HasElemType = requires { ElemOf<T>::value; };
}  // namespace detail

/// True for C++ types a DSD may hold: float, wse::f16, wse::bf16, int32/uint32, int16/uint16.
template <class T> concept DsdElement = detail::HasElemType<T>;

/// The ElemType of a DSD element type.
template <DsdElement T> inline constexpr ElemType elem_type_of = detail::ElemOf<T>::value;

}  // namespace wse
