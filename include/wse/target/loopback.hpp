#pragma once
/// \file
/// LoopbackFabric: a FabricPort in ordinary RAM for testing a port without a wafer. What the
/// PE sends on one color arrives, through a bounded queue, as received on another color (as if
/// a neighbour PE relayed it back); host "edge" inputs feed colors, and colors sent to the edge
/// are captured. Its register blocks follow fabric_regs.hpp exactly; service() plays the
/// router. Freestanding (no heap, no exceptions, no RTTI); all storage is inside the object.
///
/// A real port deletes this file's role: its FabricPort is MmioFabric<address> and the router
/// hardware does what service() does here. Switch positions and range filters are router
/// state and are not modelled (wires are fixed).
#include <array>
#include <cstdint>

#include "../core/types.hpp"
#include "../core/wavelet.hpp"
#include "fabric_regs.hpp"

namespace wse::target {

/// Fixed-capacity FIFO of wavelets. Any code; never allocates.
template <unsigned Capacity> class WaveletQueue {
 public:
  static_assert(Capacity >= 1, "a queue holds at least one wavelet");
  constexpr bool empty() const { return size_ == 0; }
  constexpr bool full() const { return size_ == Capacity; }
  constexpr unsigned size() const { return size_; }
  constexpr Wavelet front() const { return items_[head_]; }
  constexpr Wavelet at(unsigned i) const { return items_[(head_ + i) % Capacity]; }
  constexpr void pop() {
    head_ = (head_ + 1) % Capacity;
    --size_;
  }
  /// Appends `w`; returns false (and drops nothing) when full.
  constexpr bool push(Wavelet w) {
    if (full()) return false;
    items_[(head_ + size_) % Capacity] = w;
    ++size_;
    return true;
  }
  constexpr void clear() { head_ = size_ = 0; }

 private:
  std::array<Wavelet, Capacity> items_{};
  unsigned head_ = 0, size_ = 0;
};

/// A software fabric for one PE. `Depth`: words per wire queue (between a color's TX register
/// and another color's RX register); `EdgeCapacity`: wavelets the host may queue per input
/// color and collect per output color. PE-side code sees only the register blocks.
template <unsigned Depth = 4, unsigned EdgeCapacity = 64> class LoopbackFabric {
 public:
  static constexpr unsigned depth = Depth;

  /// Host: what the PE sends on `from` arrives on `to` (a neighbour relaying it back).
  /// Returns false when either color is out of range, `from` already goes somewhere or `to`
  /// already has an input (two inputs into one color are undefined on hardware).
  bool connect(Color from, Color to) {
    if (!tx_free(from) || !rx_free(to)) return false;
    tx_[from.value] = Tx{Tx::wire, to.value};
    rx_used_[to.value] = true;
    regs_[from.value].config = regs_[from.value].config | cfg_tx_routed | cfg_depths(0, Depth);
    regs_[to.value].config = regs_[to.value].config | cfg_rx_routed | cfg_depths(Depth, 0);
    return true;
  }
  /// Host: color `to` receives wavelets the host feeds at the edge (an input stream).
  bool add_input(Color to) {
    if (!rx_free(to)) return false;
    rx_used_[to.value] = true;
    edge_in_ok_[to.value] = true;
    regs_[to.value].config = regs_[to.value].config | cfg_rx_routed | cfg_depths(Depth, 0);
    return true;
  }
  /// Host: what the PE sends on `from` leaves at the edge and is collected (an output stream).
  bool add_output(Color from) {
    if (!tx_free(from)) return false;
    tx_[from.value] = Tx{Tx::edge, 0};
    regs_[from.value].config = regs_[from.value].config | cfg_tx_routed | cfg_depths(0, Depth);
    return true;
  }
  /// Host: queues `w` to enter on input color `to`. False when the color is not an input
  /// added with add_input or its edge buffer is full.
  bool feed(Color to, Wavelet w) {
    if (to.value >= color_blocks || !edge_in_ok_[to.value]) return false;
    return edge_in_[to.value].push(w);
  }
  /// Host: wavelets collected so far from output color `from` (in order).
  const WaveletQueue<EdgeCapacity>& collected(Color from) const { return edge_out_[from.value < color_blocks ? from.value : 0]; }

  // ---- FabricPort -------------------------------------------------------------------------
  ColorRegs* registers() { return regs_; }

  /// Plays the router: takes pushed TX words into their wire queue or edge buffer, feeds edge
  /// inputs into the RX queues, and presents the head of every RX queue in its registers.
  /// Returns true when anything moved.
  bool service() {
    bool moved = false;
    for (unsigned c = 0; c < color_blocks; ++c) {
      ColorRegs& r = regs_[c];
      const std::uint32_t ts = r.tx_status;
      if ((ts & tx_busy) != 0 && tx_[c].kind != Tx::none) {
        const Wavelet w{r.tx_data, (ts & tx_control) != 0};
        const bool taken = tx_[c].kind == Tx::edge ? edge_out_[c].push(w) : queue_[tx_[c].to].push(w);
        if (taken) {
          r.tx_status = 0;
          moved = true;
        }
      }
    }
    for (unsigned c = 0; c < color_blocks; ++c) {
      while (!edge_in_[c].empty() && !queue_[c].full()) {
        queue_[c].push(edge_in_[c].front());
        edge_in_[c].pop();
        moved = true;
      }
      ColorRegs& r = regs_[c];
      if ((r.rx_status & rx_valid) == 0 && !queue_[c].empty()) {
        const Wavelet w = queue_[c].front();
        queue_[c].pop();
        r.rx_data = w.data;
        r.rx_status = rx_valid | (w.control ? rx_control : 0u);
        moved = true;
      }
    }
    return moved;
  }
  /// True when nothing is in flight: no pushed TX word waits, every wire queue and edge input
  /// is empty (RX registers holding a wavelet are the PE's business).
  bool quiet() const {
    for (unsigned c = 0; c < color_blocks; ++c) {
      if ((regs_[c].tx_status & tx_busy) != 0 || !queue_[c].empty() || !edge_in_[c].empty()) return false;
    }
    return true;
  }

 private:
  struct Tx {
    enum Kind : std::uint8_t { none, wire, edge } kind = none;
    std::uint8_t to = 0;
  };
  constexpr bool tx_free(Color c) const { return c.value < color_blocks && tx_[c.value].kind == Tx::none; }
  constexpr bool rx_free(Color c) const { return c.value < color_blocks && !rx_used_[c.value]; }

  ColorRegs regs_[color_blocks] = {};
  std::array<Tx, color_blocks> tx_{};
  std::array<bool, color_blocks> rx_used_{};
  std::array<bool, color_blocks> edge_in_ok_{};
  std::array<WaveletQueue<Depth>, color_blocks> queue_{};
  std::array<WaveletQueue<EdgeCapacity>, color_blocks> edge_in_{};
  std::array<WaveletQueue<EdgeCapacity>, color_blocks> edge_out_{};
};

}  // namespace wse::target
