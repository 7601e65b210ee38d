#pragma once
/// \file
/// What one DSD op costs in the emulator's timed mode, from the arch's CycleCosts
/// (docs/timing.md). Emulator internal.
#include <cstdint>

#include "../arch/arch.hpp"
#include "../pe/ops.hpp"

namespace wse::emu::timing {

/// Elements per cycle of memory-operand op `ins` on an arch with costs `c`.
constexpr unsigned elements_per_cycle(const arch::CycleCosts& c, const DsdInstr& ins) {
  const ElemType t = ins.dst.type;
  if (elem_size(t) == 2) return (t == ElemType::i16 || t == ElemType::u16) ? c.i16_width : c.f16_width;
  if (t != ElemType::f32) return c.i32_width;
  switch (ins.op) {
    case DsdOpCode::mac: return elem_size(ins.b.type) == 2 ? c.mixed_mac_width : c.f32_mul_width;
    case DsdOpCode::mul:
    case DsdOpCode::cvt: return c.f32_mul_width;
    default: return c.f32_add_width;
  }
}

/// Cycles the elements of memory-operand op `ins` over `length` elements take (the issue
/// cost is charged separately).
constexpr std::uint64_t element_cycles(const arch::CycleCosts& c, const DsdInstr& ins, std::uint32_t length) {
  const unsigned w = elements_per_cycle(c, ins);
  return w == 0 ? length : (std::uint64_t{length} + w - 1) / w;
}

}  // namespace wse::emu::timing
