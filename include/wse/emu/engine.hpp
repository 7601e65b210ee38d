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
///
/// Cost follows work: a PE whose phase A moved nothing and that has nothing outgoing (and, in
/// timed mode, no future event) falls asleep. Only new input can change such a PE, and new
/// input always comes with a wake (a neighbour's outgoing wavelet, an input stream, a launch),
/// so sleeping changes no result, only which PEs are visited.
#include <algorithm>
#include <barrier>
#include <bit>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../program/program.hpp"
#include "pe.hpp"
#include "pe_impl.hpp"
#include "report.hpp"

namespace wse::emu {

/// Emulator settings. None of them changes results, only speed, limits and (timed) what
/// the run reports.
struct EmuConfig {
  unsigned threads = 1;                   ///< worker threads (= tiles); 0 = all hardware threads
  /// Fewer PEs than this per worker and run() uses fewer workers (at least one; never more
  /// than the grid has rows): on small grids the two barriers per epoch cost more than the
  /// work they share (a 4x4 training pass ran 1.6x slower on 2 threads than on 1;
  /// docs/performance.md). 1 = always `threads` workers (the tests use it to exercise threading
  /// on small grids). Engine::tiles() says how many run.
  unsigned min_pes_per_thread = 128;
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
  /// Timed mode (docs/timing.md): one epoch per simulated cycle with hop latency, one
  /// wavelet per cycle per link direction, DSD op widths and task-switch costs from the arch;
  /// runs report cycles and PE busy/stall counters. Same results as functional mode, slower.
  /// Cannot be combined with jitter_percent.
  bool timed = false;
  /// Called every `progress_every` epochs during run(), from one thread between epochs, with
  /// how far the run has come (e.g. to draw a progress display). Must not touch the engine.
  std::function<void(const RunProgress&)> progress;
  std::uint64_t progress_every = 1000;
};

/// The emulated fabric for one program. Host code; not thread-safe across calls, but
/// run() itself uses `threads` workers. Faults and stalls come back in the RunReport.
class Engine {
 public:
  /// Validates `program` and loads it: builds PE state for every PE with a kernel or a
  /// route (others cost nothing), installs routes, filters and streams, then constructs
  /// each kernel and runs its init. Throws ProgramError naming the PE on any load error.
  explicit Engine(const Program& program, EmuConfig config = {})
      : arch_(&program.arch()), config_(config), width_(program.width()), height_(program.height()) {
    program.validate();
    if (arch_->routable_colors > max_colors)
      throw ProgramError("emulator: arch '" + std::string(arch_->name) + "' has " + std::to_string(arch_->routable_colors) +
                         " routable colors; the emulator supports at most " + std::to_string(max_colors));
    if (config_.threads == 0) config_.threads = std::max(1u, std::thread::hardware_concurrency());
    if (config_.timed && config_.jitter_percent != 0)
      throw ProgramError("EmuConfig: jitter_percent (" + std::to_string(config_.jitter_percent) +
                         ") cannot be combined with timed mode, which fixes when every PE moves");
    wire_stages_ = std::min<unsigned>(arch_->hop_latency_cycles > 0 ? arch_->hop_latency_cycles - 1u : 0u,
                                      Pe::max_wire_stages);
    config_.router_buffer_depth = std::clamp(config_.router_buffer_depth, 1u, Ring::max_capacity);
    pes_.resize(std::size_t{width_} * height_);
    shared_.arch = arch_;
    shared_.send_stall_limit = config_.max_stalled_sends;
    shared_.use_simd = config_.simd;
    // The program is only read here: the engine keeps no copy of it (its routes alone can be
    // hundreds of MB on a full fabric), only the arch and the regions' names.
    load_routes(program);
    load_streams(program);
    build_ring_tables();
    plan_index_ = decltype(plan_index_){};  // only loading interns plans: free the map, buckets too
    shared_.plans.shrink_to_fit();
    setup_tiles();
    const PoolScope scope(tiles_[0]);  // kernels' init may send
    {
      // Kernels' init interns the names they export and the task functions they bind.
      TaskFnPool task_fns(shared_.task_fns);
      struct Restore {
        NamePool* names;
        TaskFnPool* fns;
        ~Restore() {
          name_pool = names;
          task_fn_pool = fns;
        }
      } restore{std::exchange(name_pool, &export_names_), std::exchange(task_fn_pool, &task_fns)};
      load_kernels(program);
    }
    shared_.task_fns.shrink_to_fit();
    for (auto& pe : pes_) {
      loaded_pes_ += pe != nullptr;
      if (pe && pe->has_work()) wake_at_start(*pe);
    }
  }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  // Kernels' destructors run while the tiles' arenas, which hold the kernels, still exist.
  ~Engine() { pes_.clear(); }

  /// Runs until quiescent, stalled, faulted, or the epoch limit. Host code; blocks.
  RunReport run();

  /// Queues exported function `name` to run once on every PE (inside `area`, if given) that
  /// exports it; it runs at the start of the next run(). Throws if no PE there exports it.
  void launch(std::string_view name, std::optional<Rect> area = std::nullopt) {
    std::size_t count = 0;
    for (auto& pe : pes_) {
      if (!pe || (area && !area->contains(pe->coord_))) continue;
      for (const auto& f : pe->functions_)
        if (std::string_view(f.name) == name) {
          pe->pending_launches_.push_back(Pe::PendingLaunch{f.fn, f.name});
          wake_at_start(*pe);
          ++count;
        }
    }
    if (count == 0)
      throw ProgramError("launch('" + std::string(name) + "'): no PE" + (area ? " in " + to_string(*area) : std::string()) +
                         " exports a function of that name");
  }

  /// Where the emulator's memory goes now (report.hpp). Host code, between runs.
  EmuMemory memory() const {
    EmuMemory m;
    m.grid_bytes = pes_.capacity() * sizeof(pes_[0]);
    for (const auto& pe : pes_) {
      if (!pe) continue;
      ++m.pes;
      m.pe_state_bytes += pe->state_bytes();
      m.kernel_bytes += pe->memory_used();
    }
    for (const auto& t : tiles_) m.ring_pool_bytes += t.pool.bytes();
    m.pe_state_bytes += shared_.plans.capacity() * sizeof(ColorPlan);  // shared by the PEs: counted once
    m.color_plans = shared_.plans.size();
    m.pe_state_bytes += shared_.task_fns.capacity() * sizeof(shared_.task_fns[0]);
    m.task_functions = shared_.task_fns.size();
    return m;
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
    s.cycles = total_cycles_;
    for (const auto& pe : pes_)
      if (pe) {
        s.per_pe.emplace_back(pe->coord_, pe->stats());
        s.totals += s.per_pe.back().second;
      }
    return s;
  }

  const arch::Arch& arch() const { return *arch_; }
  std::uint16_t width() const { return width_; }
  std::uint16_t height() const { return height_; }
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
    std::vector<Pe*> sleepers;              // PEs that fell asleep with work (each listed once)
    RingPool pool;                          // storage for the non-empty rings this tile's thread fills
    PeArena arena;                          // PE memory allocated by this tile's thread
    std::vector<PeFault> faults;
    bool progress = false;
    bool skipped = false;  // some PE sat out this epoch (jitter)
    // Timed mode: earliest future cycle an awake PE waits for; latest cycle any work ends.
    std::uint64_t next_event = ~0ull;
    std::uint64_t horizon = 0;
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
      Pe::TimedClocks& clocks = config_.timed ? timed_clocks_.emplace_back() : functional_clocks_;
      if (config_.timed && wire_stages_ > 0)
        clocks.wire = std::make_unique<std::array<std::array<Pe::WireSlot, Pe::max_wire_stages>, 4>>();
      slot = std::make_unique<Pe>(shared_, c, clocks, config_.timed);
      slot->index_ = static_cast<std::uint32_t>(index(c));
    }
    return *slot;
  }

  // Index of `plan` in shared_.plans, added when new (loading only). Most PEs of a row or
  // column route a color alike: the full-fabric allreduce's ~2.9 million routed colors have
  // 11 plans.
  std::uint32_t intern_plan(const ColorPlan& plan) {
    PlanKey key{};
    std::size_t at = 0;
    auto put = [&](const void* p, std::size_t n) {
      WSE_ASSERT(at + n <= key.bytes.size(), "emulator: ColorPlan grew; widen PlanKey");
      std::memcpy(key.bytes.data() + at, p, n);
      at += n;
    };
    for (const RoutePosition& rp : plan.route.positions) {
      put(&rp.rx.bits, 1);
      put(&rp.tx.bits, 1);
    }
    put(&plan.route.count, 1);
    put(&plan.route.ring, 1);
    put(&plan.filter.lo, 2);
    put(&plan.filter.hi, 2);
    put(&plan.filtered, 1);
    const auto streams = reinterpret_cast<std::uintptr_t>(plan.streams);
    put(&streams, sizeof streams);
    const auto [it, added] = plan_index_.try_emplace(key, static_cast<std::uint32_t>(shared_.plans.size()));
    if (added) {
      if (shared_.plans.size() >= Pe::ColorState::max_plans)
        throw ProgramError("emulator: more than " + std::to_string(Pe::ColorState::max_plans) +
                           " distinct color plans (route, filter, host-stream ends); the emulator holds at most that many");
      shared_.plans.push_back(plan);
    }
    return it->second;
  }

  void load_routes(const Program& program) {
    // Routes come sorted by (y, x, color), so each PE's colors_ are in color order.
    for (const RouteEntry& e : program.routes()) {
      Pe& pe = ensure_pe(e.pe);
      pe.color_mask_ |= 1u << e.color.value;  // routes come in color order: slots follow the mask
      pe.colors_.push_back(Pe::ColorState{});
      auto& cs = pe.colors_.back();
      cs.color = e.color;
      cs.set_plan(intern_plan(ColorPlan{e.route}));
    }
    for (const FilterEntry& f : program.filters()) {
      Pe* pe = this->pe(f.pe);
      auto* cs = pe ? pe->color_state(f.color) : nullptr;
      if (cs) {
        ColorPlan plan = pe->plan(*cs);
        plan.filtered = true;
        plan.filter = f.filter;
        cs->set_plan(intern_plan(plan));
      }
    }
  }

  // The host-stream ends of color `cs` at `pe` (only edge PEs with streams have them): the
  // color gets a plan of its own that points to them.
  StreamEnds& stream_ends(Pe& pe, Pe::ColorState& cs) {
    if (!cs.has_streams()) {
      stream_ends_.push_back(std::make_unique<StreamEnds>());
      ColorPlan plan = pe.plan(cs);
      plan.streams = stream_ends_.back().get();
      cs.set_plan(intern_plan(plan));
      cs.ring_mask |= Pe::ColorState::streams_bit;
    }
    return *pe.plan(cs).streams;
  }

  void load_streams(const Program& program) {
    for (const StreamSpec& s : program.streams()) {
      StreamSlot slot{s, nullptr, nullptr};
      Pe& pe = ensure_pe(s.pe);
      auto* cs = pe.color_state(s.color);
      if (s.input) {
        slot.in = std::make_unique<InStream>();
        stream_ends(pe, *cs).in[static_cast<unsigned>(s.edge)] = slot.in.get();
      } else {
        slot.out = std::make_unique<OutStream>();
        stream_ends(pe, *cs).out[static_cast<unsigned>(s.edge)] = slot.out.get();
        pe.has_out_stream_ = true;
      }
      streams_.push_back(std::move(slot));
    }
  }

  // Gives every PE one table of the rings its routes and streams use (ColorState::ring_base) and
  // sets their depths: router buffers from the config, input/output queues numbered in color
  // order with the arch's depths.
  void build_ring_tables() {
    const arch::Arch& a = *arch_;
    for (auto& pe : pes_) {
      if (!pe || pe->colors_.empty()) continue;
      std::size_t total = 0;
      for (auto& cs : pe->colors_) {
        const ColorRoute& route = pe->plan(cs).route;
        const PortSet rx = route.all_rx(), tx = route.all_tx();
        std::uint16_t mask = cs.ring_mask & Pe::ColorState::streams_bit;
        for (unsigned d = 0; d < 4; ++d) {
          if (rx.has(static_cast<Port>(d)) || pe->in_stream(cs, d)) mask |= 1u << d;
          if (tx.has(static_cast<Port>(d)) || pe->out_stream(cs, d)) mask |= 1u << (4 + d);
        }
        if (tx.has(Port::ramp)) mask |= 1u << 8;
        if (rx.has(Port::ramp)) mask |= 1u << 9;
        cs.ring_mask = mask;
        cs.ring_base = static_cast<std::uint8_t>(total);
        total += cs.ring_count();
      }
      pe->ring_table_ = std::make_unique<Ring[]>(total);
      unsigned iq_n = 0, oq_n = 0;
      for (auto& cs : pe->colors_) {
        for (unsigned d = 0; d < 4; ++d) {
          if (cs.uses_ring(d)) pe->in(cs, d).set_capacity(config_.router_buffer_depth);
          if (cs.uses_ring(4 + d)) pe->out(cs, d).set_capacity(config_.router_buffer_depth);
        }
        if (cs.has_iq()) pe->iq(cs).set_capacity(a.input_queue_depth[std::min(iq_n++, 7u)]);
        if (cs.has_oq()) {
          const unsigned q = std::min<unsigned>(oq_n++, a.output_queues - 1u);
          pe->oq(cs).set_capacity(a.output_queue_depth[q] ? a.output_queue_depth[q] : 2u);
        }
      }
    }
  }

  // The PE next to `pe` in direction d (N, E, S, W), or nullptr off the grid or where no PE
  // state exists. Looked up, not stored: 32 bytes less per PE.
  Pe* neighbor(const Pe& pe, unsigned d) const {
    const int nx = pe.coord_.x + port_dx(static_cast<Port>(d)), ny = pe.coord_.y + port_dy(static_cast<Port>(d));
    if (nx < 0 || ny < 0 || nx >= width_ || ny >= height_) return nullptr;
    return pes_[std::size_t(ny) * width_ + std::size_t(nx)].get();
  }

  void setup_tiles() {
    const std::size_t by_work = std::size_t{width_} * height_ / std::max(1u, config_.min_pes_per_thread);
    const unsigned n = static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>({config_.threads, height_, by_work})));
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

  void load_kernels(const Program& program) {
    for (const Region& r : program.regions()) {
      regions_.push_back(std::make_unique<LoadedRegion>(LoadedRegion{r.display_name, nullptr}));
      for (std::uint16_t dy = 0; dy < r.rect.height; ++dy)
        for (std::uint16_t dx = 0; dx < r.rect.width; ++dx) {
          const Coord c{static_cast<std::uint16_t>(r.rect.origin.x + dx), static_cast<std::uint16_t>(r.rect.origin.y + dy)};
          Pe& pe = ensure_pe(c);
          pe.tile_ = tile_of_row_[c.y];
          pe.region_ = regions_.back().get();
          pe.ctx_ = Pe::Ctx::init;
          r.create_on_emulator(pe, c);
          if (pe.fault_)
            throw ProgramError("loading region '" + r.name + "' at PE " + to_string(c) + " [" + r.kernel_name + "]: " +
                               pe.fault_->operation + ": " + pe.fault_->message);
        }
    }
    for (auto& pe : pes_)  // tables grew one entry at a time; a full fabric has 754,000 of each
      if (pe) {
        pe->colors_.shrink_to_fit();
        pe->tasks_.shrink_to_fit();
      }
  }

  void wake_at_start(Pe& pe) { start_wake_.push_back(&pe); }

  // Points this thread's rings at `pool` for the scope's lifetime (see ring.hpp).
  // Also points PE-memory allocations at the tile's arena (arena.hpp).
  struct PoolScope {
    RingPool* saved;
    PeArena* saved_arena;
    explicit PoolScope(Tile& t) : saved(ring_pool), saved_arena(pe_arena) {
      ring_pool = &t.pool;
      pe_arena = &t.arena;
    }
    ~PoolScope() {
      ring_pool = saved;
      pe_arena = saved_arena;
    }
    PoolScope(const PoolScope&) = delete;
    PoolScope& operator=(const PoolScope&) = delete;
  };

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

  // Phase A for one PE in timed mode: one cycle of router, sends, async ops and task picker.
  // The router runs first, so a wavelet written to an output queue in cycle t leaves it in t+1.
  bool process_timed(Pe& pe) {
    pe.clock_->now = now_;
    pe.stalled_now_ = false;
    bool progress = run_launches(pe, 1);
    if (pe.fault_) return progress;
    progress |= pe.route_step();
    progress |= pe.drain_stalled_sends();
    progress |= pe.advance_async();
    progress |= pe.run_tasks(1);
    if (pe.stalled_now_) pe.counters_.add(Pe::c_stall_cycles);
    return progress;
  }

  // Starts up to `limit` pending launched functions. A launched function starts like a task:
  // not while the compute element is stalled on a send or (timed mode) busy; the rest wait in
  // pending_launches_, which keeps the PE awake.
  static bool run_launches(Pe& pe, std::size_t limit) {
    std::size_t launched = 0;
    for (; launched < std::min(limit, pe.pending_launches_.size()) && !pe.fault_ && pe.stalled_sends_.empty() &&
           pe.ce_free();
         ++launched) {
      pe.ctx_ = Pe::Ctx::function;
      const Pe::PendingLaunch next = pe.pending_launches_[launched];
      pe.ctx_fn_ = next.name;
      if (pe.timed_) pe.begin_timed_task();
      next.fn(pe.kernel_, pe, Wavelet{});
      if (pe.timed_) pe.end_timed_task();
      pe.counters_.add(Pe::c_tasks_run);
    }
    pe.pending_launches_.erase_front(launched);
    return launched > 0;
  }

  // Phase A for one PE: launches, then router / async ops / tasks until nothing moves.
  bool process(Pe& pe) {
    if (config_.timed) return process_timed(pe);
    bool progress = run_launches(pe, pe.pending_launches_.size());
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

  // Phase B for one PE in timed mode: per direction at most one wavelet crosses each link
  // per cycle, in and out; colors take turns (round robin from the cycle number). With hop
  // latency L > 1 a wavelet spends L - 1 cycles on the wire before it enters the router; it
  // only leaves when its buffer has room reserved, so the wire never blocks.
  bool pull_timed(Pe& pe) const {
    bool progress = false;
    const std::size_t n = pe.colors_.size();
    if (n == 0) return false;
    const std::size_t first = static_cast<std::size_t>(now_ % n);
    std::uint32_t receivers_from[4] = {};  // bit i: colors_[i] receives from that direction
    for (std::size_t i = 0; i < n; ++i)
      for (unsigned m = pe.colors_[i].ring_mask & 0xfu; m != 0; m &= m - 1) receivers_from[std::countr_zero(m)] |= 1u << i;
    for (unsigned d = 0; d < 4; ++d) {
      // Off the edge into a host output stream: one wavelet per cycle.
      for (std::size_t k = 0; k < n && pe.has_out_stream_; ++k) {
        auto& cs = pe.colors_[(first + k) % n];
        if (OutStream* os = pe.out_stream(cs, d); os && !pe.out(cs, d).empty()) {
          os->data.push_back(pe.out(cs, d).front());
          pe.out(cs, d).pop();
          progress = true;
          break;
        }
      }
      // The wire: the oldest stage enters its router buffer, the others move one stage on.
      const unsigned stages = wire_stages_;
      auto* wire = stages > 0 ? (*pe.clock_->wire)[d].data() : nullptr;
      if (stages > 0) {
        auto& last = wire[stages - 1];
        if (last.slot >= 0) {
          Ring& to = pe.in(pe.colors_[static_cast<std::size_t>(last.slot)], d);
          if (!to.full()) {
            to.push(last.w);
            last.slot = -1;
            progress = true;
          }
        }
        for (unsigned j = stages - 1; j-- > 0;)
          if (wire[j].slot >= 0 && wire[j + 1].slot < 0) {
            wire[j + 1] = wire[j];
            wire[j].slot = -1;
            progress = true;
          }
        if (wire[0].slot >= 0) continue;  // the link is blocked this cycle
      }
      // Colors receiving from d, from slot `first` on, then wrapping around.
      const std::uint32_t receivers = receivers_from[d];
      if (receivers == 0) continue;
      Pe* const nb = neighbor(pe, d);  // once per direction, not per color
      const std::uint32_t from_first = receivers & (~0u << first);
      for (std::uint32_t order = from_first, rest = receivers & ~from_first; order != 0 || rest != 0;) {
        if (order == 0) {
          order = rest;
          rest = 0;
        }
        const auto slot = static_cast<std::size_t>(std::countr_zero(order));
        order &= order - 1;
        auto& cs = pe.colors_[slot];
        // Credit flow control: a wavelet enters the wire only when its color's router buffer
        // has room for it and for those already on the wire, so one color's congestion never
        // blocks another's on the same link (docs/semantics.md).
        unsigned on_wire = 0;
        for (unsigned j = 0; j < stages; ++j) on_wire += wire[j].slot == static_cast<std::int8_t>(slot);
        Ring& to = pe.in(cs, d);
        if (to.size() + on_wire >= to.capacity()) continue;
        Wavelet w;
        if (InStream* is = pe.in_stream(cs, d)) {
          if (!is->pending()) continue;
          w = is->data[is->next++];
          if (!is->pending()) {
            is->data.clear();
            is->next = 0;
          }
        } else {
          auto* ncs = nb ? nb->color_state(cs.color) : nullptr;
          const unsigned toward_us = 4 + static_cast<unsigned>(opposite(static_cast<Port>(d)));
          if (!ncs || !ncs->uses_ring(toward_us)) continue;  // the neighbour does not send us this color
          Ring& from = nb->ring(*ncs, toward_us);
          if (from.empty()) continue;
          w = from.front();
          from.pop();
          pe.counters_.add(Pe::c_link_in + d);
        }
        if (stages == 0) {
          to.push(w);
        } else {
          wire[0].slot = static_cast<std::int8_t>(slot);
          wire[0].w = w;
        }
        progress = true;
        break;
      }
    }
    return progress;
  }

  // Phase B for one PE: pull from neighbors' outgoing buffers and input streams; drain
  // outgoing buffers that face an output stream.
  bool pull(Pe& pe) const {
    if (config_.timed) return pull_timed(pe);
    bool progress = false;
    // Each neighbour looked up at most once per PE (not per color), and only if a color
    // receives from that side.
    Pe* nbs[4];
    unsigned looked_up = 0;
    auto neighbor_at = [&](unsigned d) {
      if (!(looked_up >> d & 1u)) nbs[d] = neighbor(pe, d), looked_up |= 1u << d;
      return nbs[d];
    };
    for (auto& cs : pe.colors_) {
      if (cs.has_streams()) {  // edge PEs only: drain what leaves into host output streams
        for (unsigned d = 0; d < 4; ++d) {
          OutStream* os = pe.out_stream(cs, d);
          if (!os) continue;
          Ring& out = pe.out(cs, d);
          while (!out.empty()) {
            os->data.push_back(out.front());
            out.pop();
            progress = true;
          }
        }
      }
      for (unsigned m = cs.ring_mask & 0xfu; m != 0; m &= m - 1) {  // the sides it receives from
        const unsigned d = static_cast<unsigned>(std::countr_zero(m));
        Ring& to = pe.in(cs, d);
        if (InStream* is = pe.in_stream(cs, d)) {
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
        Pe* const n = neighbor_at(d);
        if (!n) continue;
        auto* ncs = n->color_state(cs.color);
        const unsigned toward_us = 4 + static_cast<unsigned>(opposite(static_cast<Port>(d)));
        if (!ncs || !ncs->uses_ring(toward_us)) continue;  // the neighbour does not send us this color
        Ring& from = n->ring(*ncs, toward_us);
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
      for (unsigned d = 0; d < 4; ++d)
        if (const InStream* is = pe.in_stream(cs, d); is && is->pending()) return true;
    return false;
  }

  void phase_a(Tile& t, std::uint64_t epoch) {
    t.progress = false;
    t.skipped = false;
    t.next_event = ~0ull;
    for (Pe* pe : t.awake) {
      if (pe->fault_) continue;
      if (sits_out(*pe, epoch)) {
        t.skipped = true;
        t.wake_to[pe->tile_].push_back(pe);
        continue;
      }
      const bool moved = process(*pe);
      t.progress |= moved;
      if (pe->fault_) t.faults.push_back(*pe->fault_);
      bool timed_wait = false;  // timed mode: something happens later without new input
      if (config_.timed) {
        const std::uint64_t next = pe->next_time_event();
        t.next_event = std::min(t.next_event, next);
        t.horizon = std::max(t.horizon, pe->clock_->horizon);
        timed_wait = next != ~0ull || pe->stalled_now_ || pe->wire_busy();
      }
      bool outgoing = false;  // one scan: wake the drainers and remember for phase B
      for (auto& cs : pe->colors_)
        for (unsigned m = (cs.ring_mask >> 4) & 0xfu; m != 0; m &= m - 1) {  // its outgoing link buffers
          const unsigned d = static_cast<unsigned>(std::countr_zero(m));
          if (pe->out(cs, d).empty()) continue;
          outgoing = true;
          if (pe->out_stream(cs, d)) t.wake_to[pe->tile_].push_back(pe);
          else if (Pe* n = neighbor(*pe, d)) t.wake_to[n->tile_].push_back(n);
        }
      pe->out_pending_ = outgoing;
      if (!outgoing && !pe->has_local_work()) {  // done: keep no ring storage
        pe->trim_idle_storage();
        continue;
      }
      if (outgoing || moved || timed_wait || pe->fault_) {
        t.wake_to[pe->tile_].push_back(pe);
      } else {  // waits for input: sleep until a wavelet arrives (see the file comment)
        pe->asleep_ = true;
        pe->trim_idle_storage();
        if (!pe->listed_sleeper_) {
          pe->listed_sleeper_ = true;
          t.sleepers.push_back(pe);
        }
      }
    }
  }

  // Sleeping PEs that still hold work once nothing else can happen: the run is stuck on them.
  // Returns whether it found any.
  bool collect_stuck_sleepers() {
    const std::size_t before = report_.stuck.size();
    for (auto& t : tiles_)
      for (Pe* pe : t.sleepers)
        if (pe->asleep_ && pe->has_work()) report_.stuck.push_back(pe->describe_stuck());
    return report_.stuck.size() > before;
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
      if (pe->out_pending_ || pe->has_local_work()) {
        pe->asleep_ = false;
        t.awake.push_back(pe);
      }
  }

  // Decides after phase B whether the run is over; fills report_.
  bool finished(std::uint64_t epochs_this_run) {
    const bool done = decide_finished(epochs_this_run);
    if (!done && config_.progress && config_.progress_every > 0 && epochs_this_run % config_.progress_every == 0)
      report_progress(epochs_this_run);
    return done;
  }
  bool decide_finished(std::uint64_t epochs_this_run) {
    bool progress = false, faulted = false, work = false, skipped = false;
    std::uint64_t next_event = ~0ull;
    for (auto& t : tiles_) {
      progress |= t.progress;
      skipped |= t.skipped;
      faulted |= !t.faults.empty();
      work |= !t.awake.empty();
      next_event = std::min(next_event, t.next_event);
      horizon_ = std::max(horizon_, t.horizon);
    }
    if (progress) {
      last_active_ = now_;
      any_active_ = true;
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
      // Sleepers still holding work wait for input that nothing will send: a stall.
      report_.status = collect_stuck_sleepers() ? RunStatus::stalled : RunStatus::completed;
      sort_stuck();
      return true;
    }
    // Under jitter, an epoch where nothing moved proves nothing if some PE sat out: run one
    // epoch with every PE before calling it a stall.
    const bool was_full = full_epoch_;
    full_epoch_ = !progress && skipped;
    if (full_epoch_ && !was_full && epochs_this_run < config_.max_epochs) return false;
    if (!progress && config_.timed && next_event != ~0ull && epochs_this_run < config_.max_epochs) {
      // Timed mode: nothing moves before next_event; skip the cycles in between. PEs that
      // were stalled on a full queue stay stalled through them.
      const std::uint64_t skipped_cycles = next_event - now_ - 1;
      for (auto& t : tiles_)
        for (Pe* pe : t.awake)
          if (pe->stalled_now_ && pe->clock_->now == now_) pe->counters_.add(Pe::c_stall_cycles, skipped_cycles);
      now_ = next_event;
      return false;
    }
    if (!progress || epochs_this_run >= config_.max_epochs) {
      report_.status = progress ? RunStatus::epoch_limit : RunStatus::stalled;
      for (auto& t : tiles_)
        for (Pe* pe : t.awake) report_.stuck.push_back(pe->describe_stuck());
      collect_stuck_sleepers();
      sort_stuck();
      return true;
    }
    if (config_.timed) ++now_;
    return false;
  }

  void report_progress(std::uint64_t epochs_this_run) const {
    RunProgress p;
    p.epochs = epochs_this_run;
    p.cycles = config_.timed ? now_ - run_start_ : 0;
    for (const auto& t : tiles_) p.awake_pes += t.awake.size();
    p.loaded_pes = loaded_pes_;
    config_.progress(p);
  }

  void sort_stuck() {
    std::sort(report_.stuck.begin(), report_.stuck.end(),
              [](const StuckPe& a, const StuckPe& b) { return std::pair(a.pe.y, a.pe.x) < std::pair(b.pe.y, b.pe.x); });
  }

  // Timed mode: closes the run's cycle count; the next run starts where this one ended.
  void finish_timing() {
    if (!config_.timed) return;
    std::uint64_t end = any_active_ ? last_active_ + 1 : run_start_;
    end = std::max(end, horizon_);
    report_.cycles = end - run_start_;
    report_.seconds = static_cast<double>(report_.cycles) / static_cast<double>(arch_->clock_hz);
    total_cycles_ += report_.cycles;
    now_ = end;
  }

  const arch::Arch* arch_;
  std::vector<std::unique_ptr<LoadedRegion>> regions_;  // what PEs' reports call their kernel; its destructor
  NamePool export_names_;  // the names PEs export symbols and functions under (outlives pes_)
  std::vector<std::unique_ptr<StreamEnds>> stream_ends_;  // see stream_ends()
  PeShared shared_;  // what every PE reads alike (the arch, color plans)
  // Loading only: plan bytes (ColorPlan fields, packed) -> index in shared_.plans.
  struct PlanKey {
    std::array<std::uint8_t, 24> bytes;
    friend bool operator==(const PlanKey&, const PlanKey&) = default;
  };
  struct PlanKeyHash {
    std::size_t operator()(const PlanKey& k) const {
      return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size()));
    }
  };
  std::unordered_map<PlanKey, std::uint32_t, PlanKeyHash> plan_index_;
  EmuConfig config_;
  std::uint16_t width_, height_;
  std::vector<Tile> tiles_;  // before pes_: kernels live in the tiles' arenas (also when loading throws)
  // Pe::TimedClocks: one per PE in a timed run (a deque: PEs keep pointers into it), one
  // shared all-zero instance in a functional run, which PEs only read. Both outlive pes_.
  std::deque<Pe::TimedClocks> timed_clocks_;
  Pe::TimedClocks functional_clocks_;
  std::vector<std::unique_ptr<Pe>> pes_;
  std::vector<StreamSlot> streams_;
  std::vector<std::uint16_t> tile_of_row_;
  std::vector<Pe*> start_wake_;
  std::uint64_t total_epochs_ = 0;
  std::uint64_t stamp_ = 0;
  // Timed mode: the cycle being simulated, where this run started, the last cycle anything
  // moved, the latest cycle scheduled work ends, and the total over all runs.
  std::uint64_t now_ = 0, run_start_ = 0, last_active_ = 0, horizon_ = 0, total_cycles_ = 0;
  bool any_active_ = false;
  unsigned wire_stages_ = 0;  // hop latency - 1
  std::uint64_t loaded_pes_ = 0;  // PEs with a kernel or a route
  bool full_epoch_ = false;  // next epoch runs every PE (see finished())
  RunReport report_;
};

inline RunReport Engine::run() {
  report_ = RunReport{};
  run_start_ = now_;
  horizon_ = 0;
  any_active_ = false;
  for (auto& t : tiles_) t.horizon = 0;
  // Seed each tile's phase-A list with the PEs that have work from before this run.
  for (auto& t : tiles_) {
    // PEs left in `awake` from an earlier run (a stall) are still awake.
    for (Pe* pe : t.awake) start_wake_.push_back(pe);
    t.awake.clear();
  }
  std::sort(start_wake_.begin(), start_wake_.end(), [](const Pe* a, const Pe* b) { return a->index_ < b->index_; });
  start_wake_.erase(std::unique(start_wake_.begin(), start_wake_.end()), start_wake_.end());
  for (Pe* pe : start_wake_) {
    pe->asleep_ = false;
    tiles_[pe->tile_].awake.push_back(pe);
  }
  start_wake_.clear();
  for (auto& t : tiles_) {
    // Input streams with data also wake their PEs.
    for (Pe* pe : t.stream_pes)
      if (has_pending_input(*pe) && std::find(t.awake.begin(), t.awake.end(), pe) == t.awake.end()) {
        pe->asleep_ = false;
        t.awake.push_back(pe);
      }
  }
  std::uint64_t epochs = 0;
  const unsigned n = static_cast<unsigned>(tiles_.size());
  if (n == 1) {
    const PoolScope scope(tiles_[0]);
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
      const PoolScope scope(tiles_[ti]);
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
  finish_timing();
  return report_;
}

}  // namespace wse::emu
