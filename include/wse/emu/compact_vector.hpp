#pragma once
/// \file
/// wse::emu::CompactVector: a growable array of trivially copyable values that costs one
/// pointer (8 bytes) while empty, for the per-PE lists most of 754,000 PEs never fill
/// (async ops, stalled sends, pending launches, exports). std::vector costs 24. Emulator
/// internal.
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

namespace wse::emu {

template <class T> class CompactVector {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "CompactVector moves its elements with memcpy");

 public:
  CompactVector() = default;
  CompactVector(const CompactVector&) = delete;
  CompactVector& operator=(const CompactVector&) = delete;
  ~CompactVector() { release(); }

  std::size_t size() const { return h_ ? h_->size : 0; }
  std::size_t capacity() const { return h_ ? h_->cap : 0; }
  bool empty() const { return size() == 0; }
  T* begin() { return h_ ? data() : nullptr; }
  T* end() { return begin() + size(); }
  const T* begin() const { return h_ ? data() : nullptr; }
  const T* end() const { return begin() + size(); }
  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }
  T& back() { return data()[h_->size - 1]; }

  void push_back(const T& v) {
    const T copy = v;  // v may be one of our elements, which grow() moves
    if (size() == capacity()) grow();
    std::memcpy(static_cast<void*>(data() + h_->size), &copy, sizeof(T));
    ++h_->size;
  }
  /// Inserts v before position i (i <= size()), keeping the order.
  void insert(std::size_t i, const T& v) {
    const T copy = v;
    if (size() == capacity()) grow();
    std::memmove(static_cast<void*>(data() + i + 1), data() + i, (size() - i) * sizeof(T));
    std::memcpy(static_cast<void*>(data() + i), &copy, sizeof(T));
    ++h_->size;
  }
  /// Keeps the first n elements (n <= size()).
  void resize_down(std::size_t n) {
    if (h_) h_->size = static_cast<std::uint32_t>(n);
  }
  void clear() { resize_down(0); }
  /// Removes the first n elements, keeping the order of the rest.
  void erase_front(std::size_t n) {
    if (n == 0) return;
    std::memmove(static_cast<void*>(data()), data() + n, (size() - n) * sizeof(T));
    h_->size -= static_cast<std::uint32_t>(n);
  }
  /// Frees the storage (the vector becomes empty).
  void release() {
    if (h_) ::operator delete(h_, std::align_val_t{alignof(Header)});
    h_ = nullptr;
  }
  /// Frees the storage when the vector is empty.
  void release_if_empty() {
    if (h_ && h_->size == 0) release();
  }
  /// Shrinks the storage to the size.
  void shrink_to_fit() {
    if (!h_ || h_->size == h_->cap) return;
    if (h_->size == 0) return release();
    reallocate(h_->size);
  }

 private:
  struct alignas(alignof(T) > 8 ? alignof(T) : 8) Header {
    std::uint32_t size;
    std::uint32_t cap;
  };
  static constexpr std::size_t data_offset = (sizeof(Header) + alignof(T) - 1) / alignof(T) * alignof(T);
  T* data() const { return reinterpret_cast<T*>(reinterpret_cast<char*>(h_) + data_offset); }
  void grow() { reallocate(capacity() == 0 ? 1 : capacity() * 2); }
  void reallocate(std::size_t cap) {
    auto* fresh = static_cast<Header*>(::operator new(data_offset + cap * sizeof(T), std::align_val_t{alignof(Header)}));
    fresh->size = static_cast<std::uint32_t>(size());
    fresh->cap = static_cast<std::uint32_t>(cap);
    if (h_) std::memcpy(reinterpret_cast<char*>(fresh) + data_offset, data(), size() * sizeof(T));
    release();
    h_ = fresh;
  }
  Header* h_ = nullptr;
};

}  // namespace wse::emu
