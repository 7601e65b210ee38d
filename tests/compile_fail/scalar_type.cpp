// EXPECT: every source must have the destination's element type
// A double scalar on a float DSD is a type error, not a silent conversion.
#include <wse/kernel.hpp>

template <class PE> struct K {
  float y[4];
  void work(PE& pe) { wse::mul(pe, wse::mem1d(y), wse::mem1d(y), 2.0); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
