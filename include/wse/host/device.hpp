#pragma once
/// \file
/// wse::host::Device: what a runtime needs from a device (the emulator, or a hardware
/// runtime behind the same interface). Hosted.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "../core/elem_type.hpp"
#include "../core/types.hpp"
#include "../core/wavelet.hpp"
#include "../emu/report.hpp"

namespace wse::host {

using emu::RunReport;
using emu::RunStatus;
using emu::Stats;

/// A device that runs one loaded program. Host code. Errors throw wse::ProgramError
/// naming the PE and symbol; run outcomes come back as a RunReport.
class Device {
 public:
  virtual ~Device() = default;
  /// Copies `count` elements of `type` from `src` into symbol `name` at PE `pe`, starting at
  /// element `offset`. Throws on unknown symbol, wrong type or range.
  virtual void write_symbol(Coord pe, std::string_view name, ElemType type, std::uint32_t offset, const void* src,
                            std::uint32_t count) = 0;
  /// Copies out of symbol `name` at PE `pe`; same checks as write_symbol.
  virtual void read_symbol(Coord pe, std::string_view name, ElemType type, std::uint32_t offset, void* dst,
                           std::uint32_t count) const = 0;
  /// Appends wavelets to input stream `name`.
  virtual void write_stream(std::string_view name, const Wavelet* data, std::size_t n) = 0;
  /// Takes what output stream `name` has collected.
  virtual std::vector<Wavelet> take_stream(std::string_view name) = 0;
  /// Queues exported function `name` on every PE (in `area`) exporting it.
  virtual void launch(std::string_view name, std::optional<Rect> area) = 0;
  /// Runs until quiescent, stalled or faulted. Blocks.
  virtual RunReport run() = 0;
  /// Counters over the device's lifetime.
  virtual Stats stats() const = 0;
  /// A one-line description, e.g. "wse emulator, wse2, 4x3 PEs, 2 threads".
  virtual std::string describe() const = 0;
};

}  // namespace wse::host
