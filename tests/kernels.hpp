#pragma once
// Small kernels shared by the lead's tests (program, host, faults, determinism).
#include <cstdint>
#include <wse/wse.hpp>

namespace wse_test {

struct NoParams {};

/// Does nothing; used to place regions.
template <class PE> struct Idle {
  using Params = NoParams;
  void init(PE&, const Params&) {}
};

struct BufferParams {
  std::uint32_t n = 0;
};

/// Allocates `n` floats at load and exports them as "buf"; exports "double" which doubles them.
template <class PE> struct Buffer {
  using Params = BufferParams;
  wse::Array<float> buf;
  void init(PE& pe, const Params& p) {
    buf = wse::alloc<float>(pe, p.n);
    wse::export_symbol(pe, "buf", buf);
    wse::export_function<&Buffer::twice>(pe, "double");
  }
  void twice(PE& pe) { wse::add(pe, wse::mem1d(buf), wse::mem1d(buf), wse::mem1d(buf)); }
};

struct RelayParams {
  wse::Color in, out;
  std::int32_t add = 0;
  bool last = false;  // keep the sum instead of sending it on
};

/// Receives int32 wavelets on `in`, adds `add`, sends on `out` (or keeps them in "got").
template <class PE> struct Relay {
  using Params = RelayParams;
  Params p;
  std::int32_t got[64] = {};
  std::uint32_t count = 0;
  void init(PE& pe, const Params& params) {
    p = params;
    wse::bind_data_task<&Relay::on_data>(pe, p.in);
    wse::export_symbol(pe, "got", got);
  }
  void on_data(PE& pe, wse::Wavelet w) {
    const auto v = static_cast<std::int32_t>(w.data) + p.add;
    if (p.last) {
      got[count++ % 64] = v;
    } else {
      pe.send(p.out, wse::Wavelet{static_cast<std::uint32_t>(v), false});
    }
  }
};

struct OverrunParams {
  std::uint32_t length;
};
/// A launched function whose DSD runs past its 8-element array when length > 8.
template <class PE> struct Overrun {
  using Params = OverrunParams;
  float a[8] = {};
  Params p{};
  void init(PE& pe, const Params& params) {
    p = params;
    wse::bind_local_task<&Overrun::work>(pe, wse::TaskId{27});
    wse::export_function<&Overrun::start>(pe, "start");
  }
  void start(PE& pe) { pe.activate(wse::TaskId{27}); }
  void work(PE& pe) { wse::mul(pe, wse::mem1d(a).with_length(p.length), wse::mem1d(a).with_length(p.length), 2.0f); }
};

}  // namespace wse_test
