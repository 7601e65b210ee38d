// EXPECT: the destination must be a memory DSD or a fabric output DSD
#include <wse/kernel.hpp>

template <class PE> struct K {
  float x[4];
  void work(PE& pe) {
    wse::mov(pe, wse::fabin<float>(wse::Color{1}, 4), wse::mem1d(x), wse::then_nothing());
  }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
