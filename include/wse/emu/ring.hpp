#pragma once
/// \file
/// A fixed-capacity wavelet FIFO (at most 16 entries) used for every queue and link buffer
/// in the emulator. Emulator internal.
///
/// Memory follows traffic: a Ring is 8 bytes and owns no storage until its first push takes
/// a block from the calling thread's RingPool; trim() gives an empty ring's block back. The
/// engine trims a PE's rings when the PE stops being visited (asleep or done), so a PE with
/// ten queues and link buffers per color but nothing in flight costs 80 bytes per color, not
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
  std::uint8_t head, size, cap;
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

/// Bounded FIFO of wavelets. capacity() is set once (1..16). 8 bytes: either a pointer to its
/// block, or, while it has none, its capacity tagged with a low 1 bit.
class Ring {
 public:
  static constexpr unsigned max_capacity = 16;

  void set_capacity(unsigned cap) {
    const auto c = static_cast<std::uint8_t>(cap < 1 ? 1 : cap > max_capacity ? max_capacity : cap);
    if (RingBlock* b = block()) b->cap = c;
    else v_ = tagged(c);
  }
  unsigned capacity() const {
    const RingBlock* b = block();
    return b ? b->cap : static_cast<unsigned>(v_ >> 1);
  }
  unsigned size() const {
    const RingBlock* b = block();
    return b ? b->size : 0u;
  }
  bool empty() const { return (v_ & 1u) != 0 || block()->size == 0; }
  bool full() const {
    const RingBlock* b = block();
    return b != nullptr && b->size >= b->cap;  // capacity >= 1: a ring without a block has room
  }
  unsigned space() const { return capacity() - size(); }

  Wavelet front() const {
    const RingBlock* b = block();
    return Wavelet{b->data[b->head], ((b->ctrl >> b->head) & 1u) != 0};
  }
  void pop() {
    RingBlock* b = block();
    b->head = static_cast<std::uint8_t>((b->head + 1) % max_capacity);
    --b->size;
  }
  void push(Wavelet w) {
    if ((v_ & 1u) != 0) [[unlikely]] {
      RingBlock* fresh = take_block();
      fresh->cap = static_cast<std::uint8_t>(v_ >> 1);
      v_ = reinterpret_cast<std::uintptr_t>(fresh);
    }
    RingBlock* b = block();
    const unsigned slot = (b->head + b->size) % max_capacity;
    b->data[slot] = w.data;
    b->ctrl = static_cast<std::uint16_t>(w.control ? (b->ctrl | (1u << slot)) : (b->ctrl & ~(1u << slot)));
    ++b->size;
  }
  /// Gives the storage of an empty ring back to this thread's pool.
  void trim() {
    RingBlock* b = block();
    if (b != nullptr && b->size == 0) {
      v_ = tagged(b->cap);
      ring_pool->release(b);
    }
  }
  /// True when the ring holds a block (for memory accounting).
  bool holds_storage() const { return (v_ & 1u) == 0; }
  /// i-th element from the front (0 = front).
  Wavelet at(unsigned i) const {
    const RingBlock* b = block();
    const unsigned slot = (b->head + i) % max_capacity;
    return Wavelet{b->data[slot], ((b->ctrl >> slot) & 1u) != 0};
  }

 private:
  static constexpr std::uintptr_t tagged(unsigned cap) { return (std::uintptr_t{cap} << 1) | 1u; }
  RingBlock* block() const { return (v_ & 1u) != 0 ? nullptr : reinterpret_cast<RingBlock*>(v_); }
  [[gnu::noinline]] static RingBlock* take_block() { return ring_pool->acquire(); }
  std::uintptr_t v_ = tagged(1);  // RingBlock* (blocks are 8-aligned), or tagged capacity
};

}  // namespace wse::emu
