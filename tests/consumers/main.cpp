// A consumer of wse: includes the library the way a user does, runs a 3-PE program on the
// emulator and checks the result. Built by each consumer test (find_package, add_subdirectory,
// FetchContent, pkg-config, single header).
#include <cstdio>
#include <vector>
#include <wse/wse.hpp>

struct ScaleParams {
  wse::Color in, out;
};

template <class PE> struct Doubler {
  using Params = ScaleParams;
  Params p;
  void init(PE& pe, const Params& params) {
    p = params;
    wse::bind_data_task<&Doubler::on_wavelet>(pe, p.in);
  }
  void on_wavelet(PE& pe, wse::Wavelet w) { pe.send(p.out, wse::Wavelet::from_i32(2 * w.i32())); }
};

int main() {
  const wse::Color colors[2] = {wse::Color{5}, wse::Color{6}};
  wse::Program prog(wse::arch::wse2, 3, 1);
  prog.add_region<Doubler>(prog.grid(), [&](wse::Coord c) {
    return ScaleParams{wse::routes::checkerboard_recv_color(colors, c.x), wse::routes::checkerboard_send_color(colors, c.x)};
  });
  wse::routes::checkerboard_chain(prog.route_sink(), colors, {0, 0}, wse::east, 3, true, true);
  prog.add_input_stream("in", wse::routes::checkerboard_recv_color(colors, 0), {0, 0}, wse::west);
  prog.add_output_stream("out", wse::routes::checkerboard_send_color(colors, 2), {2, 0}, wse::east);
  wse::host::Runtime rt(prog);
  rt.stream_in<std::int32_t>("in", std::vector<std::int32_t>{1, -2, 3});
  const auto report = rt.run();
  const auto out = rt.stream_out_as<std::int32_t>("out");
  const bool ok = report.ok() && out == std::vector<std::int32_t>{8, -16, 24};
  std::printf("consumer (wse %d.%d.%d, %s): %s\n", wse::version.major, wse::version.minor, wse::version.patch,
              rt.describe().c_str(), ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
