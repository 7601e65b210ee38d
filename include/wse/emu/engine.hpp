#pragma once
/// \file
/// wse::emu::Engine: loads a Program onto emulated PEs and runs it in deterministic epochs
/// over rectangular tiles, one worker thread per tile. Hosted.
///
/// Each epoch has two phases separated by barriers. Phase A: every awake PE routes, advances
/// its async ops and runs its runnable tasks, touching only its own state (it pushes into its
/// own outgoing link buffers). Phase B: every PE that a neighbor woke pulls wavelets from the
/// neighbors' outgoing buffers into its own incoming buffers. Each buffer has one writer per
/// phase, so no locks are needed and the result does not depend on the thread count.
#include <algorithm>
#include <barrier>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../program/program.hpp"
#include "pe.hpp"
#include "pe_impl.hpp"
#include "report.hpp"

namespace wse::emu {

/// Emulator settings. None of them changes results, only speed and limits.
struct EmuConfig {
  unsigned threads = 1;                   ///< worker threads (= tiles); 0 = all hardware threads
  unsigned router_buffer_depth = 8;       ///< wavelets buffered per link, color and direction (1..16)
  std::uint64_t max_epochs = 50'000'000;  ///< a run stops with RunStatus::epoch_limit after this many
  unsigned max_task_runs_per_epoch = 64;  ///< task runs per PE per epoch before yielding
  std::size_t max_stalled_sends = 1u << 20;  ///< waiting synchronous sends per PE before a queue-overflow fault
  /// Schedule perturbation for testing kernels: each epoch, each PE with work sits out with
  /// this probability in percent (0..90), chosen by a hash of (seed, epoch, PE), so runs stay
  /// deterministic for any thread count. Exposes kernels that rely on PEs moving in lockstep.
  unsigned jitter_percent = 0;
  /// Run memory-only DSD ops on SIMD vectors where possible (bit-identical to the scalar
  /// reference; off = scalar reference only, for comparison).
  bool simd = true;
  std::uint64_t jitter_seed = 1;
};

/// The emulated fabric for one program. Host code; not thread-safe across calls, but
/// run() itself uses `threads` workers. Faults and stalls come back in the RunReport.
class Engine {
 public:
  /// Validates `program` and loads it: builds PE state for every PE with a kernel or a
  /// route (others cost nothing), installs routes, filters and streams, then constructs
  /// each kernel and runs its init. Throws ProgramError naming the PE on any load error.
  explicit Engine(const Program& program, EmuConfig config = {})
      : program_(program), config_(config), width_(program.width()), height_(program.height()) {
    program_.validate();
    if (config_.threads == 0) config_.threads = std::max(1u, std::thread::hardware_concurrency());
    config_.router_buffer_depth = std::clamp(config_.router_buffer_depth, 1u, Ring::max_capacity);
    pes_.resize(std::size_t{width_} * height_);
    load_routes();
    load_streams();
    link_neighbors();
    setup_tiles();
    load_kernels();
    for (auto& pe : pes_)
      if (pe && pe->has_work()) wake_at_start(*pe);
  }

  /// Runs until quiescent, stalled, faulted, or the epoch limit. Host code; blocks.
  RunReport run();

  /// Queues exported function `name` to run once on every PE (inside `area`, if given) that
  /// exports it; it runs at the start of the next run(). Throws if no PE there exports it.
  void launch(std::string_view name, std::optional<Rect> area = std::nullopt) {
    std::size_t count = 0;
    for (auto& pe : pes_) {
      if (!pe || (area && !area->contains(pe->coord_))) continue;
      for (const auto& f : pe->functions_)
        if (f.name == name) {
          pe->pending_launches_.push_back(f.fn);
          pe->pending_launch_names_.push_back(f.name.c_str());
          wake_at_start(*pe);
          ++count;
        }
    }
    if (count == 0)
      throw ProgramError("launch('" + std::string(name) + "'): no PE" + (area ? " in " + to_string(*area) : std::string()) +
                         " exports a function of that name");
  }

  /// The PE at `c`, or nullptr when it has no kernel and no route.
  Pe* pe(Coord c) { return c.x < width_ && c.y < height_ ? pes_[index(c)].get() : nullptr; }
  const Pe* pe(Coord c) const { return c.x < width_ && c.y < height_ ? pes_[index(c)].get() : nullptr; }

  /// Appends wavelets to input stream `name`; they enter the fabric during the next run().
  void write_stream(std::string_view name, const Wavelet* data, std::size_t n) {
    StreamSlot& s = stream(name, true);
    s.in->data.insert(s.in->data.end(), data, data + n);
    if (Pe* p = pe(s.spec.pe)) wake_at_start(*p);
  }
  /// Takes (and clears) what output stream `name` has collected so far.
  std::vector<Wavelet> take_stream(std::string_view name) {
    StreamSlot& s = stream(name, false);
    std::vector<Wavelet> out;
    out.swap(s.out->data);
    return out;
  }

  /// Counters summed over the device's lifetime; per-PE entries sorted by (y, x).
  Stats stats() const {
    Stats s;
    s.epochs = total_epochs_;
    for (const auto& pe : pes_)
      if (pe) {
        s.per_pe.emplace_back(pe->coord_, pe->stats_);
        s.totals += pe->stats_;
      }
    return s;
  }

  const Program& program() const { return program_; }
  const EmuConfig& config() const { return config_; }
  /// Number of tiles (= worker threads actually used).
  unsigned tiles() const { return static_cast<unsigned>(tiles_.size()); }
  /// Number of PEs that hold state (a kernel or a route).
  std::size_t live_pes() const {
    return static_cast<std::size_t>(std::count_if(pes_.begin(), pes_.end(), [](const auto& p) { return p != nullptr; }));
  }

 private:
  struct StreamSlot {
    StreamSpec spec;
    std::unique_ptr<InStream> in;
    std::unique_ptr<OutStream> out;
  };
  struct Tile {
    std::uint16_t y0 = 0, y1 = 0;
    std::vector<Pe*> awake;                 // phase A work list
    std::vector<Pe*> pull;                  // phase B work list
    std::vector<std::vector<Pe*>> wake_to;  // [destination tile], written in phase A
    std::vector<Pe*> stream_pes;            // PEs with an input stream
    std::vector<PeFault> faults;
    bool progress = false;
    bool skipped = false;  // some PE sat out this epoch (jitter)
  };

  // True when `pe` sits out this epoch under EmuConfig::jitter_percent.
  bool sits_out(const Pe& pe, std::uint64_t epoch) const {
    if (config_.jitter_percent == 0 || full_epoch_) return false;
    std::uint64_t h = config_.jitter_seed ^ (epoch * 0x9E3779B97F4A7C15ull) ^ (std::uint64_t{pe.index_} << 32);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h % 100 < std::min(config_.jitter_percent, 90u);
  }

  std::size_t index(Coord c) const { return std::size_t{c.y} * width_ + c.x; }

  Pe& ensure_pe(Coord c) {
    auto& slot = pes_[index(c)];
    if (!slot) {
      slot = std::make_unique<Pe>(program_.arch(), c);
      slot->index_ = static_cast<std::uint32_t>(index(c));
      slot->send_stall_limit_ = config_.max_stalled_sends;
      slot->use_simd_ = config_.simd;
    }
    return *slot;
  }

  void load_routes() {
    const arch::Arch& a = program_.arch();
    // Routes come sorted by (y, x, color): input/output queues are numbered in color order.
    Pe* cur = nullptr;
    unsigned iq_n = 0, oq_n = 0;
    for (const RouteEntry& e : program_.routes()) {
      Pe& pe = ensure_pe(e.pe);
      if (&pe != cur) {
        cur = &pe;
        iq_n = oq_n = 0;
      }
      pe.slot_of_[e.color.value] = static_cast<std::int8_t>(pe.colors_.size());
      auto& cs = pe.colors_.emplace_back();
      cs.color = e.color;
      cs.route = e.route;
      for (auto& r : cs.in) r.set_capacity(config_.router_buffer_depth);
      for (auto& r : cs.out) r.set_capacity(config_.router_buffer_depth);
      cs.has_iq = e.route.all_tx().has(Port::ramp);
      cs.has_oq = e.route.all_rx().has(Port::ramp);
      if (cs.has_iq) cs.iq.set_capacity(a.input_queue_depth[std::min(iq_n++, 7u)]);
      if (cs.has_oq) {
        const unsigned q = std::min<unsigned>(oq_n++, a.output_queues - 1u);
        cs.oq.set_capacity(a.output_queue_depth[q] ? a.output_queue_depth[q] : 2u);
      }
    }
    for (const FilterEntry& f : program_.filters()) {
      Pe* pe = this->pe(f.pe);
      auto* cs = pe ? pe->color_state(f.color) : nullptr;
      if (cs) {
        cs->filtered = true;
        cs->filter = f.filter;
      }
    }
  }

  void load_streams() {
    for (const StreamSpec& s : program_.streams()) {
      StreamSlot slot{s, nullptr, nullptr};
      auto* cs = ensure_pe(s.pe).color_state(s.color);
      if (s.input) {
        slot.in = std::make_unique<InStream>();
        cs->in_stream[static_cast<unsigned>(s.edge)] = slot.in.get();
      } else {
        slot.out = std::make_unique<OutStream>();
        cs->out_stream[static_cast<unsigned>(s.edge)] = slot.out.get();
      }
      streams_.push_back(std::move(slot));
    }
  }

  void link_neighbors() {
    for (auto& pe : pes_) {
      if (!pe) continue;
      for (unsigned d = 0; d < 4; ++d) {
        const int nx = pe->coord_.x + port_dx(static_cast<Port>(d)), ny = pe->coord_.y + port_dy(static_cast<Port>(d));
        if (nx >= 0 && ny >= 0 && nx < width_ && ny < height_)
          pe->neighbor_[d] = pes_[std::size_t(ny) * width_ + std::size_t(nx)].get();
      }
    }
  }

  void setup_tiles() {
    const unsigned n = std::max(1u, std::min<unsigned>(config_.threads, height_));
    tiles_.resize(n);
    tile_of_row_.resize(height_);
    for (unsigned t = 0; t < n; ++t) {
      tiles_[t].y0 = static_cast<std::uint16_t>(std::size_t{height_} * t / n);
      tiles_[t].y1 = static_cast<std::uint16_t>(std::size_t{height_} * (t + 1) / n);
      tiles_[t].wake_to.resize(n);
      for (unsigned y = tiles_[t].y0; y < tiles_[t].y1; ++y) tile_of_row_[y] = static_cast<std::uint16_t>(t);
    }
    for (auto& pe : pes_)
      if (pe) pe->tile_ = tile_of_row_[pe->coord_.y];
    for (const auto& s : streams_)
      if (s.in) tiles_[tile_of_row_[s.spec.pe.y]].stream_pes.push_back(pe(s.spec.pe));
  }

  void load_kernels() {
    for (const Region& r : program_.regions()) {
      for (std::uint16_t dy = 0; dy < r.rect.height; ++dy)
        for (std::uint16_t dx = 0; dx < r.rect.width; ++dx) {
          const Coord c{static_cast<std::uint16_t>(r.rect.origin.x + dx), static_cast<std::uint16_t>(r.rect.origin.y + dy)};
          Pe& pe = ensure_pe(c);
          pe.tile_ = tile_of_row_[c.y];
          pe.kernel_name_ = &r.display_name;
          pe.ctx_ = Pe::Ctx::init;
          r.create_on_emulator(pe, c);
          if (pe.fault_)
            throw ProgramError("loading region '" + r.name + "' at PE " + to_string(c) + " [" + r.kernel_name + "]: " +
                               pe.fault_->operation + ": " + pe.fault_->message);
        }
    }
    link_neighbors();  // kernels may have created PEs that had no route
  }

  void wake_at_start(Pe& pe) { start_wake_.push_back(&pe); }

  StreamSlot& stream(std::string_view name, bool input) {
    for (auto& s : streams_)
      if (s.spec.name == name) {
        if (s.spec.input != input)
          throw ProgramError("stream '" + std::string(name) + "' is an " + (s.spec.input ? "input" : "output") +
                             " stream; it cannot be " + (input ? "written" : "read"));
        return s;
      }
    std::string known;
    for (auto& s : streams_) known += (known.empty() ? "" : ", ") + s.spec.name;
    throw ProgramError(std::string("no ") + (input ? "input" : "output") + " stream named '" + std::string(name) +
                       "' (declared streams: " + (known.empty() ? "none" : known) + ")");
  }

  // Phase A for one PE: launches, then router / async ops / tasks until nothing moves.
  bool process(Pe& pe) {
    bool progress = false;
    // A launched function starts like a task: not while the compute element is stalled on a
    // send (the rest wait in pending_launches_, which keeps the PE awake).
    std::size_t launched = 0;
    for (; launched < pe.pending_launches_.size() && !pe.fault_ && pe.stalled_sends_.empty(); ++launched) {
      pe.ctx_ = Pe::Ctx::function;
      pe.ctx_fn_ = pe.pending_launch_names_[launched];
      pe.pending_launches_[launched](pe.kernel_, pe, Wavelet{});
      ++pe.stats_.tasks_run;
      progress = true;
    }
    pe.pending_launches_.erase(pe.pending_launches_.begin(), pe.pending_launches_.begin() + static_cast<std::ptrdiff_t>(launched));
    pe.pending_launch_names_.erase(pe.pending_launch_names_.begin(),
                                   pe.pending_launch_names_.begin() + static_cast<std::ptrdiff_t>(launched));
    unsigned budget = config_.max_task_runs_per_epoch;
    for (unsigned iter = 0; iter < 64 && !pe.fault_; ++iter) {
      bool p = pe.drain_stalled_sends();
      p |= pe.route_step();
      p |= pe.advance_async();
      if (budget > 0) {
        const bool ran = pe.run_tasks(1);
        if (ran) --budget;
        p |= ran;
      }
      if (!p) break;
      progress = true;
    }
    return progress;
  }

  // Phase B for one PE: pull from neighbors' outgoing buffers and input streams; drain
  // outgoing buffers that face an output stream.
  static bool pull(Pe& pe) {
    bool progress = false;
    for (auto& cs : pe.colors_) {
      const PortSet rx = cs.route.all_rx();
      for (unsigned d = 0; d < 4; ++d) {
        if (OutStream* os = cs.out_stream[d]) {
          while (!cs.out[d].empty()) {
            os->data.push_back(cs.out[d].front());
            cs.out[d].pop();
            progress = true;
          }
        }
        if (!rx.has(static_cast<Port>(d))) continue;
        Ring& to = cs.in[d];
        if (InStream* is = cs.in_stream[d]) {
          while (!to.full() && is->pending()) {
            to.push(is->data[is->next++]);
            progress = true;
          }
          if (!is->pending()) {
            is->data.clear();
            is->next = 0;
          }
          continue;
        }
        Pe* n = pe.neighbor_[d];
        if (!n) continue;
        auto* ncs = n->color_state(cs.color);
        if (!ncs) continue;
        Ring& from = ncs->out[static_cast<unsigned>(opposite(static_cast<Port>(d)))];
        while (!to.full() && !from.empty()) {
          to.push(from.front());
          from.pop();
          progress = true;
        }
      }
    }
    return progress;
  }

  // True when a host input stream entering `pe` still has wavelets to deliver.
  static bool has_pending_input(const Pe& pe) {
    for (const auto& cs : pe.colors_)
      for (const InStream* is : cs.in_stream)
        if (is && is->pending()) return true;
    return false;
  }

  void phase_a(Tile& t, std::uint64_t epoch) {
    t.progress = false;
    t.skipped = false;
    for (Pe* pe : t.awake) {
      if (pe->fault_) continue;
      if (sits_out(*pe, epoch)) {
        t.skipped = true;
        t.wake_to[pe->tile_].push_back(pe);
        continue;
      }
      t.progress |= process(*pe);
      if (pe->fault_) t.faults.push_back(*pe->fault_);
      bool outgoing = false;  // one scan: wake the drainers and remember for phase B
      for (auto& cs : pe->colors_)
        for (unsigned d = 0; d < 4; ++d) {
          if (cs.out[d].empty()) continue;
          outgoing = true;
          if (cs.out_stream[d]) t.wake_to[pe->tile_].push_back(pe);
          else if (Pe* n = pe->neighbor_[d]) t.wake_to[n->tile_].push_back(n);
        }
      pe->out_pending_ = outgoing;
      if (outgoing || pe->has_local_work()) t.wake_to[pe->tile_].push_back(pe);
    }
  }

  void phase_b(unsigned ti, std::uint64_t epoch) {
    Tile& t = tiles_[ti];
    t.pull.clear();
    auto add = [&](Pe* pe) {
      if (pe->stamp_b_ == epoch) return;
      pe->stamp_b_ = epoch;
      t.pull.push_back(pe);
    };
    for (auto& src : tiles_) {
      for (Pe* pe : src.wake_to[ti]) add(pe);
      src.wake_to[ti].clear();
    }
    for (Pe* pe : t.stream_pes)
      if (has_pending_input(*pe)) add(pe);
    // Sorted by PE index so the next epoch visits PEs in a fixed order.
    std::sort(t.pull.begin(), t.pull.end(), [](const Pe* a, const Pe* b) { return a->index_ < b->index_; });
    bool progress = false;
    for (Pe* pe : t.pull) progress |= pull(*pe);
    t.progress |= progress;
    // Neighbours in other tiles may be draining our outgoing buffers right now: decide from
    // out_pending_ (set in phase A), never from the buffers themselves.
    t.awake.clear();
    for (Pe* pe : t.pull)
      if (pe->out_pending_ || pe->has_local_work()) t.awake.push_back(pe);
  }

  // Decides after phase B whether the run is over; fills report_.
  bool finished(std::uint64_t epochs_this_run) {
    bool progress = false, faulted = false, work = false, skipped = false;
    for (auto& t : tiles_) {
      progress |= t.progress;
      skipped |= t.skipped;
      faulted |= !t.faults.empty();
      work |= !t.awake.empty();
    }
    if (faulted) {
      report_.status = RunStatus::faulted;
      for (auto& t : tiles_) {
        report_.faults.insert(report_.faults.end(), t.faults.begin(), t.faults.end());
        t.faults.clear();
      }
      std::sort(report_.faults.begin(), report_.faults.end(),
                [](const PeFault& a, const PeFault& b) { return std::pair(a.pe.y, a.pe.x) < std::pair(b.pe.y, b.pe.x); });
      return true;
    }
    if (!work) {
      report_.status = RunStatus::completed;
      return true;
    }
    // Under jitter, an epoch where nothing moved proves nothing if some PE sat out: run one
    // epoch with every PE before calling it a stall.
    const bool was_full = full_epoch_;
    full_epoch_ = !progress && skipped;
    if (full_epoch_ && !was_full && epochs_this_run < config_.max_epochs) return false;
    if (!progress || epochs_this_run >= config_.max_epochs) {
      report_.status = progress ? RunStatus::epoch_limit : RunStatus::stalled;
      for (auto& t : tiles_)
        for (Pe* pe : t.awake) report_.stuck.push_back(pe->describe_stuck());
      std::sort(report_.stuck.begin(), report_.stuck.end(),
                [](const StuckPe& a, const StuckPe& b) { return std::pair(a.pe.y, a.pe.x) < std::pair(b.pe.y, b.pe.x); });
      return true;
    }
    return false;
  }

  Program program_;
  EmuConfig config_;
  std::uint16_t width_, height_;
  std::vector<std::unique_ptr<Pe>> pes_;
  std::vector<StreamSlot> streams_;
  std::vector<Tile> tiles_;
  std::vector<std::uint16_t> tile_of_row_;
  std::vector<Pe*> start_wake_;
  std::uint64_t total_epochs_ = 0;
  std::uint64_t stamp_ = 0;
  bool full_epoch_ = false;  // next epoch runs every PE (see finished())
  RunReport report_;
};

inline RunReport Engine::run() {
  report_ = RunReport{};
  // Seed each tile's phase-A list with the PEs that have work from before this run.
  for (auto& t : tiles_) {
    // PEs left in `awake` from an earlier run (a stall) are still awake.
    for (Pe* pe : t.awake) start_wake_.push_back(pe);
    t.awake.clear();
  }
  std::sort(start_wake_.begin(), start_wake_.end(), [](const Pe* a, const Pe* b) { return a->index_ < b->index_; });
  start_wake_.erase(std::unique(start_wake_.begin(), start_wake_.end()), start_wake_.end());
  for (Pe* pe : start_wake_) tiles_[pe->tile_].awake.push_back(pe);
  start_wake_.clear();
  for (auto& t : tiles_) {
    // Input streams with data also wake their PEs.
    for (Pe* pe : t.stream_pes)
      if (has_pending_input(*pe) && std::find(t.awake.begin(), t.awake.end(), pe) == t.awake.end())
        t.awake.push_back(pe);
  }
  std::uint64_t epochs = 0;
  const unsigned n = static_cast<unsigned>(tiles_.size());
  if (n == 1) {
    for (;;) {
      ++epochs;
      phase_a(tiles_[0], stamp_);
      phase_b(0, ++stamp_);
      if (finished(epochs)) break;
    }
  } else {
    bool stop = false;
    bool in_phase_b = false;
    auto on_phase_done = [&]() noexcept {
      if (in_phase_b) {
        ++epochs;
        stop = finished(epochs);
      } else {
        ++stamp_;
      }
      in_phase_b = !in_phase_b;
    };
    std::barrier sync(static_cast<std::ptrdiff_t>(n), on_phase_done);
    auto worker = [&](unsigned ti) {
      for (;;) {
        phase_a(tiles_[ti], stamp_);
        sync.arrive_and_wait();
        phase_b(ti, stamp_);
        sync.arrive_and_wait();
        if (stop) return;
      }
    };
    std::vector<std::jthread> threads;
    threads.reserve(n - 1);
    for (unsigned ti = 1; ti < n; ++ti) threads.emplace_back(worker, ti);
    worker(0);
  }
  report_.epochs = epochs;
  total_epochs_ += epochs;
  return report_;
}

}  // namespace wse::emu
