#pragma once
// Shared helpers for the wse tests.
#include <cstdlib>
#include <string>
#include <wse/wse.hpp>

namespace wse_test {

/// Worker threads for emulator runs: $WSE_TEST_THREADS (ctest runs every test at 1 and 8).
inline unsigned threads() {
  const char* v = std::getenv("WSE_TEST_THREADS");
  return v ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : 1u;
}

/// True under $WSE_TEST_SMALL (the TSan run): tests may shrink their sizes.
inline bool small() { return std::getenv("WSE_TEST_SMALL") != nullptr; }

/// The emulator config tests use: threads() workers, even on grids too small for
/// EmuConfig::min_pes_per_thread (so the threaded paths run on small test programs).
inline wse::emu::EmuConfig config() {
  wse::emu::EmuConfig c;
  c.threads = threads();
  c.min_pes_per_thread = 1;
  return c;
}

/// The message of the wse::ProgramError that `f()` throws, or "" when it throws none.
inline std::string error_of(auto&& f) {
  try {
    f();
  } catch (const wse::ProgramError& e) {
    return e.what();
  }
  return "";
}

/// True when `text` contains `part` (for checking that error messages name the place).
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace wse_test
