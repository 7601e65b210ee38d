// EXPECT: a kernel's Params must not depend on its backend
// Params nested inside the kernel template is a different type for every backend.
#include <wse/wse.hpp>

template <class PE> struct K {
  struct Params {
    int n;
  };
  void init(PE&, const Params&) {}
};

int main() {
  wse::Program p(wse::arch::wse2, 1, 1);
  p.add_region<K>(p.grid(), K<wse::ProbeBackend>::Params{1});
}
