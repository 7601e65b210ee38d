// hello_fabric: your first kernel. A row of PEs; the host streams numbers in at the west
// edge, every PE adds (its column + 1) to each wavelet and passes it east, and the east edge
// streams the results back out. Checks them against a host computation.
#include <cstdio>
#include <vector>
#include <wse/wse.hpp>

struct AddParams {
  wse::Color in, out;  // receive on `in`, send on `out` (they alternate along the row)
  float addend;
};

template <class PE> struct AddAndForward {
  using Params = AddParams;
  Params p;
  void init(PE& pe, const Params& params) {
    p = params;
    wse::bind_data_task<&AddAndForward::on_wavelet>(pe, p.in);  // runs once per wavelet
  }
  void on_wavelet(PE& pe, wse::Wavelet w) { pe.send(p.out, wse::Wavelet::from_f32(w.f32() + p.addend)); }
};

int main() {
  constexpr std::uint16_t n = 4;
  const wse::Color colors[2] = {wse::Color{0}, wse::Color{1}};
  wse::Program prog(wse::arch::wse2, n, 1);
  prog.add_region<AddAndForward>(prog.grid(), [&](wse::Coord c) {
    return AddParams{wse::routes::checkerboard_recv_color(colors, c.x), wse::routes::checkerboard_send_color(colors, c.x),
                     float(c.x + 1)};
  });
  // PE i sends east on colors[i % 2] and receives from the west on the other color.
  wse::routes::checkerboard_chain(prog.route_sink(), colors, {0, 0}, wse::east, n, true, true);
  prog.add_input_stream("in", wse::routes::checkerboard_recv_color(colors, 0), {0, 0}, wse::west);
  prog.add_output_stream("out", wse::routes::checkerboard_send_color(colors, n - 1), {n - 1, 0}, wse::east);

  wse::host::Runtime rt(prog);
  const std::vector<float> in = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  rt.stream_in<float>("in", in);
  const wse::host::RunReport report = rt.run();
  const std::vector<float> out = rt.stream_out_as<float>("out");

  int bad = report.ok() ? 0 : 1;
  if (out.size() != in.size()) bad = 1;
  for (std::size_t i = 0; i < in.size() && i < out.size(); ++i)
    if (out[i] != in[i] + n * (n + 1) / 2.0f) bad = 1;
  std::printf("%s\nhello_fabric: %zu values through %d PEs, out[0] = %g (expected %g): %s\n",
              report.to_string().c_str(), out.size(), n, out.empty() ? 0.0 : out[0], in[0] + n * (n + 1) / 2.0, bad ? "MISMATCH" : "ok");
  return bad;
}
