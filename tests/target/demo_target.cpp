// The cross-check kernel on the reference bare-metal backend: wse::target::Pe over a
// LoopbackFabric that wires `to_mirror` back to `from_mirror`. Built by tools/check-cross.sh
// with arm-none-eabi-g++ for a Cortex-A9 and run under qemu-system-arm (semihosting prints and
// exits); also builds for the host. Prints what demo_emu.cpp prints for the emulator.
#include <cstdio>
#include <wse/target.hpp>

#include "demo_kernel.hpp"
#include "demo_print.hpp"

namespace {

using Fabric = wse::target::LoopbackFabric<4>;
using Pe = wse::target::Pe<Fabric>;

Fabric fabric;  // static storage: the register blocks, queues and the PE's 48 KiB arena
Pe pe(fabric, wse::Coord{0, 0});

template <class T> void copy_out(T (&dst)[wse_demo::n], const char* name) {
  const T* src = pe.symbol<T>(name, wse_demo::n);
  for (unsigned i = 0; i < wse_demo::n; ++i) dst[i] = src ? src[i] : T{};
}

}  // namespace

int main() {
  using namespace wse_demo;
  fabric.add_input(in_color);
  fabric.connect(to_mirror, from_mirror);
  fabric.add_output(out_color);
  auto* k = pe.load<Pipeline>(pipeline_params);
  const Inputs in = make_inputs();
  if (k != nullptr) {
    float* w = pe.symbol<float>("w", n);
    float* s = pe.symbol<float>("s", n);
    for (unsigned i = 0; i < n; ++i) w[i] = in.w[i], s[i] = in.s[i];
    for (unsigned i = 0; i < n; ++i) fabric.feed(in_color, wse::Wavelet::from_f32(in.x[i]));
  }
  const wse::target::RunStatus status = k ? pe.run_until_idle() : wse::target::RunStatus::faulted;

  static Snapshot snap;
  snap.status = status == wse::target::RunStatus::completed ? "completed" : wse::target::run_status_name(status);
  copy_out(snap.y, "y"), copy_out(snap.z, "z"), copy_out(snap.t, "t"), copy_out(snap.m, "m");
  copy_out(snap.q, "q"), copy_out(snap.h, "h"), copy_out(snap.hs, "hs"), copy_out(snap.u, "u"), copy_out(snap.u2, "u2");
  if (const auto* t = pe.symbol<std::uint32_t>("trace", trace_capacity))
    for (unsigned i = 0; i < trace_capacity; ++i) snap.trace[i] = t[i];
  if (const auto* l = pe.symbol<std::uint32_t>("log", 4))
    for (unsigned i = 0; i < 4; ++i) snap.log[i] = l[i];
  const auto& out = fabric.collected(out_color);
  for (unsigned i = 0; i < out.size() && i < 64; ++i) snap.out[snap.out_count++] = out.at(i);
  print(snap);
  std::printf("fma: %u triples, hash %08x\n", static_cast<unsigned>(fma_triples),
              static_cast<unsigned>(fma_hash(fma_triples, wse::elementwise::fma_f32)));
  if (pe.fault().set) {
    const wse::target::Fault& f = pe.fault();
    std::fprintf(stderr, "fault: %s %u, op %s: %s %lld\n", wse::target::fault_context_name(f.context), static_cast<unsigned>(f.task),
                f.op, f.what, static_cast<long long>(f.value));
  }
  std::fprintf(stderr, "target: %llu task runs, %llu wavelets received, %llu sent, %u bytes of PE memory used\n",
              static_cast<unsigned long long>(pe.stats().tasks_run), static_cast<unsigned long long>(pe.stats().received),
              static_cast<unsigned long long>(pe.stats().sent), static_cast<unsigned>(pe.memory_used()));
  return status == wse::target::RunStatus::completed ? 0 : 1;
}
