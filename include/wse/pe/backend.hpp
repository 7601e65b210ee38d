#pragma once
/// \file
/// The backend a kernel runs against, as a concept; the helpers that reach it (activate,
/// send, alloc, export); and ProbeBackend, a do-nothing backend used to inspect kernel types
/// at compile time. Freestanding.
#include <concepts>
#include <cstddef>
#include <cstdint>

#include "../arch/arch.hpp"
#include "../core/elem_type.hpp"
#include "../core/types.hpp"
#include "../core/wavelet.hpp"
#include "array.hpp"
#include "ops.hpp"
#include "task.hpp"

namespace wse {

/// What a PE backend provides. A kernel is a class template over its backend (`template
/// <class PE> struct MyKernel`); the emulator's wse::emu::Pe and hardware ports model this.
template <class B>
concept Backend = requires(B& pe, const B& cpe, TaskId t, Color c, Wavelet w, const DsdInstr& ins,
                           TaskFn<B> fn, const char* name, void* p, std::uint32_t n) {
  pe.activate(t);
  pe.block(t);
  pe.unblock(t);
  pe.send(c, w);
  pe.dsd(ins);
  pe.bind_task(t, TaskKind::local, fn);
  { pe.allocate(n, n) } -> std::same_as<void*>;
  pe.export_symbol(name, ElemType::f32, p, n);
  pe.export_function(name, fn);
  { cpe.coord() } -> std::same_as<Coord>;
};

/// Allocates `n` zeroed elements of PE memory for the kernel's lifetime. Kernel code in
/// init(). Counts against the PE memory budget; the backend faults when it is exceeded.
template <class T, class PE> Array<T> alloc(PE& pe, std::uint32_t n) {
  void* p = pe.allocate(static_cast<std::uint32_t>(n * sizeof(T)), static_cast<std::uint32_t>(alignof(T)));
  return Array<T>{static_cast<T*>(p), p ? n : 0u};
}

/// Exports `a` under `name` so the host can copy into and out of it. Kernel code in init().
template <DsdElement T, class PE> void export_symbol(PE& pe, const char* name, Array<T> a) {
  pe.export_symbol(name, elem_type_of<T>, a.data(), a.size());
}
/// Exports a C array member under `name`.
template <DsdElement T, std::size_t N, class PE> void export_symbol(PE& pe, const char* name, T (&a)[N]) {
  export_symbol(pe, name, Array<T>{a});
}

/// A backend with every operation declared and none defined: `Kernel<ProbeBackend>` lets
/// the library read a kernel's Params type and size without any real backend.
struct ProbeBackend {
  void activate(TaskId);
  void block(TaskId);
  void unblock(TaskId);
  void send(Color, Wavelet);
  void dsd(const DsdInstr&);
  void bind_task(TaskId, TaskKind, TaskFn<ProbeBackend>);
  void* allocate(std::uint32_t bytes, std::uint32_t align);
  void export_symbol(const char*, ElemType, void*, std::uint32_t);
  void export_function(const char*, TaskFn<ProbeBackend>);
  Coord coord() const;
};
static_assert(Backend<ProbeBackend>);

/// A kernel: a class template over its backend with a `Params` type and
/// `void init(PE&, const Params&)`. Its objects must be default-constructible.
template <template <class> class K>
concept KernelTemplate =
    requires { typename K<ProbeBackend>::Params; } &&
    std::default_initializable<K<ProbeBackend>> &&
    requires(K<ProbeBackend>& k, ProbeBackend& pe, const typename K<ProbeBackend>::Params& p) {
      k.init(pe, p);
    };

/// True when the kernel object of K fits in `bytes` of PE memory (compile-time check).
template <template <class> class K>
inline constexpr bool fits_in_pe_memory = sizeof(K<ProbeBackend>) <= arch::max_pe_memory_bytes;

}  // namespace wse
