#pragma once
/// \file
/// The weight-streaming executor: one training step (forward, backward, update) of a
/// ModelSpec running as PE kernels (kernels/transformer_train.hpp) on the emulated fabric.
/// Weights enter as wavelets at the north edge (one input stream per column, read from a
/// WeightStore), gradients leave at the south edge (one output stream per column) and go to
/// WeightStore::apply_gradient; the host only loads token ids into PE memory, sequences the
/// sub-layer passes and runs the optimizer in the store. Stream layer; hosted.
///
///   wse::stream::Executor ex(preset("tiny-gpt2"), /*batch*/ 2, /*seq*/ 8, /*grid*/ 4, 2);
///   const float loss = ex.step(store, tokens);   // tokens: [batch, seq + 1] int32
///
/// Requirements: H divides batch (whole sequences per PE row); W divides d_model, heads,
/// d_ff and vocab (whole heads per PE column); seq <= context; layers <= 4; every activation
/// of batch/H sequences fits a PE's memory (48 KiB on WSE-2). Each is checked, and a
/// violation throws ExecutorError naming the model, batch, seq and grid. The store passed to
/// step/forward_backward must hold the same ModelSpec (checked; ExecutorError otherwise).
#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>
#include "../host.hpp"
#include "../program.hpp"

#include <kernels/transformer_train.hpp>  // the wse::kernels target (or <wse source>/ on the include path)

#include "model.hpp"
#include "store.hpp"

namespace wse::stream {

/// An executor that cannot run this model on this grid (the message says why).
class ExecutorError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Executor {
 public:
  Executor(const ModelSpec& spec, std::uint32_t batch, std::uint32_t seq, std::uint16_t width, std::uint16_t height,
           const arch::Arch& a = arch::wse2, emu::EmuConfig cfg = {})
      : spec_(spec), tensors_(parameters(spec)), batch_(batch), seq_(seq), W_(width), H_(height),
        prog_(build(spec, batch, seq, width, height, a)), rt_(load(cfg)) {}

  /// Runs forward and backward for `tokens` ([batch, seq + 1] int32: inputs [:, :-1],
  /// targets [:, 1:]) with the store's current weights, streams every gradient to the store
  /// (apply_gradient per tensor, then end_step()) and returns the mean loss.
  float step(WeightStore& store, std::span<const std::int32_t> tokens) {
    const float loss = forward_backward(store, tokens);
    for (std::size_t i = 0; i < tensors_.size(); ++i) store.apply_gradient(i, grads_[i]);
    store.end_step();
    return loss;
  }

  /// Forward and backward only: the loss; gradients() holds every tensor's gradient.
  float forward_backward(const WeightStore& store, std::span<const std::int32_t> tokens) {
    check_store(store);
    load_tokens(tokens);
    grads_.assign(tensors_.size(), {});
    for (std::size_t i = 0; i < tensors_.size(); ++i) grads_[i].assign(tensors_[i].elements(), 0.0f);
    const float loss = forward(store);
    backward(store);
    return loss;
  }

  /// The gradients of the last forward_backward / step, in parameters(spec) order.
  const std::vector<std::vector<float>>& gradients() const { return grads_; }
  const Program& program() const { return prog_; }
  host::Runtime& runtime() { return rt_; }
  /// The most PE memory the kernel uses on any PE of this wafer (bytes; the arch's budget is
  /// program().arch().pe_memory_bytes). The planner's estimate is for its general layout.
  std::uint32_t pe_memory_used() {
    std::uint32_t most = 0;
    if (emu::Engine* e = rt_.emulator())
      for (std::uint16_t y = 0; y < H_; ++y)
        for (std::uint16_t x = 0; x < W_; ++x)
          if (const emu::Pe* pe = e->pe(Coord{x, y})) most = std::max(most, pe->memory_used());
    return most;
  }

 private:
  ModelSpec spec_;
  std::vector<TensorSpec> tensors_;
  std::uint32_t batch_, seq_;
  std::uint16_t W_, H_;
  kernels::StreamLinearParams lin_{};
  Program prog_;
  host::Runtime rt_;
  std::vector<std::vector<float>> grads_;

  std::string where() const {
    return "executor: model '" + spec_.name + "', batch " + std::to_string(batch_) + " x seq " + std::to_string(seq_) + " on " +
           std::to_string(W_) + "x" + std::to_string(H_) + ": ";
  }
  // Loads the program; a kernel that does not fit PE memory becomes an ExecutorError that
  // names the setup and what to change.
  host::Runtime load(const emu::EmuConfig& cfg) {
    try {
      return host::Runtime(prog_, cfg);
    } catch (const ProgramError& e) {
      throw ExecutorError(where() + "cannot load: " + e.what() +
                          " (each PE keeps every activation of batch/height whole sequences: use more grid rows, a smaller batch or a shorter seq)");
    }
  }
  // The store must hold this executor's model: every field of the ModelSpec but its name.
  void check_store(const WeightStore& store) const {
    if (&store.model() == &spec_) return;
    ModelSpec renamed = store.model();  // the name may differ
    renamed.name = spec_.name;
    if (renamed == spec_) return;
    const std::string mine = to_json(spec_), theirs = to_json(store.model());
    // The first "key": value pair of the two JSON texts that differs.
    auto pairs = [](const std::string& json) {
      std::vector<std::string> out;
      for (std::size_t at = 1, next; at < json.size(); at = next + 2) {
        next = json.find(", \"", at);
        if (next == std::string::npos) next = json.size() - 1;  // before the closing brace
        out.push_back(json.substr(at, next - at));
      }
      return out;
    };
    const auto a = pairs(mine), b = pairs(theirs);
    std::string field;
    for (std::size_t i = 1; i < a.size() && i < b.size() && field.empty(); ++i)  // [0] is the name
      if (a[i] != b[i]) field = " (executor " + a[i] + ", store " + b[i] + ")";
    if (field.empty()) return;
    throw ExecutorError(where() + "the store holds model '" + store.model().name + "', which differs from the executor's" + field +
                        ": build both from the same ModelSpec");
  }

  std::uint32_t T() const { return batch_ * seq_; }
  std::uint32_t fd() const { return spec_.d_model / W_; }
  Rect grid() const { return Rect{Coord{0, 0}, W_, H_}; }
  std::size_t idx(const std::string& name) const {
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      if (tensors_[i].name == name) return i;
    throw ExecutorError("executor: no tensor '" + name + "'");
  }
  bool has(const std::string& name) const {
    for (const auto& t : tensors_)
      if (t.name == name) return true;
    return false;
  }
  static std::string h(std::uint32_t l, const char* rest) { return "h." + std::to_string(l) + "." + rest; }

  Program build(const ModelSpec& m, std::uint32_t batch, std::uint32_t seq, std::uint16_t w, std::uint16_t hh,
                const arch::Arch& a) {
    validate(m);
    auto fail = [&](const std::string& why) {
      throw ExecutorError("executor: model '" + m.name + "', batch " + std::to_string(batch) + " x seq " + std::to_string(seq) + " on " +
                          std::to_string(w) + "x" + std::to_string(hh) + ": " + why);
    };
    if (w == 0 || hh == 0) fail("empty grid");
    if (batch == 0) fail("batch must be at least 1");
    if (seq == 0) fail("seq must be at least 1");
    if (batch % hh != 0) fail("the grid height " + std::to_string(hh) + " must divide the batch (whole sequences per row)");
    for (const auto& [what, n] : {std::pair{"d_model", m.d_model}, {"heads", m.heads}, {"d_ff", m.d_ff}, {"vocab", m.vocab}})
      if (n % w) fail("the grid width " + std::to_string(w) + " must divide " + what + " = " + std::to_string(n) + " (whole heads per column)");
    if (seq > m.context) fail("seq is longer than the model's context " + std::to_string(m.context));
    if (m.layers > kernels::transformer_train_max_layers) fail("at most 4 layers");
    Program prog(a, w, hh);
    lin_ = kernels::StreamLinearParams{.area = Rect{Coord{0, 0}, w, hh}, .tokens = batch * seq, .in = w, .out = w, .bias = false};
    kernels::stream_linear_channels(prog, lin_, "executor linear");
    const std::uint32_t tb = batch * seq / hh;
    std::vector<collectives::Params> ln_rows, mx_rows, sm_rows;
    for (std::uint16_t y = 0; y < hh; ++y) {
      const Rect r{Coord{0, y}, w, 1};
      ln_rows.push_back(collectives::allreduce<float>(prog, r, tb, {.name = "executor ln"}));
      mx_rows.push_back(collectives::allreduce<float>(prog, r, tb, {.op = collectives::Op::max, .name = "executor ce max"}));
      sm_rows.push_back(collectives::allreduce<float>(prog, r, 2 * tb, {.name = "executor ce sum"}));
    }
    kernels::TransformerTrainParams base{
        .batch = batch, .seq = seq, .d_model = m.d_model, .heads = m.heads, .d_ff = m.d_ff, .vocab = m.vocab, .layers = m.layers,
        .learned_positions = m.positions == Positions::learned, .rotary_dims = m.rotary_dims,
        .rotary_half = m.rotary_style == RotaryStyle::half, .rotary_base = m.rotary_base,
        .residual = m.residual == Residual::sequential ? kernels::TrainResidual::sequential
                    : m.residual == Residual::parallel_shared ? kernels::TrainResidual::parallel_shared
                                                              : kernels::TrainResidual::parallel,
        .gelu = m.gelu == Gelu::tanh ? kernels::GeluKind::tanh : kernels::GeluKind::erf, .local_window = m.local_window,
        .local_mask = 0, .scale = m.scale_attention, .qkv_bias = m.qkv_bias, .attn_out_bias = m.attn_out_bias,
        .mlp_bias = m.mlp_bias, .tied_head = m.tied_head, .head_bias = m.head_bias, .eps = m.layer_norm_eps, .linear = lin_};
    for (std::uint32_t l = 0; l < m.layers; ++l)
      if (m.is_local(l)) base.local_mask |= 1u << l;
    base.ln_task = prog.allocate_task("executor ln", prog.grid());
    base.ce_task = prog.allocate_task("executor ce", prog.grid());
    base.cont_task = prog.allocate_task("executor cont", prog.grid());
    prog.add_region<kernels::TransformerTrain>(prog.grid(), [&](Coord c) {
      kernels::TransformerTrainParams p = base;
      p.ln_row = ln_rows[c.y];
      p.ce_max = mx_rows[c.y];
      p.ce_sum = sm_rows[c.y];
      return p;
    });
    kernels::stream_linear_routes(prog.route_sink(), lin_);
    kernels::stream_linear_weight_streams(lin_, [&](std::uint32_t x, Coord c, Color col, Port e) {
      prog.add_input_stream("w" + std::to_string(x), col, c, e);
    });
    kernels::stream_linear_grad_streams(lin_, [&](std::uint32_t x, Coord c, Color col, Port e) {
      prog.add_output_stream("g" + std::to_string(x), col, c, e);
    });
    return prog;
  }

  void load_tokens(std::span<const std::int32_t> tokens) {
    if (tokens.size() != std::size_t{batch_} * (seq_ + 1))
      throw ExecutorError(where() + "tokens must hold batch * (seq + 1) = " + std::to_string(std::size_t{batch_} * (seq_ + 1)) +
                          " ids, got " + std::to_string(tokens.size()));
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] < 0 || static_cast<std::uint32_t>(tokens[i]) >= spec_.vocab)
        throw ExecutorError(where() + "token id " + std::to_string(tokens[i]) + " at [" + std::to_string(i / (seq_ + 1)) + ", " +
                            std::to_string(i % (seq_ + 1)) + "] is outside the vocab 0.." + std::to_string(spec_.vocab - 1));
    const std::uint32_t tb = T() / H_;
    std::vector<std::int32_t> in, tg;
    for (std::uint16_t y = 0; y < H_; ++y)
      for (std::uint16_t x = 0; x < W_; ++x)
        for (std::uint32_t t = y * tb; t < (y + 1) * tb; ++t) {
          const std::uint32_t b = t / seq_, s = t % seq_;
          in.push_back(tokens[b * (seq_ + 1) + s]);
          tg.push_back(tokens[b * (seq_ + 1) + s + 1]);
        }
    rt_.memcpy_h2d<std::int32_t>("tokens", in, grid(), tb);
    rt_.memcpy_h2d<std::int32_t>("targets", tg, grid(), tb);
  }

  // One pass: ctl = layer, the columns' streams, launch, run.
  void pass(const char* fn, std::uint32_t layer, const std::vector<std::vector<float>>& streams) {
    rt_.memcpy_h2d<std::int32_t>("ctl", std::vector<std::int32_t>(std::size_t{W_} * H_, static_cast<std::int32_t>(layer)), grid(), 1);
    for (std::uint16_t x = 0; x < streams.size(); ++x)
      if (!streams[x].empty()) rt_.stream_in<float>("w" + std::to_string(x), streams[x]);
    rt_.launch(fn);
    const host::RunReport r = rt_.run();
    if (!r.ok()) throw std::runtime_error(std::string("executor: pass '") + fn + "' failed: " + r.to_string());
  }
  std::vector<std::vector<float>> empty() const { return std::vector<std::vector<float>>(W_); }
  std::vector<std::vector<float>> take_grads() {
    std::vector<std::vector<float>> g(W_);
    for (std::uint16_t x = 0; x < W_; ++x) g[x] = rt_.stream_out_as<float>("g" + std::to_string(x));
    return g;
  }

  // A linear layer's W [in, out] (or, transposed, wte for the tied head) and bias.
  struct Lin {
    std::uint32_t in, out;
    std::vector<float> w, b;
    bool transposed = false;  // w holds [out, in] (wte)
    float at(std::uint32_t i, std::uint32_t o) const { return transposed ? w[std::size_t{o} * in + i] : w[std::size_t{i} * out + o]; }
  };
  Lin lin(const WeightStore& s, const std::string& base, std::uint32_t in, std::uint32_t out) const {
    Lin l{in, out, s.read(base + ".weight"), {}};
    if (has(base + ".bias")) l.b = s.read(base + ".bias");
    return l;
  }
  Lin head(const WeightStore& s) const {
    if (spec_.tied_head) return Lin{spec_.d_model, spec_.vocab, s.read("wte"), {}, true};
    return lin(s, "head", spec_.d_model, spec_.vocab);
  }
  kernels::StreamLinearParams lp(const Lin& l) const {
    kernels::StreamLinearParams p = lin_;
    p.in = l.in, p.out = l.out, p.bias = !l.b.empty();
    return p;
  }
  void fwd_stream(std::vector<std::vector<float>>& st, const Lin& l) const {
    const auto p = lp(l);
    for (std::uint32_t x = 0; x < W_; ++x)
      kernels::stream_linear_forward_order(p, x, [&](bool is_b, std::uint32_t i, std::uint32_t o) { st[x].push_back(is_b ? l.b[o] : l.at(i, o)); });
  }
  void bwd_stream(std::vector<std::vector<float>>& st, const Lin& l) const {
    const auto p = lp(l);
    for (std::uint32_t x = 0; x < W_; ++x)
      kernels::stream_linear_backward_order(p, x, [&](std::uint32_t i, std::uint32_t o) { st[x].push_back(l.at(i, o)); });
  }
  // Decodes one linear's gradient from the columns' output (from position pos[x]) into dW
  // (`wname`; the tied head adds dWᵀ into wte) and db.
  void take_linear(const std::vector<std::vector<float>>& g, std::vector<std::size_t>& pos, const Lin& l, const std::string& wname,
                   const std::string& bname) {
    const auto p = lp(l);
    std::vector<float>& dw = grads_[idx(wname)];
    std::vector<float>* db = l.b.empty() ? nullptr : &grads_[idx(bname)];
    for (std::uint32_t x = 0; x < W_; ++x)
      kernels::stream_linear_grad_order(p, x, [&](bool is_b, std::uint32_t i, std::uint32_t o) {
        const float v = g[x].at(pos[x]++);
        if (is_b) (*db)[o] = v;
        else if (l.transposed) dw[std::size_t{o} * l.in + i] += v;
        else dw[std::size_t{i} * l.out + o] = v;
      });
  }
  std::vector<std::vector<float>> norm_stream(const WeightStore& s, const std::string& base) const {
    const std::vector<float> g = s.read(base + ".weight"), b = s.read(base + ".bias");
    auto st = empty();
    for (std::uint32_t x = 0; x < W_; ++x) {
      st[x].insert(st[x].end(), g.begin() + x * fd(), g.begin() + (x + 1) * fd());
      st[x].insert(st[x].end(), b.begin() + x * fd(), b.begin() + (x + 1) * fd());
    }
    return st;
  }
  void norm_backward(const WeightStore& s, const char* fn, std::uint32_t layer, const std::string& base) {
    pass(fn, layer, norm_stream(s, base));
    const auto g = take_grads();
    std::vector<float>& dg = grads_[idx(base + ".weight")];
    std::vector<float>& db = grads_[idx(base + ".bias")];
    for (std::uint32_t x = 0; x < W_; ++x) {
      if (g[x].size() != 2 * fd()) throw std::runtime_error("executor: norm gradient stream has the wrong length");
      for (std::uint32_t c = 0; c < fd(); ++c) {
        dg[x * fd() + c] = g[x][c];
        db[x * fd() + c] = g[x][fd() + c];
      }
    }
  }
  void linear_backward(const char* fn, std::uint32_t layer, const std::vector<Lin>& ls, const std::vector<std::string>& bases) {
    auto st = empty();
    for (const Lin& l : ls) bwd_stream(st, l);
    pass(fn, layer, st);
    const auto g = take_grads();
    std::vector<std::size_t> pos(W_, 0);
    for (std::size_t k = 0; k < ls.size(); ++k)
      take_linear(g, pos, ls[k], bases[k] == "wte" ? "wte" : bases[k] + ".weight", bases[k] + ".bias");
    for (std::uint32_t x = 0; x < W_; ++x)
      if (pos[x] != g[x].size()) throw std::runtime_error("executor: gradient stream has the wrong length");
  }

  float forward(const WeightStore& s) {
    const std::uint32_t d = spec_.d_model, F = fd();
    {  // embedding: the wte band of every token id (and wpe's first seq rows)
      const std::vector<float> wte = s.read("wte");
      std::vector<float> wpe;
      if (spec_.positions == Positions::learned) wpe = s.read("wpe");
      auto st = empty();
      for (std::uint32_t x = 0; x < W_; ++x) {
        for (std::uint32_t v = 0; v < spec_.vocab; ++v)
          for (std::uint32_t c = 0; c < F; ++c) st[x].push_back(wte[std::size_t{v} * d + x * F + c]);
        for (std::uint32_t p = 0; p < (wpe.empty() ? 0u : seq_); ++p)
          for (std::uint32_t c = 0; c < F; ++c) st[x].push_back(wpe[std::size_t{p} * d + x * F + c]);
      }
      pass("embed", 0, st);
    }
    for (std::uint32_t l = 0; l < spec_.layers; ++l) {
      pass("ln1", l, norm_stream(s, h(l, "ln1")));
      auto st = empty();
      for (const char* n : {"attn.q", "attn.k", "attn.v"}) fwd_stream(st, lin(s, h(l, n), d, d));
      pass("qkv", l, st);
      pass("attention", l, empty());
      st = empty();
      fwd_stream(st, lin(s, h(l, "attn.out"), d, d));
      pass("attn_out", l, st);
      pass("residual1", l, empty());
      if (spec_.residual != Residual::parallel_shared) pass("ln2", l, norm_stream(s, h(l, "ln2")));
      st = empty();
      fwd_stream(st, lin(s, h(l, "mlp.fc"), d, spec_.d_ff));
      pass("mlp_fc", l, st);
      pass("gelu", l, empty());
      st = empty();
      fwd_stream(st, lin(s, h(l, "mlp.proj"), spec_.d_ff, d));
      pass("mlp_proj", l, st);
      pass("residual2", l, empty());
    }
    pass("lnf", 0, norm_stream(s, "lnf"));
    auto st = empty();
    fwd_stream(st, head(s));
    pass("head", 0, st);
    pass("loss", 0, empty());
    const std::vector<float> part = rt_.read<float>("partial", grid(), 1);
    double loss = 0.0;
    for (const float v : part) loss += v;
    return static_cast<float>(loss);
  }

  void backward(const WeightStore& s) {
    const std::uint32_t d = spec_.d_model, F = fd();
    pass("loss_bwd", 0, empty());
    linear_backward("head_bwd", 0, {head(s)}, {spec_.tied_head ? "wte" : "head"});
    norm_backward(s, "lnf_bwd", 0, "lnf");
    for (std::uint32_t l = spec_.layers; l-- > 0;) {
      linear_backward("mlp_proj_bwd", l, {lin(s, h(l, "mlp.proj"), spec_.d_ff, d)}, {h(l, "mlp.proj")});
      pass("gelu_bwd", l, empty());
      linear_backward("mlp_fc_bwd", l, {lin(s, h(l, "mlp.fc"), d, spec_.d_ff)}, {h(l, "mlp.fc")});
      if (spec_.residual != Residual::parallel_shared) norm_backward(s, "ln2_bwd", l, h(l, "ln2"));
      linear_backward("attn_out_bwd", l, {lin(s, h(l, "attn.out"), d, d)}, {h(l, "attn.out")});
      pass("attention_bwd", l, empty());
      linear_backward("qkv_bwd", l, {lin(s, h(l, "attn.q"), d, d), lin(s, h(l, "attn.k"), d, d), lin(s, h(l, "attn.v"), d, d)},
                      {h(l, "attn.q"), h(l, "attn.k"), h(l, "attn.v")});
      norm_backward(s, "ln1_bwd", l, h(l, "ln1"));
    }
    pass("embed_bwd", 0, empty());
    const auto g = take_grads();
    std::vector<float>& dwte = grads_[idx("wte")];
    std::vector<float>* dwpe = spec_.positions == Positions::learned ? &grads_[idx("wpe")] : nullptr;
    for (std::uint32_t x = 0; x < W_; ++x) {
      std::size_t k = 0;
      if (g[x].size() != (spec_.vocab + (dwpe ? seq_ : 0u)) * F) throw std::runtime_error("executor: embedding gradient stream has the wrong length");
      for (std::uint32_t v = 0; v < spec_.vocab; ++v)
        for (std::uint32_t c = 0; c < F; ++c) dwte[std::size_t{v} * d + x * F + c] += g[x][k++];
      if (dwpe)
        for (std::uint32_t p = 0; p < seq_; ++p)
          for (std::uint32_t c = 0; c < F; ++c) (*dwpe)[std::size_t{p} * d + x * F + c] = g[x][k++];
    }
  }
};

}  // namespace wse::stream
