#pragma once
/// \file
/// Array<T>: a view of kernel memory (pointer + element count). Freestanding.
#include <cstddef>
#include <cstdint>

namespace wse {

/// A contiguous run of T in PE memory. Does not own. Kernel code; indexing is unchecked,
/// DSDs built from it are checked against `size()` by the backend.
template <class T> struct Array {
  T* ptr = nullptr;
  std::uint32_t count = 0;

  constexpr Array() = default;
  constexpr Array(T* p, std::uint32_t n) : ptr(p), count(n) {}
  template <std::size_t N> constexpr Array(T (&a)[N]) : ptr(a), count(static_cast<std::uint32_t>(N)) {}

  constexpr T* data() const { return ptr; }
  constexpr std::uint32_t size() const { return count; }
  constexpr T& operator[](std::uint32_t i) const { return ptr[i]; }
  constexpr T* begin() const { return ptr; }
  constexpr T* end() const { return ptr + count; }
};

template <class T, std::size_t N> Array(T (&)[N]) -> Array<T>;

}  // namespace wse
