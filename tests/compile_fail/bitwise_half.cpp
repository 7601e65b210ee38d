// EXPECT: bitwise and shift ops take integer elements only
#include <wse/kernel.hpp>

template <class PE> struct K {
  wse::f16 h[4];
  void work(PE& pe) { wse::bit_xor(pe, wse::mem1d(h), wse::mem1d(h), wse::mem1d(h)); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
