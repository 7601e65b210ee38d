#pragma once
/// \file
/// Constexpr descriptions of target chips (WSE-2, WSE-3). Freestanding.
/// Sources: vendor SDK documentation and examples (see docs/DESIGN.md "Hardware reference").
#include <cstdint>

#include "../core/types.hpp"

namespace wse::arch {

/// Upper bound of PE memory over all known archs; compile-time kernel-size checks use it.
inline constexpr std::uint32_t max_pe_memory_bytes = 48u * 1024u;

/// Cycle costs the emulator's timed mode charges (docs/timing.md). Widths are elements per
/// cycle of a memory-operand DSD op; fabric operands move one wavelet per cycle.
struct CycleCosts {
  std::uint8_t task_switch;      ///< cycles from picking a task to its first instruction
  std::uint8_t dsd_issue;        ///< fixed cycles of one DSD op before its first element
  std::uint8_t send;             ///< cycles of one scalar send into an output queue
  std::uint8_t f32_add_width;    ///< fp32 mov/add/sub/max/min/neg/abs
  std::uint8_t f32_mul_width;    ///< fp32 mul/mac (fmac) and conversions
  std::uint8_t f16_width;        ///< fp16/bf16 ops, fmac included
  std::uint8_t mixed_mac_width;  ///< fp32 += fp16 * fp16
  std::uint8_t i16_width;        ///< 16-bit integer ops
  std::uint8_t i32_width;        ///< 32-bit integer ops
};

/// Everything the library needs to know about one chip. Any caller; constant data.
struct Arch {
  const char* name;
  std::uint16_t fabric_width;        ///< columns usable by programs (SDK fabric dims)
  std::uint16_t fabric_height;       ///< rows usable by programs
  std::uint32_t pe_memory_bytes;     ///< SRAM per PE available to kernel state
  std::uint8_t routable_colors;      ///< colors 0..routable_colors-1 may be routed
  std::uint32_t reserved_color_mask; ///< bit c set: color c is reserved for the runtime
  std::uint8_t input_queue_depth[8]; ///< words per input queue IQ0..IQ7
  std::uint8_t output_queue_depth[8];///< words per output queue OQ0..OQ7 (0 = no such queue)
  std::uint8_t output_queues;        ///< number of output queues
  std::uint8_t hop_latency_cycles;   ///< cycles per router hop
  std::uint32_t clock_hz;            ///< clock used to turn cycles into time
  std::uint8_t local_task_first;     ///< first id usable for local tasks
  std::uint8_t local_task_last;      ///< last id usable for local tasks
  std::uint8_t control_task_last;    ///< control task ids are 0..control_task_last
  std::uint8_t microthreads;         ///< asynchronous DSD ops that may run at once per PE
  CycleCosts cycles;                 ///< what the timed mode charges (docs/timing.md)

  /// True when color `c` may appear in a route (routable and not reserved).
  constexpr bool color_usable(Color c) const {
    return c.value < routable_colors && ((reserved_color_mask >> c.value) & 1u) == 0;
  }
  /// True when color `c` is reserved for the runtime.
  constexpr bool color_reserved(Color c) const {
    return c.value < 32 && ((reserved_color_mask >> c.value) & 1u) != 0;
  }
};

/// Cerebras WSE-2. Colors 21-23 are reserved for host I/O, as the SDK reserves them.
inline constexpr Arch wse2{
    .name = "wse2",
    .fabric_width = 757,
    .fabric_height = 996,
    .pe_memory_bytes = 48u * 1024u,
    .routable_colors = 24,
    .reserved_color_mask = (1u << 21) | (1u << 22) | (1u << 23),
    .input_queue_depth = {6, 6, 4, 4, 2, 2, 2, 2},
    .output_queue_depth = {2, 2, 6, 6, 2, 2, 0, 0},
    .output_queues = 6,
    .hop_latency_cycles = 1,
    .clock_hz = 850'000'000u,
    .local_task_first = 0,
    .local_task_last = 30,
    .control_task_last = 63,
    .microthreads = 8,
    // Widths from the SDK documentation; the fixed costs are estimates (docs/timing.md).
    .cycles = {.task_switch = 2, .dsd_issue = 1, .send = 1, .f32_add_width = 2, .f32_mul_width = 1,
               .f16_width = 4, .mixed_mac_width = 2, .i16_width = 2, .i32_width = 1},
};

/// Cerebras WSE-3. Colors 21-23 reserved as on WSE-2.
inline constexpr Arch wse3{
    .name = "wse3",
    .fabric_width = 762,
    .fabric_height = 1176,
    .pe_memory_bytes = 48u * 1024u,
    .routable_colors = 24,
    .reserved_color_mask = (1u << 21) | (1u << 22) | (1u << 23),
    .input_queue_depth = {8, 8, 4, 4, 4, 4, 4, 4},
    .output_queue_depth = {8, 8, 8, 8, 8, 8, 8, 8},
    .output_queues = 8,
    .hop_latency_cycles = 2,
    .clock_hz = 850'000'000u,
    .local_task_first = 8,
    .local_task_last = 30,
    .control_task_last = 63,
    .microthreads = 8,
    .cycles = {.task_switch = 2, .dsd_issue = 1, .send = 1, .f32_add_width = 4, .f32_mul_width = 1,
               .f16_width = 8, .mixed_mac_width = 4, .i16_width = 4, .i32_width = 2},
};

}  // namespace wse::arch
