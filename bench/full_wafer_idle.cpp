// Full WSE-2 fabric (757x996) where one row of 757 PEs streams 1000 values and every other PE
// is idle: load time, run time (peak RSS via /usr/bin/time). See docs/performance.md.
#include <cstdio>
#include <chrono>
#include <wse/wse.hpp>
struct AddParams { wse::Color in, out; float addend; };
template <class PE> struct AddAndForward {
  using Params = AddParams;
  Params p;
  void init(PE& pe, const Params& params) { p = params; wse::bind_data_task<&AddAndForward::on_wavelet>(pe, p.in); }
  void on_wavelet(PE& pe, wse::Wavelet w) { pe.send(p.out, wse::Wavelet::from_f32(w.f32() + p.addend)); }
};
int main() {
  const std::uint16_t W = 757, H = 996, n = 757;
  auto t0 = std::chrono::steady_clock::now();
  const wse::Color colors[2] = {wse::Color{0}, wse::Color{1}};
  wse::Program prog(wse::arch::wse2, W, H);
  prog.add_region<AddAndForward>(wse::Rect{{0, 500}, n, 1}, [&](wse::Coord c) {
    return AddParams{wse::routes::checkerboard_recv_color(colors, c.x), wse::routes::checkerboard_send_color(colors, c.x), 1.0f}; });
  wse::routes::checkerboard_chain(prog.route_sink(), colors, {0, 500}, wse::east, n, true, true);
  prog.add_input_stream("in", colors[1], {0, 500}, wse::west);
  prog.add_output_stream("out", wse::routes::checkerboard_send_color(colors, n - 1), {n - 1, 500}, wse::east);
  wse::host::Runtime rt(prog);
  auto t1 = std::chrono::steady_clock::now();
  std::vector<float> in(1000, 1.0f);
  rt.stream_in<float>("in", in);
  auto r = rt.run();
  auto t2 = std::chrono::steady_clock::now();
  auto out = rt.stream_out_as<float>("out");
  std::printf("%s load %.3f s run %.3f s, %zu out, out[0]=%g epochs %llu\n", r.ok() ? "ok" : "BAD",
    std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count(), out.size(), out[0], (unsigned long long)r.epochs);
}
