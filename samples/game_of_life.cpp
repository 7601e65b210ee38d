// game_of_life: Conway's Game of Life, one cell per PE on a 12×12 grid with a dead (zero)
// boundary, starting from a glider, for 20 generations.
//
// Dataflow of one generation, at every PE:
//  1. send its state (0/1) to its east and west neighbours;
//  2. once both horizontal neighbours' states are in (a missing neighbour counts as 0),
//     send its row sum left + self + right to its north and south neighbours;
//  3. once both row sums are in, live neighbours = left + right + above + below; apply the
//     rule, record the new state, and start the next generation.
// A fast neighbour may already send its message for the next generation while this PE is
// still finishing the current one. Each receiving data task therefore blocks itself after
// taking one wavelet, and is unblocked only when the PE is ready for the next message on
// that color; until then the early wavelet waits in its input queue.
//
// Every PE keeps its state of every generation in the exported array `history`; the host
// writes generation 0 into it, launches `start`, and after the run compares all generations
// with a host computation.
//
// Usage: wse_sample_game_of_life [threads]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <wse/wse.hpp>

constexpr std::uint16_t W = 12, H = 12;  // grid: one cell per PE
constexpr std::uint32_t generations = 20;

// Two alternating colors for each direction (wse::routes::neighbor_exchange).
constexpr wse::Color east_colors[2] = {wse::Color{0}, wse::Color{1}};
constexpr wse::Color west_colors[2] = {wse::Color{2}, wse::Color{3}};
constexpr wse::Color north_colors[2] = {wse::Color{4}, wse::Color{5}};
constexpr wse::Color south_colors[2] = {wse::Color{6}, wse::Color{7}};

struct LifeParams {
  // Colors this PE sends on (to_*) and receives on (from_*); a neighbour exists when has_*.
  wse::Color to_east, to_west, to_north, to_south;
  wse::Color from_west, from_east, from_north, from_south;
  bool has_west, has_east, has_north, has_south;
};

template <class PE> struct Life {
  using Params = LifeParams;
  Params p;
  std::uint32_t history[generations + 1] = {};  // (generations + 1): state of this cell per generation
  std::uint32_t gen = 0;                        // current generation
  std::uint32_t left = 0, right = 0;            // neighbours' states (0 when missing)
  std::uint32_t above = 0, below = 0;           // row sums of the rows above and below (0 when missing)
  std::uint32_t arrived = 0;                    // messages received in the current phase

  void init(PE& pe, const Params& params) {
    p = params;
    wse::export_symbol(pe, "history", history);
    wse::export_function<&Life::start>(pe, "start");
    bind_receiver<&Life::on_west>(pe, p.has_west, p.from_west);
    bind_receiver<&Life::on_east>(pe, p.has_east, p.from_east);
    bind_receiver<&Life::on_north>(pe, p.has_north, p.from_north);
    bind_receiver<&Life::on_south>(pe, p.has_south, p.from_south);
  }
  // Binds a data task for a neighbour that exists, blocked until its phase begins.
  template <auto Method> static void bind_receiver(PE& pe, bool exists, wse::Color c) {
    if (!exists) return;
    wse::bind_data_task<Method>(pe, c);
    pe.block(wse::data_task_id(c));
  }

  void start(PE& pe) { send_state(pe); }

  // Phase 1: state -> east and west; wait for both horizontal neighbours.
  void send_state(PE& pe) {
    arrived = 0;
    const std::uint32_t s = history[gen];
    if (p.has_east) { pe.send(p.to_east, wse::Wavelet::from_u32(s)); pe.unblock(wse::data_task_id(p.from_east)); }
    if (p.has_west) { pe.send(p.to_west, wse::Wavelet::from_u32(s)); pe.unblock(wse::data_task_id(p.from_west)); }
  }
  void on_west(PE& pe, wse::Wavelet w) { left = w.data; got_horizontal(pe, p.from_west); }
  void on_east(PE& pe, wse::Wavelet w) { right = w.data; got_horizontal(pe, p.from_east); }

  // Phase 2: row sum -> north and south; wait for both vertical neighbours.
  void got_horizontal(PE& pe, wse::Color c) {
    pe.block(wse::data_task_id(c));
    if (++arrived < unsigned(p.has_west) + p.has_east) return;
    arrived = 0;
    const std::uint32_t row_sum = left + history[gen] + right;
    if (p.has_north) { pe.send(p.to_north, wse::Wavelet::from_u32(row_sum)); pe.unblock(wse::data_task_id(p.from_north)); }
    if (p.has_south) { pe.send(p.to_south, wse::Wavelet::from_u32(row_sum)); pe.unblock(wse::data_task_id(p.from_south)); }
  }
  void on_north(PE& pe, wse::Wavelet w) { above = w.data; got_vertical(pe, p.from_north); }
  void on_south(PE& pe, wse::Wavelet w) { below = w.data; got_vertical(pe, p.from_south); }

  // Phase 3: apply the rule, record, start the next generation.
  void got_vertical(PE& pe, wse::Color c) {
    pe.block(wse::data_task_id(c));
    if (++arrived < unsigned(p.has_north) + p.has_south) return;
    const std::uint32_t live = left + right + above + below;
    history[gen + 1] = (live == 3 || (live == 2 && history[gen] == 1)) ? 1u : 0u;
    if (++gen < generations) send_state(pe);
  }
};

using Board = std::vector<std::uint32_t>;  // (H, W) row-major, 0 = dead, 1 = alive

static Board host_step(const Board& b) {
  Board next(b.size());
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      unsigned live = 0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx)
          if ((dx || dy) && x + dx >= 0 && x + dx < W && y + dy >= 0 && y + dy < H) live += b[(y + dy) * W + x + dx];
      next[y * W + x] = (live == 3 || (live == 2 && b[y * W + x])) ? 1 : 0;
    }
  return next;
}

int main(int argc, char** argv) {
  // Usage: wse_sample_game_of_life [threads] [jitter percent]. Jitter makes PEs sit out
  // epochs at random (deterministically), so neighbours drift out of lockstep: the blocking
  // of data tasks is what keeps generations apart then.
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 1;
  const unsigned jitter = argc > 2 ? unsigned(std::atoi(argv[2])) : 0;

  wse::Program prog(wse::arch::wse2, W, H);
  // neighbor_exchange: a PE at parity p along the direction sends on colors[p] and
  // receives from the opposite side on colors[1 - p].
  prog.add_region<Life>(prog.grid(), [](wse::Coord c) {
    const unsigned px = c.x % 2, py = c.y % 2;
    return LifeParams{east_colors[px],      west_colors[px],      north_colors[py],     south_colors[py],
                      east_colors[1 - px],  west_colors[1 - px],  south_colors[1 - py], north_colors[1 - py],
                      c.x > 0, c.x + 1 < W, c.y > 0, c.y + 1 < H};
  });
  wse::routes::neighbor_exchange(prog.route_sink(), east_colors, prog.grid(), wse::east);
  wse::routes::neighbor_exchange(prog.route_sink(), west_colors, prog.grid(), wse::west);
  wse::routes::neighbor_exchange(prog.route_sink(), north_colors, prog.grid(), wse::north);
  wse::routes::neighbor_exchange(prog.route_sink(), south_colors, prog.grid(), wse::south);

  wse::emu::EmuConfig cfg;
  cfg.threads = threads;
  cfg.jitter_percent = jitter;
  wse::host::Runtime rt(prog, cfg);

  // Generation 0: a glider in the north-west corner, heading south-east.
  Board board(W * H, 0);
  const int glider[5][2] = {{1, 0}, {2, 1}, {0, 2}, {1, 2}, {2, 2}};  // (x, y) of live cells
  for (const auto& c : glider) board[c[1] * W + c[0]] = 1;
  rt.memcpy_h2d<std::uint32_t>("history", board, prog.grid(), 1);  // element 0 of every PE
  rt.launch("start");
  const wse::host::RunReport report = rt.run();
  // (H, W, generations + 1): history of every PE, PEs in row-major order.
  const std::vector<std::uint32_t> history = rt.read<std::uint32_t>("history", prog.grid(), generations + 1);

  std::vector<Board> device(generations + 1, Board(W * H));  // (generations + 1, H, W)
  for (std::uint32_t pe = 0; pe < W * H; ++pe)
    for (std::uint32_t g = 0; g <= generations; ++g) device[g][pe] = history[pe * (generations + 1) + g];
  std::uint32_t first_bad = generations + 1;
  for (std::uint32_t g = 0; g <= generations; ++g) {
    if (device[g] != board && first_bad > generations) first_bad = g;
    board = host_step(board);
  }

  // Show every fourth generation side by side.
  const std::uint32_t shown[] = {0, 4, 8, 12, 16, 20};
  for (std::uint32_t g : shown) std::printf("gen %-10u", g);
  std::printf("\n");
  for (int y = 0; y < H; ++y) {
    for (std::uint32_t g : shown) {
      for (int x = 0; x < W; ++x) std::putchar(device[g][y * W + x] ? '#' : '.');
      std::printf("  ");
    }
    std::printf("\n");
  }

  const bool ok = report.ok() && first_bad > generations;
  if (!report.ok()) std::printf("%s", report.to_string().c_str());
  if (first_bad <= generations) std::printf("generation %u differs from the host reference\n", first_bad);
  std::printf("game_of_life: %u generations on %ux%u PEs, %llu epochs: %s\n", generations, W, H,
              (unsigned long long)report.epochs, ok ? "all match the host reference" : "MISMATCH");
  return ok ? 0 : 1;
}
