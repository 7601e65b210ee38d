#pragma once
/// \file
/// CollectiveJoin: the smallest kernel that takes part in one collective (wse/collectives): a
/// buffer of floats, exported as "buf", and an exported function "go" that starts the
/// collective on it. The fabric-wide sample (samples/wafer.cpp), the emulator's memory tests
/// and wse_bench's full-fabric case load it onto every PE. Freestanding kernel.
///
/// Host side:
///   const auto cp = wse::collectives::build<float>(prog, kind, prog.grid(), n, {.name = "join"});
///   prog.add_region<wse::kernels::CollectiveJoin>(prog.grid(),
///       wse::kernels::CollectiveJoinParams{cp, prog.allocate_task("join: done", prog.grid())});
///   rt.memcpy_h2d<float>("buf", values, grid, n); rt.launch("go"); rt.run();
#include <wse/kernel.hpp>

namespace wse::kernels {

struct CollectiveJoinParams {
  collectives::Params collective;
  TaskId done;  ///< a local task id, activated when this PE's part of the collective ends
};

template <class PE>
struct CollectiveJoin {
  using Params = CollectiveJoinParams;
  collectives::Collective<PE, float> collective;
  Array<float> buf;
  TaskId done{};

  void init(PE& pe, const Params& p) {
    collectives::attach<&CollectiveJoin::collective>(pe, *this, p.collective);
    buf = alloc<float>(pe, collectives::buffer_elements(p.collective));
    done = p.done;
    export_symbol(pe, "buf", buf);
    export_function<&CollectiveJoin::go>(pe, "go");
    bind_local_task<&CollectiveJoin::finished>(pe, done);
  }
  void go(PE& pe) { collective.start(pe, buf, then_activate(done)); }
  void finished(PE&) {}
};

}  // namespace wse::kernels
