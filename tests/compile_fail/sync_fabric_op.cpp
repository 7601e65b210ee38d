// EXPECT: an op with a fabric operand must be asynchronous
// Reading the fabric needs an async op with a completion; a synchronous one cannot wait.
#include <wse/kernel.hpp>

template <class PE> struct K {
  float x[4];
  void work(PE& pe) { wse::mov(pe, wse::mem1d(x), wse::fabin<float>(wse::Color{1}, 4)); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
