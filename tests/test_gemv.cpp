// kernels/gemv.hpp: y = A·x (+ b) on a rectangle of PEs. Grid shapes (1x1, one row, one
// column, odd, fewer rows or columns of A than PEs), exact integer results, bit-exactness
// against a host model of the kernel's rounding for any thread count, jitter and SIMD setting,
// repeated launches, memory accounting and the parameter checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../kernels/gemv.hpp"
#include "support.hpp"

using namespace wse;
namespace kern = wse::kernels;

namespace {

// Host arithmetic that rounds like the kernel's DSD ops, one struct per kernel variant.
struct F32Arith {  // Gemv
  using T = float;
  using Acc = float;
  static float mac(float acc, float a, float x) { return std::fma(a, x, acc); }
  static float add(float a, float b) { return a + b; }
  static double val(float v) { return v; }
  static float t_from(float v) { return v; }
  static float acc_from(float v) { return v; }
};
struct MixedArith {  // GemvMixed: the f16 product is exact in float, then one f32 rounding
  using T = f16;
  using Acc = float;
  static float mac(float acc, f16 a, f16 x) { return std::fma(a.to_float(), x.to_float(), acc); }
  static float add(float a, float b) { return a + b; }
  static double val(float v) { return v; }
  static double val(f16 v) { return v.to_float(); }
  static f16 t_from(float v) { return f16::from_float(v); }
  static float acc_from(float v) { return v; }
};
struct F16Arith {  // GemvF16: each op's exact result rounded once to f16 (exact in double first)
  using T = f16;
  using Acc = f16;
  static f16 mac(f16 acc, f16 a, f16 x) {
    return f16::from_double(std::fma(double(a.to_float()), double(x.to_float()), double(acc.to_float())));
  }
  static f16 add(f16 a, f16 b) { return f16::from_double(double(a.to_float()) + b.to_float()); }
  static double val(f16 v) { return v.to_float(); }
  static f16 t_from(float v) { return f16::from_float(v); }
  static f16 acc_from(float v) { return f16::from_float(v); }
};

template <class Ar> struct Inputs {
  std::vector<typename Ar::T> A, x;
  std::vector<typename Ar::Acc> b;
};

// A Gemv program on a grid_w × grid_h fabric (p.area inside it, touching the north edge).
template <template <class> class K, class T, class Acc> struct GemvRig {
  kern::GemvParams p;
  Program prog;
  host::Runtime rt;

  static Program build(const kern::GemvParams& p, std::uint16_t grid_w, std::uint16_t grid_h) {
    Program prog(arch::wse2, grid_w, grid_h);
    prog.add_region<K>(p.area, p);
    kern::gemv_routes(prog.route_sink(), p);
    kern::gemv_x_streams(p, [&](std::uint32_t i, Coord c, Color col, Port edge) {
      prog.add_input_stream("x" + std::to_string(i), col, c, edge);
    });
    return prog;
  }
  GemvRig(const kern::GemvParams& params, emu::EmuConfig cfg, std::uint16_t grid_w = 0, std::uint16_t grid_h = 0)
      : p(params),
        prog(build(params, grid_w ? grid_w : params.area.width, grid_h ? grid_h : params.area.height)),
        rt(prog, cfg) {}

  // A row-major m × n into the per-PE slots; b into the west column.
  void load(const std::vector<T>& A, const std::vector<Acc>& b) {
    const std::uint32_t mb = kern::gemv_mb(p), nb = kern::gemv_nb(p);
    const Rect act = kern::gemv_active_area(p);
    std::vector<T> slots(std::size_t{act.area()} * mb * nb, T{});
    for (std::uint32_t j = 0; j < act.height; ++j)
      for (std::uint32_t i = 0; i < act.width; ++i)
        for (std::uint32_t c = 0; c < kern::gemv_cols(p, i); ++c)
          for (std::uint32_t r = 0; r < kern::gemv_rows(p, j); ++r)
            slots[(std::size_t(j) * act.width + i) * mb * nb + r + c * mb] =
                A[std::size_t(kern::gemv_row_begin(p, j) + r) * p.n + kern::gemv_col_begin(p, i) + c];
    rt.memcpy_h2d<T>("A", slots, act, mb * nb);
    if (p.bias) {
      std::vector<Acc> bs(std::size_t{act.height} * mb, Acc{});
      for (std::uint32_t j = 0; j < act.height; ++j)
        for (std::uint32_t r = 0; r < kern::gemv_rows(p, j); ++r) bs[j * mb + r] = b[kern::gemv_row_begin(p, j) + r];
      rt.memcpy_h2d<Acc>("b", bs, kern::gemv_b_area(p), mb);
    }
  }
  template <class Ar> std::vector<Acc> load_and_run(const Inputs<Ar>& in) {
    load(in.A, in.b);
    return run(in.x);
  }
  // Streams x, launches "gemv", runs; y (m) or empty when the run did not complete.
  std::vector<Acc> run(const std::vector<T>& x) {
    for (std::uint32_t i = 0; i < kern::gemv_active_width(p); ++i) {
      const auto first = x.begin() + kern::gemv_col_begin(p, i);
      rt.stream_in<T>("x" + std::to_string(i), std::vector<T>(first, first + kern::gemv_cols(p, i)));
    }
    rt.launch("gemv");
    const host::RunReport report = rt.run();
    if (!report.ok()) {
      MESSAGE(report.to_string());
      return {};
    }
    const std::uint32_t mb = kern::gemv_mb(p);
    const std::vector<Acc> slots = rt.read<Acc>("y", kern::gemv_y_area(p), mb);
    std::vector<Acc> y(p.m);
    for (std::uint32_t j = 0; j < kern::gemv_active_height(p); ++j)
      for (std::uint32_t r = 0; r < kern::gemv_rows(p, j); ++r) y[kern::gemv_row_begin(p, j) + r] = slots[j * mb + r];
    return y;
  }
};

template <class Ar> std::vector<double> reference(const kern::GemvParams& p, const Inputs<Ar>& in) {
  std::vector<double> y(p.m);
  for (std::uint32_t r = 0; r < p.m; ++r) {
    double s = p.bias ? Ar::val(in.b[r]) : 0.0;
    for (std::uint32_t c = 0; c < p.n; ++c) s += Ar::val(in.A[std::size_t(r) * p.n + c]) * Ar::val(in.x[c]);
    y[r] = s;
  }
  return y;
}

template <class V> bool same_bits(const std::vector<V>& a, const std::vector<V>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
}

// Small integers: |A|, |x| <= 2, |b| <= 10; exact in every variant while n <= 500.
template <class Ar> Inputs<Ar> integer_inputs(const kern::GemvParams& p, unsigned salt) {
  Inputs<Ar> in{std::vector<typename Ar::T>(std::size_t{p.m} * p.n), std::vector<typename Ar::T>(p.n),
                std::vector<typename Ar::Acc>(p.m)};
  for (std::uint32_t r = 0; r < p.m; ++r)
    for (std::uint32_t c = 0; c < p.n; ++c)
      in.A[std::size_t(r) * p.n + c] = Ar::t_from(float(int((r * 5 + c * 3 + salt + r * c) % 5) - 2));
  for (std::uint32_t c = 0; c < p.n; ++c) in.x[c] = Ar::t_from(float(int((c * 7 + salt) % 5) - 2));
  for (std::uint32_t r = 0; r < p.m; ++r) in.b[r] = Ar::acc_from(float(int((r * 11 + salt) % 21) - 10));
  return in;
}
template <class Ar> Inputs<Ar> random_inputs(const kern::GemvParams& p, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  Inputs<Ar> in{std::vector<typename Ar::T>(std::size_t{p.m} * p.n), std::vector<typename Ar::T>(p.n),
                std::vector<typename Ar::Acc>(p.m)};
  for (auto& v : in.A) v = Ar::t_from(uni(rng));
  for (auto& v : in.x) v = Ar::t_from(uni(rng));
  for (auto& v : in.b) v = Ar::acc_from(uni(rng));
  return in;
}

// y computed on the host in exactly the kernel's order (kernels/gemv.hpp, "Rounding").
template <class Ar> std::vector<typename Ar::Acc> host_model(const kern::GemvParams& p, const Inputs<Ar>& in) {
  using Acc = typename Ar::Acc;
  const auto &A = in.A, &x = in.x;
  const auto& b = in.b;
  std::vector<Acc> y(p.m);
  for (std::uint32_t j = 0; j < kern::gemv_active_height(p); ++j)
    for (std::uint32_t r = kern::gemv_row_begin(p, j); r < kern::gemv_row_begin(p, j) + kern::gemv_rows(p, j); ++r) {
      Acc s{};
      for (std::uint32_t i = 0; i < kern::gemv_active_width(p); ++i) {
        const std::uint32_t c0 = kern::gemv_col_begin(p, i), c = kern::gemv_cols(p, i);
        const std::uint32_t w = p.acc_cols < c ? p.acc_cols : c;
        std::vector<Acc> acc(w, Acc{});
        for (std::uint32_t g = 0; g < c; g += w)
          for (std::uint32_t k = 0; k < w && g + k < c; ++k)
            acc[k] = Ar::mac(acc[k], A[std::size_t(r) * p.n + c0 + g + k], x[c0 + g + k]);
        for (std::uint32_t cnt = w; cnt > 1;) {
          const std::uint32_t h = cnt / 2;
          for (std::uint32_t t = 0; t < h; ++t) acc[t] = Ar::add(acc[t], acc[cnt - h + t]);
          cnt -= h;
        }
        s = i == 0 ? (p.bias ? Ar::add(acc[0], b[r]) : acc[0]) : Ar::add(s, acc[0]);
      }
      y[r] = s;
    }
  return y;
}

kern::GemvParams params(std::uint16_t px, std::uint16_t py, std::uint32_t m, std::uint32_t n, bool bias,
                        std::uint32_t acc_cols = 8) {
  return kern::GemvParams{.area = {{0, 0}, px, py}, .m = m, .n = n, .bias = bias, .acc_cols = acc_cols};
}

}  // namespace

TEST_CASE("gemv: the balanced split covers every row and column once") {
  for (std::uint32_t parts : {1u, 2u, 3u, 7u, 8u})
    for (std::uint32_t total : {1u, 2u, 5u, 8u, 13u, 250u, 300u}) {
      std::uint32_t next = 0, biggest = 0;
      for (std::uint32_t k = 0; k < parts; ++k) {
        CHECK(kern::gemv_part_begin(total, parts, k) == next);
        next += kern::gemv_part_size(total, parts, k);
        biggest = std::max(biggest, kern::gemv_part_size(total, parts, k));
        CHECK(kern::gemv_part_size(total, parts, k) <= kern::gemv_part_size(total, parts, 0));
        CHECK(kern::gemv_part_size(total, parts, 0) - kern::gemv_part_size(total, parts, k) <= 1);
      }
      CHECK(next == total);
      CHECK(biggest == (total + parts - 1) / parts);
    }
  const auto p = params(8, 6, 250, 300, false);
  CHECK(kern::gemv_mb(p) == 42);
  CHECK(kern::gemv_rows(p, 5) == 41);
  CHECK(kern::gemv_nb(p) == 38);
  CHECK(kern::gemv_cols(p, 7) == 37);
  CHECK(kern::gemv_y_area(p) == Rect{{7, 0}, 1, 6});
  const auto q = params(4, 3, 2, 3, false);  // fewer rows and columns of A than PEs
  CHECK(kern::gemv_active_area(q) == Rect{{0, 0}, 3, 2});
  CHECK(kern::gemv_y_area(q) == Rect{{2, 0}, 1, 2});
  CHECK(kern::gemv_b_area(q) == Rect{{0, 0}, 1, 2});
}


namespace {
// Loads a program for kernel K, runs one case; y (m), or empty when the run did not complete.
template <template <class> class K, class Ar>
std::vector<typename Ar::Acc> run_case(const kern::GemvParams& p, const Inputs<Ar>& in, emu::EmuConfig cfg) {
  GemvRig<K, typename Ar::T, typename Ar::Acc> rig(p, cfg);
  return rig.load_and_run(in);
}

// Exact integer results on every shape.
template <template <class> class K, class Ar> void check_integer_shapes() {
  struct Shape {
    std::uint16_t px, py;
    std::uint32_t m, n, acc_cols;
  };
  const Shape shapes[] = {
      {1, 1, 5, 7, 8},      // one PE: no fabric reduction
      {1, 4, 9, 5, 2},      // one column
      {5, 1, 3, 17, 8},     // one row
      {3, 4, 13, 11, 3},    // odd sizes, uneven blocks both ways
      {4, 3, 2, 3, 8},      // m < py and n < px: idle PEs
      {6, 2, 1, 6, 8},      // one row of A; one column of A per PE
      {7, 5, 31, 29, 1},    // acc_cols = 1: one running sum per row
      {3, 3, 20, 40, 100},  // acc_cols above the block width
      {2, 7, 7, 2, 8},      // one row of A per PE row
  };
  unsigned salt = 0;
  for (const Shape& s : shapes)
    for (bool bias : {false, true}) {
      const kern::GemvParams p = params(s.px, s.py, s.m, s.n, bias, s.acc_cols);
      CAPTURE(s.px);
      CAPTURE(s.py);
      CAPTURE(s.m);
      CAPTURE(s.n);
      CAPTURE(bias);
      REQUIRE((kern::gemv_params_error<typename Ar::T, typename Ar::Acc>(p) == nullptr));
      const Inputs<Ar> in = integer_inputs<Ar>(p, ++salt);
      const auto y = run_case<K, Ar>(p, in, wse_test::config());
      REQUIRE(y.size() == p.m);
      const std::vector<double> ref = reference(p, in);
      std::uint32_t differ = 0;
      for (std::uint32_t r = 0; r < p.m; ++r) differ += Ar::val(y[r]) != ref[r];
      CHECK(differ == 0);
    }
}

// Random inputs: bit for bit the host model, for 1 and 3 threads, 40% jitter and without SIMD;
// norm-wise relative error against double below `limit`.
template <template <class> class K, class Ar> void check_random(double limit) {
  const kern::GemvParams p = params(5, 4, 37, 45, true, 4);
  const Inputs<Ar> in = random_inputs<Ar>(p, 99);
  const auto model = host_model<Ar>(p, in);
  const std::vector<double> ref = reference(p, in);
  double diff = 0, norm = 0;
  for (std::uint32_t r = 0; r < p.m; ++r) {
    diff += (Ar::val(model[r]) - ref[r]) * (Ar::val(model[r]) - ref[r]);
    norm += ref[r] * ref[r];
  }
  CHECK(std::sqrt(diff / norm) < limit);
  // The rounding order matters: one running sum per row (acc_cols = 1) rounds differently.
  kern::GemvParams serial = p;
  serial.acc_cols = 1;
  CHECK(!same_bits(host_model<Ar>(serial, in), model));

  const auto y = run_case<K, Ar>(p, in, wse_test::config());
  CHECK(same_bits(y, model));
  emu::EmuConfig three = wse_test::config();
  three.threads = 3;
  CHECK(same_bits(run_case<K, Ar>(p, in, three), y));
  emu::EmuConfig jitter = wse_test::config();
  jitter.jitter_percent = 40;
  CHECK(same_bits(run_case<K, Ar>(p, in, jitter), y));
  emu::EmuConfig scalar = wse_test::config();
  scalar.simd = false;
  CHECK(same_bits(run_case<K, Ar>(p, in, scalar), y));
  CHECK(same_bits(run_case<K, Ar>(serial, in, wse_test::config()), host_model<Ar>(serial, in)));
}
}  // namespace

TEST_CASE("gemv: integer inputs give exact results on many grid shapes") {
  SUBCASE("fp32") { check_integer_shapes<kern::Gemv, F32Arith>(); }
  SUBCASE("mixed f16 x f16 + f32") { check_integer_shapes<kern::GemvMixed, MixedArith>(); }
  SUBCASE("fp16") { check_integer_shapes<kern::GemvF16, F16Arith>(); }
}

TEST_CASE("gemv: random inputs match a host model of the rounding bit for bit, for any threads, jitter or SIMD") {
  SUBCASE("fp32") { check_random<kern::Gemv, F32Arith>(1e-6); }
  SUBCASE("mixed f16 x f16 + f32") { check_random<kern::GemvMixed, MixedArith>(1e-6); }
  SUBCASE("fp16") { check_random<kern::GemvF16, F16Arith>(5e-3); }
}

TEST_CASE("gemv: launched again with a new x, A and b; the area may sit inside a larger grid") {
  // Area of 3 x 2 PEs at (2, 0) on a 6 x 3 fabric: the other PEs have no kernel.
  kern::GemvParams p = params(3, 2, 10, 14, true, 3);
  p.area.origin = Coord{2, 0};
  REQUIRE(kern::gemv_params_error(p) == nullptr);
  CHECK(kern::gemv_y_area(p) == Rect{{4, 0}, 1, 2});
  GemvRig<kern::Gemv, float, float> rig(p, wse_test::config(), 6, 3);
  const Inputs<F32Arith> a = random_inputs<F32Arith>(p, 1), b = random_inputs<F32Arith>(p, 2);
  const Inputs<F32Arith> mixed{a.A, b.x, a.b};
  rig.load(a.A, a.b);
  CHECK(same_bits(rig.run(a.x), host_model<F32Arith>(p, a)));
  CHECK(same_bits(rig.run(b.x), host_model<F32Arith>(p, mixed)));  // same A and b, new x
  rig.load(b.A, b.b);
  CHECK(same_bits(rig.run(b.x), host_model<F32Arith>(p, b)));
  // A and b are unchanged by a launch.
  CHECK(rig.rt.read<float>("b", kern::gemv_b_area(p), kern::gemv_mb(p))[0] == b.b[0]);
  CHECK(rig.rt.read<float>("A", Rect{{3, 1}, 1, 1}, 1)[0] == b.A[std::size_t(kern::gemv_row_begin(p, 1)) * p.n + kern::gemv_col_begin(p, 1)]);
}

TEST_CASE("gemv: gemv_bytes_per_pe is what the emulator counts, and what fits") {
  for (const kern::GemvParams& p : {params(8, 6, 250, 300, true), params(8, 6, 250, 300, false, 1),
                                    params(1, 1, 60, 90, true, 16), params(4, 3, 2, 3, true)}) {
    CHECK(GemvRig<kern::Gemv, float, float>(p, wse_test::config()).rt.emulator()->pe(p.area.origin)->memory_used() ==
          kern::gemv_bytes_per_pe(p));
    CHECK(GemvRig<kern::GemvMixed, f16, float>(p, wse_test::config()).rt.emulator()->pe(p.area.origin)->memory_used() ==
          kern::gemv_bytes_per_pe<f16, float>(p));
    CHECK(GemvRig<kern::GemvF16, f16, f16>(p, wse_test::config()).rt.emulator()->pe(p.area.origin)->memory_used() ==
          kern::gemv_bytes_per_pe<f16, f16>(p));
  }
  // fp32 with 8 accumulator columns: a 106 x 106 block fits one PE (48,880 bytes), 107 x 107
  // does not; the same 212 x 212 A fits 2 x 2 PEs. fp16 fits 152 x 152.
  CHECK(kern::gemv_params_error(params(1, 1, 106, 106, false)) == nullptr);
  CHECK(kern::gemv_bytes_per_pe(params(1, 1, 106, 106, false)) == 48880);
  CHECK(kern::gemv_params_error(params(1, 1, 107, 107, false)) != nullptr);
  CHECK(kern::gemv_params_error(params(2, 2, 212, 212, false)) == nullptr);
  CHECK(kern::gemv_params_error(params(2, 2, 214, 214, false)) != nullptr);
  CHECK((kern::gemv_params_error<f16, f16>(params(1, 1, 152, 152, false)) == nullptr));
  CHECK((kern::gemv_params_error<f16, f16>(params(1, 1, 153, 153, false)) != nullptr));
  CHECK((kern::gemv_params_error<f16, float>(params(1, 1, 148, 148, false)) == nullptr));
  CHECK((kern::gemv_params_error<f16, float>(params(1, 1, 149, 149, false)) != nullptr));
  // A 106 x 106 block on one PE really loads and runs.
  const kern::GemvParams big = params(1, 1, 106, 106, false);
  GemvRig<kern::Gemv, float, float> rig(big, wse_test::config());
  CHECK(rig.rt.emulator()->pe({0, 0})->memory_used() == 48880);
  const Inputs<F32Arith> in = random_inputs<F32Arith>(big, 5);
  CHECK(same_bits(rig.load_and_run(in), host_model<F32Arith>(big, in)));
}

TEST_CASE("gemv_params_error names the bad field and the allowed range") {
  using wse_test::contains;
  auto err = [](const kern::GemvParams& p) {
    const char* e = kern::gemv_params_error(p);
    return std::string(e ? e : "");
  };
  const kern::GemvParams p = params(4, 4, 16, 16, false);
  CHECK(err(p).empty());
  kern::GemvParams q = p;
  q.area.width = 0;
  CHECK(contains(err(q), "area is empty (area.width and area.height must be >= 1)"));
  q = p;
  q.m = 0;
  CHECK(contains(err(q), "m (rows of A) must be >= 1"));
  q = p;
  q.n = 0;
  CHECK(contains(err(q), "n (columns of A) must be >= 1"));
  q = p;
  q.acc_cols = 0;
  CHECK(contains(err(q), "acc_cols must be >= 1"));
  q = params(1, 1, 200, 200, false);
  CHECK(contains(err(q), "does not fit the 48 KiB PE memory"));
  CHECK(contains(err(q), "must be <= 49152 bytes"));
  q = p;
  q.x_color = Color{21};
  CHECK(contains(err(q), "x_color is not usable (allowed 0..20; 21..23 are reserved)"));
  q = p;
  q.sum_colors[0] = Color{23};
  CHECK(contains(err(q), "sum_colors[0] is not usable (allowed 0..20"));
  q = p;
  q.sum_colors[1] = Color{22};
  CHECK(contains(err(q), "sum_colors[1] is not usable (allowed 0..20"));
  q = p;
  q.sum_colors[1] = q.x_color;
  CHECK(contains(err(q), "x_color, sum_colors[0] and sum_colors[1] must be three different colors"));
  q = p;
  q.tasks[0] = TaskId{31};
  CHECK(contains(err(q), "tasks[0] is not a local task id on every arch (allowed 8..30)"));
  q = p;
  q.tasks[0] = TaskId{7};
  CHECK(contains(err(q), "tasks[0] is not a local task id on every arch"));
  q = p;
  q.tasks[0] = TaskId{9};
  q.x_color = Color{9};
  CHECK(contains(err(q), "tasks[0] equals one of the colors"));
  // Every message starts with the kernel's name.
  CHECK(err(params(0, 1, 1, 1, false)).rfind("Gemv: ", 0) == 0);

  // Non-default colors and task id work.
  q = params(3, 2, 7, 9, true);
  q.x_color = Color{20};
  q.sum_colors[0] = Color{5};
  q.sum_colors[1] = Color{12};
  q.tasks[0] = TaskId{8};
  REQUIRE(err(q).empty());
  const Inputs<F32Arith> in = integer_inputs<F32Arith>(q, 3);
  const std::vector<float> y = run_case<kern::Gemv, F32Arith>(q, in, wse_test::config());
  const std::vector<double> ref = reference(q, in);
  REQUIRE(y.size() == q.m);
  for (std::uint32_t r = 0; r < q.m; ++r) CHECK(double(y[r]) == ref[r]);
}
