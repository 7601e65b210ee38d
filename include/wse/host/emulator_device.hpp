#pragma once
/// \file
/// The emulator as a host Device. Hosted.
#include <memory>
#include <string>

#include "../emu/engine.hpp"
#include "../emu/kernel_host.hpp"
#include "../emu/simd.hpp"
#include "device.hpp"

namespace wse::host {

/// Device backed by wse::emu::Engine.
class EmulatorDevice final : public Device {
 public:
  EmulatorDevice(const Program& p, emu::EmuConfig cfg) : engine_(p, cfg) {}

  void write_symbol(Coord pe, std::string_view name, ElemType type, std::uint32_t offset, const void* src,
                    std::uint32_t count) override {
    const Symbol& s = symbol(pe, name, type, offset, count);
    std::memcpy(static_cast<unsigned char*>(s.data) + std::size_t{offset} * elem_size(type), src,
                std::size_t{count} * elem_size(type));
  }
  void read_symbol(Coord pe, std::string_view name, ElemType type, std::uint32_t offset, void* dst,
                   std::uint32_t count) const override {
    const Symbol& s = symbol(pe, name, type, offset, count);
    std::memcpy(dst, static_cast<const unsigned char*>(s.data) + std::size_t{offset} * elem_size(type),
                std::size_t{count} * elem_size(type));
  }
  void write_stream(std::string_view name, const Wavelet* data, std::size_t n) override { engine_.write_stream(name, data, n); }
  std::vector<Wavelet> take_stream(std::string_view name) override { return engine_.take_stream(name); }
  void launch(std::string_view name, std::optional<Rect> area) override { engine_.launch(name, area); }
  RunReport run() override { return engine_.run(); }
  Stats stats() const override { return engine_.stats(); }
  std::string describe() const override {
    return std::string("wse emulator, ") + engine_.arch().name + ", " + std::to_string(engine_.width()) + "x" +
           std::to_string(engine_.height()) + " PEs, " + std::to_string(engine_.tiles()) + " thread(s), SIMD " + emu::simd_target();
  }
  /// The engine, for inspection (PE state, switch positions) in tests and tools.
  emu::Engine& engine() { return engine_; }

 private:
  using Symbol = emu::Symbol;
  const Symbol& symbol(Coord pe, std::string_view name, ElemType type, std::uint32_t offset, std::uint32_t count) const {
    const std::string where = "symbol '" + std::string(name) + "' at PE " + to_string(pe);
    const emu::Pe* p = engine_.pe(pe);
    if (pe.x >= engine_.width() || pe.y >= engine_.height()) throw ProgramError(where + ": PE is outside the grid");
    const Symbol* s = p ? p->find_symbol(name) : nullptr;
    if (s == nullptr) {
      std::string known;
      if (p)
        for (const auto& k : p->symbols()) known += std::string(known.empty() ? "" : ", ") + k.name;
      throw ProgramError(where + ": unknown symbol (this PE exports: " + (known.empty() ? "nothing" : known) + ")");
    }
    if (s->type != type)
      throw ProgramError(where + ": symbol holds " + elem_name(s->type) + ", not " + elem_name(type));
    if (std::uint64_t{offset} + count > s->count)
      throw ProgramError(where + ": elements " + std::to_string(offset) + ".." + std::to_string(std::uint64_t{offset} + count - 1) +
                         " requested, but the symbol has " + std::to_string(s->count) + " elements");
    return *s;
  }
  emu::Engine engine_;
};

}  // namespace wse::host
