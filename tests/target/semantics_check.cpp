// Host check of the libm-free pieces of include/wse/pe/elementwise.hpp against glibc:
//   round_half_even(x)          == std::nearbyint(x) for every float (or every `stride`-th bit pattern),
//   fma_f32_binary64(b, c, a)   == std::fma(b, c, a) bit for bit (any NaN for a NaN) on special
//                                  values, random bit patterns, products exactly at a rounding
//                                  midpoint with a tiny addend, and subnormal results.
// Bare-metal targets without a fused multiply-add use fma_f32_binary64 (newlib's fmaf rounds
// twice), so this is what makes their `mac` agree with the emulator's.
// Usage: semantics_check [stride] [random-samples]     (tools/check-cross.sh runs it)
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <vector>
#include <wse/pe/elementwise.hpp>

namespace {

std::uint64_t state = 0x9e3779b97f4a7c15ull;
std::uint32_t next_u32() {  // splitmix64
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<std::uint32_t>((z ^ (z >> 31)) >> 16);
}
float f(std::uint32_t b) { return std::bit_cast<float>(b); }
std::uint32_t u(float x) { return std::bit_cast<std::uint32_t>(x); }

std::uint64_t fma_checked = 0, fma_failed = 0;
void check_fma(float b, float c, float a) {
  ++fma_checked;
  const float want = std::fma(b, c, a), got = wse::elementwise::fma_f32_binary64(b, c, a);
  if (std::isnan(want) && std::isnan(got)) return;
  if (u(want) == u(got)) return;
  if (++fma_failed <= 10)
    std::printf("fma MISMATCH b=0x%08x c=0x%08x a=0x%08x: fma 0x%08x, fma_f32_binary64 0x%08x\n", u(b), u(c), u(a),
                u(want), u(got));
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t stride = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1;
  const std::uint64_t samples = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20'000'000;

  // 1. round_half_even against nearbyint (default rounding mode: to nearest even).
  std::uint64_t rounded = 0, round_failed = 0;
  for (std::uint64_t b = 0; b <= 0xffffffffull; b += stride) {
    const float x = f(static_cast<std::uint32_t>(b));
    const float want = std::nearbyint(x), got = wse::elementwise::round_half_even(x);
    ++rounded;
    if (std::isnan(want) ? !std::isnan(got) : u(want) != u(got)) {
      if (++round_failed <= 10) std::printf("round MISMATCH x=0x%08x: nearbyint 0x%08x, round_half_even 0x%08x\n",
                                            static_cast<std::uint32_t>(b), u(want), u(got));
    }
  }

  // 2. fma_f32_binary64 against glibc's fma.
  const std::vector<std::uint32_t> special = {
      0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0x00000001, 0x80000001,
      0x007fffff, 0x00800000, 0x80800000, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000, 0x3f800001,
      0x3f7fffff, 0x3f800800, 0x21800000, 0xa1800000, 0x33800000, 0x34000000, 0x1f800000, 0x5f800000,
      0x40490fdb, 0xc0490fdb, 0x0c000000, 0x1a000000, 0x4b000000, 0x4b800000, 0x3effffff, 0x3f000000};
  for (std::uint32_t a : special)
    for (std::uint32_t b : special)
      for (std::uint32_t c : special) check_fma(f(b), f(c), f(a));
  for (std::uint64_t i = 0; i < samples; ++i) {
    switch (i % 4) {
      case 0:  // any bit patterns
        check_fma(f(next_u32()), f(next_u32()), f(next_u32()));
        break;
      case 1: {  // operands of similar magnitude: cancellation
        const std::uint32_t e = 0x3f000000u + (next_u32() % 4) * 0x00800000u;
        const float b = f(e | (next_u32() & 0x7fffff)), c = f(e | (next_u32() & 0x7fffff));
        const float a = f((e | (next_u32() & 0x7fffff)) ^ 0x80000000u);
        check_fma(b, c, a);
        break;
      }
      case 2: {  // b*c == (1 + k*2^-12)^2 lies on a midpoint for odd k; a tiny addend decides the rounding
        const float b = f(0x3f800000u | ((next_u32() & 0x7ffu) << 11));
        const float a = f(((next_u32() & 1u) << 31) | ((0x10u + next_u32() % 80u) << 23) | (next_u32() & 0x7fffff));
        check_fma(b, b, a);
        break;
      }
      default: {  // results near and below the smallest normal
        const float b = f(((next_u32() % 40u) + 20u) << 23 | (next_u32() & 0x7fffff));
        const float c = f(((next_u32() % 40u) + 20u) << 23 | (next_u32() & 0x7fffff) | (next_u32() & 1u) << 31);
        const float a = f((next_u32() & 0x80ffffffu));
        check_fma(b, c, a);
        break;
      }
    }
  }
  std::printf("semantics: round_half_even %llu values, %llu mismatches; fma_f32_binary64 %llu triples, %llu mismatches\n",
              static_cast<unsigned long long>(rounded), static_cast<unsigned long long>(round_failed),
              static_cast<unsigned long long>(fma_checked), static_cast<unsigned long long>(fma_failed));
  return round_failed == 0 && fma_failed == 0 ? 0 : 1;
}
