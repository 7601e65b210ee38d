// gemv: y = A·x + b on a kx × ky grid of PEs (kx columns, ky rows).
//
// A is (M, N) with M = ky*Mb and N = kx*Nb. PE (i, j) (column i, row j) holds the block
// A[j*Mb .. j*Mb+Mb, i*Nb .. i*Nb+Nb], copied in by the host.
//
// Dataflow:
//  1. x broadcast: for each column i the host streams x[i*Nb .. i*Nb+Nb] in at the north edge
//     of row 0 on color X; the route carries it south down the column and delivers every
//     element to every PE of that column.
//  2. local product: each PE, once it holds its Nb x-values, computes y_local = A_block·x_block
//     with one `mac` per column of its block.
//  3. reduction west -> east along each row on two alternating colors: column 0 receives b's
//     rows from a host stream at the west edge, every PE adds the Mb-vector arriving from the
//     west to its y_local and sends the sum east. The east column keeps the final y.
//
// Usage: wse_sample_gemv [threads]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>
#include <wse/wse.hpp>

constexpr std::uint16_t kx = 4, ky = 3;  // grid: kx columns, ky rows
constexpr std::uint32_t Mb = 12, Nb = 10;  // block of A held by one PE
constexpr std::uint32_t M = ky * Mb, N = kx * Nb;

constexpr wse::Color x_color{0};                                  // x broadcast, down each column
constexpr wse::Color sum_colors[2] = {wse::Color{1}, wse::Color{2}};  // west -> east partial sums
constexpr wse::TaskId compute_id{24}, send_id{25};                // local tasks

struct GemvParams {
  wse::Color recv, send;  // partial sums arrive from the west on `recv`, leave east on `send`
  bool last_column;       // keeps y instead of sending it east
};

template <class PE> struct Gemv {
  using Params = GemvParams;
  Params p;
  float A[Mb * Nb] = {};  // (Mb, Nb) block, column-major: column k is A[k*Mb .. k*Mb+Mb]
  float x[Nb] = {};       // (Nb) this PE's slice of x
  float y[Mb] = {};       // (Mb) local partial product, then the running sum of the row

  void init(PE& pe, const Params& params) {
    p = params;
    wse::export_symbol(pe, "A", A);
    wse::export_symbol(pe, "y", y);
    wse::bind_local_task<&Gemv::compute>(pe, compute_id);
    wse::bind_local_task<&Gemv::send_east>(pe, send_id);
    // Receive the Nb x-values of this column, then run compute.
    wse::mov(pe, wse::mem1d(x), wse::fabin<float>(x_color, Nb), wse::then_activate(compute_id));
  }

  // y = A_block · x_block, then y += (Mb-vector from the west).
  void compute(PE& pe) {
    for (std::uint32_t k = 0; k < Nb; ++k)  // y += A[:, k] * x[k]
      wse::mac(pe, wse::mem1d(y), wse::mem1d(y), wse::mem1d(A).with_offset(k * Mb).with_length(Mb), x[k]);
    const auto done = p.last_column ? wse::then_nothing() : wse::then_activate(send_id);
    wse::add(pe, wse::mem1d(y), wse::fabin<float>(p.recv, Mb), wse::mem1d(y), done);
  }

  void send_east(PE& pe) { wse::mov(pe, wse::fabout<float>(p.send, Mb), wse::mem1d(y), wse::then_nothing()); }
};

// Runs y = A·x + b on the emulated fabric. A is (M, N) row-major, x is (N), b is (M).
static std::vector<float> run_gemv(const std::vector<float>& A, const std::vector<float>& x,
                                   const std::vector<float>& b, unsigned threads, wse::host::RunReport& report) {
  wse::Program prog(wse::arch::wse2, kx, ky);
  // Column i sends east on one sum color and receives from the west on the other, as the
  // checkerboard_chain routes below expect.
  prog.add_region<Gemv>(prog.grid(), [](wse::Coord c) {
    return GemvParams{wse::routes::checkerboard_recv_color(sum_colors, c.x),
                      wse::routes::checkerboard_send_color(sum_colors, c.x), c.x == kx - 1};
  });
  for (std::uint16_t i = 0; i < kx; ++i) {
    wse::routes::broadcast_line(prog.route_sink(), x_color, {i, 0}, wse::south, ky, wse::north, true);
    prog.add_input_stream("x" + std::to_string(i), x_color, {i, 0}, wse::north);
  }
  for (std::uint16_t j = 0; j < ky; ++j) {
    wse::routes::checkerboard_chain(prog.route_sink(), sum_colors, {0, j}, wse::east, kx, true);
    prog.add_input_stream("b" + std::to_string(j), wse::routes::checkerboard_recv_color(sum_colors, 0), {0, j},
                          wse::west);
  }

  wse::emu::EmuConfig cfg;
  cfg.threads = threads;
  wse::host::Runtime rt(prog, cfg);

  // Host layout of the per-PE blocks, PEs in row-major order: (ky, kx, Nb, Mb).
  std::vector<float> blocks;
  for (std::uint32_t j = 0; j < ky; ++j)
    for (std::uint32_t i = 0; i < kx; ++i)
      for (std::uint32_t k = 0; k < Nb; ++k)
        for (std::uint32_t r = 0; r < Mb; ++r) blocks.push_back(A[(j * Mb + r) * N + i * Nb + k]);
  rt.memcpy_h2d<float>("A", blocks, prog.grid(), Mb * Nb);
  for (std::uint32_t i = 0; i < kx; ++i)
    rt.stream_in<float>("x" + std::to_string(i), std::vector<float>(x.begin() + i * Nb, x.begin() + (i + 1) * Nb));
  for (std::uint32_t j = 0; j < ky; ++j)
    rt.stream_in<float>("b" + std::to_string(j), std::vector<float>(b.begin() + j * Mb, b.begin() + (j + 1) * Mb));

  report = rt.run();
  return rt.read<float>("y", {{kx - 1, 0}, 1, ky}, Mb);  // (M): the east column, top to bottom
}

// Norm-wise relative error ||y - y_ref|| / ||y_ref||, with y_ref = A·x + b in double.
static double relative_error(const std::vector<float>& y, const std::vector<float>& A, const std::vector<float>& x,
                             const std::vector<float>& b) {
  double diff = 0, ref = 0;
  for (std::uint32_t r = 0; r < M; ++r) {
    double s = b[r];
    for (std::uint32_t c = 0; c < N; ++c) s += double(A[r * N + c]) * x[c];
    diff += (y[r] - s) * (y[r] - s);
    ref += s * s;
  }
  return std::sqrt(diff / ref);
}

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 1;
  std::printf("gemv: y = A*x + b, A is %ux%u, on %ux%u PEs (%ux%u blocks)\n", M, N, kx, ky, Mb, Nb);
  int bad = 0;

  // Case 1: small integers, so every sum is exact in fp32 and y must equal the reference.
  std::vector<float> A(M * N), x(N), b(M);
  for (std::uint32_t r = 0; r < M; ++r)
    for (std::uint32_t c = 0; c < N; ++c) A[r * N + c] = float(int((r * 7 + c * 3) % 11) - 5);
  for (std::uint32_t c = 0; c < N; ++c) x[c] = float(int(c % 7) - 3);
  for (std::uint32_t r = 0; r < M; ++r) b[r] = float(r);
  wse::host::RunReport report;
  std::vector<float> y = run_gemv(A, x, b, threads, report);
  std::uint32_t wrong = 0;
  for (std::uint32_t r = 0; r < M; ++r) {
    double s = b[r];
    for (std::uint32_t c = 0; c < N; ++c) s += double(A[r * N + c]) * x[c];
    if (double(y[r]) != s) ++wrong;
  }
  if (!report.ok()) std::printf("%s", report.to_string().c_str());
  std::printf("  integer case: %u of %u rows differ, relative error %.3g, %llu epochs: %s\n", wrong, M,
              relative_error(y, A, x, b), (unsigned long long)report.epochs, report.ok() && wrong == 0 ? "ok" : "MISMATCH");
  bad |= !report.ok() || wrong != 0;

  // Case 2: uniform random values in [-1, 1) with a fixed seed, checked norm-wise.
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (float& v : A) v = uni(rng);
  for (float& v : x) v = uni(rng);
  for (float& v : b) v = uni(rng);
  y = run_gemv(A, x, b, threads, report);
  const double err = relative_error(y, A, x, b);
  if (!report.ok()) std::printf("%s", report.to_string().c_str());
  std::printf("  random case:  relative error %.3g (limit 1e-6), %llu epochs: %s\n", err,
              (unsigned long long)report.epochs, report.ok() && err < 1e-6 ? "ok" : "MISMATCH");
  bad |= !report.ok() || !(err < 1e-6);
  return bad;
}
