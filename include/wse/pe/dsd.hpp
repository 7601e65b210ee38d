#pragma once
/// \file
/// Data structure descriptors (DSDs): typed views of PE memory (1-D and up to 4-D) and of
/// the fabric (input and output on a color). Freestanding; a DSD is a small value.
#include <cstdint>
#include <type_traits>

#include "../core/elem_type.hpp"
#include "../core/types.hpp"
#include "array.hpp"

namespace wse {

/// 1-D memory DSD: elements base[offset + i*stride] for i in [0, length).
/// `extent` is the size of the underlying array; the backend faults if an access leaves it.
template <DsdElement T> struct Mem1d {
  T* base = nullptr;
  std::uint32_t extent = 0;
  std::uint32_t length = 0;
  std::int32_t stride = 1;
  std::uint32_t offset = 0;

  /// Same DSD with `n` elements.
  constexpr Mem1d with_length(std::uint32_t n) const { Mem1d d = *this; d.length = n; return d; }
  /// Same DSD stepping `s` elements between accesses (may be negative or zero).
  constexpr Mem1d with_stride(std::int32_t s) const { Mem1d d = *this; d.stride = s; return d; }
  /// Same DSD starting `o` elements into the array.
  constexpr Mem1d with_offset(std::uint32_t o) const { Mem1d d = *this; d.offset = o; return d; }
};

/// 1-D DSD over all of `a`, stride 1. Shape: (a.size()).
template <DsdElement T> constexpr Mem1d<T> mem1d(Array<T> a) {
  return Mem1d<T>{a.data(), a.size(), a.size(), 1, 0};
}
/// 1-D DSD over a C array member, stride 1.
template <DsdElement T, std::size_t N> constexpr Mem1d<T> mem1d(T (&a)[N]) {
  return mem1d(Array<T>{a});
}

/// Up to 4-D memory DSD: element (i0, i1, i2, i3) is base[offset + i0*s0 + i1*s1 + i2*s2 + i3*s3],
/// i0 varies fastest. Unused dimensions have extent 1. Length = e0*e1*e2*e3.
template <DsdElement T> struct Mem4d {
  T* base = nullptr;
  std::uint32_t extent = 0;  ///< array size, for bounds checks
  std::uint32_t dims[4] = {1, 1, 1, 1};
  std::int32_t strides[4] = {0, 0, 0, 0};
  std::uint32_t offset = 0;

  constexpr std::uint32_t length() const { return dims[0] * dims[1] * dims[2] * dims[3]; }
};

/// N-D DSD (N <= 4) over `a` with `dims` (innermost first) and `strides` (in elements).
template <DsdElement T, std::size_t N>
constexpr Mem4d<T> mem4d(Array<T> a, const std::uint32_t (&dims)[N], const std::int32_t (&strides)[N],
                         std::uint32_t offset = 0) {
  static_assert(N >= 1 && N <= 4, "mem4d: between 1 and 4 dimensions");
  Mem4d<T> d{a.data(), a.size(), {1, 1, 1, 1}, {0, 0, 0, 0}, offset};
  for (std::size_t i = 0; i < N; ++i) {
    d.dims[i] = dims[i];
    d.strides[i] = strides[i];
  }
  return d;
}

/// Fabric input DSD: `length` wavelets taken from the PE's input queue of `color`.
/// 16-bit elements take the low half of each wavelet. Usable only in asynchronous ops.
template <DsdElement T> struct FabIn {
  Color color{};
  std::uint32_t length = 0;
};
template <DsdElement T> constexpr FabIn<T> fabin(Color c, std::uint32_t length) { return {c, length}; }

/// Fabric output DSD: `length` wavelets pushed into the PE's output queue of `color`.
/// 16-bit elements go in the low half; with `indexed` the high half carries
/// index_base + element number. With `control` the wavelets are control wavelets.
/// Usable only in asynchronous ops.
template <DsdElement T> struct FabOut {
  Color color{};
  std::uint32_t length = 0;
  bool control = false;
  bool indexed = false;
  std::uint16_t index_base = 0;

  constexpr FabOut as_control() const { FabOut d = *this; d.control = true; return d; }
  constexpr FabOut with_index(std::uint16_t base) const {
    FabOut d = *this; d.indexed = true; d.index_base = base; return d;
  }
};
template <DsdElement T> constexpr FabOut<T> fabout(Color c, std::uint32_t length) { return {c, length}; }

// ---- type-erased form handed to a backend -------------------------------------------------

/// What kind of operand a type-erased DSD operand is.
enum class OperandKind : std::uint8_t { none, scalar, mem, fabin, fabout };

/// A DSD or scalar operand with its type erased, as a backend receives it.
/// For `mem`, 1-D DSDs use dims = {length,1,1,1}.
struct Operand {
  OperandKind kind = OperandKind::none;
  ElemType type = ElemType::f32;
  void* base = nullptr;
  std::uint32_t extent = 0;
  std::uint32_t dims[4] = {0, 1, 1, 1};
  std::int32_t strides[4] = {0, 0, 0, 0};
  std::uint32_t offset = 0;
  Color color{};
  bool control = false;
  bool indexed = false;
  std::uint16_t index_base = 0;
  std::uint32_t scalar_bits = 0;  ///< value of a scalar operand, low bits for 16-bit types

  /// Number of elements this operand supplies or takes (0 for scalars and none).
  constexpr std::uint32_t length() const {
    return kind == OperandKind::scalar || kind == OperandKind::none
               ? 0u
               : dims[0] * dims[1] * dims[2] * dims[3];
  }
};

namespace detail {
template <class T> constexpr Operand to_operand(const Mem1d<T>& d) {
  Operand o;
  o.kind = OperandKind::mem;
  o.type = elem_type_of<T>;
  o.base = d.base;
  o.extent = d.extent;
  o.dims[0] = d.length;
  o.strides[0] = d.stride;
  o.offset = d.offset;
  return o;
}
template <class T> constexpr Operand to_operand(const Mem4d<T>& d) {
  Operand o;
  o.kind = OperandKind::mem;
  o.type = elem_type_of<T>;
  o.base = d.base;
  o.extent = d.extent;
  for (int i = 0; i < 4; ++i) {
    o.dims[i] = d.dims[i];
    o.strides[i] = d.strides[i];
  }
  o.offset = d.offset;
  return o;
}
template <class T> constexpr Operand to_operand(const FabIn<T>& d) {
  Operand o;
  o.kind = OperandKind::fabin;
  o.type = elem_type_of<T>;
  o.dims[0] = d.length;
  o.color = d.color;
  return o;
}
template <class T> constexpr Operand to_operand(const FabOut<T>& d) {
  Operand o;
  o.kind = OperandKind::fabout;
  o.type = elem_type_of<T>;
  o.dims[0] = d.length;
  o.color = d.color;
  o.control = d.control;
  o.indexed = d.indexed;
  o.index_base = d.index_base;
  return o;
}
template <DsdElement T> constexpr Operand to_operand(T scalar) {
  Operand o;
  o.kind = OperandKind::scalar;
  o.type = elem_type_of<T>;
  if constexpr (sizeof(T) == 4) {
    o.scalar_bits = __builtin_bit_cast(std::uint32_t, scalar);
  } else {
    o.scalar_bits = __builtin_bit_cast(std::uint16_t, scalar);
  }
  return o;
}

template <class D> struct DsdTraits { static constexpr bool is_dsd = false; };
template <class T> struct DsdTraits<Mem1d<T>> { static constexpr bool is_dsd = true, is_fabric = false, is_out = false; using elem = T; };
template <class T> struct DsdTraits<Mem4d<T>> { static constexpr bool is_dsd = true, is_fabric = false, is_out = false; using elem = T; };
template <class T> struct DsdTraits<FabIn<T>> { static constexpr bool is_dsd = true, is_fabric = true, is_out = false; using elem = T; };
template <class T> struct DsdTraits<FabOut<T>> { static constexpr bool is_dsd = true, is_fabric = true, is_out = true; using elem = T; };
}  // namespace detail

/// Any DSD type (memory or fabric).
template <class D> concept Dsd = detail::DsdTraits<D>::is_dsd;
/// A DSD that can be written (memory or fabric output).
template <class D> concept DestDsd = Dsd<D> && !(detail::DsdTraits<D>::is_fabric && !detail::DsdTraits<D>::is_out);
/// A DSD or scalar that can be read (memory, fabric input, or a scalar value: a number or a
/// wse::f16 / wse::bf16).
template <class S> concept SourceOperand =
    std::is_arithmetic_v<S> || DsdElement<S> || (Dsd<S> && !detail::DsdTraits<S>::is_out);

}  // namespace wse
