// EXPECT: every source must have the destination's element type
// Sources and destination of an arithmetic op share one element type (cvt converts).
#include <cstdint>
#include <wse/kernel.hpp>

template <class PE> struct K {
  float y[4];
  std::int32_t i[4];
  void work(PE& pe) { wse::add(pe, wse::mem1d(y), wse::mem1d(y), wse::mem1d(i)); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.work(pe); }
