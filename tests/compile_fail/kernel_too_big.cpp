// EXPECT: kernel object is larger than the PE memory
// A kernel whose static state exceeds 48 KiB must be refused at compile time.
#include <wse/wse.hpp>

struct NoParams {};
template <class PE> struct TooBig {
  using Params = NoParams;
  float big[13000];  // 52,000 bytes > 49,152
  void init(PE&, const Params&) {}
};

int main() {
  wse::Program p(wse::arch::wse2, 1, 1);
  p.add_region<TooBig>(p.grid(), NoParams{});
}
