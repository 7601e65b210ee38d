#pragma once
// Prints the cross-check kernel's results in one fixed format (hex words, no floating-point
// formatting, so glibc and newlib print the same), for demo_emu.cpp and demo_target.cpp.
#include <cstdint>
#include <cstdio>

#include "demo_kernel.hpp"

namespace wse_demo {

/// Everything the two runs must agree on, gathered by each main from its own runtime.
struct Snapshot {
  const char* status = "";
  float y[n], z[n], t[n], m[n];
  std::int32_t q[n];
  std::int16_t h[n], hs[n];
  std::uint32_t u[n], u2[n], trace[trace_capacity], log[4];
  wse::Wavelet out[64];
  unsigned out_count = 0;
};

inline void print_words(const char* name, const void* data, unsigned count, unsigned bytes) {
  std::printf("%-6s", name);
  const unsigned char* b = static_cast<const unsigned char*>(data);
  for (unsigned i = 0; i < count; ++i) {
    std::uint32_t v = 0;
    __builtin_memcpy(&v, b + i * bytes, bytes);  // little-endian on both hosts
    std::printf(bytes == 2 ? " %04x" : " %08x", static_cast<unsigned>(v));
    if (i % 8 == 7 && i + 1 < count) std::printf("\n%-6s", "");
  }
  std::printf("\n");
}

inline void print(const Snapshot& s) {
  std::printf("run: %s\n", s.status);
  print_words("y", s.y, n, 4);
  print_words("z", s.z, n, 4);
  print_words("t", s.t, n, 4);
  print_words("m", s.m, n, 4);
  print_words("q", s.q, n, 4);
  print_words("h", s.h, n, 2);
  print_words("hs", s.hs, n, 2);
  print_words("u", s.u, n, 4);
  print_words("u2", s.u2, n, 4);
  const unsigned traced = s.log[3] < trace_capacity ? s.log[3] : trace_capacity;
  std::printf("tasks %u:", static_cast<unsigned>(s.log[3]));
  for (unsigned i = 0; i < traced; ++i) std::printf(" %u", static_cast<unsigned>(s.trace[i]));
  std::printf("\ndata wavelets %u, control user %04x, checksum %08x\n", static_cast<unsigned>(s.log[0]),
              static_cast<unsigned>(s.log[1]), static_cast<unsigned>(s.log[2]));
  std::printf("out %u wavelets:", s.out_count);
  for (unsigned i = 0; i < s.out_count; ++i)
    std::printf("%s %08x%s", i % 8 == 0 ? "\n " : "", static_cast<unsigned>(s.out[i].data), s.out[i].control ? "c" : "");
  std::printf("\n");
}

/// fma over `count` pseudo-random triples (any bit patterns, and products on a rounding
/// midpoint with a tiny addend); NaN results count as one canonical NaN. `fma` is the
/// implementation under test.
template <class Fma> std::uint32_t fma_hash(std::uint32_t count, Fma&& fma) {
  std::uint32_t state = 0x2545f491u, hash = 0;
  auto next = [&state] {
    state ^= state << 13, state ^= state >> 17, state ^= state << 5;
    return state;
  };
  for (std::uint32_t i = 0; i < count; ++i) {
    float a, b, c;
    if (i % 2 == 0) {
      a = __builtin_bit_cast(float, next()), b = __builtin_bit_cast(float, next()), c = __builtin_bit_cast(float, next());
    } else {
      b = c = __builtin_bit_cast(float, 0x3f800000u | ((next() & 0x7ffu) << 11));
      a = __builtin_bit_cast(float, ((next() & 1u) << 31) | ((0x10u + next() % 80u) << 23) | (next() & 0x7fffffu));
    }
    const float r = fma(b, c, a);
    const std::uint32_t bits = r != r ? 0x7fc00000u : __builtin_bit_cast(std::uint32_t, r);
    hash = (hash ^ bits) * 16777619u;
  }
  return hash;
}

inline constexpr std::uint32_t fma_triples = 100000;

}  // namespace wse_demo
