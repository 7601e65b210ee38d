#pragma once
/// \file
/// Compile-time type names for messages (kernel names in errors and reports). Freestanding.
#include <string_view>

namespace wse::detail {

/// Name of T as the compiler spells it, e.g. "Hello<wse::emu::Pe>". Any caller; constexpr.
template <class T> constexpr std::string_view type_name() {
  std::string_view s = __PRETTY_FUNCTION__;
  const auto start = s.find("T = ");
  if (start == std::string_view::npos) return s;
  s.remove_prefix(start + 4);
  const auto end = s.find_first_of(";]");
  return s.substr(0, end);
}

}  // namespace wse::detail
