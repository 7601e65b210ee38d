#pragma once
/// \file
/// A fixed-capacity wavelet FIFO (at most 16 entries) used for every queue and link buffer
/// in the emulator. Emulator internal.
///
/// Memory follows traffic: a Ring is 16 bytes and owns no storage until its first push takes
/// a block from the calling thread's RingPool; trim() gives an empty ring's block back. The
/// engine trims a PE's rings when the PE stops being visited (asleep or done), so a PE with
/// ten queues and link buffers per color but nothing in flight costs 160 bytes per color, not
/// 720, while a streaming PE keeps its blocks instead of taking one per wavelet. The engine points `ring_pool` at a pool it owns before any
/// ring is pushed or popped (each worker thread at its tile's pool; blocks move freely
/// between the pools of one engine, which frees them all together).
#include <cstdint>
#include <memory>
#include <vector>

#include "../core/wavelet.hpp"

namespace wse::emu {

/// Storage of one non-empty Ring.
struct RingBlock {
  std::uint32_t data[16];
  std::uint16_t ctrl;  // bit i: data[i] is a control wavelet
  std::uint8_t head, size;
  RingBlock* next_free;
};

/// A free list of RingBlocks, grown in chunks; owns the chunks it allocated.
class RingPool {
 public:
  RingBlock* acquire() {
    if (free_ == nullptr) grow();
    RingBlock* b = free_;
    free_ = b->next_free;
    b->ctrl = 0;
    b->head = 0;
    b->size = 0;
    return b;
  }
  void release(RingBlock* b) {
    b->next_free = free_;
    free_ = b;
  }
  /// Bytes of blocks this pool has allocated (in use anywhere or free).
  std::size_t bytes() const { return chunks_.size() * chunk_blocks * sizeof(RingBlock); }

 private:
  static constexpr std::size_t chunk_blocks = 512;
  void grow() {
    chunks_.push_back(std::make_unique<RingBlock[]>(chunk_blocks));
    RingBlock* c = chunks_.back().get();
    for (std::size_t i = chunk_blocks; i-- > 0;) release(&c[i]);
  }
  RingBlock* free_ = nullptr;
  std::vector<std::unique_ptr<RingBlock[]>> chunks_;
};

/// The pool this thread's rings take blocks from and give them back to (set by the engine).
inline thread_local RingPool* ring_pool = nullptr;

/// Bounded FIFO of wavelets. capacity() is set once (1..16).
class Ring {
 public:
  static constexpr unsigned max_capacity = 16;

  void set_capacity(unsigned cap) { cap_ = static_cast<std::uint8_t>(cap < 1 ? 1 : cap > max_capacity ? max_capacity : cap); }
  unsigned capacity() const { return cap_; }
  unsigned size() const { return b_ ? b_->size : 0u; }
  bool empty() const { return b_ == nullptr || b_->size == 0; }
  bool full() const { return size() >= cap_; }
  unsigned space() const { return cap_ - size(); }

  Wavelet front() const { return Wavelet{b_->data[b_->head], ((b_->ctrl >> b_->head) & 1u) != 0}; }
  void pop() {
    b_->head = static_cast<std::uint8_t>((b_->head + 1) % max_capacity);
    --b_->size;
  }
  void push(Wavelet w) {
    if (b_ == nullptr) [[unlikely]] b_ = take_block();
    const unsigned slot = (b_->head + b_->size) % max_capacity;
    b_->data[slot] = w.data;
    b_->ctrl = static_cast<std::uint16_t>(w.control ? (b_->ctrl | (1u << slot)) : (b_->ctrl & ~(1u << slot)));
    ++b_->size;
  }
  /// Gives the storage of an empty ring back to this thread's pool.
  void trim() {
    if (b_ != nullptr && b_->size == 0) {
      ring_pool->release(b_);
      b_ = nullptr;
    }
  }
  /// True when the ring holds a block (for memory accounting).
  bool holds_storage() const { return b_ != nullptr; }
  /// i-th element from the front (0 = front).
  Wavelet at(unsigned i) const {
    const unsigned slot = (b_->head + i) % max_capacity;
    return Wavelet{b_->data[slot], ((b_->ctrl >> slot) & 1u) != 0};
  }

 private:
  [[gnu::noinline]] static RingBlock* take_block() { return ring_pool->acquire(); }
  RingBlock* b_ = nullptr;  // storage, from the first push until trim()
  std::uint8_t cap_ = 1;
};

}  // namespace wse::emu
