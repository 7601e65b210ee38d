// gemm_cannon: C = A·B (fp32) with the Cannon kernel of kernels/gemm_cannon.hpp:
// nearest-neighbour shifts only, at most two hops each, on a mesh without wrap-around links.
//
// A is (M, K), B is (K, N), C is (M, N), row-major on the host; on p × p PEs the blocks are
// A (mb, kb), B (kb, nb), C (mb, nb), column-major (M = p·mb, N = p·nb, K = p·kb).
// Cannon's algorithm runs on a logical p × p torus. The kernel places logical ring index l at
// physical index 2l (first half) or 2(p-1-l)+1 (second half), so ring neighbours, including
// the ring's wrap-around, are at most two PEs apart. The host does the initial skew while
// placing the blocks: logical PE (i, j), at physical (x, y) = (phys(j), phys(i)), gets
// A(i, (i+j) mod p) and B((i+j) mod p, j), and holds C(i, j) at the end. The 8 shift colors
// and 4 task ids come from the program's channel allocator (cannon_channels).
//
// For each grid shape the same loaded program runs twice: a case with small integers, exact
// in fp32 and compared bit for bit with the reference, and a random case checked norm-wise
// against a double-precision reference. With keep_inputs (the default) the kernel shifts
// the blocks all the way around, and the sample checks that "A" and "B" read back unchanged.
// The output does not depend on the thread count or on jitter; it prints no epoch counts
// for that reason, and a checksum of the random C to show the bits do not change either.
//
// Usage: wse_sample_gemm_cannon [threads] [jitter%] [--big]
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

#include "kernels/gemm_cannon.hpp"

namespace wk = wse::kernels;

struct Shape {
  std::uint16_t p;               // grid: p x p PEs
  std::uint32_t mb, nb, kb;      // blocks: A mb x kb, B kb x nb, C mb x nb
  bool keep_inputs = true;
};

// Per-PE blocks (PEs row-major over the grid, each block column-major) for a host matrix X
// (row-major, `cols` columns) split into (rb, cb) blocks: the PE at physical (x, y) gets
// block (block_row(i, j), block_col(i, j)) of X, with (i, j) its logical position.
template <class RowOf, class ColOf>
static std::vector<float> to_blocks(const std::vector<float>& X, std::uint32_t cols, std::uint32_t p, std::uint32_t rb,
                                    std::uint32_t cb, RowOf block_row, ColOf block_col) {
  std::vector<float> out;
  out.reserve(std::size_t(p) * p * rb * cb);
  for (std::uint32_t y = 0; y < p; ++y)
    for (std::uint32_t x = 0; x < p; ++x) {
      const std::uint32_t i = wk::cannon_logical(p, y), j = wk::cannon_logical(p, x);
      const std::uint32_t br = block_row(i, j), bc = block_col(i, j);
      for (std::uint32_t c = 0; c < cb; ++c)
        for (std::uint32_t r = 0; r < rb; ++r) out.push_back(X[std::size_t(br * rb + r) * cols + bc * cb + c]);
    }
  return out;
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
  const std::uint32_t p = s.p, M = p * s.mb, N = p * s.nb, K = p * s.kb;
  wk::CannonParams prm{.area = {{0, 0}, s.p, s.p}, .mb = s.mb, .nb = s.nb, .kb = s.kb, .keep_inputs = s.keep_inputs};
  wse::Program prog(wse::arch::wse2, s.p, s.p);
  wk::cannon_channels(prog, prm);  // shift colors and task ids from the program's allocator
  if (const char* e = wk::cannon_params_error(prm)) {
    std::printf("  %ux%u: %s\n", s.p, s.p, e);
    return 1;
  }
  prog.add_region<wk::GemmCannon>(prm.area, prm);
  wk::cannon_routes(prog.route_sink(), prm);
  wse::emu::EmuConfig cfg;
  cfg.threads = threads;
  cfg.jitter_percent = jitter;
  wse::host::Runtime rt(prog, cfg);

  const auto row_i = [](std::uint32_t i, std::uint32_t) { return i; };
  const auto col_j = [](std::uint32_t, std::uint32_t j) { return j; };
  const auto skew = [p](std::uint32_t i, std::uint32_t j) { return wk::cannon_a_block(p, i, j); };
  // Runs C = A·B on the fabric; `ok` is false when the run did not complete or the inputs
  // did not come back unchanged (keep_inputs).
  auto gemm = [&](const std::vector<float>& A, const std::vector<float>& B, bool& ok) {
    const std::vector<float> a_blocks = to_blocks(A, K, p, s.mb, s.kb, row_i, skew);  // A(i, (i+j) mod p)
    const std::vector<float> b_blocks = to_blocks(B, N, p, s.kb, s.nb, skew, col_j);  // B((i+j) mod p, j)
    rt.memcpy_h2d<float>("A", a_blocks, prm.area, s.mb * s.kb);
    rt.memcpy_h2d<float>("B", b_blocks, prm.area, s.kb * s.nb);
    rt.launch("gemm");
    const wse::host::RunReport report = rt.run();
    ok = report.ok();
    if (!ok) std::printf("%s", report.to_string().c_str());
    if (s.keep_inputs && (rt.read<float>("A", prm.area, s.mb * s.kb) != a_blocks ||
                          rt.read<float>("B", prm.area, s.kb * s.nb) != b_blocks)) {
      std::printf("    A or B changed although keep_inputs is set\n");
      ok = false;
    }
    // Physical PE (x, y) holds C(i, j); write it back to its place in C.
    const std::vector<float> c_blocks = rt.read<float>("C", prm.area, s.mb * s.nb);
    std::vector<float> C(std::size_t(M) * N);
    std::size_t n = 0;
    for (std::uint32_t y = 0; y < p; ++y)
      for (std::uint32_t x = 0; x < p; ++x) {
        const std::uint32_t i = wk::cannon_logical(p, y), j = wk::cannon_logical(p, x);
        for (std::uint32_t c = 0; c < s.nb; ++c)
          for (std::uint32_t r = 0; r < s.mb; ++r) C[std::size_t(i * s.mb + r) * N + j * s.nb + c] = c_blocks[n++];
      }
    return C;
  };

  std::printf("  %ux%u PEs, C %ux%u = A %ux%u * B %ux%u (blocks A %ux%u, B %ux%u, C %ux%u), %s, %u bytes per PE\n", s.p,
              s.p, M, N, M, K, K, N, s.mb, s.kb, s.kb, s.nb, s.mb, s.nb,
              s.keep_inputs ? "keep_inputs" : "inputs consumed", rt.emulator()->pe({0, 0})->memory_used());
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
  std::mt19937 rng(4321 + s.p);
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
  std::printf("gemm_cannon: C = A*B with Cannon's algorithm, shifts of at most two hops (interleaved ring)\n");
  std::vector<Shape> shapes = {
      {4, 6, 5, 7},          // even side
      {5, 4, 7, 6},          // odd side: the blocks come home in the other buffer half
      {6, 3, 4, 5, false},   // without keep_inputs: p - 1 shifts
      {9, 8, 8, 8},          // a larger odd ring
      {2, 3, 3, 2},          // the smallest ring: both transfers are one hop
      {1, 4, 3, 5},          // a single PE: no shifts at all
  };
  if (big) shapes.push_back({32, 32, 32, 32});
  int bad = 0;
  for (const Shape& s : shapes) bad += run_shape(s, threads, jitter);
  std::printf("gemm_cannon: %s\n", bad ? "MISMATCH" : "all ok");
  return bad ? 1 : 0;
}
