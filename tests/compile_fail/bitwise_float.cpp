// EXPECT: bitwise and shift ops take integer elements only
#include <wse/kernel.hpp>

template <class PE> struct K {
  float y[4];
  void work(PE& pe) { wse::bit_and(pe, wse::mem1d(y), wse::mem1d(y), wse::mem1d(y)); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
