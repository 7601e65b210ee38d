#pragma once
// The cross-check kernel: one multi-task kernel that tools/check-cross.sh runs twice and
// whose printed results must be identical:
//   - on the emulator (demo_emu.cpp, hosted g++), as PE (0,0) of a 2x1 program whose PE (1,0)
//     runs Mirror, which sends every wavelet it gets on `to_mirror` back on `from_mirror`;
//   - on wse::target::Pe built for bare-metal ARM (demo_target.cpp, arm-none-eabi-g++, run
//     under qemu-system-arm), whose LoopbackFabric wires `to_mirror` to `from_mirror`.
// Freestanding: kernel code only (wse/kernel.hpp), no library calls.
//
// Flow (task ids in brackets):
//   on_input [data task of `in`]   x[i] = i-th wavelet from the edge; after n, activates process
//   process  [local 10]            y = clamp(x + w*w) * scale (memory DSD ops), then two async
//                                  fabric ops on two microthreads: y -> to_mirror (completion
//                                  unblocks finish) and z = (y back from from_mirror) + y*(-0.5)
//                                  (completion activates combine)
//   combine  [local 11]            4x4 transpose (2-D DSD), max/min/neg/abs with NaN/±0/inf,
//                                  f32->i32/i16 conversions, 16- and 32-bit integer ops; activates finish
//   finish   [local 12, starts blocked]  h leaves on `out` as 16-bit indexed wavelets (async);
//                                  completion activates report
//   report   [local 13]            a control wavelet goes round the loop ...
//   on_control [control 40]        ... activates this; sends a checksum of every array on `out`
#include <cstdint>
#include <wse/kernel.hpp>

namespace wse_demo {

inline constexpr std::uint32_t n = 16;  // elements per vector; 4x4 for the transpose
inline constexpr wse::Color in_color{1}, to_mirror{2}, from_mirror{3}, out_color{4};
inline constexpr wse::TaskId process_id{10}, combine_id{11}, finish_id{12}, report_id{13};
inline constexpr wse::TaskId control_id{40};
inline constexpr std::uint16_t out_index_base = 100;
inline constexpr std::uint16_t control_user = 0xbeef;
inline constexpr unsigned trace_capacity = 32;

struct PipelineParams {
  wse::Color in, to_mirror, from_mirror, out;
  float scale = 1.0f;
};

template <class PE> struct Pipeline {
  using Params = PipelineParams;
  Params p{};
  float x[n] = {};          // (n) values from the edge, in arrival order
  float w[n] = {};          // (n) weights (host-written)
  float s[n] = {};          // (n) special values: NaN, +-0, +-inf, subnormals, out-of-range (host-written)
  float y[n] = {};          // (n) clamp(x + w*w, -1000, 1000) * scale
  float z[n] = {};          // (n) y after the round trip, plus y * -0.5
  float t[n] = {};          // (4, 4) z transposed: t[4j + i] = z[4i + j]
  float m[n] = {};          // (n) max(s, z), then min, neg, abs over parts
  std::int32_t q[n] = {};   // (n) cvt(z): round half to even
  std::int16_t h[n] = {};   // (n) cvt(q) (wraps), then << 3, >> 1 (arithmetic), ^ 0x5a5a
  std::int16_t hs[n] = {};  // (n) cvt(s): saturates, NaN -> 0
  std::uint32_t u[n] = {};  // (n) integer mixing of q
  std::uint32_t u2[n] = {}; // (n) u >> 13, then u reversed minus 5
  std::uint32_t trace[trace_capacity] = {};  // task ids in the order they ran
  std::uint32_t log[4] = {};                  // [0] data wavelets, [1] control user data, [2] checksum, [3] trace length

  void init(PE& pe, const Params& params) {
    p = params;
    wse::export_symbol(pe, "w", w);
    wse::export_symbol(pe, "s", s);
    wse::export_symbol(pe, "y", y);
    wse::export_symbol(pe, "z", z);
    wse::export_symbol(pe, "t", t);
    wse::export_symbol(pe, "m", m);
    wse::export_symbol(pe, "q", q);
    wse::export_symbol(pe, "h", h);
    wse::export_symbol(pe, "hs", hs);
    wse::export_symbol(pe, "u", u);
    wse::export_symbol(pe, "u2", u2);
    wse::export_symbol(pe, "trace", trace);
    wse::export_symbol(pe, "log", log);
    wse::bind_data_task<&Pipeline::on_input>(pe, p.in);
    wse::bind_local_task<&Pipeline::process>(pe, process_id);
    wse::bind_local_task<&Pipeline::combine>(pe, combine_id);
    wse::bind_local_task<&Pipeline::finish>(pe, finish_id);
    wse::bind_local_task<&Pipeline::report>(pe, report_id);
    wse::bind_control_task<&Pipeline::on_control>(pe, control_id);
    pe.block(finish_id);  // runs once combine activates it AND the send's completion unblocks it
  }

  void ran(wse::TaskId id) {
    if (log[3] < trace_capacity) trace[log[3]] = id.value;
    ++log[3];
  }

  void on_input(PE& pe, wse::Wavelet v) {
    ran(wse::data_task_id(p.in));
    x[log[0] % n] = v.f32();
    if (++log[0] == n) pe.activate(process_id);
  }

  void process(PE& pe) {
    using namespace wse;
    ran(process_id);
    mac(pe, mem1d(y), mem1d(x), mem1d(w), mem1d(w));  // y = x + w*w, one rounding
    max(pe, mem1d(y), mem1d(y), -1000.0f);
    min(pe, mem1d(y), mem1d(y), 1000.0f);
    mul(pe, mem1d(y), mem1d(y), p.scale);
    // y goes round the loop on one microthread while another takes it back: z = back + y * -0.5.
    mov(pe, fabout<float>(p.to_mirror, n), mem1d(y), then_unblock(finish_id));
    mac(pe, mem1d(z), fabin<float>(p.from_mirror, n), mem1d(y), -0.5f, then_activate(combine_id));
  }

  void combine(PE& pe) {
    using namespace wse;
    ran(combine_id);
    mov(pe, mem4d(Array<float>{t}, {4u, 4u}, {4, 1}), mem1d(z));  // (4, 4): t[4 i0 + i1] = z[i0 + 4 i1]
    max(pe, mem1d(m), mem1d(s), mem1d(z));
    min(pe, mem1d(m).with_length(n / 2), mem1d(m).with_length(n / 2), mem1d(s).with_offset(n / 2).with_length(n / 2));
    neg(pe, mem1d(m).with_offset(1).with_stride(4).with_length(4), mem1d(m).with_offset(1).with_stride(4).with_length(4));
    abs(pe, mem1d(m).with_offset(2).with_stride(4).with_length(4), mem1d(s).with_offset(3).with_stride(4).with_length(4));
    cvt(pe, mem1d(q), mem1d(z));
    cvt(pe, mem1d(hs), mem1d(s));
    cvt(pe, mem1d(h), mem1d(q));
    shl(pe, mem1d(h), mem1d(h), std::int16_t{3});
    shr(pe, mem1d(h), mem1d(h), std::int16_t{1});
    bit_xor(pe, mem1d(h), mem1d(h), std::int16_t{0x5a5a});
    cvt(pe, mem1d(u), mem1d(q));
    mul(pe, mem1d(u), mem1d(u), std::uint32_t{2654435761u});
    shr(pe, mem1d(u2), mem1d(u), std::uint32_t{13});
    bit_xor(pe, mem1d(u), mem1d(u), mem1d(u2));
    mac(pe, mem1d(u), mem1d(u), mem1d(u2), std::uint32_t{7});
    sub(pe, mem1d(u2).with_stride(-1).with_offset(n - 1), mem1d(u), std::uint32_t{5});  // reversed destination: u2[n-1-i] = u[i] - 5
    pe.activate(finish_id);
  }

  void finish(PE& pe) {
    ran(finish_id);
    wse::mov(pe, wse::fabout<std::int16_t>(p.out, n).with_index(out_index_base), wse::mem1d(h),
             wse::then_activate(report_id));
  }

  void report(PE& pe) {
    ran(report_id);
    pe.send(p.to_mirror, wse::ControlPayload{.activate = true, .task = control_id, .user = control_user}.wavelet());
  }

  void on_control(PE& pe, wse::Wavelet cw) {
    ran(control_id);
    log[1] = wse::ControlPayload::decode(cw.data).user;
    std::uint32_t sum = 0;
    auto mix = [&sum](const void* data, unsigned bytes) {
      const unsigned char* b = static_cast<const unsigned char*>(data);
      for (unsigned i = 0; i < bytes; ++i) sum = sum * 31u + b[i];
    };
    mix(y, sizeof y), mix(z, sizeof z), mix(t, sizeof t), mix(m, sizeof m), mix(q, sizeof q);
    mix(h, sizeof h), mix(hs, sizeof hs), mix(u, sizeof u), mix(u2, sizeof u2);
    log[2] = sum;
    pe.send(p.out, wse::Wavelet::from_u32(sum));
  }
};

struct MirrorParams {
  wse::Color in, out;
};

/// The emulator's stand-in for the loopback wire: sends back every wavelet it receives on
/// `in` (data task) and every control wavelet that activates `control_id` here (control task).
template <class PE> struct Mirror {
  using Params = MirrorParams;
  Params p{};
  void init(PE& pe, const Params& params) {
    p = params;
    wse::bind_data_task<&Mirror::relay>(pe, p.in);
    wse::bind_control_task<&Mirror::relay>(pe, control_id);
  }
  void relay(PE& pe, wse::Wavelet w) { pe.send(p.out, w); }
};

// ---- host side, shared by both mains ------------------------------------------------------

/// Deterministic inputs: x streamed in, w and s written to the symbols.
struct Inputs {
  float x[n], w[n], s[n];
};
inline Inputs make_inputs() {
  Inputs in{};
  std::uint32_t state = 12345u;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state;
  };
  for (std::uint32_t i = 0; i < n; ++i) {
    in.x[i] = static_cast<float>(static_cast<std::int32_t>(next() % 2001u) - 1000) / 64.0f;
    in.w[i] = static_cast<float>(next() % 1000u) / 97.0f;
  }
  // fma(w, w, x) where rounding twice (double, then float) differs from one rounding
  in.x[0] = __builtin_bit_cast(float, 0x21800000u);  // 2^-60
  in.w[0] = __builtin_bit_cast(float, 0x3f800800u);  // 1 + 2^-12
  // ties for cvt: with scale 3, z = 1.5 x, so x = +-1 -> z = +-1.5 -> q = +-2 and x = 3 -> 4.5 -> 4
  in.x[1] = 1.0f, in.w[1] = 0.0f;
  in.x[2] = -1.0f, in.w[2] = 0.0f;
  in.x[3] = 3.0f, in.w[3] = 0.0f;
  in.x[4] = 2000.0f, in.w[4] = 0.0f;  // clamped to 1000
  const std::uint32_t specials[n] = {0x7fc00000u, 0x80000000u, 0x00000000u, 0x7f800000u, 0xff800000u, 0x00000001u,
                                     0x807fffffu, 0x501502f9u /* 1e10 */, 0xd01502f9u, 0x47088800u /* 34952.5 */,
                                     0xc7000100u /* -32769 */, 0x3fc00000u /* 1.5 */, 0x40200000u /* 2.5 */,
                                     0xbfc00000u, 0x7f800001u /* sNaN */, 0x477fff00u /* 65535 */};
  for (std::uint32_t i = 0; i < n; ++i) in.s[i] = __builtin_bit_cast(float, specials[i]);
  return in;
}

inline constexpr PipelineParams pipeline_params{in_color, to_mirror, from_mirror, out_color, 3.0f};

}  // namespace wse_demo
