// EXPECT: a data task receives its wavelet
// A data task must take the arriving wavelet: void method(PE&, wse::Wavelet).
#include <wse/kernel.hpp>

template <class PE> struct K {
  void on_data(PE&) {}
  void init(PE& pe) { wse::bind_data_task<&K::on_data>(pe, wse::Color{3}); }
};

void use(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.init(pe); }
