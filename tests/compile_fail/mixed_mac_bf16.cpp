// EXPECT: mixed-precision mac .* bf16 has no mixed form
// Only f16 factors have a mixed-precision (f32 accumulating) mac.
#include <wse/kernel.hpp>

template <class PE> struct K {
  float y[4];
  wse::bf16 g[4];
  void work(PE& pe) { wse::mac(pe, wse::mem1d(y), wse::mem1d(y), wse::mem1d(g), wse::mem1d(g)); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
