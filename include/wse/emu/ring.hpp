#pragma once
/// \file
/// A fixed-capacity wavelet FIFO (at most 16 entries) used for every queue and link buffer
/// in the emulator. Emulator internal.
#include <cstdint>

#include "../core/wavelet.hpp"

namespace wse::emu {

/// Bounded FIFO of wavelets. capacity() is set once (1..16).
class Ring {
 public:
  static constexpr unsigned max_capacity = 16;

  void set_capacity(unsigned cap) { cap_ = static_cast<std::uint8_t>(cap < 1 ? 1 : cap > max_capacity ? max_capacity : cap); }
  unsigned capacity() const { return cap_; }
  unsigned size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ >= cap_; }
  unsigned space() const { return cap_ - size_; }

  Wavelet front() const { return Wavelet{data_[head_], ((ctrl_ >> head_) & 1u) != 0}; }
  void pop() {
    head_ = static_cast<std::uint8_t>((head_ + 1) % max_capacity);
    --size_;
  }
  void push(Wavelet w) {
    const unsigned slot = (head_ + size_) % max_capacity;
    data_[slot] = w.data;
    ctrl_ = static_cast<std::uint16_t>(w.control ? (ctrl_ | (1u << slot)) : (ctrl_ & ~(1u << slot)));
    ++size_;
  }
  /// i-th element from the front (0 = front).
  Wavelet at(unsigned i) const {
    const unsigned slot = (head_ + i) % max_capacity;
    return Wavelet{data_[slot], ((ctrl_ >> slot) & 1u) != 0};
  }

 private:
  std::uint32_t data_[max_capacity]{};
  std::uint16_t ctrl_ = 0;
  std::uint8_t head_ = 0, size_ = 0, cap_ = 1;
};

}  // namespace wse::emu
