#pragma once
/// \file
/// WSE_ASSERT: the one replaceable assertion of the library. Freestanding.
///
/// Define WSE_ASSERT_HANDLER(file, line, message) before including any wse header to route
/// failures to your own handler (it must not return). By default a failed assertion traps.

#ifndef WSE_ASSERT_HANDLER
#define WSE_ASSERT_HANDLER(file, line, message) __builtin_trap()
#endif

/// Checks `cond`; on failure calls WSE_ASSERT_HANDLER with a message. Kernel or host code.
#define WSE_ASSERT(cond, message)                          \
  do {                                                     \
    if (!(cond)) {                                         \
      WSE_ASSERT_HANDLER(__FILE__, __LINE__, message);     \
    }                                                      \
  } while (false)
