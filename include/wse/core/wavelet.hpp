#pragma once
/// \file
/// Wavelets: the 32-bit unit of fabric traffic, its 16-bit data + 16-bit index form, and the
/// control-wavelet payload that activates control tasks and advances switches. Freestanding.
#include <bit>
#include <cstdint>

#include "types.hpp"

namespace wse {

/// One fabric wavelet: a 32-bit payload and a control bit.
struct Wavelet {
  std::uint32_t data = 0;
  bool control = false;

  /// A data wavelet holding 16-bit `value` in the low half and `index` in the high half.
  static constexpr Wavelet indexed(std::uint16_t value, std::uint16_t index) {
    return Wavelet{static_cast<std::uint32_t>(value) | (static_cast<std::uint32_t>(index) << 16), false};
  }
  /// A data wavelet carrying a 32-bit unsigned value.
  static constexpr Wavelet from_u32(std::uint32_t v) { return Wavelet{v, false}; }
  /// A data wavelet carrying a 32-bit signed value (two's complement bits).
  static constexpr Wavelet from_i32(std::int32_t v) { return Wavelet{static_cast<std::uint32_t>(v), false}; }
  /// The payload as a signed 32-bit value.
  constexpr std::int32_t i32() const { return static_cast<std::int32_t>(data); }
  /// A data wavelet carrying the bits of a float.
  static constexpr Wavelet from_f32(float f) { return Wavelet{std::bit_cast<std::uint32_t>(f), false}; }
  /// Low 16 bits: the data of the 16-bit form.
  constexpr std::uint16_t lo16() const { return static_cast<std::uint16_t>(data & 0xffffu); }
  /// High 16 bits: the index of the 16-bit form (what range filters look at).
  constexpr std::uint16_t index() const { return static_cast<std::uint16_t>(data >> 16); }
  /// The payload reinterpreted as a float.
  constexpr float f32() const { return std::bit_cast<float>(data); }
  friend constexpr bool operator==(Wavelet, Wavelet) = default;
};

/// What a control wavelet asks for. wse's own encoding (documented in docs/semantics.md):
/// bits 0-5 control task id, bit 6 "activate that task", bit 8 "advance switch",
/// bit 9 "reset switch to position 0", bits 16-31 free user data.
struct ControlPayload {
  bool activate = false;       ///< activate control task `task` at each PE that receives it
  TaskId task{0};              ///< control task id, 0..63
  bool advance_switch = false; ///< advance the color's switch after routing this wavelet
  bool reset_switch = false;   ///< reset the color's switch to position 0 after routing it
  std::uint16_t user = 0;      ///< user data, delivered with the control task

  constexpr std::uint32_t encode() const {
    return (task.value & 0x3fu) | (activate ? 0x40u : 0u) | (advance_switch ? 0x100u : 0u) |
           (reset_switch ? 0x200u : 0u) | (static_cast<std::uint32_t>(user) << 16);
  }
  static constexpr ControlPayload decode(std::uint32_t bits) {
    ControlPayload p;
    p.task = TaskId{static_cast<std::uint8_t>(bits & 0x3fu)};
    p.activate = (bits & 0x40u) != 0;
    p.advance_switch = (bits & 0x100u) != 0;
    p.reset_switch = (bits & 0x200u) != 0;
    p.user = static_cast<std::uint16_t>(bits >> 16);
    return p;
  }
  /// The control wavelet carrying this payload.
  constexpr Wavelet wavelet() const { return Wavelet{encode(), true}; }
};

}  // namespace wse
