// EXPECT: every source must have the destination's element type
// A float scalar on an f16 DSD is a type error: write wse::f16::from_float(2.0f).
#include <wse/kernel.hpp>

template <class PE> struct K {
  wse::f16 h[4];
  void work(PE& pe) { wse::add(pe, wse::mem1d(h), wse::mem1d(h), 2.0f); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
