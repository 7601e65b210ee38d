#pragma once
/// \file
/// The fabric register model of the reference bare-metal port: for every color, a small
/// block of memory-mapped 32-bit registers between the PE's compute element and the RAMP
/// port of its router; and the FabricPort concept a backend's fabric must model.
/// Freestanding (no heap, no exceptions, no RTTI).
///
/// Register block of one color (`ColorRegs`, 32 bytes; color c at base + 0x20 * c, c = 0..23):
///
/// | offset | name      | access | meaning |
/// |--------|-----------|--------|---------|
/// | 0x00   | RX_DATA   | R      | payload of the wavelet at the head of the color's input queue |
/// | 0x04   | RX_STATUS | R/W    | read: bit 0 VALID (RX_DATA holds a wavelet), bit 1 CONTROL (it is a control wavelet); write 0: pop it (the fabric then presents the next one) |
/// | 0x08   | TX_DATA   | W      | payload of the next wavelet to send |
/// | 0x0C   | TX_STATUS | R/W    | read: bit 0 BUSY (the last push is not yet in the output queue); write BUSY, or BUSY and CONTROL: push TX_DATA as a data / control wavelet (only while not BUSY) |
/// | 0x10   | CONFIG    | R      | bit 0 RX_ROUTED (the route delivers this color to RAMP), bit 1 TX_ROUTED (the route takes this color from RAMP), bits 8-15 input queue depth, bits 16-23 output queue depth |
/// | 0x14-0x1C | -      | -      | reserved |
///
/// The handshake has one writer per state, so it works the same on hardware and in RAM:
/// RX_DATA/RX_STATUS belong to the fabric while VALID is 0 (it writes RX_DATA, then sets
/// VALID) and to the PE while VALID is 1 (it reads RX_DATA, then writes 0); TX_DATA/TX_STATUS
/// belong to the PE while BUSY is 0 (it writes TX_DATA, then sets BUSY) and to the fabric while
/// BUSY is 1. On hardware the block is Device memory, where the two writes stay in order; a port
/// whose fabric sits in Normal memory shared with another agent adds a barrier between them.
#include <concepts>
#include <cstdint>

#include "../core/types.hpp"

namespace wse::target {

/// One color's register block. Every field is a volatile 32-bit register.
struct ColorRegs {
  volatile std::uint32_t rx_data;    ///< 0x00 RX_DATA
  volatile std::uint32_t rx_status;  ///< 0x04 RX_STATUS
  volatile std::uint32_t tx_data;    ///< 0x08 TX_DATA
  volatile std::uint32_t tx_status;  ///< 0x0C TX_STATUS
  volatile std::uint32_t config;     ///< 0x10 CONFIG
  volatile std::uint32_t reserved[3];
};
static_assert(sizeof(ColorRegs) == 0x20, "a color's register block is 32 bytes");

/// RX_STATUS bits.
inline constexpr std::uint32_t rx_valid = 1u << 0;
inline constexpr std::uint32_t rx_control = 1u << 1;
/// TX_STATUS bits.
inline constexpr std::uint32_t tx_busy = 1u << 0;
inline constexpr std::uint32_t tx_control = 1u << 1;
/// CONFIG bits and fields.
inline constexpr std::uint32_t cfg_rx_routed = 1u << 0;
inline constexpr std::uint32_t cfg_tx_routed = 1u << 1;
constexpr std::uint32_t cfg_depths(unsigned iq_depth, unsigned oq_depth) {
  return ((iq_depth & 0xffu) << 8) | ((oq_depth & 0xffu) << 16);
}

/// Number of register blocks (one per color a wavelet can carry).
inline constexpr unsigned color_blocks = max_colors;

/// What a backend needs from its fabric:
/// - `registers()`: the first of `color_blocks` register blocks (block c is color c);
/// - `service()`: give the fabric a chance to move wavelets; true when anything moved. On
///   hardware the router moves wavelets by itself, so this returns false (or waits for an
///   event); a software fabric (LoopbackFabric) does its work here;
/// - `quiet()`: true when no wavelet is in flight inside the fabric (hardware: true; the PE
///   cannot see its neighbours).
template <class P>
concept FabricPort = requires(P& p, const P& cp) {
  { p.registers() } -> std::same_as<ColorRegs*>;
  { p.service() } -> std::same_as<bool>;
  { cp.quiet() } -> std::same_as<bool>;
};

/// The fabric of a real PE: register blocks at physical address `Base`. A port for a real
/// core instantiates this with its address map (or writes its own FabricPort, e.g. one
/// whose service() executes WFE until the router raises an event).
template <std::uintptr_t Base> struct MmioFabric {
  ColorRegs* registers() { return reinterpret_cast<ColorRegs*>(Base); }
  bool service() { return false; }
  bool quiet() const { return true; }
};

}  // namespace wse::target
