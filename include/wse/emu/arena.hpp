#pragma once
/// \file
/// wse::emu::PeArena: where kernels' objects and PE-memory allocations live. PE memory is
/// never freed one piece at a time (a kernel keeps what it allocates until the engine goes),
/// so a bump allocator over large chunks serves it without a heap header and a bookkeeping
/// entry per allocation: on a full fabric that is ~100 bytes saved on every PE. Each tile
/// has one (allocations at run time come from the worker's tile; the engine points
/// `pe_arena` at it as it does `ring_pool`). Under AddressSanitizer every allocation gets a
/// poisoned gap after it, so overruns of a kernel's buffer are still caught. Emulator internal.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define WSE_EMU_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define WSE_EMU_ARENA_ASAN 1
#endif
#endif

namespace wse::emu {

class PeArena {
 public:
  PeArena() = default;
  PeArena(const PeArena&) = delete;
  PeArena& operator=(const PeArena&) = delete;
  PeArena(PeArena&&) = default;
  PeArena& operator=(PeArena&&) = default;
  ~PeArena() {
    for (auto& c : chunks_) unpoison(c.data.get(), c.size);
  }

  /// Zeroed memory of `bytes` (at least 1) aligned to `align` (a power of two).
  void* allocate(std::size_t bytes, std::size_t align) {
    if (bytes == 0) bytes = 1;
    if (align < 4) align = 4;  // PE memory is word-addressed
    if (chunks_.empty() || aligned_offset(chunks_.back(), align) + bytes + redzone > chunks_.back().size) {
      // A large allocation gets a chunk of its own; later small ones still fit the new chunk.
      const std::size_t size = bytes + align + redzone > chunk_bytes ? bytes + align + redzone : chunk_bytes;
      chunks_.push_back(Chunk{std::unique_ptr<std::byte[]>(new std::byte[size]), size, 0});
      poison(chunks_.back().data.get(), size);
    }
    Chunk& c = chunks_.back();
    const std::size_t at = aligned_offset(c, align);
    c.used = at + bytes + redzone;
    void* p = c.data.get() + at;
    unpoison(p, bytes);
    return std::memset(p, 0, bytes);
  }
  /// Bytes of chunks this arena holds.
  std::size_t bytes() const {
    std::size_t n = 0;
    for (const auto& c : chunks_) n += c.size;
    return n;
  }

 private:
  struct Chunk {
    std::unique_ptr<std::byte[]> data;
    std::size_t size = 0;
    std::size_t used = 0;
  };
  static std::size_t aligned_offset(const Chunk& c, std::size_t align) {
    const auto base = reinterpret_cast<std::uintptr_t>(c.data.get());
    return ((base + c.used + align - 1) & ~(std::uintptr_t{align} - 1)) - base;
  }
  static constexpr std::size_t chunk_bytes = 256 * 1024;
#ifdef WSE_EMU_ARENA_ASAN
  static constexpr std::size_t redzone = 16;
  static void poison(void* p, std::size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
  static void unpoison(void* p, std::size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
#else
  static constexpr std::size_t redzone = 0;
  static void poison(void*, std::size_t) {}
  static void unpoison(void*, std::size_t) {}
#endif
  std::vector<Chunk> chunks_;
};

/// The arena this thread's PEs allocate from (set by the engine).
inline thread_local PeArena* pe_arena = nullptr;

}  // namespace wse::emu
