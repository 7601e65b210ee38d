// Prints the instruction set the emulator's SIMD DSD engine was built for. tools/check-cross.sh
// builds it for aarch64 with the test suite's flags and expects "NEON" under qemu-aarch64.
#include <cstdio>
#include <wse/emu/simd.hpp>

int main() {
  std::printf("%s\n", wse::emu::simd_target());
  return 0;
}
