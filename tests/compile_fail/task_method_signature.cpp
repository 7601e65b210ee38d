// EXPECT: a task method is a non-const, non-static member of the kernel returning void
// A local task's method must be void method(PE&): an extra parameter (or a const method) is
// named in one readable message, not an "incomplete type" error from inside the library.
#include <wse/kernel.hpp>

struct Params {};
template <class PE> struct K {
  using Params = ::Params;
  void init(PE& pe, const Params&) { wse::bind_local_task<&K::work>(pe, wse::TaskId{24}); }
  void work(PE&, int) {}
};
template struct K<wse::ProbeBackend>;
void instantiate(wse::ProbeBackend& pe) { K<wse::ProbeBackend>{}.init(pe, Params{}); }
