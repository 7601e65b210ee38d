#pragma once
/// \file
/// Tasks: kinds, completions of asynchronous ops, and binding kernel member functions to
/// task ids. Freestanding.
#include <cstdint>
#include <type_traits>

#include "../core/types.hpp"
#include "../core/wavelet.hpp"

namespace wse {

/// What a task id is bound to. Data tasks run once per wavelet arriving on their color;
/// local tasks run when activated by software or by an async op's completion; control tasks
/// run when a control wavelet carrying their id reaches the PE.
enum class TaskKind : std::uint8_t { none, data, local, control };

/// Name for messages: "data", "local", "control" or "unbound".
constexpr const char* task_kind_name(TaskKind k) {
  switch (k) {
    case TaskKind::data: return "data";
    case TaskKind::local: return "local";
    case TaskKind::control: return "control";
    default: return "unbound";
  }
}

/// What happens when an asynchronous DSD op finishes.
struct Completion {
  enum class Action : std::uint8_t { none, activate, unblock };
  Action action = Action::none;
  TaskId task{};
};
/// Completion that activates `t` (it runs once it is also unblocked).
constexpr Completion then_activate(TaskId t) { return {Completion::Action::activate, t}; }
/// Completion that unblocks `t`.
constexpr Completion then_unblock(TaskId t) { return {Completion::Action::unblock, t}; }
/// Completion that does nothing (the op still runs asynchronously).
constexpr Completion then_nothing() { return {}; }

/// Entry point the backend calls for a task: the kernel object, the backend, and the
/// wavelet (data tasks: the arriving wavelet; control tasks: the control wavelet; local: {}).
template <class PE> using TaskFn = void (*)(void* kernel, PE& pe, Wavelet w);

namespace detail {
template <class M> struct MethodTraits {
  static constexpr bool valid = false;  // not a task method: check_method says what is
};
template <class K, class PE> struct MethodTraits<void (K::*)(PE&, Wavelet)> {
  static constexpr bool valid = true;
  using kernel = K;
  using backend = PE;
  static constexpr bool takes_wavelet = true;
};
template <class K, class PE> struct MethodTraits<void (K::*)(PE&)> {
  static constexpr bool valid = true;
  using kernel = K;
  using backend = PE;
  static constexpr bool takes_wavelet = false;
};

template <auto Method, class PE> void task_trampoline(void* kernel, PE& pe, Wavelet w) {
  using Traits = MethodTraits<decltype(Method)>;
  auto* self = static_cast<typename Traits::kernel*>(kernel);
  if constexpr (Traits::takes_wavelet) {
    (self->*Method)(pe, w);
  } else {
    (void)w;
    (self->*Method)(pe);
  }
}

template <auto Method, class PE> constexpr void check_method() {
  using M = decltype(Method);
  static_assert(std::is_member_function_pointer_v<M>,
                "bind_*_task<&Kernel::method>: pass a pointer to a kernel member function");
  using Traits = MethodTraits<M>;
  static_assert(Traits::valid,
                "a task method is a non-const, non-static member of the kernel returning void: "
                "void method(PE& pe) for local and control tasks and launched functions, "
                "void method(PE& pe, wse::Wavelet w) for data tasks");
  if constexpr (Traits::valid)
    static_assert(std::is_same_v<typename Traits::backend, PE>,
                  "task method must take the same backend type (PE&) the kernel is bound with");
}
}  // namespace detail

/// Binds `Method` (void (K::*)(PE&, Wavelet)) as the data task of `color`: it runs once per
/// data wavelet delivered to this PE on `color`. Kernel code, in init() (a later bind faults).
template <auto Method, class PE> void bind_data_task(PE& pe, Color color) {
  detail::check_method<Method, PE>();
  static_assert(detail::MethodTraits<decltype(Method)>::takes_wavelet,
                "a data task receives its wavelet: void method(PE&, wse::Wavelet)");
  pe.bind_task(data_task_id(color), TaskKind::data, &detail::task_trampoline<Method, PE>);
}

/// Binds `Method` (void (K::*)(PE&)) as local task `id`; it runs when activated and unblocked.
/// Kernel code, in init() (a later bind faults).
template <auto Method, class PE> void bind_local_task(PE& pe, TaskId id) {
  detail::check_method<Method, PE>();
  pe.bind_task(id, TaskKind::local, &detail::task_trampoline<Method, PE>);
}

/// Binds `Method` as control task `id`; a control wavelet whose payload activates `id` runs
/// it. The method may take the control wavelet (void method(PE&, wse::Wavelet)). Kernel code,
/// in init().
template <auto Method, class PE> void bind_control_task(PE& pe, TaskId id) {
  detail::check_method<Method, PE>();
  pe.bind_task(id, TaskKind::control, &detail::task_trampoline<Method, PE>);
}

namespace detail {
template <class M> struct MemberObjectTraits;
template <class K, class C> struct MemberObjectTraits<C K::*> {
  using kernel = K;
  using component = C;
};
template <auto Member, auto Method, class PE> void member_task_trampoline(void* kernel, PE& pe, Wavelet) {
  auto* self = static_cast<typename MemberObjectTraits<decltype(Member)>::kernel*>(kernel);
  ((self->*Member).*Method)(pe);
}
}  // namespace detail

/// Binds `Method` (void (C::*)(PE&)) of the kernel's member object `Member` (C K::*) as local
/// task `id`. For reusable parts of a kernel that own a task, such as a collective: the task
/// table stores no extra pointer, the member's place in the kernel is a template argument.
/// Kernel code, in init().
template <auto Member, auto Method, class PE> void bind_member_local_task(PE& pe, TaskId id) {
  static_assert(std::is_member_object_pointer_v<decltype(Member)>,
                "bind_member_local_task<&Kernel::member, &Member::method>: the first argument names a "
                "member object of the kernel");
  detail::check_method<Method, PE>();
  static_assert(!detail::MethodTraits<decltype(Method)>::takes_wavelet, "a local task method is void method(PE&)");
  pe.bind_task(id, TaskKind::local, &detail::member_task_trampoline<Member, Method, PE>);
}

/// Exports `Method` (void (K::*)(PE&)) under `name`; the host's launch(name) runs it once on
/// every PE that exports it, like a task. Kernel code, in init().
template <auto Method, class PE> void export_function(PE& pe, const char* name) {
  detail::check_method<Method, PE>();
  pe.export_function(name, &detail::task_trampoline<Method, PE>);
}

}  // namespace wse
