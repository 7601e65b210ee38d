#pragma once
/// \file
/// How the emulator builds a kernel in a PE: the definition of
/// wse::detail::emu_create_kernel, declared by the program layer. Emulator internal.
#include <new>
#include <type_traits>

#include "../program/program.hpp"
#include "pe.hpp"

namespace wse::detail {

template <template <class> class K, class P> void emu_create_kernel(emu::Pe& pe, const P& params) {
  using Kernel = K<emu::Pe>;
  static_assert(Backend<emu::Pe>, "wse::emu::Pe must model wse::Backend");
  static_assert(std::is_same_v<typename Kernel::Params, P>,
                "a kernel's Params must not depend on its backend: declare the parameter struct "
                "outside the kernel template and write `using Params = MyParams;` inside it");
  void* mem = pe.allocate_impl(static_cast<std::uint32_t>(sizeof(Kernel)), static_cast<std::uint32_t>(alignof(Kernel)),
                               "kernel object");
  if (mem == nullptr) return;
  Kernel* k = ::new (mem) Kernel();
  pe.kernel_ = k;
  pe.region_->destroy_kernel = [](void* p) { static_cast<Kernel*>(p)->~Kernel(); };  // the same for every PE of the region
  k->init(pe, params);
}

}  // namespace wse::detail
