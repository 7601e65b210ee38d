#pragma once
/// \file
/// wse::host::Runtime: what a host program talks to. Load a program on a device, copy arrays
/// into and out of exported PE symbols over rectangles, stream wavelets at the fabric edge,
/// launch exported functions, run, read statistics. Hosted.
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "device.hpp"
#include "emulator_device.hpp"

namespace wse::host {

/// A loaded program on a device. Host code; calls block until done.
class Runtime {
 public:
  /// Loads `program` on the emulator. Throws ProgramError when the program is invalid or a
  /// kernel fails to load (e.g. over the PE memory budget), naming the PE.
  explicit Runtime(const Program& program, emu::EmuConfig config = {})
      : program_(program), device_(std::make_unique<EmulatorDevice>(program, config)) {}
  /// Same, taking the program over instead of copying it (a full-fabric program's routes
  /// take hundreds of MB): `Runtime rt(std::move(prog), cfg)`.
  explicit Runtime(Program&& program, emu::EmuConfig config = {})
      : program_(std::move(program)), device_(std::make_unique<EmulatorDevice>(program_, config)) {}
  /// Runs `program` on a given device (already loaded with it).
  Runtime(const Program& program, std::unique_ptr<Device> device) : program_(program), device_(std::move(device)) {}

  /// Copies `src` into symbol `symbol` on every PE of `area`: PEs in row-major order over
  /// the rectangle, `elems_per_pe` consecutive elements each (written from element `offset`).
  /// src.size() must equal area.area() * elems_per_pe.
  template <DsdElement T>
  void memcpy_h2d(std::string_view symbol, std::span<const T> src, Rect area, std::uint32_t elems_per_pe,
                  std::uint32_t offset = 0) {
    check_copy(symbol, src.size(), area, elems_per_pe, "memcpy_h2d");
    std::size_t k = 0;
    for_each_pe(area, [&](Coord c) {
      device_->write_symbol(c, symbol, elem_type_of<T>, offset, src.data() + k, elems_per_pe);
      k += elems_per_pe;
    });
  }
  template <DsdElement T>
  void memcpy_h2d(std::string_view symbol, const std::vector<T>& src, Rect area, std::uint32_t elems_per_pe,
                  std::uint32_t offset = 0) {
    memcpy_h2d<T>(symbol, std::span<const T>(src), area, elems_per_pe, offset);
  }

  /// Copies symbol `symbol` out of every PE of `area` into `dst`, same layout as memcpy_h2d.
  template <DsdElement T>
  void memcpy_d2h(std::span<T> dst, std::string_view symbol, Rect area, std::uint32_t elems_per_pe,
                  std::uint32_t offset = 0) const {
    check_copy(symbol, dst.size(), area, elems_per_pe, "memcpy_d2h");
    std::size_t k = 0;
    for_each_pe(area, [&](Coord c) {
      device_->read_symbol(c, symbol, elem_type_of<T>, offset, dst.data() + k, elems_per_pe);
      k += elems_per_pe;
    });
  }
  /// Returns a new vector holding symbol `symbol` from every PE of `area`.
  template <DsdElement T>
  std::vector<T> read(std::string_view symbol, Rect area, std::uint32_t elems_per_pe, std::uint32_t offset = 0) const {
    std::vector<T> out(std::size_t{area.area()} * elems_per_pe);
    memcpy_d2h<T>(std::span<T>(out), symbol, area, elems_per_pe, offset);
    return out;
  }

  /// Appends raw wavelets to input stream `name`; they enter during the next run().
  void stream_in(std::string_view name, std::span<const Wavelet> data) { device_->write_stream(name, data.data(), data.size()); }
  /// Appends 32-bit values (floats by their bits, integers as is) as data wavelets.
  template <DsdElement T> void stream_in(std::string_view name, std::span<const T> values) {
    std::vector<Wavelet> w(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::uint32_t bits = 0;
      std::memcpy(&bits, &values[i], sizeof(T));
      w[i] = Wavelet{bits, false};
    }
    stream_in(name, std::span<const Wavelet>(w));
  }
  template <DsdElement T> void stream_in(std::string_view name, const std::vector<T>& values) {
    stream_in<T>(name, std::span<const T>(values));
  }
  /// Takes every wavelet output stream `name` has collected so far.
  std::vector<Wavelet> stream_out(std::string_view name) { return device_->take_stream(name); }
  /// Takes output stream `name` as values of T (each data wavelet's low sizeof(T) bytes).
  /// Control wavelets that left through the stream are dropped here; stream_out() keeps them.
  template <DsdElement T> std::vector<T> stream_out_as(std::string_view name) {
    const auto w = stream_out(name);
    std::vector<T> out;
    out.reserve(w.size());
    for (const Wavelet& x : w) {
      if (x.control) continue;
      T v;
      std::memcpy(&v, &x.data, sizeof(T));
      out.push_back(v);
    }
    return out;
  }

  /// Runs exported function `name` on every PE (in `area`) that exports it, at the start of
  /// the next run(). Throws when none does.
  void launch(std::string_view name, std::optional<Rect> area = std::nullopt) { device_->launch(name, area); }
  /// Runs until quiescent, stalled or faulted; the report says which and names the PEs.
  RunReport run() { return device_->run(); }
  /// launch(name) then run().
  RunReport call(std::string_view name) {
    launch(name);
    return run();
  }
  /// Counters over the runtime's lifetime.
  Stats stats() const { return device_->stats(); }
  std::string describe() const { return device_->describe(); }
  const Program& program() const { return program_; }
  Device& device() { return *device_; }
  /// The emulator behind this runtime (PE state, switch positions), or nullptr when the
  /// device is not the emulator.
  emu::Engine* emulator() {
    auto* d = dynamic_cast<EmulatorDevice*>(device_.get());
    return d ? &d->engine() : nullptr;
  }

 private:
  template <class F> void for_each_pe(Rect area, F&& f) const {
    for (std::uint16_t dy = 0; dy < area.height; ++dy)
      for (std::uint16_t dx = 0; dx < area.width; ++dx)
        f(Coord{static_cast<std::uint16_t>(area.origin.x + dx), static_cast<std::uint16_t>(area.origin.y + dy)});
  }
  void check_copy(std::string_view symbol, std::size_t n, Rect area, std::uint32_t per_pe, const char* what) const {
    const std::string where = std::string(what) + "('" + std::string(symbol) + "', " + to_string(area) + ")";
    if (area.width == 0 || area.height == 0 || area.origin.x + area.width > program_.width() ||
        area.origin.y + area.height > program_.height())
      throw ProgramError(where + ": rectangle is empty or leaves the " + std::to_string(program_.width()) + "x" +
                         std::to_string(program_.height()) + " grid");
    if (n != std::size_t{area.area()} * per_pe)
      throw ProgramError(where + ": host array has " + std::to_string(n) + " elements, expected " +
                         std::to_string(area.area()) + " PEs x " + std::to_string(per_pe) + " = " +
                         std::to_string(std::size_t{area.area()} * per_pe));
  }

  Program program_;
  std::unique_ptr<Device> device_;
};

}  // namespace wse::host
