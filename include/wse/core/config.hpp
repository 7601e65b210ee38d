#pragma once
/// \file
/// Library-wide configuration macros and the version. Freestanding.

#define WSE_VERSION_MAJOR 0
#define WSE_VERSION_MINOR 1
#define WSE_VERSION_PATCH 0

namespace wse {
/// Library version as {major, minor, patch}. Any caller; constant.
struct Version {
  int major;
  int minor;
  int patch;
};
inline constexpr Version version{WSE_VERSION_MAJOR, WSE_VERSION_MINOR, WSE_VERSION_PATCH};
}  // namespace wse
