// The cross-check kernel on the emulator: a 2x1 program. PE (0,0) runs Pipeline; PE (1,0)
// runs Mirror, which sends `to_mirror` back as `from_mirror` (what the target's loopback
// wire does). x streams in at the west edge on `in`; `out` leaves at the north edge.
// Prints what demo_target.cpp prints under qemu; tools/check-cross.sh compares the two.
#include <cstdio>
#include <wse/wse.hpp>

#include "demo_kernel.hpp"
#include "demo_print.hpp"

int main() {
  using namespace wse_demo;
  using wse::ColorRoute;
  using wse::Port;
  const wse::Coord pe0{0, 0}, pe1{1, 0};
  const wse::Rect cell{pe0, 1, 1};
  wse::Program prog(wse::arch::wse2, 2, 1);
  prog.add_region<Pipeline>(cell, pipeline_params, "pipeline");
  prog.add_region<Mirror>(wse::Rect{pe1, 1, 1}, MirrorParams{to_mirror, from_mirror}, "mirror");
  prog.set_route(pe0, in_color, ColorRoute{Port::west, Port::ramp});
  prog.set_route(pe0, to_mirror, ColorRoute{Port::ramp, Port::east});
  prog.set_route(pe1, to_mirror, ColorRoute{Port::west, Port::ramp});
  prog.set_route(pe1, from_mirror, ColorRoute{Port::ramp, Port::west});
  prog.set_route(pe0, from_mirror, ColorRoute{Port::east, Port::ramp});
  prog.set_route(pe0, out_color, ColorRoute{Port::ramp, Port::north});
  prog.add_input_stream("in", in_color, pe0, Port::west);
  prog.add_output_stream("out", out_color, pe0, Port::north);

  wse::host::Runtime rt(prog);
  const Inputs in = make_inputs();
  rt.memcpy_h2d<float>("w", std::vector<float>(in.w, in.w + n), cell, n);
  rt.memcpy_h2d<float>("s", std::vector<float>(in.s, in.s + n), cell, n);
  rt.stream_in<float>("in", std::vector<float>(in.x, in.x + n));
  const wse::host::RunReport report = rt.run();

  static Snapshot snap;
  snap.status = report.ok() ? "completed" : "not completed";
  auto copy = [&](auto& dst, const char* name) {
    using T = std::remove_cvref_t<decltype(dst[0])>;
    const auto v = rt.read<T>(name, cell, n);
    for (unsigned i = 0; i < n; ++i) dst[i] = v[i];
  };
  copy(snap.y, "y"), copy(snap.z, "z"), copy(snap.t, "t"), copy(snap.m, "m"), copy(snap.q, "q");
  copy(snap.h, "h"), copy(snap.hs, "hs"), copy(snap.u, "u"), copy(snap.u2, "u2");
  const auto trace = rt.read<std::uint32_t>("trace", cell, trace_capacity);
  const auto log = rt.read<std::uint32_t>("log", cell, 4);
  for (unsigned i = 0; i < trace_capacity; ++i) snap.trace[i] = trace[i];
  for (unsigned i = 0; i < 4; ++i) snap.log[i] = log[i];
  for (const wse::Wavelet& w : rt.stream_out("out"))
    if (snap.out_count < 64) snap.out[snap.out_count++] = w;
  print(snap);
  std::printf("fma: %u triples, hash %08x\n", static_cast<unsigned>(fma_triples),
              static_cast<unsigned>(fma_hash(fma_triples, wse::elementwise::fma_f32)));
  if (!report.ok()) std::fprintf(stderr, "%s\n", report.to_string().c_str());
  std::fprintf(stderr, "emulator: %s\n", report.to_string().c_str());
  return report.ok() ? 0 : 1;
}
