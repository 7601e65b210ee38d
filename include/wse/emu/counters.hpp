#pragma once
/// \file
/// wse::emu::CompactCounters: event counters stored in 32 bits, exact to 2^64. Emulator layer;
/// hosted.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace wse::emu {

/// N event counters of 32 bits each. A counter about to pass 2^32 - 1 moves its count to a
/// 64-bit side table allocated then, so every count stays exact while a PE pays 4 bytes per
/// counter instead of 8 (no PE of a normal run reaches 4 billion events of one kind).
template <std::size_t N>
class CompactCounters {
 public:
  void add(std::size_t k, std::uint64_t n = 1) {
    const std::uint64_t sum = std::uint64_t{low_[k]} + n;
    if (sum <= 0xffffffffu) [[likely]] {
      low_[k] = static_cast<std::uint32_t>(sum);
      return;
    }
    carry(k, sum);
  }
  std::uint64_t get(std::size_t k) const { return std::uint64_t{low_[k]} + (high_ ? (*high_)[k] : 0u); }
  /// Bytes held outside the object (the side table, once some counter wrapped).
  std::size_t extra_bytes() const { return high_ ? sizeof(*high_) : 0u; }

 private:
  [[gnu::noinline]] void carry(std::size_t k, std::uint64_t sum) {
    if (!high_) high_ = std::make_unique<std::array<std::uint64_t, N>>();
    (*high_)[k] += sum;
    low_[k] = 0;
  }
  std::array<std::uint32_t, N> low_{};
  std::unique_ptr<std::array<std::uint64_t, N>> high_;
};

}  // namespace wse::emu
