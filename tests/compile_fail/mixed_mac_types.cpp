// EXPECT: mixed-precision mac is mac.pe, d, a, b, c. with d and a f32 and both b and c f16
// The mixed-precision mac takes f16 for both factors: an f32 scalar factor is an error.
#include <wse/kernel.hpp>

template <class PE> struct K {
  float y[4];
  wse::f16 h[4];
  void work(PE& pe) { wse::mac(pe, wse::mem1d(y), wse::mem1d(y), wse::mem1d(h), 2.0f); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
