// gemm_summa: C = A·B (fp32) with the SUMMA kernel of kernels/gemm_summa.hpp.
//
// A is (M, K), B is (K, N), C is (M, N), row-major on the host. On a px × py grid of PEs,
// PE (x, y) holds the (mb, ka) block A[y·mb.., x·ka..], the (kb, nb) block B[y·kb.., x·nb..]
// and the (mb, nb) block C[y·mb.., x·nb..], each column-major (M = py·mb, N = px·nb,
// K = px·ka = py·kb). The host copies the blocks in, launches "gemm" and reads C back.
// At each step the PEs of one column broadcast their A blocks along their rows and the PEs
// of one row their B blocks down their columns; every PE accumulates C += A_k·B_k. The
// broadcast colors and task ids come from the program's channel allocator (summa_channels).
//
// For each grid shape the same loaded program runs twice (so the broadcast switches must
// come back to their first position): a case with small integers, whose products and sums
// are exact in fp32 and must equal the reference bit for bit, and a random case checked
// norm-wise against a double-precision reference. The output does not depend on the thread
// count or on jitter (PEs drifting out of lockstep); it prints no epoch counts for that
// reason, and a checksum of the random C to show the bits do not change either.
//
// Usage: wse_sample_gemm_summa [threads] [jitter%] [--big]
//   --big adds the benchmark shape: 1024x1024x1024 on 32x32 PEs (32x32 blocks); slow.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include <wse/wse.hpp>

#include "kernels/gemm_summa.hpp"

struct Shape {
  std::uint16_t px, py;       // grid: px columns, py rows
  std::uint32_t mb, nb, k;    // C block mb x nb per PE, inner dimension k
  std::uint32_t M() const { return py * mb; }
  std::uint32_t N() const { return px * nb; }
};

// Host matrices (row-major) -> per-PE blocks (PEs row-major, each block column-major).
static std::vector<float> to_blocks(const std::vector<float>& X, std::uint32_t cols, std::uint16_t px, std::uint16_t py,
                                    std::uint32_t rb, std::uint32_t cb) {
  std::vector<float> out;
  out.reserve(X.size());
  for (std::uint32_t y = 0; y < py; ++y)
    for (std::uint32_t x = 0; x < px; ++x)
      for (std::uint32_t j = 0; j < cb; ++j)
        for (std::uint32_t i = 0; i < rb; ++i) out.push_back(X[std::size_t(y * rb + i) * cols + x * cb + j]);
  return out;
}
static std::vector<float> from_blocks(const std::vector<float>& blocks, std::uint32_t cols, std::uint16_t px,
                                      std::uint16_t py, std::uint32_t rb, std::uint32_t cb) {
  std::vector<float> X(blocks.size());
  std::size_t n = 0;
  for (std::uint32_t y = 0; y < py; ++y)
    for (std::uint32_t x = 0; x < px; ++x)
      for (std::uint32_t j = 0; j < cb; ++j)
        for (std::uint32_t i = 0; i < rb; ++i) X[std::size_t(y * rb + i) * cols + x * cb + j] = blocks[n++];
  return X;
}

// C_ref = A·B in double.
static std::vector<double> reference(const std::vector<float>& A, const std::vector<float>& B, std::uint32_t M,
                                     std::uint32_t N, std::uint32_t K) {
  std::vector<double> C(std::size_t(M) * N, 0.0);
  for (std::uint32_t i = 0; i < M; ++i)
    for (std::uint32_t l = 0; l < K; ++l) {
      const double a = A[std::size_t(i) * K + l];
      const float* b = &B[std::size_t(l) * N];
      double* c = &C[std::size_t(i) * N];
      for (std::uint32_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  return C;
}

static std::uint64_t checksum(const std::vector<float>& v) {  // FNV-1a over the bits
  std::uint64_t h = 1469598103934665603ull;
  for (float f : v) {
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    h = (h ^ b) * 1099511628211ull;
  }
  return h;
}

// Runs both cases of one shape on one loaded program; returns the number of failures.
static int run_shape(const Shape& s, unsigned threads, unsigned jitter) {
  const std::uint32_t M = s.M(), N = s.N(), K = s.k, ka = K / s.px, kb = K / s.py;
  wse::kernels::SummaParams p{.area = {{0, 0}, s.px, s.py}, .mb = s.mb, .nb = s.nb, .k = s.k};
  wse::Program prog(wse::arch::wse2, s.px, s.py);
  wse::kernels::summa_channels(prog, p);  // broadcast colors and task ids from the program's allocator
  if (const char* e = wse::kernels::summa_params_error(p)) {
    std::printf("  %ux%u: %s\n", s.px, s.py, e);
    return 1;
  }
  prog.add_region<wse::kernels::GemmSumma>(p.area, p);
  wse::kernels::summa_routes(prog.route_sink(), p);
  wse::emu::EmuConfig cfg;
  cfg.threads = threads;
  cfg.jitter_percent = jitter;
  wse::host::Runtime rt(prog, cfg);

  // Runs C = A·B on the fabric; `ok` is false when the run did not complete.
  auto gemm = [&](const std::vector<float>& A, const std::vector<float>& B, bool& ok) {
    rt.memcpy_h2d<float>("A", to_blocks(A, K, s.px, s.py, s.mb, ka), p.area, s.mb * ka);
    rt.memcpy_h2d<float>("B", to_blocks(B, N, s.px, s.py, kb, s.nb), p.area, kb * s.nb);
    rt.launch("gemm");
    const wse::host::RunReport report = rt.run();
    ok = report.ok();
    if (!ok) std::printf("%s", report.to_string().c_str());
    return from_blocks(rt.read<float>("C", p.area, s.mb * s.nb), N, s.px, s.py, s.mb, s.nb);
  };

  std::printf("  %ux%u PEs, C %ux%u = A %ux%u * B %ux%u (blocks A %ux%u, B %ux%u, C %ux%u), %u row + %u column colors, "
              "%u bytes per PE\n",
              s.px, s.py, M, N, M, K, K, N, s.mb, ka, kb, s.nb, s.mb, s.nb, wse::kernels::summa_colors_needed(s.px),
              wse::kernels::summa_colors_needed(s.py), rt.emulator()->pe({0, 0})->memory_used());
  int bad = 0;

  // Case 1: integers in [-3, 3]: every product and partial sum is exact in fp32.
  std::vector<float> A(std::size_t(M) * K), B(std::size_t(K) * N);
  for (std::uint32_t i = 0; i < M; ++i)
    for (std::uint32_t l = 0; l < K; ++l) A[std::size_t(i) * K + l] = float(int((i * 5 + l * 3 + 1) % 7) - 3);
  for (std::uint32_t l = 0; l < K; ++l)
    for (std::uint32_t j = 0; j < N; ++j) B[std::size_t(l) * N + j] = float(int((l * 2 + j * 7 + 2) % 7) - 3);
  bool ok = false;
  std::vector<float> C = gemm(A, B, ok);
  std::vector<double> ref = reference(A, B, M, N, K);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < C.size(); ++i) wrong += double(C[i]) != ref[i];
  std::printf("    integer case: %zu of %zu elements differ: %s\n", wrong, C.size(), ok && wrong == 0 ? "ok" : "MISMATCH");
  bad += !ok || wrong != 0;

  // Case 2: uniform random values in [-1, 1), fixed seed, norm-wise relative error.
  std::mt19937 rng(1234 + s.px * 31 + s.py);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (float& v : A) v = uni(rng);
  for (float& v : B) v = uni(rng);
  C = gemm(A, B, ok);
  ref = reference(A, B, M, N, K);
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < C.size(); ++i) {
    diff += (C[i] - ref[i]) * (C[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  const double err = std::sqrt(diff / norm);
  std::printf("    random case:  relative error %.2e (limit 1e-5), checksum %016llx: %s\n", err,
              (unsigned long long)checksum(C), ok && err < 1e-5 ? "ok" : "MISMATCH");
  bad += !ok || !(err < 1e-5);
  return bad;
}

int main(int argc, char** argv) {
  unsigned threads = 1, jitter = 0;
  bool big = false;
  for (int i = 1, n = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--big") == 0) big = true;
    else if (n++ == 0) threads = unsigned(std::atoi(argv[i]));
    else jitter = unsigned(std::atoi(argv[i]));
  }
  std::printf("gemm_summa: C = A*B with SUMMA (row and column broadcasts of home blocks)\n");
  std::vector<Shape> shapes = {
      {4, 4, 6, 5, 28},   // square grid, ka = kb = 7; one color per axis
      {5, 5, 4, 7, 30},   // odd square grid, two colors per axis
      {6, 4, 5, 3, 36},   // 6 columns x 4 rows: ka = 6, kb = 9, panels of gcd = 3
      {9, 9, 8, 8, 72},   // three colors per axis, three roots each
      {1, 3, 3, 4, 6},    // a single column: no row broadcasts
  };
  if (big) shapes.push_back({32, 32, 32, 32, 1024});
  int bad = 0;
  for (const Shape& s : shapes) bad += run_shape(s, threads, jitter);
  std::printf("gemm_summa: %s\n", bad ? "MISMATCH" : "all ok");
  return bad ? 1 : 0;
}
