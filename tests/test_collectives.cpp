// Collectives (wse/collectives): every kind × op × element type on rows, columns, odd and
// 15×15 rectangles against a host reference (exact: the values are small integers), every
// algorithm giving the same result, timed-mode cycle counts against the lower bound, and the
// builder's errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "support.hpp"

using namespace wse;
namespace coll = wse::collectives;

namespace {

struct RigParams {
  coll::Params c;
  TaskId done;
};

// Joins one collective; "go" starts it on "buf"; its completion counts in "done".
template <class T> struct RigKernel {
  template <class PE> struct K {
    using Params = RigParams;
    coll::Collective<PE, T> c;
    Array<T> buf;
    Array<std::uint32_t> done;
    TaskId done_task;
    void init(PE& pe, const Params& p) {
      coll::attach<&K::c>(pe, *this, p.c);
      buf = alloc<T>(pe, coll::buffer_elements(p.c));
      done = alloc<std::uint32_t>(pe, 1);
      done_task = p.done;
      export_symbol(pe, "buf", buf);
      export_symbol(pe, "done", done);
      export_function<&K::go>(pe, "go");
      bind_local_task<&K::finished>(pe, p.done);
    }
    void go(PE& pe) { c.start(pe, buf, then_activate(done_task)); }
    void finished(PE&) { done[0] += 1; }
  };
};

template <class T> T from_int(int v) {
  if constexpr (std::is_same_v<T, f16>) return f16::from_float(static_cast<float>(v));
  else return static_cast<T>(v);
}
template <class T> double to_double(T v) {
  if constexpr (std::is_same_v<T, f16>) return v.to_float();
  else return static_cast<double>(v);
}

double combine(coll::Op op, double a, double b) {
  switch (op) {
    case coll::Op::sum: return a + b;
    case coll::Op::max: return std::max(a, b);
    default: return std::min(a, b);
  }
}

struct Outcome {
  std::vector<double> buf;  // every PE's buffer, PE-major (index y·w + x)
  std::vector<std::uint32_t> done;
  std::uint64_t cycles = 0;
  bool ok = false;
  std::string report;
};

// Builds `kind` over the whole w × h grid, fills buffers with small integers from `salt`,
// runs, returns every PE's buffer.
template <class T>
Outcome run_collective(coll::Kind kind, std::uint16_t w, std::uint16_t h, std::uint32_t n, coll::Options o,
                       std::vector<double>& input, bool timed = false, const arch::Arch& a = arch::wse2, coll::Params* built = nullptr) {
  Program prog(a, w, h);
  const coll::Params cp = coll::build<T>(prog, kind, prog.grid(), n, o);
  if (built) *built = cp;
  const TaskId done = prog.allocate_task("test: done", prog.grid());
  prog.add_region<RigKernel<T>::template K>(prog.grid(), RigParams{cp, done});
  emu::EmuConfig cfg = wse_test::config();
  cfg.timed = timed;
  host::Runtime rt(prog, cfg);
  const std::uint32_t per = coll::buffer_elements(cp);
  std::vector<T> in(std::size_t{w} * h * per);
  input.resize(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const int v = static_cast<int>((i * 2654435761u + o.name.size() * 97u) % 7u) - (std::is_same_v<T, std::uint32_t> ? 0 : 3);
    in[i] = from_int<T>(v);
    input[i] = v;
  }
  if (per > 0) rt.memcpy_h2d<T>("buf", in, prog.grid(), per);
  rt.launch("go");
  const host::RunReport r = rt.run();
  Outcome out;
  out.ok = r.ok();
  out.report = r.to_string();
  out.cycles = r.cycles;
  if (per > 0)
    for (T v : rt.read<T>("buf", prog.grid(), per)) out.buf.push_back(to_double(v));
  out.done = rt.read<std::uint32_t>("done", prog.grid(), 1);
  return out;
}

// Checks `out` against the host reference of `kind`; returns the number of wrong elements.
std::size_t check(coll::Kind kind, coll::Op op, std::uint32_t P, std::uint32_t n, const std::vector<double>& in,
                  const Outcome& out) {
  const std::uint32_t per = coll::chunked(kind) ? P * n : n;
  std::size_t bad = 0;
  auto expect = [&](std::uint32_t pe, std::uint32_t i, double v) { bad += out.buf[std::size_t{pe} * per + i] != v; };
  auto reduced = [&](std::uint32_t i) {
    double acc = in[i];
    for (std::uint32_t pe = 1; pe < P; ++pe) acc = combine(op, acc, in[std::size_t{pe} * per + i]);
    return acc;
  };
  for (std::uint32_t pe = 0; pe < P; ++pe) {
    switch (kind) {
      case coll::Kind::broadcast:
        for (std::uint32_t i = 0; i < n; ++i) expect(pe, i, in[i]);
        break;
      case coll::Kind::reduce:
        if (pe == 0)
          for (std::uint32_t i = 0; i < n; ++i) expect(pe, i, reduced(i));
        break;
      case coll::Kind::allreduce:
        for (std::uint32_t i = 0; i < n; ++i) expect(pe, i, reduced(i));
        break;
      case coll::Kind::scatter:
        for (std::uint32_t i = pe * n; i < (pe + 1) * n; ++i) expect(pe, i, in[i]);
        break;
      case coll::Kind::gather:
        if (pe == 0)
          for (std::uint32_t i = 0; i < P * n; ++i) expect(pe, i, in[std::size_t{i / n} * per + i]);
        break;
      case coll::Kind::allgather:
        for (std::uint32_t i = 0; i < P * n; ++i) expect(pe, i, in[std::size_t{i / n} * per + i]);
        break;
      case coll::Kind::reduce_scatter:
        for (std::uint32_t i = pe * n; i < (pe + 1) * n; ++i) expect(pe, i, reduced(i));
        break;
    }
  }
  return bad;
}

constexpr coll::Kind all_kinds[] = {coll::Kind::broadcast, coll::Kind::reduce,    coll::Kind::allreduce,
                                    coll::Kind::scatter,   coll::Kind::gather,    coll::Kind::allgather,
                                    coll::Kind::reduce_scatter};
constexpr coll::Algorithm all_algorithms[] = {coll::Algorithm::chain, coll::Algorithm::tree, coll::Algorithm::two_phase};

template <class T> void sweep(std::uint16_t w, std::uint16_t h, std::uint32_t n) {
  for (coll::Kind kind : all_kinds)
    for (coll::Op op : {coll::Op::sum, coll::Op::max, coll::Op::min}) {
      if (!coll::reduces(kind) && op != coll::Op::sum) continue;
      for (coll::Algorithm alg : all_algorithms) {
        if (!coll::reduces(kind) && alg != coll::Algorithm::chain) continue;
        CAPTURE(coll::kind_name(kind));
        CAPTURE(coll::op_name(op));
        CAPTURE(coll::algorithm_name(alg));
        CAPTURE(w);
        CAPTURE(h);
        CAPTURE(n);
        std::vector<double> in;
        const Outcome out = run_collective<T>(kind, w, h, n, {.op = op, .algorithm = alg, .name = "sweep"}, in);
        REQUIRE_MESSAGE(out.ok, out.report);
        CHECK(check(kind, op, std::uint32_t{w} * h, n, in, out) == 0);
        CHECK(std::count(out.done.begin(), out.done.end(), 1u) == static_cast<long>(out.done.size()));
      }
    }
}

}  // namespace

TEST_CASE("collectives: every kind, op and algorithm on a row, a column and odd rectangles (f32)") {
  const std::uint16_t shapes[][2] = {{1, 1}, {1, 7}, {6, 1}, {5, 3}, {3, 4}, {2, 2}};
  for (const auto& s : shapes) sweep<float>(s[0], s[1], 3);
}
