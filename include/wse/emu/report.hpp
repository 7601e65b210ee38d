#pragma once
/// \file
/// What a run returns: a status, and when it did not complete cleanly, the faults and the
/// stuck PEs with everything that is waiting. A value the host program can read and print.
#include <cstdint>
#include <string>
#include <vector>

#include "../core/types.hpp"

namespace wse::emu {

/// A PE fault: an operation the hardware could not carry out. Stops the run.
struct PeFault {
  Coord pe{};
  std::string kernel;     ///< kernel type name at the PE
  std::string task;       ///< "task 12 (local)", "data task 3", "function 'compute'", "init"
  std::string operation;  ///< "add", "send", "activate", "alloc", ...
  std::string message;    ///< what was wrong, with the allowed range
  friend bool operator==(const PeFault&, const PeFault&) = default;
};

/// One PE that still has work when no progress is possible.
struct StuckPe {
  Coord pe{};
  std::string kernel;
  std::vector<std::string> tasks;     ///< activated-but-blocked tasks, data tasks with waiting wavelets
  std::vector<std::string> queues;    ///< non-empty queues and link buffers, with counts
  std::vector<std::string> waiting;   ///< async ops and what they wait for
  std::vector<std::uint8_t> colors;   ///< colors with wavelets waiting at this PE
  friend bool operator==(const StuckPe&, const StuckPe&) = default;
};

/// How a run ended.
enum class RunStatus : std::uint8_t {
  completed,    ///< quiescent: no wavelets anywhere, no active task, no pending async op
  stalled,      ///< no progress possible while work remains (deadlock); see `stuck`
  faulted,      ///< a PE fault stopped the run; see `faults`
  epoch_limit,  ///< EmuConfig::max_epochs reached while still making progress
};

/// Name for messages: "completed", "stalled", "faulted", "epoch limit".
inline const char* to_string(RunStatus s) {
  switch (s) {
    case RunStatus::completed: return "completed";
    case RunStatus::stalled: return "stalled";
    case RunStatus::faulted: return "faulted";
    default: return "epoch limit";
  }
}

/// How far a run has come, for EmuConfig::progress.
struct RunProgress {
  std::uint64_t epochs = 0;      ///< epochs so far in this run
  std::uint64_t cycles = 0;      ///< timed mode: simulated cycles so far in this run (0 in functional mode)
  std::uint64_t awake_pes = 0;   ///< PEs the next epoch visits (the rest sleep or are done)
  std::uint64_t loaded_pes = 0;  ///< PEs with a kernel or a route
};

/// Where the emulator's memory goes (Engine::memory()). Counted from the data structures,
/// so it is the same on every run and every allocator; the heap's own per-allocation
/// overhead (~16 bytes per block) is not included.
struct EmuMemory {
  std::uint64_t pes = 0;              ///< PEs with state (a kernel or a route)
  std::uint64_t pe_state_bytes = 0;   ///< emulator state of those PEs: router, tasks, exports, counters
  std::uint64_t kernel_bytes = 0;     ///< PE memory kernels use (objects and allocations)
  std::uint64_t ring_pool_bytes = 0;  ///< storage of wavelets in flight, pooled per tile
  std::uint64_t grid_bytes = 0;       ///< one slot per grid position, idle PEs included
  std::uint64_t color_plans = 0;      ///< distinct color plans (route, filter, host-stream ends) the PEs share
  std::uint64_t task_functions = 0;   ///< distinct task functions the PEs bind (their slots hold an index)
  /// Emulator state per PE beyond what its kernel uses.
  double state_per_pe() const { return pes ? double(pe_state_bytes + grid_bytes) / double(pes) : 0.0; }
};

/// The result of Engine::run / Runtime::run. Identical for any number of worker threads.
struct RunReport {
  RunStatus status = RunStatus::completed;
  std::uint64_t epochs = 0;        ///< emulator epochs this run took
  /// Timed mode only (EmuConfig::timed): simulated cycles from the run's start until its last
  /// activity ended, and that time at the arch clock. Both 0 in functional mode.
  std::uint64_t cycles = 0;
  double seconds = 0;
  std::vector<PeFault> faults;     ///< sorted by (y, x)
  std::vector<StuckPe> stuck;      ///< sorted by (y, x); also filled at the epoch limit

  bool ok() const { return status == RunStatus::completed; }

  /// A multi-line human-readable account, naming every faulted or stuck PE.
  std::string to_string() const {
    auto coord = [](Coord c) { return "(" + std::to_string(c.x) + "," + std::to_string(c.y) + ")"; };
    std::string s = std::string("run ") + emu::to_string(status) + " after " + std::to_string(epochs) + " epochs";
    if (cycles) s += " (" + std::to_string(cycles) + " cycles, " + std::to_string(seconds * 1e6) + " us)";
    s += "\n";
    for (const auto& f : faults)
      s += "  fault at PE " + coord(f.pe) + " [" + f.kernel + "] in " + f.task + ", op " + f.operation + ": " + f.message + "\n";
    if (!stuck.empty()) s += "  " + std::to_string(stuck.size()) + " PE(s) with work left:\n";
    for (const auto& p : stuck) {
      s += "  PE " + coord(p.pe) + " [" + p.kernel + "]\n";
      for (const auto& t : p.tasks) s += "    task: " + t + "\n";
      for (const auto& q : p.queues) s += "    queue: " + q + "\n";
      for (const auto& w : p.waiting) s += "    waiting: " + w + "\n";
    }
    return s;
  }
  friend bool operator==(const RunReport&, const RunReport&) = default;
};

/// Counters of one PE. `sent`: wavelets the compute element put into output queues;
/// `received`: wavelets it took from input queues (data tasks and fabric-input ops);
/// `forwarded`: wavelets its router sent to a neighbor or off the edge (one per hop);
/// `delivered`: wavelets its router put into its input queues (after filters).
/// Timed mode only: `busy_cycles`: cycles its compute element spent in tasks (task switch,
/// DSD ops, sends); `stall_cycles`: cycles a send or an async op waited for space in a full
/// output queue; `link_in[d]`: wavelets that crossed the link from neighbour d (N, E, S, W)
/// into this PE. Idle cycles are the rest: see Stats::idle_cycles.
struct PeStats {
  std::uint64_t tasks_run = 0;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t forwarded = 0;
  std::uint64_t delivered = 0;
  std::uint64_t busy_cycles = 0;
  std::uint64_t stall_cycles = 0;
  std::uint64_t link_in[4] = {0, 0, 0, 0};
  PeStats& operator+=(const PeStats& o) {
    tasks_run += o.tasks_run; sent += o.sent; received += o.received; forwarded += o.forwarded; delivered += o.delivered;
    busy_cycles += o.busy_cycles; stall_cycles += o.stall_cycles;
    for (int d = 0; d < 4; ++d) link_in[d] += o.link_in[d];
    return *this;
  }
  friend bool operator==(const PeStats&, const PeStats&) = default;
};

/// Statistics over a device's lifetime: totals and per-PE counters (PEs with state only).
struct Stats {
  PeStats totals;
  std::uint64_t epochs = 0;
  std::uint64_t cycles = 0;  ///< timed mode: simulated cycles over all runs
  std::vector<std::pair<Coord, PeStats>> per_pe;  ///< sorted by (y, x)

  /// Cycles PE counters `s` spent neither busy nor stalled (timed mode).
  std::uint64_t idle_cycles(const PeStats& s) const {
    const std::uint64_t used = s.busy_cycles + s.stall_cycles;
    return used < cycles ? cycles - used : 0;
  }
  /// Link utilization (timed mode): wavelets that crossed PE-to-PE links divided by the
  /// capacity of the links that carried any (one wavelet per cycle each). 0 without traffic.
  double link_utilization() const {
    std::uint64_t wavelets = 0, links = 0;
    for (const auto& [c, s] : per_pe)
      for (auto n : s.link_in)
        if (n) {
          wavelets += n;
          ++links;
        }
    return links && cycles ? double(wavelets) / (double(links) * double(cycles)) : 0.0;
  }
  /// The highest utilization of any one link (timed mode).
  double busiest_link_utilization() const {
    std::uint64_t most = 0;
    for (const auto& [c, s] : per_pe)
      for (auto n : s.link_in) most = n > most ? n : most;
    return cycles ? double(most) / double(cycles) : 0.0;
  }
  friend bool operator==(const Stats&, const Stats&) = default;
};

}  // namespace wse::emu
