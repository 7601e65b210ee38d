// DSDs and DSD ops (DESIGN.md "PE semantics", DSDs): 1-D memory DSDs (length, stride,
// offset, negative stride), up to 4-D memory DSDs, fabric input and output DSDs (16-bit
// elements, indexed and control output), every fp32 op and the 16- and 32-bit integer ops
// (wrap-around, shifts, conversions). Kernels run the op in a launched function on arrays
// the host writes and reads back; every result is compared bit for bit with a host
// computation written from the op's documented definition.
#include <doctest/doctest.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "support.hpp"

using wse::Color;
using wse::Coord;
using wse::DsdOpCode;
using wse::ElemType;
using wse::Rect;
using wse::TaskId;
using wse::Wavelet;

namespace {

constexpr std::uint32_t N = 64;  // elements per operand array
enum Role : unsigned { D = 0, A = 1, B = 2, C = 3 };
constexpr const char* role_name[4] = {"d", "a", "b", "c"};

// cfg layout: [0] op, [1] destination type, [2] source type (cvt), [3] async flag; then per
// role r at 8 + 12 r: [0] kind (1 = memory, 2 = scalar), [1] offset, [2..5] dims,
// [6..9] strides, [10] scalar bits.
constexpr unsigned cfg_role = 8, cfg_per_role = 12;
enum Kind : std::uint32_t { kind_mem = 1, kind_scalar = 2 };

struct LabParams {
  std::uint32_t unused = 0;
};

/// Runs one DSD op, described by the host in "cfg", on exported per-type operand arrays.
template <class PE> struct OpLab {
  using Params = LabParams;
  float f32[4][N] = {};
  std::int32_t i32[4][N] = {};
  std::uint32_t u32[4][N] = {};
  std::int16_t i16[4][N] = {};
  std::uint16_t u16[4][N] = {};
  std::uint32_t cfg[cfg_role + 4 * cfg_per_role] = {};
  std::uint32_t done[1] = {};

  void init(PE& pe, const Params&) {
    wse::export_symbol(pe, "f32_d", f32[D]);
    wse::export_symbol(pe, "f32_a", f32[A]);
    wse::export_symbol(pe, "f32_b", f32[B]);
    wse::export_symbol(pe, "f32_c", f32[C]);
    wse::export_symbol(pe, "i32_d", i32[D]);
    wse::export_symbol(pe, "i32_a", i32[A]);
    wse::export_symbol(pe, "i32_b", i32[B]);
    wse::export_symbol(pe, "i32_c", i32[C]);
    wse::export_symbol(pe, "u32_d", u32[D]);
    wse::export_symbol(pe, "u32_a", u32[A]);
    wse::export_symbol(pe, "u32_b", u32[B]);
    wse::export_symbol(pe, "u32_c", u32[C]);
    wse::export_symbol(pe, "i16_d", i16[D]);
    wse::export_symbol(pe, "i16_a", i16[A]);
    wse::export_symbol(pe, "i16_b", i16[B]);
    wse::export_symbol(pe, "i16_c", i16[C]);
    wse::export_symbol(pe, "u16_d", u16[D]);
    wse::export_symbol(pe, "u16_a", u16[A]);
    wse::export_symbol(pe, "u16_b", u16[B]);
    wse::export_symbol(pe, "u16_c", u16[C]);
    wse::export_symbol(pe, "cfg", cfg);
    wse::export_symbol(pe, "done", done);
    wse::bind_local_task<&OpLab::on_done>(pe, TaskId{9});
    wse::export_function<&OpLab::go>(pe, "go");
  }
  void on_done(PE&) { ++done[0]; }

  template <class T> T* arr(unsigned r) {
    if constexpr (std::is_same_v<T, float>) return f32[r];
    else if constexpr (std::is_same_v<T, std::int32_t>) return i32[r];
    else if constexpr (std::is_same_v<T, std::uint32_t>) return u32[r];
    else if constexpr (std::is_same_v<T, std::int16_t>) return i16[r];
    else return u16[r];
  }
  std::uint32_t at(unsigned r, unsigned k) const { return cfg[cfg_role + r * cfg_per_role + k]; }
  template <class T> wse::Mem4d<T> mem(unsigned r) {
    const std::uint32_t dims[4] = {at(r, 2), at(r, 3), at(r, 4), at(r, 5)};
    const std::int32_t strides[4] = {static_cast<std::int32_t>(at(r, 6)), static_cast<std::int32_t>(at(r, 7)),
                                     static_cast<std::int32_t>(at(r, 8)), static_cast<std::int32_t>(at(r, 9))};
    return wse::mem4d(wse::Array<T>{arr<T>(r), N}, dims, strides, at(r, 1));
  }
  template <class T> T scalar(unsigned r) {
    const std::uint32_t bits = at(r, 10);
    if constexpr (sizeof(T) == 4) return std::bit_cast<T>(bits);
    else return std::bit_cast<T>(static_cast<std::uint16_t>(bits));
  }
  template <class T, class F> void src(unsigned r, F&& f) {
    if (at(r, 0) == kind_scalar) f(scalar<T>(r));
    else f(mem<T>(r));
  }

  template <class T> void run(PE& pe) {
    const wse::Mem4d<T> d = mem<T>(D);
    const bool async = cfg[3] != 0;
    auto call = [&](auto fn, const auto&... x) {
      if (async) fn(x..., wse::then_activate(TaskId{9}));
      else fn(x...);
    };
    auto un = [&](auto fn) { src<T>(A, [&](const auto& a) { call(fn, d, a); }); };
    auto bin = [&](auto fn) {
      src<T>(A, [&](const auto& a) { src<T>(B, [&](const auto& b) { call(fn, d, a, b); }); });
    };
    switch (static_cast<DsdOpCode>(cfg[0])) {
      case DsdOpCode::mov: un([&](const auto&... x) { wse::mov(pe, x...); }); break;
      case DsdOpCode::neg: un([&](const auto&... x) { wse::neg(pe, x...); }); break;
      case DsdOpCode::abs: un([&](const auto&... x) { wse::abs(pe, x...); }); break;
      case DsdOpCode::add: bin([&](const auto&... x) { wse::add(pe, x...); }); break;
      case DsdOpCode::sub: bin([&](const auto&... x) { wse::sub(pe, x...); }); break;
      case DsdOpCode::mul: bin([&](const auto&... x) { wse::mul(pe, x...); }); break;
      case DsdOpCode::max: bin([&](const auto&... x) { wse::max(pe, x...); }); break;
      case DsdOpCode::min: bin([&](const auto&... x) { wse::min(pe, x...); }); break;
      case DsdOpCode::mac:
        src<T>(A, [&](const auto& a) {
          src<T>(B, [&](const auto& b) {
            src<T>(C, [&](const auto& c) { call([&](const auto&... x) { wse::mac(pe, x...); }, d, a, b, c); });
          });
        });
        break;
      case DsdOpCode::band:
      case DsdOpCode::bor:
      case DsdOpCode::bxor:
      case DsdOpCode::shl:
      case DsdOpCode::shr:
        if constexpr (!std::is_same_v<T, float>) {
          switch (static_cast<DsdOpCode>(cfg[0])) {
            case DsdOpCode::band: bin([&](const auto&... x) { wse::bit_and(pe, x...); }); break;
            case DsdOpCode::bor: bin([&](const auto&... x) { wse::bit_or(pe, x...); }); break;
            case DsdOpCode::bxor: bin([&](const auto&... x) { wse::bit_xor(pe, x...); }); break;
            case DsdOpCode::shl: bin([&](const auto&... x) { wse::shl(pe, x...); }); break;
            default: bin([&](const auto&... x) { wse::shr(pe, x...); }); break;
          }
        }
        break;
      case DsdOpCode::cvt: {
        auto cv = [&](const auto& a) { call([&](const auto&... x) { wse::cvt(pe, x...); }, d, a); };
        switch (static_cast<ElemType>(cfg[2])) {
          case ElemType::f32: src<float>(A, cv); break;
          case ElemType::i32: src<std::int32_t>(A, cv); break;
          case ElemType::u32: src<std::uint32_t>(A, cv); break;
          case ElemType::i16: src<std::int16_t>(A, cv); break;
          case ElemType::u16: src<std::uint16_t>(A, cv); break;
          default: break;  // f16/bf16 sources: tests/test_half.cpp
        }
        break;
      }
    }
  }
  void go(PE& pe) {
    switch (static_cast<ElemType>(cfg[1])) {
      case ElemType::f32: run<float>(pe); break;
      case ElemType::i32: run<std::int32_t>(pe); break;
      case ElemType::u32: run<std::uint32_t>(pe); break;
      case ElemType::i16: run<std::int16_t>(pe); break;
      case ElemType::u16: run<std::uint16_t>(pe); break;
      default: break;  // f16/bf16: tests/test_half.cpp
    }
  }
};

// ---- host side: operand specs, reference semantics -----------------------------------------

/// One operand as the host describes it: a memory DSD (offset, dims innermost first,
/// strides) or a scalar.
struct Spec {
  Kind kind = kind_mem;
  std::uint32_t offset = 0;
  std::uint32_t dims[4] = {N, 1, 1, 1};
  std::int32_t strides[4] = {1, 0, 0, 0};
  std::uint32_t scalar = 0;
  std::uint32_t length() const { return dims[0] * dims[1] * dims[2] * dims[3]; }
};
Spec lin(std::uint32_t len, std::int32_t stride = 1, std::uint32_t offset = 0) {
  Spec s;
  s.dims[0] = len;
  s.strides[0] = stride;
  s.offset = offset;
  return s;
}
Spec nd(std::vector<std::uint32_t> dims, std::vector<std::int32_t> strides, std::uint32_t offset = 0) {
  Spec s;
  for (std::size_t k = 0; k < 4; ++k) {
    s.dims[k] = k < dims.size() ? dims[k] : 1;
    s.strides[k] = k < strides.size() ? strides[k] : 0;
  }
  s.offset = offset;
  return s;
}
template <class T> Spec scal(T v) {
  Spec s;
  s.kind = kind_scalar;
  if constexpr (sizeof(T) == 4) s.scalar = std::bit_cast<std::uint32_t>(v);
  else s.scalar = std::bit_cast<std::uint16_t>(v);
  return s;
}

/// Element addresses of a memory spec in element order: nested loops, innermost dim fastest.
std::vector<std::int64_t> addresses(const Spec& s) {
  std::vector<std::int64_t> out;
  for (std::uint32_t i3 = 0; i3 < s.dims[3]; ++i3)
    for (std::uint32_t i2 = 0; i2 < s.dims[2]; ++i2)
      for (std::uint32_t i1 = 0; i1 < s.dims[1]; ++i1)
        for (std::uint32_t i0 = 0; i0 < s.dims[0]; ++i0)
          out.push_back(std::int64_t{s.offset} + std::int64_t{i0} * s.strides[0] + std::int64_t{i1} * s.strides[1] +
                        std::int64_t{i2} * s.strides[2] + std::int64_t{i3} * s.strides[3]);
  return out;
}

template <class T> constexpr ElemType etype() { return wse::elem_type_of<T>; }
template <class T> const char* tname() { return wse::elem_name(etype<T>()); }

template <class T> std::uint32_t bits_of(T v) {
  if constexpr (sizeof(T) == 4) return std::bit_cast<std::uint32_t>(v);
  else return std::bit_cast<std::uint16_t>(v);
}

// fp32 reference: IEEE single arithmetic; mac fused; max/min return the non-NaN operand
// (maxNum/minNum); neg/abs touch only the sign bit.
float ref_max(float a, float b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  return a > b ? a : b;
}
float ref_min(float a, float b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  return a < b ? a : b;
}
float ref_f32(DsdOpCode op, float a, float b, float c) {
  switch (op) {
    case DsdOpCode::mov: return a;
    case DsdOpCode::add: return a + b;
    case DsdOpCode::sub: return a - b;
    case DsdOpCode::mul: return a * b;
    case DsdOpCode::mac: return std::fma(b, c, a);
    case DsdOpCode::max: return ref_max(a, b);
    case DsdOpCode::min: return ref_min(a, b);
    case DsdOpCode::neg: return std::bit_cast<float>(std::bit_cast<std::uint32_t>(a) ^ 0x80000000u);
    case DsdOpCode::abs: return std::bit_cast<float>(std::bit_cast<std::uint32_t>(a) & 0x7fffffffu);
    default: FAIL("not an fp32 op"); return 0;
  }
}

// Integer reference: arithmetic modulo 2^width; max/min/abs/shr by the type's signedness;
// shift amounts taken modulo the width (of the amount's bit pattern).
template <class T> T ref_int(DsdOpCode op, T a, T b, T c) {
  using U = std::make_unsigned_t<T>;
  constexpr unsigned W = sizeof(T) * 8;
  const std::uint64_t ua = static_cast<U>(a), ub = static_cast<U>(b), uc = static_cast<U>(c);
  auto wrap = [](std::uint64_t v) { return static_cast<T>(static_cast<U>(v)); };
  switch (op) {
    case DsdOpCode::mov: return a;
    case DsdOpCode::add: return wrap(ua + ub);
    case DsdOpCode::sub: return wrap(ua - ub);
    case DsdOpCode::mul: return wrap(ua * ub);
    case DsdOpCode::mac: return wrap(ua + ub * uc);
    case DsdOpCode::max: return a > b ? a : b;
    case DsdOpCode::min: return a < b ? a : b;
    case DsdOpCode::neg: return wrap(0 - ua);
    case DsdOpCode::abs: return a < 0 ? wrap(0 - ua) : a;
    case DsdOpCode::band: return wrap(ua & ub);
    case DsdOpCode::bor: return wrap(ua | ub);
    case DsdOpCode::bxor: return wrap(ua ^ ub);
    case DsdOpCode::shl: return wrap(ua << (ub % W));
    case DsdOpCode::shr:
      if constexpr (std::is_signed_v<T>) return static_cast<T>(a >> (ub % W));  // arithmetic (C++20)
      else return wrap(ua >> (ub % W));
    default: FAIL("not an integer op"); return 0;
  }
}

/// Round half to even, written out (no reliance on the FP environment).
double round_half_even(double x) {
  const double fl = std::floor(x);
  const double diff = x - fl;
  if (diff > 0.5) return fl + 1;
  if (diff < 0.5) return fl;
  return std::fmod(fl, 2.0) == 0.0 ? fl : fl + 1;
}

/// cvt reference: f32 -> integer rounds half to even and saturates, NaN -> 0; integer ->
/// integer keeps the value modulo 2^width; integer -> f32 rounds to nearest even.
template <class Dst, class Src> Dst ref_cvt(Src v) {
  if constexpr (std::is_same_v<Dst, Src>) {
    return v;
  } else if constexpr (std::is_same_v<Src, float>) {
    if (std::isnan(v)) return 0;
    const double lo = static_cast<double>(std::numeric_limits<Dst>::min());
    const double hi = static_cast<double>(std::numeric_limits<Dst>::max());
    const double r = round_half_even(static_cast<double>(v));
    if (r <= lo) return std::numeric_limits<Dst>::min();
    if (r >= hi) return std::numeric_limits<Dst>::max();
    return static_cast<Dst>(r);
  } else if constexpr (std::is_same_v<Dst, float>) {
    return static_cast<float>(static_cast<std::int64_t>(v));
  } else {
    return static_cast<Dst>(static_cast<std::int64_t>(v));  // modular (C++20)
  }
}

/// A one-PE runtime with the OpLab kernel.
struct Lab {
  wse::Program prog{wse::arch::wse2, 1, 1};
  std::unique_ptr<wse::host::Runtime> rt;
  Lab() {
    prog.add_region<OpLab>(prog.grid(), LabParams{});
    rt = std::make_unique<wse::host::Runtime>(prog, wse_test::config());
  }
  static constexpr Rect cell{{0, 0}, 1, 1};
  template <class T> static std::string sym(Role r) { return std::string(tname<T>()) + "_" + role_name[r]; }
  template <class T> void put(Role r, const std::vector<T>& v) {
    REQUIRE(v.size() == N);
    rt->memcpy_h2d<T>(sym<T>(r), v, cell, N);
  }
  template <class T> std::vector<T> get(Role r) { return rt->read<T>(sym<T>(r), cell, N); }
  std::uint32_t done() { return rt->read<std::uint32_t>("done", cell, 1)[0]; }

  void go(DsdOpCode op, ElemType dst, ElemType src, const Spec (&s)[4], bool async = false) {
    std::vector<std::uint32_t> cfg(cfg_role + 4 * cfg_per_role, 0);
    cfg[0] = static_cast<std::uint32_t>(op);
    cfg[1] = static_cast<std::uint32_t>(dst);
    cfg[2] = static_cast<std::uint32_t>(src);
    cfg[3] = async ? 1 : 0;
    for (unsigned r = 0; r < 4; ++r) {
      std::uint32_t* c = &cfg[cfg_role + r * cfg_per_role];
      c[0] = s[r].kind;
      c[1] = s[r].offset;
      for (int k = 0; k < 4; ++k) {
        c[2 + k] = s[r].dims[k];
        c[6 + k] = static_cast<std::uint32_t>(s[r].strides[k]);
      }
      c[10] = s[r].scalar;
    }
    rt->memcpy_h2d<std::uint32_t>("cfg", cfg, cell, static_cast<std::uint32_t>(cfg.size()));
    const auto report = rt->call("go");
    REQUIRE_MESSAGE(report.ok(), report.to_string());
  }
};

template <class T> T operand_value(const Spec& s, const std::vector<T>& arr, const std::vector<std::int64_t>& addr,
                                   std::size_t i) {
  if (s.kind == kind_scalar) {
    if constexpr (sizeof(T) == 4) return std::bit_cast<T>(s.scalar);
    else return std::bit_cast<T>(static_cast<std::uint16_t>(s.scalar));
  }
  REQUIRE(addr[i] >= 0);
  REQUIRE(addr[i] < std::int64_t{N});
  return arr[static_cast<std::size_t>(addr[i])];
}

/// Expected destination array after `op` (same-type ops), starting from `d0`.
template <class T>
std::vector<T> expected(DsdOpCode op, const Spec (&s)[4], const std::vector<T>& d0, const std::vector<T>& a,
                        const std::vector<T>& b, const std::vector<T>& c) {
  std::vector<T> d = d0;
  const auto ad = addresses(s[D]);
  const auto aa = addresses(s[A]), ab = addresses(s[B]), ac = addresses(s[C]);
  for (std::size_t i = 0; i < ad.size(); ++i) {
    const T x = operand_value(s[A], a, aa, i);
    const T y = (op == DsdOpCode::mov || op == DsdOpCode::neg || op == DsdOpCode::abs) ? T{} : operand_value(s[B], b, ab, i);
    const T z = op == DsdOpCode::mac ? operand_value(s[C], c, ac, i) : T{};
    T r;
    if constexpr (std::is_same_v<T, float>) r = ref_f32(op, x, y, z);
    else r = ref_int<T>(op, x, y, z);
    REQUIRE(ad[i] >= 0);
    REQUIRE(ad[i] < std::int64_t{N});
    d[static_cast<std::size_t>(ad[i])] = r;
  }
  return d;
}

/// Bit-for-bit comparison. For fp32 arithmetic whose exact result is NaN, any NaN is
/// accepted (the NaN payload is not specified); max/min of +0 and -0 may give either zero
/// (docs/ops.md does not say). max/min with a NaN operand, quiet or signaling, must give the
/// other operand bit for bit (docs/ops.md: "a NaN operand yields the other").
template <class T> void check_same(const std::vector<T>& got, const std::vector<T>& want, DsdOpCode op) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    if constexpr (std::is_same_v<T, float>) {
      const bool minmax = op == DsdOpCode::max || op == DsdOpCode::min;
      const bool arith = minmax || op == DsdOpCode::add || op == DsdOpCode::sub || op == DsdOpCode::mul ||
                         op == DsdOpCode::mac;
      if (arith && std::isnan(want[i])) {
        CHECK(std::isnan(got[i]));
        continue;
      }
      if (minmax && want[i] == 0.0f && got[i] == 0.0f) continue;
      CHECK(bits_of(got[i]) == bits_of(want[i]));
    } else {
      CHECK(bits_of(got[i]) == bits_of(want[i]));
    }
  }
}

// ---- value sets ----------------------------------------------------------------------------

struct Rng {
  std::uint64_t s;
  std::uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(s >> 32);
  }
};

std::vector<float> special_floats() {
  const float nan = std::bit_cast<float>(0x7fc00000u);
  const float snan = std::bit_cast<float>(0x7fa00001u);
  const float negnan = std::bit_cast<float>(0xffc00123u);
  const float inf = std::numeric_limits<float>::infinity();
  return {0.0f,         -0.0f,       1.0f,          -1.0f,        0.5f,          1.5f,         2.5f,        -2.5f,
          3.0f,         1.0f / 3,    FLT_MIN,       -FLT_MIN,     FLT_MAX,       -FLT_MAX,     inf,         -inf,
          nan,          snan,        negnan,        1e-45f,       -1e-40f,       16777216.0f,  16777217.0f, 1e30f,
          -1e30f,       0.1f,        -7.25f,        65504.0f,     2147483648.0f, 4294967296.0f, 1e-20f,     123456.789f};
}
std::vector<float> float_values(std::uint64_t seed) {
  std::vector<float> v = special_floats();
  Rng r{seed};
  while (v.size() < N) {
    // Random sign, exponent in a moderate range and mantissa: finite normal numbers.
    const std::uint32_t bits = (r.next() & 0x80000000u) | ((100u + r.next() % 55u) << 23) | (r.next() & 0x7fffffu);
    v.push_back(std::bit_cast<float>(bits));
  }
  // Rotate so the special values meet different partners in a, b and c.
  const std::size_t k = seed % N;
  std::vector<float> out(N);
  for (std::size_t i = 0; i < N; ++i) out[i] = v[(i + k) % N];
  return out;
}

template <class T> std::vector<T> int_values(std::uint64_t seed) {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {T(0), T(1), T(2), T(3), static_cast<T>(-1), static_cast<T>(-2), L::max(), L::min(),
                      static_cast<T>(L::max() - 1), static_cast<T>(L::min() + 1), static_cast<T>(L::max() / 2),
                      static_cast<T>(L::max() / 2 + 1)};
  Rng r{seed};
  while (v.size() < N) v.push_back(static_cast<T>(r.next() >> (seed % 7)));
  const std::size_t k = (seed * 7) % N;
  std::vector<T> out(N);
  for (std::size_t i = 0; i < N; ++i) out[i] = v[(i + k) % N];
  return out;
}

template <class T> std::vector<T> fill(T base) {
  std::vector<T> v(N);
  for (std::uint32_t i = 0; i < N; ++i) v[i] = static_cast<T>(base + static_cast<T>(i));
  return v;
}

}  // namespace

// ---- fp32 ops ------------------------------------------------------------------------------

TEST_CASE("fp32: every op, memory operands, against IEEE single arithmetic on the host") {
  Lab lab;
  const auto a = float_values(1), b = float_values(17), c = float_values(40);
  const auto d0 = fill<float>(-1000.0f);
  lab.put(A, a);
  lab.put(B, b);
  lab.put(C, c);
  const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
  for (DsdOpCode op : {DsdOpCode::mov, DsdOpCode::add, DsdOpCode::sub, DsdOpCode::mul, DsdOpCode::mac, DsdOpCode::max,
                       DsdOpCode::min, DsdOpCode::neg, DsdOpCode::abs}) {
    const std::string op_text = wse::op_name(op);
    CAPTURE(op_text);
    lab.put(D, d0);
    lab.go(op, ElemType::f32, ElemType::f32, s);
    check_same(lab.get<float>(D), expected(op, s, d0, a, b, c), op);
  }
}

TEST_CASE("fp32: scalar operands broadcast to every element") {
  Lab lab;
  const auto a = float_values(3), b = float_values(5), c = float_values(7);
  const auto d0 = fill<float>(0.25f);
  lab.put(A, a);
  lab.put(B, b);
  lab.put(C, c);
  struct Case {
    DsdOpCode op;
    Spec a, b, c;
  };
  const Case cases[] = {
      {DsdOpCode::mov, scal(2.75f), lin(N), lin(N)},            // fill
      {DsdOpCode::add, lin(N), scal(0.5f), lin(N)},             // a + s
      {DsdOpCode::sub, scal(1.0f), lin(N), lin(N)},             // s - b
      {DsdOpCode::mul, lin(N), scal(-3.0f), lin(N)},            // a * s
      {DsdOpCode::mac, lin(N), lin(N), scal(0.125f)},           // a + b * s
      {DsdOpCode::mac, lin(N), scal(1e10f), lin(N)},            // a + s * c
      {DsdOpCode::mac, scal(-1.0f), lin(N), lin(N)},            // s + b * c
      {DsdOpCode::max, lin(N), scal(0.0f), lin(N)},             // relu
      {DsdOpCode::min, scal(std::bit_cast<float>(0x7fc00000u)), lin(N), lin(N)},  // min(NaN, b) = b
  };
  for (const Case& k : cases) {
    const std::string op_text = wse::op_name(k.op);
    CAPTURE(op_text);
    const Spec s[4] = {lin(N), k.a, k.b, k.c};
    lab.put(D, d0);
    lab.go(k.op, ElemType::f32, ElemType::f32, s);
    check_same(lab.get<float>(D), expected(k.op, s, d0, a, b, c), k.op);
  }
}

TEST_CASE("fp32 max/min: a NaN operand, quiet or signaling, yields the other operand (regression)") {
  // docs/ops.md: IEEE maxNum/minNum, "a NaN operand yields the other". std::fmax on glibc
  // returned a quiet NaN for a signaling-NaN operand.
  Lab lab;
  const float qnan = std::bit_cast<float>(0x7fc00000u), snan = std::bit_cast<float>(0x7fa00001u);
  const float nnan = std::bit_cast<float>(0xff800001u);  // negative signaling NaN
  const float nums[4] = {-3.5f, 0.0f, std::numeric_limits<float>::infinity(), std::bit_cast<float>(0x00000001u)};
  std::vector<float> a(N), b(N);
  const float nans[3] = {qnan, snan, nnan};
  for (std::uint32_t i = 0; i < N; ++i) {
    const float nan = nans[i % 3], num = nums[(i / 3) % 4];
    a[i] = i % 2 ? nan : num;
    b[i] = i % 2 ? num : nan;
  }
  lab.put(A, a);
  lab.put(B, b);
  const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
  for (DsdOpCode op : {DsdOpCode::max, DsdOpCode::min}) {
    lab.go(op, ElemType::f32, ElemType::f32, s);
    const auto d = lab.get<float>(D);
    for (std::uint32_t i = 0; i < N; ++i) {
      CAPTURE(i);
      CHECK(bits_of(d[i]) == bits_of(i % 2 ? b[i] : a[i]));
    }
  }
  // Both NaN: the result is a NaN.
  lab.put(A, std::vector<float>(N, snan));
  lab.put(B, std::vector<float>(N, qnan));
  lab.go(DsdOpCode::max, ElemType::f32, ElemType::f32, s);
  for (float v : lab.get<float>(D)) CHECK(std::isnan(v));
}

TEST_CASE("fp32: mac is fused (one rounding), unlike a multiply followed by an add") {
  Lab lab;
  // b = c = 1 + 2^-12: b*c = 1 + 2^-11 + 2^-24 exactly, which rounds to 1 + 2^-11 in fp32.
  // With a = -(1 + 2^-11) the fused result is 2^-24; unfused it would be 0.
  const float e = std::ldexp(1.0f, -12);
  std::vector<float> a(N, -(1.0f + 2 * e)), b(N, 1.0f + e), c(N, 1.0f + e);
  a[1] = 1.0f;  // a normal case next to it: 1 + (1+e)^2 rounded once
  lab.put(A, a);
  lab.put(B, b);
  lab.put(C, c);
  lab.put(D, fill<float>(0));
  const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
  lab.go(DsdOpCode::mac, ElemType::f32, ElemType::f32, s);
  const auto d = lab.get<float>(D);
  CHECK(d[0] == std::ldexp(1.0f, -24));
  const volatile float unfused = b[0] * c[0];  // volatile: GCC would contract a + b*c into an fma
  CHECK(d[0] != a[0] + unfused);               // what an unfused computation gives (0)
  CHECK(bits_of(d[1]) == bits_of(static_cast<float>(1.0 + (1.0 + double(e)) * (1.0 + double(e)))));
}

TEST_CASE("fp32: mov, neg and abs preserve every bit but the sign (NaN payloads, -0, denormals)") {
  Lab lab;
  std::vector<float> a(N);
  Rng r{99};
  for (std::uint32_t i = 0; i < N; ++i) a[i] = std::bit_cast<float>(r.next());
  a[0] = std::bit_cast<float>(0x7fa00001u);  // signaling NaN
  a[1] = std::bit_cast<float>(0xffffffffu);
  a[2] = -0.0f;
  a[3] = std::bit_cast<float>(0x00000001u);
  lab.put(A, a);
  for (DsdOpCode op : {DsdOpCode::mov, DsdOpCode::neg, DsdOpCode::abs}) {
    const std::string op_text = wse::op_name(op);
    CAPTURE(op_text);
    const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
    lab.go(op, ElemType::f32, ElemType::f32, s);
    const auto d = lab.get<float>(D);
    for (std::uint32_t i = 0; i < N; ++i) {
      const std::uint32_t x = bits_of(a[i]);
      const std::uint32_t want = op == DsdOpCode::mov ? x : op == DsdOpCode::neg ? x ^ 0x80000000u : x & 0x7fffffffu;
      CHECK(bits_of(d[i]) == want);
    }
  }
}

// ---- integer ops ---------------------------------------------------------------------------

TEST_CASE_TEMPLATE("integer ops wrap modulo 2^width and respect signedness", T, std::int32_t, std::uint32_t, std::int16_t,
                   std::uint16_t) {
  Lab lab;
  const auto a = int_values<T>(11), b = int_values<T>(23), c = int_values<T>(5);
  const auto d0 = fill<T>(T(77));
  lab.put(A, a);
  lab.put(B, b);
  lab.put(C, c);
  const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
  for (DsdOpCode op : {DsdOpCode::mov, DsdOpCode::add, DsdOpCode::sub, DsdOpCode::mul, DsdOpCode::mac, DsdOpCode::max,
                       DsdOpCode::min, DsdOpCode::neg, DsdOpCode::abs, DsdOpCode::band, DsdOpCode::bor,
                       DsdOpCode::bxor, DsdOpCode::shl, DsdOpCode::shr}) {
    const std::string op_text = wse::op_name(op);
    CAPTURE(op_text);
    lab.put(D, d0);
    lab.go(op, etype<T>(), etype<T>(), s);
    check_same(lab.get<T>(D), expected(op, s, d0, a, b, c), op);
  }
}

TEST_CASE_TEMPLATE("integer wrap-around at the edges of the type", T, std::int32_t, std::uint32_t, std::int16_t,
                   std::uint16_t) {
  using L = std::numeric_limits<T>;
  Lab lab;
  std::vector<T> a(N, L::max()), b(N, T(1)), c(N, T(2));
  a[1] = L::min();
  b[1] = static_cast<T>(-1);  // min - (-1) ... and min + (-1) wraps to max
  a[2] = L::max();
  b[2] = L::max();
  a[3] = L::min();
  b[3] = L::min();
  lab.put(A, a);
  lab.put(B, b);
  lab.put(C, c);
  const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
  const T one = 1;
  const T max = L::max(), min = L::min();
  auto run = [&](DsdOpCode op) {
    lab.put(D, fill<T>(T(0)));
    lab.go(op, etype<T>(), etype<T>(), s);
    return lab.get<T>(D);
  };
  // Written out from the definition, independent of the reference function.
  const auto add = run(DsdOpCode::add);
  CHECK(add[0] == min);                                      // max + 1
  CHECK(add[1] == max);                                      // min + (all ones)
  CHECK(add[2] == static_cast<T>(-2));                       // max + max
  CHECK(add[3] == T(0));                                     // min + min
  const auto sub = run(DsdOpCode::sub);
  CHECK(sub[0] == static_cast<T>(max - one));
  CHECK(sub[1] == static_cast<T>(min + one));                // min - (all ones)
  const auto neg = run(DsdOpCode::neg);
  CHECK(neg[1] == min);  // -min wraps to min (for unsigned, min = 0)
  CHECK(neg[0] == static_cast<T>(min + one));
  const auto abs = run(DsdOpCode::abs);
  CHECK(abs[1] == min);  // |min| wraps to min for signed types; 0 for unsigned
  CHECK(abs[0] == max);
  const auto mul = run(DsdOpCode::mul);
  CHECK(mul[2] == T(1));  // max * max = 1 mod 2^w for both signednesses (odd * odd)
  CHECK(mul[3] == T(0));  // min * min
  const auto mac = run(DsdOpCode::mac);
  CHECK(mac[0] == static_cast<T>(min + one));  // max + 1 * 2
}

TEST_CASE_TEMPLATE("integer shifts: amount modulo the width; shr arithmetic for signed, logical for unsigned", T,
                   std::int32_t, std::uint32_t, std::int16_t, std::uint16_t) {
  using U = std::make_unsigned_t<T>;
  constexpr unsigned W = sizeof(T) * 8;
  Lab lab;
  std::vector<T> a(N), b(N);
  const T patterns[4] = {static_cast<T>(U(1) << (W - 1)), static_cast<T>(-1), static_cast<T>(0x5a5a5a5a),
                         static_cast<T>(U(0x80000001u) | U(1) << (W - 1))};
  for (std::uint32_t i = 0; i < N; ++i) {
    a[i] = patterns[i % 4];
    // Amounts 0..W+2, then large and negative ones.
    const std::int64_t amount = i <= W + 2 ? std::int64_t{i} : (i % 2 ? -std::int64_t{i - W} : std::int64_t{i} * 37);
    b[i] = static_cast<T>(amount);
  }
  lab.put(A, a);
  lab.put(B, b);
  const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
  for (DsdOpCode op : {DsdOpCode::shl, DsdOpCode::shr}) {
    const std::string op_text = wse::op_name(op);
    CAPTURE(op_text);
    lab.go(op, etype<T>(), etype<T>(), s);
    const auto d = lab.get<T>(D);
    for (std::uint32_t i = 0; i < N; ++i) {
      CAPTURE(i);
      const unsigned amount = static_cast<unsigned>(static_cast<U>(b[i]) % W);
      const U x = static_cast<U>(a[i]);
      U want;
      if (op == DsdOpCode::shl) {
        want = static_cast<U>(x << amount);
      } else if (std::is_signed_v<T>) {
        // Arithmetic: fill with copies of the sign bit.
        want = static_cast<U>(x >> amount);
        if (((x >> (W - 1)) & 1u) && amount > 0)
          want = static_cast<U>(want | static_cast<U>(static_cast<U>(~U(0)) << (W - amount)));
      } else {
        want = static_cast<U>(x >> amount);
      }
      CHECK(static_cast<U>(d[i]) == want);
    }
  }
  // Shift by a scalar amount equal to the width: modulo -> shift by 0.
  const Spec s2[4] = {lin(N), lin(N), scal(static_cast<T>(W)), lin(N)};
  lab.go(DsdOpCode::shl, etype<T>(), etype<T>(), s2);
  check_same(lab.get<T>(D), a, DsdOpCode::shl);
}

TEST_CASE("integer max/min compare by signedness") {
  Lab lab;
  std::vector<std::uint32_t> ua(N, 0x80000000u), ub(N, 1u);
  lab.put(A, ua);
  lab.put(B, ub);
  std::vector<std::int32_t> ia(N, std::numeric_limits<std::int32_t>::min()), ib(N, 1);
  lab.put(A, ia);
  lab.put(B, ib);
  std::vector<std::uint16_t> ha(N, 0x8000u), hb(N, 1u);
  lab.put(A, ha);
  lab.put(B, hb);
  std::vector<std::int16_t> sa(N, std::int16_t{-32768}), sb(N, std::int16_t{1});
  lab.put(A, sa);
  lab.put(B, sb);
  const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
  lab.go(DsdOpCode::max, ElemType::u32, ElemType::u32, s);
  CHECK(lab.get<std::uint32_t>(D)[0] == 0x80000000u);
  lab.go(DsdOpCode::max, ElemType::i32, ElemType::i32, s);
  CHECK(lab.get<std::int32_t>(D)[0] == 1);
  lab.go(DsdOpCode::min, ElemType::u16, ElemType::u16, s);
  CHECK(lab.get<std::uint16_t>(D)[0] == 1u);
  lab.go(DsdOpCode::min, ElemType::i16, ElemType::i16, s);
  CHECK(lab.get<std::int16_t>(D)[0] == -32768);
}

// ---- conversions ---------------------------------------------------------------------------

namespace {
std::vector<float> cvt_floats() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {0.0f,          -0.0f,          0.5f,          1.5f,          2.5f,          -0.5f,
                          -1.5f,         -2.5f,          0.49999997f,   -0.6f,         3.5f,          -3.5f,
                          32767.0f,      32767.5f,       32766.5f,      -32768.0f,     -32768.5f,     -32769.0f,
                          65535.0f,      65535.5f,       65534.5f,      65536.0f,      2147483520.0f, 2147483648.0f,
                          -2147483648.0f, -2147483904.0f, 4294967040.0f, 4294967296.0f, 1e20f,         -1e20f,
                          inf,           -inf,           std::bit_cast<float>(0x7fc00000u), std::bit_cast<float>(0xffc00001u),
                          1e-45f,        -1e-45f,        16777217.0f,   8388608.5f,    123.456f,      -123.456f};
  Rng r{7};
  while (v.size() < N) v.push_back(std::ldexp(static_cast<float>(static_cast<std::int32_t>(r.next())), -int(r.next() % 40)));
  return v;
}

template <class Dst, class Src> void check_cvt(Lab& lab, const std::vector<Src>& a) {
  const std::string conversion = std::string(tname<Src>()) + " -> " + tname<Dst>();
  CAPTURE(conversion);
  lab.put(A, a);
  lab.put(D, fill<Dst>(Dst(9)));
  const Spec s[4] = {lin(N), lin(N), lin(N), lin(N)};
  lab.go(DsdOpCode::cvt, etype<Dst>(), etype<Src>(), s);
  const auto d = lab.get<Dst>(D);
  for (std::uint32_t i = 0; i < N; ++i) {
    CAPTURE(i);
    CAPTURE(static_cast<double>(a[i]));
    CHECK(bits_of(d[i]) == bits_of(ref_cvt<Dst, Src>(a[i])));
  }
}

template <class Src> std::vector<Src> cvt_source() {
  if constexpr (std::is_same_v<Src, float>) return cvt_floats();
  else {
    auto v = int_values<Src>(31);
    // Integers that do not fit a float's 24-bit mantissa: ties and non-ties.
    if constexpr (sizeof(Src) == 4) {
      v[40] = static_cast<Src>(16777217);
      v[41] = static_cast<Src>(16777219);
      v[42] = static_cast<Src>(0x7fffffc0);
      v[43] = static_cast<Src>(0x7fffffbf);
      v[44] = static_cast<Src>(0xffffff80u);
    }
    return v;
  }
}

template <class Dst> void check_cvt_from_all(Lab& lab) {
  check_cvt<Dst, float>(lab, cvt_source<float>());
  check_cvt<Dst, std::int32_t>(lab, cvt_source<std::int32_t>());
  check_cvt<Dst, std::uint32_t>(lab, cvt_source<std::uint32_t>());
  check_cvt<Dst, std::int16_t>(lab, cvt_source<std::int16_t>());
  check_cvt<Dst, std::uint16_t>(lab, cvt_source<std::uint16_t>());
}
}  // namespace

TEST_CASE("cvt: every pair of element types (round half to even, saturate, NaN -> 0, wrap)") {
  // Spot checks of the reference itself, from the definition.
  CHECK(ref_cvt<std::int32_t>(2.5f) == 2);
  CHECK(ref_cvt<std::int32_t>(-2.5f) == -2);
  CHECK(ref_cvt<std::int32_t>(3.5f) == 4);
  CHECK(ref_cvt<std::int32_t>(2147483648.0f) == 2147483647);
  CHECK(ref_cvt<std::uint32_t>(-1.5f) == 0u);
  CHECK(ref_cvt<std::int16_t>(32767.5f) == 32767);
  CHECK(ref_cvt<std::int16_t>(-32768.5f) == -32768);
  CHECK(ref_cvt<std::uint16_t>(std::bit_cast<float>(0x7fc00000u)) == 0);
  CHECK(ref_cvt<float>(std::int32_t{16777217}) == 16777216.0f);
  CHECK(ref_cvt<float>(std::uint32_t{0xffffffffu}) == 4294967296.0f);
  CHECK(ref_cvt<std::int16_t>(std::int32_t{0x12348765}) == std::int16_t(-30875));
  CHECK(ref_cvt<std::uint32_t>(std::int16_t{-1}) == 0xffffffffu);
  CHECK(ref_cvt<std::int32_t>(std::uint16_t{0xffff}) == 65535);

  Lab lab;
  check_cvt_from_all<float>(lab);
  check_cvt_from_all<std::int32_t>(lab);
  check_cvt_from_all<std::uint32_t>(lab);
  check_cvt_from_all<std::int16_t>(lab);
  check_cvt_from_all<std::uint16_t>(lab);
}

TEST_CASE("cvt from a scalar source") {
  Lab lab;
  const Spec s[4] = {lin(N), scal(std::int16_t{-7}), lin(N), lin(N)};
  lab.go(DsdOpCode::cvt, ElemType::f32, ElemType::i16, s);
  for (float v : lab.get<float>(D)) CHECK(v == -7.0f);
}

// ---- addressing ----------------------------------------------------------------------------

TEST_CASE("4-D DSDs: element (i0..i3) at offset + sum(ik * sk), i0 fastest") {
  Lab lab;
  std::vector<float> a(N), b(N);
  for (std::uint32_t i = 0; i < N; ++i) {
    a[i] = static_cast<float>(i) + 0.5f;
    b[i] = static_cast<float>(1000 + i);
  }
  lab.put(A, a);
  lab.put(B, b);
  const auto d0 = fill<float>(-1.0f);
  struct Case {
    const char* what;
    DsdOpCode op;
    Spec d, a, b;
  };
  const Case cases[] = {
      {"transpose 4x8 -> 8x4", DsdOpCode::mov, nd({8, 4}, {1, 8}), nd({8, 4}, {4, 1}), lin(32)},
      {"4 dims, all strides positive", DsdOpCode::add, nd({2, 2, 2, 2}, {1, 2, 4, 8}), nd({2, 2, 2, 2}, {2, 1, 8, 4}),
       nd({2, 2, 2, 2}, {8, 4, 2, 1}, 1)},
      {"negative strides with offset", DsdOpCode::sub, nd({4, 3}, {-1, -4}, 11), nd({4, 3}, {1, 16}, 2),
       nd({3, 4}, {-5, 1}, 40)},
      {"broadcast a row (stride 0)", DsdOpCode::mul, nd({5, 6}, {1, 5}), nd({5, 6}, {1, 0}, 3), nd({5, 6}, {0, 1}, 9)},
      {"dims of extent 1 in the middle", DsdOpCode::max, nd({3, 1, 4, 1}, {2, 100, 7, -50}, 1), lin(12, 5, 2),
       nd({1, 12}, {9, 3}, 20)},
      {"1-D through mem4d, stride 3", DsdOpCode::min, nd({21}, {3}), nd({21}, {-3}, 63), lin(21)},
      {"last element only", DsdOpCode::mov, nd({1, 1, 1, 1}, {0, 0, 0, 0}, N - 1), nd({1}, {0}, N - 1), lin(1)},
      {"full 4-D extent 4x4x2x2", DsdOpCode::add, nd({4, 4, 2, 2}, {1, 4, 16, 32}), nd({4, 4, 2, 2}, {4, 1, 32, 16}),
       nd({4, 4, 2, 2}, {1, 4, 32, 16})},
  };
  for (const Case& k : cases) {
    const std::string what = k.what;
    CAPTURE(what);
    REQUIRE(k.d.length() == k.a.length());
    const Spec s[4] = {k.d, k.a, k.b, lin(k.d.length())};
    lab.put(D, d0);
    lab.go(k.op, ElemType::f32, ElemType::f32, s);
    check_same(lab.get<float>(D), expected(k.op, s, d0, a, b, a), k.op);
  }
  // The transpose, spelled out: d[j + 8 i] = a[4 j + i].
  const Spec t[4] = {cases[0].d, cases[0].a, lin(32), lin(32)};
  lab.put(D, d0);
  lab.go(DsdOpCode::mov, ElemType::f32, ElemType::f32, t);
  const auto d = lab.get<float>(D);
  for (std::uint32_t i = 0; i < 4; ++i)
    for (std::uint32_t j = 0; j < 8; ++j) CHECK(d[j + 8 * i] == a[4 * j + i]);
}

TEST_CASE("4-D DSDs on 16-bit elements address by element, not by byte") {
  Lab lab;
  std::vector<std::uint16_t> a(N);
  for (std::uint32_t i = 0; i < N; ++i) a[i] = static_cast<std::uint16_t>(0xf000u + i);
  lab.put(A, a);
  const auto d0 = fill<std::uint16_t>(1);
  lab.put(D, d0);
  const Spec s[4] = {nd({4, 4}, {4, 1}, 0), nd({4, 4}, {1, 4}, 3), lin(16), lin(16)};
  lab.go(DsdOpCode::mov, ElemType::u16, ElemType::u16, s);
  check_same(lab.get<std::uint16_t>(D), expected(DsdOpCode::mov, s, d0, a, a, a), DsdOpCode::mov);
}

TEST_CASE("length 0 leaves the destination untouched; length 1 touches exactly one element") {
  Lab lab;
  const auto a = float_values(2), b = float_values(8);
  lab.put(A, a);
  lab.put(B, b);
  const auto d0 = fill<float>(5.0f);
  for (std::uint32_t len : {0u, 1u}) {
    CAPTURE(len);
    // For length 0, even offsets past the end are fine: nothing is accessed.
    const Spec s[4] = {lin(len, 1, len == 0 ? 1000 : N - 1), lin(len, -1, len == 0 ? 5000 : 0), lin(len), lin(len)};
    lab.put(D, d0);
    lab.go(DsdOpCode::add, ElemType::f32, ElemType::f32, s);
    const auto d = lab.get<float>(D);
    std::vector<float> want = d0;
    if (len == 1) want[N - 1] = a[0] + b[0];
    check_same(d, want, DsdOpCode::add);
  }
}

TEST_CASE("async ops on memory operands complete and fire their completion (length 0 included)") {
  Lab lab;
  const auto a = int_values<std::int32_t>(3), b = int_values<std::int32_t>(4);
  lab.put(A, a);
  lab.put(B, b);
  const auto d0 = fill<std::int32_t>(0);
  std::uint32_t fired = 0;
  for (std::uint32_t len : {0u, 1u, 2u, N}) {
    CAPTURE(len);
    const Spec s[4] = {lin(len), lin(len), lin(len), lin(len)};
    lab.put(D, d0);
    lab.go(DsdOpCode::sub, ElemType::i32, ElemType::i32, s, /*async=*/true);
    ++fired;
    CHECK(lab.done() == fired);
    check_same(lab.get<std::int32_t>(D), expected(DsdOpCode::sub, s, d0, a, b, a), DsdOpCode::sub);
  }
}

// ---- 1-D DSD builders ----------------------------------------------------------------------

namespace {
// Runs d = a + b with 1-D DSDs built by mem1d(...).with_length/with_stride/with_offset from
// "geo": [0] length, then (offset, stride) for d, a, b; on f32 and on u16 arrays.
template <class PE> struct Strided1d {
  using Params = LabParams;
  float fd[40] = {}, fa[40] = {}, fb[40] = {};
  std::uint16_t hd[40] = {}, ha[40] = {};
  std::uint32_t geo[8] = {};
  void init(PE& pe, const Params&) {
    wse::export_symbol(pe, "fd", fd);
    wse::export_symbol(pe, "fa", fa);
    wse::export_symbol(pe, "fb", fb);
    wse::export_symbol(pe, "hd", hd);
    wse::export_symbol(pe, "ha", ha);
    wse::export_symbol(pe, "geo", geo);
    wse::export_function<&Strided1d::go>(pe, "go");
  }
  template <class T, std::size_t M> wse::Mem1d<T> dsd(T (&arr)[M], unsigned k) {
    return wse::mem1d(arr).with_length(geo[0]).with_offset(geo[1 + 2 * k]).with_stride(static_cast<std::int32_t>(geo[2 + 2 * k]));
  }
  void go(PE& pe) {
    wse::add(pe, dsd(fd, 0), dsd(fa, 1), dsd(fb, 2));
    wse::mov(pe, dsd(hd, 0), dsd(ha, 1));
  }
};
}  // namespace

TEST_CASE("1-D DSDs: length, stride and offset, including negative and zero strides") {
  constexpr std::uint32_t M = 40;
  wse::Program prog(wse::arch::wse2, 1, 1);
  prog.add_region<Strided1d>(prog.grid(), LabParams{});
  wse::host::Runtime rt(prog, wse_test::config());
  const Rect cell{{0, 0}, 1, 1};
  std::vector<float> fa(M), fb(M);
  std::vector<std::uint16_t> ha(M);
  for (std::uint32_t i = 0; i < M; ++i) {
    fa[i] = static_cast<float>(i);
    fb[i] = static_cast<float>(100 * i);
    ha[i] = static_cast<std::uint16_t>(0xabc0u + i);
  }
  rt.memcpy_h2d<float>("fa", fa, cell, M);
  rt.memcpy_h2d<float>("fb", fb, cell, M);
  rt.memcpy_h2d<std::uint16_t>("ha", ha, cell, M);
  struct Case {
    std::uint32_t len;
    std::uint32_t off[3];
    std::int32_t stride[3];
  };
  const Case cases[] = {
      {M, {0, 0, 0}, {1, 1, 1}},
      {10, {3, 0, 39}, {2, 4, -3}},
      {5, {9, 9, 0}, {-2, -2, 0}},     // negative strides ending at element 1; b broadcast
      {1, {39, 0, 39}, {1, 1, 1}},     // the last element only
      {0, {39, 39, 39}, {7, 7, 7}},    // nothing
      {13, {36, 0, 12}, {-3, 3, -1}},  // reaching element 0 from the top
      {40, {0, 39, 20}, {1, -1, 0}},   // reverse copy
  };
  for (const Case& k : cases) {
    CAPTURE(k.len);
    CAPTURE(k.off[0]);
    CAPTURE(k.stride[0]);
    std::vector<float> fd(M, -1.0f);
    std::vector<std::uint16_t> hd(M, 0x1111u);
    rt.memcpy_h2d<float>("fd", fd, cell, M);
    rt.memcpy_h2d<std::uint16_t>("hd", hd, cell, M);
    const std::vector<std::uint32_t> geo = {k.len,
                                            k.off[0], static_cast<std::uint32_t>(k.stride[0]),
                                            k.off[1], static_cast<std::uint32_t>(k.stride[1]),
                                            k.off[2], static_cast<std::uint32_t>(k.stride[2]),
                                            0};
    rt.memcpy_h2d<std::uint32_t>("geo", geo, cell, 8);
    const auto report = rt.call("go");
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    for (std::uint32_t i = 0; i < k.len; ++i) {
      auto at = [&](int r) { return static_cast<std::size_t>(std::int64_t{k.off[r]} + std::int64_t{i} * k.stride[r]); };
      fd[at(0)] = fa[at(1)] + fb[at(2)];
      hd[at(0)] = ha[at(1)];
    }
    CHECK(rt.read<float>("fd", cell, M) == fd);
    CHECK(rt.read<std::uint16_t>("hd", cell, M) == hd);
  }
}

// ---- fabric DSDs ---------------------------------------------------------------------------

namespace {
struct FabParams {
  Color in, out;
};
// Fabric lab: "cfg" = {mode, n, index_base, k}; "go" issues the mode's async op(s), each
// completing by activating task 9 (which counts in "done").
template <class PE> struct FabLab {
  using Params = FabParams;
  Params p;
  std::uint32_t cfg[4] = {};
  std::uint32_t ux[N] = {}, uy[N] = {};
  float fx[N] = {}, fy[N] = {};
  std::uint16_t hx[N] = {}, hy[N] = {};
  std::int16_t sx[N] = {}, sy[N] = {};
  std::uint32_t done[1] = {};
  void init(PE& pe, const Params& params) {
    p = params;
    wse::export_symbol(pe, "cfg", cfg);
    wse::export_symbol(pe, "ux", ux);
    wse::export_symbol(pe, "uy", uy);
    wse::export_symbol(pe, "fx", fx);
    wse::export_symbol(pe, "fy", fy);
    wse::export_symbol(pe, "hx", hx);
    wse::export_symbol(pe, "hy", hy);
    wse::export_symbol(pe, "sx", sx);
    wse::export_symbol(pe, "sy", sy);
    wse::export_symbol(pe, "done", done);
    wse::bind_local_task<&FabLab::on_done>(pe, TaskId{9});
    wse::export_function<&FabLab::go>(pe, "go");
  }
  void on_done(PE&) { ++done[0]; }
  void go(PE& pe) {
    const std::uint32_t n = cfg[1], k = cfg[3];
    const auto base = static_cast<std::uint16_t>(cfg[2]);
    const wse::Completion fire = wse::then_activate(TaskId{9});
    auto m = [n](auto& arr) { return wse::mem1d(arr).with_length(n); };
    switch (cfg[0]) {
      // fabric output
      case 0: wse::mov(pe, wse::fabout<std::uint32_t>(p.out, n), m(ux), fire); break;
      case 1: wse::mul(pe, wse::fabout<std::uint32_t>(p.out, n), m(ux), m(uy), fire); break;
      case 2: wse::add(pe, wse::fabout<float>(p.out, n), m(fx), 0.5f, fire); break;
      case 3: wse::mov(pe, wse::fabout<std::uint16_t>(p.out, n).with_index(base), m(hx), fire); break;
      case 4: wse::mov(pe, wse::fabout<std::uint16_t>(p.out, n), m(hx), fire); break;
      case 5: wse::mov(pe, wse::fabout<std::int16_t>(p.out, n).with_index(base), m(sx), fire); break;
      case 6: wse::mov(pe, wse::fabout<std::uint32_t>(p.out, n).as_control(), m(ux), fire); break;
      case 7: wse::cvt(pe, wse::fabout<float>(p.out, n), m(sx), fire); break;
      // fabric input
      case 10: wse::mov(pe, m(uy), wse::fabin<std::uint32_t>(p.in, n), fire); break;
      case 11: wse::add(pe, m(uy), wse::fabin<std::uint32_t>(p.in, n), m(ux), fire); break;
      case 12: wse::mac(pe, m(fy), m(fx), wse::fabin<float>(p.in, n), 2.0f, fire); break;
      case 13: wse::mov(pe, m(hy), wse::fabin<std::uint16_t>(p.in, n), fire); break;
      case 14: wse::cvt(pe, m(fy), wse::fabin<std::int16_t>(p.in, n), fire); break;
      case 15:  // two ops on one color run in issue order
        wse::mov(pe, wse::mem1d(uy).with_length(k), wse::fabin<std::uint32_t>(p.in, k), fire);
        wse::mov(pe, wse::mem1d(ux).with_length(n - k), wse::fabin<std::uint32_t>(p.in, n - k), fire);
        break;
      // 16-bit shifts straight from the fabric: only the low half may take part
      case 17: wse::shr(pe, m(hy), wse::fabin<std::uint16_t>(p.in, n), std::uint16_t{4}, fire); break;
      case 18: wse::shr(pe, m(sy), wse::fabin<std::int16_t>(p.in, n), std::int16_t{3}, fire); break;
      // fabric input to fabric output in one op
      case 16: wse::sub(pe, wse::fabout<std::uint32_t>(p.out, n), wse::fabin<std::uint32_t>(p.in, n), std::uint32_t{1}, fire); break;
      default: break;
    }
  }
};

/// One PE at the fabric edge: color 1 enters from the west (stream "in") and goes to RAMP;
/// color 2 leaves RAMP eastwards (stream "out").
struct FabRig {
  static constexpr Color in{1}, out{2};
  static constexpr Rect cell{{0, 0}, 1, 1};
  wse::Program prog{wse::arch::wse2, 1, 1};
  std::unique_ptr<wse::host::Runtime> rt;
  FabRig() {
    prog.add_region<FabLab>(prog.grid(), FabParams{in, out});
    prog.set_route(Coord{0, 0}, in, wse::ColorRoute{wse::west, wse::ramp});
    prog.set_route(Coord{0, 0}, out, wse::ColorRoute{wse::ramp, wse::east});
    prog.add_input_stream("in", in, {0, 0}, wse::west);
    prog.add_output_stream("out", out, {0, 0}, wse::east);
    rt = std::make_unique<wse::host::Runtime>(prog, wse_test::config());
  }
  void go(std::uint32_t mode, std::uint32_t n, std::uint32_t index_base = 0, std::uint32_t k = 0) {
    const std::uint32_t before = done();
    rt->memcpy_h2d<std::uint32_t>("cfg", std::vector<std::uint32_t>{mode, n, index_base, k}, cell, 4);
    const auto report = rt->call("go");
    REQUIRE_MESSAGE(report.ok(), report.to_string());
    // Mode 15's two completions may land in one activation (one bit): at least one run.
    if (mode == 15) CHECK(done() > before);
    else CHECK(done() == before + 1);
  }
  std::uint32_t done() { return rt->read<std::uint32_t>("done", cell, 1)[0]; }
  template <class T> void put(const char* name, const std::vector<T>& v) { rt->memcpy_h2d<T>(name, v, cell, N); }
  template <class T> std::vector<T> get(const char* name) { return rt->read<T>(name, cell, N); }
};
}  // namespace

TEST_CASE("fabric output DSDs: one wavelet per element, in order, 32-bit payloads") {
  FabRig rig;
  std::vector<std::uint32_t> ux(N), uy(N);
  std::vector<float> fx = float_values(9);
  Rng r{5};
  for (std::uint32_t i = 0; i < N; ++i) {
    ux[i] = r.next();
    uy[i] = r.next();
  }
  rig.put("ux", ux);
  rig.put("uy", uy);
  rig.put("fx", fx);
  for (std::uint32_t n : {0u, 1u, 7u, N}) {
    CAPTURE(n);
    rig.go(0, n);  // mov
    auto w = rig.rt->stream_out("out");
    REQUIRE(w.size() == n);
    for (std::uint32_t i = 0; i < n; ++i) {
      CHECK(w[i].data == ux[i]);
      CHECK_FALSE(w[i].control);
    }
    rig.go(1, n);  // mul into the fabric, wrapping
    w = rig.rt->stream_out("out");
    REQUIRE(w.size() == n);
    for (std::uint32_t i = 0; i < n; ++i) CHECK(w[i].data == static_cast<std::uint32_t>(std::uint64_t{ux[i]} * uy[i]));
    rig.go(2, n);  // fp32 add into the fabric
    w = rig.rt->stream_out("out");
    REQUIRE(w.size() == n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const float want = fx[i] + 0.5f;
      if (std::isnan(want)) CHECK(std::isnan(w[i].f32()));
      else CHECK(w[i].data == bits_of(want));
    }
  }
}

TEST_CASE("fabric output DSDs with 16-bit elements: data in the low half, optional index in the high half") {
  FabRig rig;
  std::vector<std::uint16_t> hx(N);
  std::vector<std::int16_t> sx(N);
  for (std::uint32_t i = 0; i < N; ++i) {
    hx[i] = static_cast<std::uint16_t>(0xffffu - 977u * i);
    sx[i] = static_cast<std::int16_t>(i % 2 ? -static_cast<int>(i) * 301 : static_cast<int>(i) * 17);
  }
  rig.put("hx", hx);
  rig.put("sx", sx);
  for (std::uint32_t base : {0u, 100u, 0xfff0u}) {  // 0xfff0 + 64 wraps the 16-bit index
    CAPTURE(base);
    rig.go(3, N, base);
    auto w = rig.rt->stream_out("out");
    REQUIRE(w.size() == N);
    for (std::uint32_t i = 0; i < N; ++i) {
      CHECK(w[i].lo16() == hx[i]);
      CHECK(w[i].index() == ((base + i) & 0xffffu));
    }
    rig.go(5, N, base);
    w = rig.rt->stream_out("out");
    REQUIRE(w.size() == N);
    for (std::uint32_t i = 0; i < N; ++i) {
      // A negative int16 is not sign-extended into the index half.
      CHECK(w[i].data == (std::uint32_t{static_cast<std::uint16_t>(sx[i])} | (((base + i) & 0xffffu) << 16)));
    }
  }
  rig.go(4, N);  // no index: high half zero
  const auto w = rig.rt->stream_out("out");
  REQUIRE(w.size() == N);
  for (std::uint32_t i = 0; i < N; ++i) CHECK(w[i].data == hx[i]);
  rig.go(7, N);  // cvt i16 -> f32 into the fabric
  const auto f = rig.rt->stream_out("out");
  REQUIRE(f.size() == N);
  for (std::uint32_t i = 0; i < N; ++i) CHECK(f[i].f32() == static_cast<float>(sx[i]));
}

TEST_CASE("fabric output DSD as control: every element leaves as a control wavelet") {
  FabRig rig;
  std::vector<std::uint32_t> ux(N);
  for (std::uint32_t i = 0; i < N; ++i) {
    wse::ControlPayload c;
    c.task = TaskId{static_cast<std::uint8_t>(i)};
    c.user = static_cast<std::uint16_t>(i * 1000);
    ux[i] = c.encode();  // activate = false: harmless wherever it goes
  }
  rig.put("ux", ux);
  rig.go(6, 5);
  const auto w = rig.rt->stream_out("out");
  REQUIRE(w.size() == 5);
  for (std::uint32_t i = 0; i < 5; ++i) {
    CHECK(w[i].control);
    CHECK(w[i].data == ux[i]);
  }
}

TEST_CASE("fabric input DSDs: one wavelet per element, 16-bit elements take the low half") {
  FabRig rig;
  std::vector<std::uint32_t> ux(N);
  std::vector<float> fx = float_values(21);
  for (std::uint32_t i = 0; i < N; ++i) ux[i] = 0x01000000u * i + 3;
  rig.put("ux", ux);
  rig.put("fx", fx);
  Rng r{77};
  std::vector<std::uint32_t> in(N);
  for (auto& v : in) v = r.next();

  for (std::uint32_t n : {1u, 6u, N}) {  // n > input queue depth: the op drains as wavelets arrive
    CAPTURE(n);
    rig.put("uy", std::vector<std::uint32_t>(N, 0xdeadbeefu));
    rig.rt->stream_in<std::uint32_t>("in", std::vector<std::uint32_t>(in.begin(), in.begin() + n));
    rig.go(10, n);
    auto uy = rig.get<std::uint32_t>("uy");
    for (std::uint32_t i = 0; i < N; ++i) CHECK(uy[i] == (i < n ? in[i] : 0xdeadbeefu));

    rig.rt->stream_in<std::uint32_t>("in", std::vector<std::uint32_t>(in.begin(), in.begin() + n));
    rig.go(11, n);  // uy = fabin + ux (wrapping)
    uy = rig.get<std::uint32_t>("uy");
    for (std::uint32_t i = 0; i < n; ++i) CHECK(uy[i] == static_cast<std::uint32_t>(std::uint64_t{in[i]} + ux[i]));
  }

  // fp32: fy = fx + fabin * 2 (fused)
  std::vector<float> fin(N);
  for (std::uint32_t i = 0; i < N; ++i) fin[i] = std::bit_cast<float>(0x3f800000u + (in[i] & 0x00ffffffu)) - 1.5f;
  rig.rt->stream_in<float>("in", fin);
  rig.go(12, N);
  const auto fy = rig.get<float>("fy");
  for (std::uint32_t i = 0; i < N; ++i) {
    const float want = std::fma(fin[i], 2.0f, fx[i]);
    if (std::isnan(want)) CHECK(std::isnan(fy[i]));
    else CHECK(bits_of(fy[i]) == bits_of(want));
  }

  // 16-bit: the high half of each wavelet (garbage here) is ignored.
  rig.rt->stream_in<std::uint32_t>("in", in);
  rig.go(13, N);
  const auto hy = rig.get<std::uint16_t>("hy");
  for (std::uint32_t i = 0; i < N; ++i) CHECK(hy[i] == (in[i] & 0xffffu));
  // Shifts see only the low half: logical for u16, arithmetic for i16.
  rig.rt->stream_in<std::uint32_t>("in", in);
  rig.go(17, N);
  const auto hs = rig.get<std::uint16_t>("hy");
  for (std::uint32_t i = 0; i < N; ++i) CHECK(hs[i] == ((in[i] & 0xffffu) >> 4));
  rig.rt->stream_in<std::uint32_t>("in", in);
  rig.go(18, N);
  const auto ss = rig.get<std::int16_t>("sy");
  for (std::uint32_t i = 0; i < N; ++i) {
    const std::int32_t low = static_cast<std::int16_t>(in[i] & 0xffffu);
    CHECK(ss[i] == static_cast<std::int16_t>(low >> 3));  // C++20: arithmetic
  }
  // i16 -> f32 conversion from the fabric sign-extends the low half.
  rig.rt->stream_in<std::uint32_t>("in", in);
  rig.go(14, N);
  const auto fy2 = rig.get<float>("fy");
  for (std::uint32_t i = 0; i < N; ++i) CHECK(fy2[i] == static_cast<float>(static_cast<std::int16_t>(in[i] & 0xffffu)));
}

TEST_CASE("fabric input: two ops on one color take the wavelets in issue order") {
  FabRig rig;
  std::vector<std::uint32_t> in(N);
  for (std::uint32_t i = 0; i < N; ++i) in[i] = 5000 + i;
  for (std::uint32_t k : {0u, 1u, 20u, N}) {
    CAPTURE(k);
    rig.put("ux", std::vector<std::uint32_t>(N, 0));
    rig.put("uy", std::vector<std::uint32_t>(N, 0));
    rig.rt->stream_in<std::uint32_t>("in", in);
    rig.go(15, N, 0, k);
    const auto uy = rig.get<std::uint32_t>("uy");
    const auto ux = rig.get<std::uint32_t>("ux");
    for (std::uint32_t i = 0; i < k; ++i) CHECK(uy[i] == in[i]);
    for (std::uint32_t i = 0; i < N - k; ++i) CHECK(ux[i] == in[k + i]);
  }
}

TEST_CASE("one op reading a fabric input and writing a fabric output streams through the PE") {
  FabRig rig;
  std::vector<std::uint32_t> in(N);
  for (std::uint32_t i = 0; i < N; ++i) in[i] = i * 0x9e3779b9u;
  in[0] = 0;  // 0 - 1 wraps
  rig.rt->stream_in<std::uint32_t>("in", in);
  rig.go(16, N);
  const auto out = rig.rt->stream_out_as<std::uint32_t>("out");
  REQUIRE(out.size() == N);
  for (std::uint32_t i = 0; i < N; ++i) CHECK(out[i] == in[i] - 1u);
}

TEST_CASE("fabric output on one PE feeds fabric input on the next (fp32, end to end)") {
  // (0,0) sends fx + 0.5 on color 2 south; (0,1) computes fy = fx' + fabin * 2.
  const Color c{2};
  wse::Program prog(wse::arch::wse2, 1, 2);
  prog.add_region<FabLab>(Rect{{0, 0}, 1, 1}, FabParams{Color{1}, c});
  prog.add_region<FabLab>(Rect{{0, 1}, 1, 1}, FabParams{c, Color{3}});
  wse::routes::path(prog.route_sink(), c, {0, 0}, wse::south, 2);
  wse::host::Runtime rt(prog, wse_test::config());
  const Rect top{{0, 0}, 1, 1}, bottom{{0, 1}, 1, 1};
  const auto x0 = float_values(13), x1 = float_values(29);
  rt.memcpy_h2d<float>("fx", x0, top, N);
  rt.memcpy_h2d<float>("fx", x1, bottom, N);
  rt.memcpy_h2d<std::uint32_t>("cfg", std::vector<std::uint32_t>{2, N, 0, 0}, top, 4);
  rt.memcpy_h2d<std::uint32_t>("cfg", std::vector<std::uint32_t>{12, N, 0, 0}, bottom, 4);
  const auto report = rt.call("go");
  REQUIRE_MESSAGE(report.ok(), report.to_string());
  CHECK(rt.read<std::uint32_t>("done", Rect{{0, 0}, 1, 2}, 1) == std::vector<std::uint32_t>{1, 1});
  const auto fy = rt.read<float>("fy", bottom, N);
  for (std::uint32_t i = 0; i < N; ++i) {
    CAPTURE(i);
    const float want = std::fma(x0[i] + 0.5f, 2.0f, x1[i]);
    if (std::isnan(want)) CHECK(std::isnan(fy[i]));
    else CHECK(bits_of(fy[i]) == bits_of(want));
  }
}
