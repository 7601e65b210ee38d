// A port's startup code on a Cortex-M class core, as tools/check-cross.sh compiles it
// (arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb -ffreestanding -fno-exceptions -fno-rtti -c):
// the reference backend over memory-mapped fabric registers, the cross-check kernel, and the
// picker loop that sleeps until the router signals. Not linked: a real port adds its vector
// table, linker script (placing `pe` in PE SRAM) and reset handler calling wse_port_main.
#include <wse/target.hpp>

#include "demo_kernel.hpp"

namespace {

// This (hypothetical) core's 24 fabric register blocks start at 0x4000'0000 (fabric_regs.hpp).
using Fabric = wse::target::MmioFabric<0x4000'0000u>;
Fabric fabric;
wse::target::Pe<Fabric> pe(fabric, wse::Coord{0, 0});

}  // namespace

extern "C" [[noreturn]] void wse_port_main() {
  if (pe.load<wse_demo::Pipeline>(wse_demo::pipeline_params) == nullptr) __builtin_trap();
  for (;;) {
    if (pe.run_until_idle() == wse::target::RunStatus::faulted) __builtin_trap();
#if defined(__ARM_ARCH)
    __asm__ volatile("wfe");  // nothing can move: sleep until the router raises an event
#endif
  }
}
