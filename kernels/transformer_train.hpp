#pragma once
/// \file
/// TransformerTrain: one training step of a decoder-only transformer (wse::stream::ModelSpec)
/// as a PE kernel, launched one sub-layer pass at a time by the host orchestrator
/// (include/wse/stream/executor.hpp). fp32. Freestanding kernel (pe, fabric, collectives).
///
/// Layout. On a grid of W columns x H rows, PE (x, y) holds token band y (B/H whole sequences
/// of S tokens, tb = B·S/H tokens, row-major over batch then position) x feature band x of
/// every activation: n/W features of an n-feature tensor (d, d_ff, vocab; heads/W whole heads
/// of q, k, v). Every activation a block needs in backward stays in PE memory between passes.
///
/// Streams (one per column, those of StreamLinearUnit): weights enter at the north edge on
/// linear.w_color, multicast down the column; gradients leave at the south edge on the column
/// chain (linear.south_colors). Per pass and column x, in order:
///   embed       in: wte[v, band x] for v < vocab (v-major), then (learned) wpe[s, band x], s < seq
///   ln1/ln2/lnf in: gamma band x, beta band x
///   qkv         in: the forward streams (stream_linear_forward_order) of q, k, v
///   attn_out, mlp_fc, mlp_proj, head   in: the layer's forward stream
///   *_bwd of a linear  in: stream_linear_backward_order; out: stream_linear_grad_order
///   qkv_bwd     in/out: q, then k, then v, as above
///   ln*_bwd     in: gamma band x; out: dgamma band x, dbeta band x (column sums)
///   embed_bwd   out: dwte[v, band x] for v < vocab, then (learned) dwpe[s, band x], s < seq
/// The tied head's W is wteᵀ (the host reads wte by columns); its gradient is dwteᵀ.
/// The layer a pass works on is ctl[0] (written by the host before the launch).
/// Loss: after "loss", partial[0] on each PE; their sum is the mean loss.
#include <cstdint>
#include <wse/kernel.hpp>

#include "stream_linear.hpp"
#include "transformer_ops.hpp"

namespace wse::kernels {

inline constexpr std::uint32_t transformer_train_max_layers = 4;

enum class TrainResidual : std::uint8_t { sequential, parallel_shared, parallel };

/// Parameters of TransformerTrain (per PE: the row collectives differ by row).
struct TransformerTrainParams {
  std::uint32_t batch = 1, seq = 1, d_model = 1, heads = 1, d_ff = 1, vocab = 1, layers = 1;
  bool learned_positions = true;
  std::uint32_t rotary_dims = 0;
  bool rotary_half = false;
  float rotary_base = 10000.0f;
  TrainResidual residual = TrainResidual::sequential;
  GeluKind gelu = GeluKind::tanh;
  std::uint32_t local_window = 0;
  std::uint32_t local_mask = 0;  ///< bit l: block l uses the local window
  bool scale = true;
  bool qkv_bias = true, attn_out_bias = true, mlp_bias = true, tied_head = true, head_bias = false;
  float eps = 1e-5f;
  StreamLinearParams linear{};  ///< area (the grid), tokens = B·S, colors and tasks of the linear unit
  collectives::Params ln_row{}, ce_max{}, ce_sum{};  ///< this PE's row: sum tb, max tb, sum 2·tb
  TaskId ln_task{}, ce_task{}, cont_task{};
};

template <class PE> struct TransformerTrain {
  using Params = TransformerTrainParams;

  struct Block {
    Array<float> xin, ln1_xhat, ln1_rstd, ln1_out, q, k, v, probs, ctx, attn, mid, ln2_xhat, ln2_rstd, ln2_out, fc, act, mlp;
  };

  Params p{};
  collectives::Collective<PE, float> ln_row, ce_max, ce_sum;
  StreamLinearUnit<PE> lin;
  LayerNorm<PE> ln;
  CrossEntropy<PE> ce;
  GeluOp<PE> gelu;
  Attention<PE> att;
  std::uint32_t W = 1, H = 1, col = 0, row = 0, tb = 0, fd = 0, ff = 0, vb = 0;
  Block blk[transformer_train_max_layers]{};
  Array<float> xfinal, lnf_xhat, lnf_rstd, lnf_out, logits, ce_loss, partial;
  Array<std::int32_t> tok, tgt, ctl;
  Array<float> prm, emb, dg, bias_buf, dbias;
  Array<float> G, DMID, DCTX, DQ, DK, DV, DLN1, DLN2, TMP, DACT;

  enum class Op : std::uint8_t {
    none, embed, ln1, qkv, attention, attn_out, residual1, ln2, mlp_fc, gelu, mlp_proj, residual2, lnf, head, loss,
    loss_bwd, head_bwd, lnf_bwd, mlp_proj_bwd, gelu_bwd, mlp_fc_bwd, ln2_bwd, attn_out_bwd, attention_bwd, qkv_bwd,
    ln1_bwd, embed_bwd
  };
  Op op = Op::none;
  std::uint32_t stage = 0, layer = 0;

  void init(PE& pe, const Params& params) {
    p = params;
    WSE_ASSERT(p.layers >= 1 && p.layers <= transformer_train_max_layers, "TransformerTrain: 1..4 layers");
    const Coord c = pe.coord();
    W = p.linear.area.width;
    H = p.linear.area.height;
    col = c.x - p.linear.area.origin.x;
    row = c.y - p.linear.area.origin.y;
    WSE_ASSERT(p.batch % H == 0 && p.d_model % W == 0 && p.heads % W == 0 && p.d_ff % W == 0 && p.vocab % W == 0,
               "TransformerTrain: H must divide batch; W must divide d_model, heads, d_ff and vocab");
    tb = p.batch * p.seq / H;
    fd = p.d_model / W;
    ff = p.d_ff / W;
    vb = p.vocab / W;
    WSE_ASSERT(p.linear.tokens == p.batch * p.seq, "TransformerTrain: linear.tokens must be batch * seq");
    collectives::attach<&TransformerTrain::ln_row>(pe, *this, p.ln_row);
    collectives::attach<&TransformerTrain::ce_max>(pe, *this, p.ce_max);
    collectives::attach<&TransformerTrain::ce_sum>(pe, *this, p.ce_sum);
    ln.init(pe, {.tokens = tb, .features = fd, .total_features = p.d_model, .eps = p.eps, .task = p.ln_task}, ln_row);
    ce.init(pe, {.tokens = tb, .vocab = vb, .vocab_begin = col * vb, .total_tokens = p.batch * p.seq, .task = p.ce_task},
            ce_max, ce_sum);
    gelu.init(pe, p.gelu);
    att.init(pe, {.seqs = p.batch / H, .seq = p.seq, .heads = p.heads / W, .head_dim = p.d_model / p.heads,
                  .scale = p.scale, .window = 0, .rotary_dims = p.rotary_dims, .rotary_half = p.rotary_half,
                  .rotary_base = p.rotary_base});
    // linear unit: the largest weight block and scratch over q/k/v/out (d x d), fc (d x ff),
    // proj (ff x d), head (d x vocab)
    const std::uint32_t outs[4] = {fd, ff, fd, vb}, ins[4] = {fd, fd, ff, fd};
    std::uint32_t wb = 0, sc = 0;
    for (int i = 0; i < 4; ++i) {
      const std::uint32_t a = ins[i] * outs[i], m = ins[i] > outs[i] ? ins[i] : outs[i];
      const std::uint32_t s = 2 * tb * m > W * tb * outs[i] ? 2 * tb * m : W * tb * outs[i];
      wb = a > wb ? a : wb;
      sc = s > sc ? s : sc;
    }
    lin.init(pe, p.linear, wb, sc);

    const std::uint32_t TD = tb * fd, TF = tb * ff, probs = (p.batch / H) * (p.heads / W) * p.seq * p.seq;
    for (std::uint32_t l = 0; l < p.layers; ++l) {
      Block& b = blk[l];
      b.xin = alloc<float>(pe, TD);
      b.ln1_xhat = alloc<float>(pe, TD);
      b.ln1_rstd = alloc<float>(pe, tb);
      b.ln1_out = alloc<float>(pe, TD);
      b.q = alloc<float>(pe, TD);
      b.k = alloc<float>(pe, TD);
      b.v = alloc<float>(pe, TD);
      b.probs = alloc<float>(pe, probs);
      b.ctx = alloc<float>(pe, TD);
      b.attn = alloc<float>(pe, TD);
      if (p.residual == TrainResidual::sequential) b.mid = alloc<float>(pe, TD);
      if (p.residual != TrainResidual::parallel_shared) {
        b.ln2_xhat = alloc<float>(pe, TD);
        b.ln2_rstd = alloc<float>(pe, tb);
        b.ln2_out = alloc<float>(pe, TD);
      }
      b.fc = alloc<float>(pe, TF);
      b.act = alloc<float>(pe, TF);
      b.mlp = alloc<float>(pe, TD);
    }
    xfinal = alloc<float>(pe, TD);
    lnf_xhat = alloc<float>(pe, TD);
    lnf_rstd = alloc<float>(pe, tb);
    lnf_out = alloc<float>(pe, TD);
    logits = alloc<float>(pe, tb * vb);
    ce_loss = alloc<float>(pe, tb);
    partial = alloc<float>(pe, 1);
    tok = alloc<std::int32_t>(pe, tb);
    tgt = alloc<std::int32_t>(pe, tb);
    ctl = alloc<std::int32_t>(pe, 1);
    prm = alloc<float>(pe, 2 * fd);
    emb = alloc<float>(pe, (p.vocab + (p.learned_positions ? p.seq : 0)) * fd);
    dg = alloc<float>(pe, 2 * fd);
    bias_buf = alloc<float>(pe, ff > vb ? (ff > fd ? ff : fd) : (vb > fd ? vb : fd));
    dbias = alloc<float>(pe, bias_buf.size());
    G = alloc<float>(pe, TD);
    DMID = alloc<float>(pe, TD);
    DCTX = alloc<float>(pe, TD);
    DQ = alloc<float>(pe, TD);
    DK = alloc<float>(pe, TD);
    DV = alloc<float>(pe, TD);
    DLN1 = alloc<float>(pe, TD);
    DLN2 = alloc<float>(pe, TD);
    TMP = alloc<float>(pe, TD);
    DACT = alloc<float>(pe, TF);

    export_symbol(pe, "tokens", tok);
    export_symbol(pe, "targets", tgt);
    export_symbol(pe, "ctl", ctl);
    export_symbol(pe, "partial", partial);
    export_symbol(pe, "logits", logits);
    export_symbol(pe, "xfinal", xfinal);
    export_function<&TransformerTrain::f_embed>(pe, "embed");
    export_function<&TransformerTrain::f_ln1>(pe, "ln1");
    export_function<&TransformerTrain::f_qkv>(pe, "qkv");
    export_function<&TransformerTrain::f_attention>(pe, "attention");
    export_function<&TransformerTrain::f_attn_out>(pe, "attn_out");
    export_function<&TransformerTrain::f_residual1>(pe, "residual1");
    export_function<&TransformerTrain::f_ln2>(pe, "ln2");
    export_function<&TransformerTrain::f_mlp_fc>(pe, "mlp_fc");
    export_function<&TransformerTrain::f_gelu>(pe, "gelu");
    export_function<&TransformerTrain::f_mlp_proj>(pe, "mlp_proj");
    export_function<&TransformerTrain::f_residual2>(pe, "residual2");
    export_function<&TransformerTrain::f_lnf>(pe, "lnf");
    export_function<&TransformerTrain::f_head>(pe, "head");
    export_function<&TransformerTrain::f_loss>(pe, "loss");
    export_function<&TransformerTrain::f_loss_bwd>(pe, "loss_bwd");
    export_function<&TransformerTrain::f_head_bwd>(pe, "head_bwd");
    export_function<&TransformerTrain::f_lnf_bwd>(pe, "lnf_bwd");
    export_function<&TransformerTrain::f_mlp_proj_bwd>(pe, "mlp_proj_bwd");
    export_function<&TransformerTrain::f_gelu_bwd>(pe, "gelu_bwd");
    export_function<&TransformerTrain::f_mlp_fc_bwd>(pe, "mlp_fc_bwd");
    export_function<&TransformerTrain::f_ln2_bwd>(pe, "ln2_bwd");
    export_function<&TransformerTrain::f_attn_out_bwd>(pe, "attn_out_bwd");
    export_function<&TransformerTrain::f_attention_bwd>(pe, "attention_bwd");
    export_function<&TransformerTrain::f_qkv_bwd>(pe, "qkv_bwd");
    export_function<&TransformerTrain::f_ln1_bwd>(pe, "ln1_bwd");
    export_function<&TransformerTrain::f_embed_bwd>(pe, "embed_bwd");
    bind_local_task<&TransformerTrain::on_lin_recv>(pe, p.linear.tasks[0]);
    bind_local_task<&TransformerTrain::on_lin_half>(pe, p.linear.tasks[1]);
    bind_local_task<&TransformerTrain::on_lin_reduced>(pe, p.linear.tasks[2]);
    bind_local_task<&TransformerTrain::on_ln>(pe, p.ln_task);
    bind_local_task<&TransformerTrain::on_ce>(pe, p.ce_task);
    bind_local_task<&TransformerTrain::on_cont>(pe, p.cont_task);
  }

  // ---- launched functions ----
  void f_embed(PE& pe) { begin(pe, Op::embed); }
  void f_ln1(PE& pe) { begin(pe, Op::ln1); }
  void f_qkv(PE& pe) { begin(pe, Op::qkv); }
  void f_attention(PE& pe) { begin(pe, Op::attention); }
  void f_attn_out(PE& pe) { begin(pe, Op::attn_out); }
  void f_residual1(PE& pe) { begin(pe, Op::residual1); }
  void f_ln2(PE& pe) { begin(pe, Op::ln2); }
  void f_mlp_fc(PE& pe) { begin(pe, Op::mlp_fc); }
  void f_gelu(PE& pe) { begin(pe, Op::gelu); }
  void f_mlp_proj(PE& pe) { begin(pe, Op::mlp_proj); }
  void f_residual2(PE& pe) { begin(pe, Op::residual2); }
  void f_lnf(PE& pe) { begin(pe, Op::lnf); }
  void f_head(PE& pe) { begin(pe, Op::head); }
  void f_loss(PE& pe) { begin(pe, Op::loss); }
  void f_loss_bwd(PE& pe) { begin(pe, Op::loss_bwd); }
  void f_head_bwd(PE& pe) { begin(pe, Op::head_bwd); }
  void f_lnf_bwd(PE& pe) { begin(pe, Op::lnf_bwd); }
  void f_mlp_proj_bwd(PE& pe) { begin(pe, Op::mlp_proj_bwd); }
  void f_gelu_bwd(PE& pe) { begin(pe, Op::gelu_bwd); }
  void f_mlp_fc_bwd(PE& pe) { begin(pe, Op::mlp_fc_bwd); }
  void f_ln2_bwd(PE& pe) { begin(pe, Op::ln2_bwd); }
  void f_attn_out_bwd(PE& pe) { begin(pe, Op::attn_out_bwd); }
  void f_attention_bwd(PE& pe) { begin(pe, Op::attention_bwd); }
  void f_qkv_bwd(PE& pe) { begin(pe, Op::qkv_bwd); }
  void f_ln1_bwd(PE& pe) { begin(pe, Op::ln1_bwd); }
  void f_embed_bwd(PE& pe) { begin(pe, Op::embed_bwd); }

  // ---- tasks ----
  void on_lin_recv(PE& pe) { lin.on_recv(pe); }
  void on_lin_half(PE& pe) { lin.on_half(pe); }
  void on_lin_reduced(PE& pe) { lin.on_reduced(pe); }
  void on_ln(PE& pe) { ln.resume(pe); }
  void on_ce(PE& pe) { ce.resume(pe); }
  void on_cont(PE& pe) { step(pe); }

 private:
  enum class R : std::uint8_t { wait, next, done };

  void begin(PE& pe, Op o) {
    WSE_ASSERT(op == Op::none, "TransformerTrain: launched while a previous pass is still running");
    op = o;
    stage = 0;
    layer = static_cast<std::uint32_t>(ctl[0]);
    WSE_ASSERT(layer < p.layers || o == Op::embed || o == Op::lnf || o == Op::head || o == Op::loss ||
                   o == Op::loss_bwd || o == Op::head_bwd || o == Op::lnf_bwd || o == Op::embed_bwd,
               "TransformerTrain: ctl[0] is not a layer");
    step(pe);
  }
  void step(PE& pe) {
    for (;;) {
      const R r = run(pe, stage++);
      if (r == R::done) {
        op = Op::none;
        return;
      }
      if (r == R::wait) return;
    }
  }

  Completion cont() const { return then_activate(p.cont_task); }
  static Array<float> view(Array<float> a, std::uint32_t off, std::uint32_t n) { return Array<float>(a.data() + off, n); }
  void recv(PE& pe, Array<float> dst, std::uint32_t n) { mov(pe, mem1d(dst).with_length(n), fabin<float>(p.linear.w_color, n), cont()); }
  void col_reduce(PE& pe, Array<float> src, std::uint32_t n) {
    const Mem1d<float> s = mem1d(src).with_length(n);
    if (row == 0) mov(pe, fabout<float>(lin.south_send(), n), s, cont());
    else add(pe, fabout<float>(lin.south_send(), n), fabin<float>(lin.south_recv(), n), s, cont());
  }
  void vadd(PE& pe, Array<float> dst, Array<float> a, Array<float> b, std::uint32_t n) {
    add(pe, mem1d(dst).with_length(n), mem1d(a).with_length(n), mem1d(b).with_length(n));
  }
  static void zero(Array<float> a, std::uint32_t n) {
    for (std::uint32_t i = 0; i < n; ++i) a[i] = 0.0f;
  }
  void linear(std::uint32_t in, std::uint32_t out, bool bias, Array<float> x, Array<float> y, Array<float> dy, Array<float> dx) {
    lin.bind({.in = in, .out = out, .bias = bias, .x = x, .y = y, .dy = dy, .dx = dx, .b = bias_buf, .db = dbias});
  }
  bool local(std::uint32_t l) const { return (p.local_mask >> l) & 1u; }
  Array<float> ln2_in(const Block& b) const { return p.residual == TrainResidual::sequential ? b.mid : b.xin; }
  Array<float> mlp_in(const Block& b) const { return p.residual == TrainResidual::parallel_shared ? b.ln1_out : b.ln2_out; }
  Array<float> xout(std::uint32_t l) const { return l + 1 < p.layers ? blk[l + 1].xin : xfinal; }

  R run(PE& pe, std::uint32_t s) {
    const std::uint32_t TD = tb * fd, TF = tb * ff, d = p.d_model;
    Block& b = blk[layer < transformer_train_max_layers ? layer : 0];
    const Array<float> gam = view(prm, 0, fd), bet = view(prm, fd, fd);
    switch (op) {
      case Op::embed: {
        const std::uint32_t n = (p.vocab + (p.learned_positions ? p.seq : 0)) * fd;
        if (s == 0) return recv(pe, emb, n), R::wait;
        Array<float> x0 = blk[0].xin;
        for (std::uint32_t t = 0; t < tb; ++t)
          for (std::uint32_t c = 0; c < fd; ++c) {
            float v = emb[static_cast<std::uint32_t>(tok[t]) * fd + c];
            if (p.learned_positions) v += emb[(p.vocab + t % p.seq) * fd + c];
            x0[t * fd + c] = v;
          }
        return R::done;
      }
      case Op::ln1:
      case Op::ln2:
      case Op::lnf: {
        if (s == 0) return recv(pe, prm, 2 * fd), R::wait;
        if (s == 1) {
          if (op == Op::ln1) ln.forward(pe, {b.xin, gam, bet, b.ln1_out, b.ln1_xhat, b.ln1_rstd}, cont());
          else if (op == Op::ln2) ln.forward(pe, {ln2_in(b), gam, bet, b.ln2_out, b.ln2_xhat, b.ln2_rstd}, cont());
          else ln.forward(pe, {xfinal, gam, bet, lnf_out, lnf_xhat, lnf_rstd}, cont());
          return R::wait;
        }
        return R::done;
      }
      case Op::qkv: {
        if (s < 3) {
          linear(d, d, p.qkv_bias, b.ln1_out, s == 0 ? b.q : s == 1 ? b.k : b.v, {}, {});
          lin.forward(pe, cont());
          return R::wait;
        }
        return R::done;
      }
      case Op::attention:
        att.s.window = local(layer) ? p.local_window : 0;
        att.forward(pe, b.q, b.k, b.v, b.ctx, b.probs);
        return R::done;
      case Op::attn_out:
        if (s == 0) return linear(d, d, p.attn_out_bias, b.ctx, b.attn, {}, {}), lin.forward(pe, cont()), R::wait;
        return R::done;
      case Op::residual1:
        if (p.residual == TrainResidual::sequential) vadd(pe, b.mid, b.xin, b.attn, TD);
        return R::done;
      case Op::mlp_fc:
        if (s == 0) return linear(d, p.d_ff, p.mlp_bias, mlp_in(b), b.fc, {}, {}), lin.forward(pe, cont()), R::wait;
        return R::done;
      case Op::gelu:
        gelu.forward(pe, b.fc, b.act, TF);
        return R::done;
      case Op::mlp_proj:
        if (s == 0) return linear(p.d_ff, d, p.mlp_bias, b.act, b.mlp, {}, {}), lin.forward(pe, cont()), R::wait;
        return R::done;
      case Op::residual2:
        if (p.residual == TrainResidual::sequential) vadd(pe, xout(layer), b.mid, b.mlp, TD);
        else {
          vadd(pe, xout(layer), b.xin, b.attn, TD);
          vadd(pe, xout(layer), xout(layer), b.mlp, TD);
        }
        return R::done;
      case Op::head:
        if (s == 0) return linear(d, p.vocab, p.head_bias, lnf_out, logits, {}, {}), lin.forward(pe, cont()), R::wait;
        return R::done;
      case Op::loss:
        if (s == 0) return ce.forward(pe, {logits, tgt, ce_loss, partial}, cont()), R::wait;
        return R::done;

      // ---- backward ----
      case Op::loss_bwd:
        ce.backward(pe, {logits, tgt, logits});
        return R::done;
      case Op::head_bwd:
        if (s == 0) return linear(d, p.vocab, p.head_bias, lnf_out, {}, logits, TMP), lin.backward(pe, cont()), R::wait;
        return R::done;
      case Op::lnf_bwd:
      case Op::ln2_bwd:
      case Op::ln1_bwd: {
        if (s == 0) return recv(pe, prm, 2 * fd), R::wait;
        if (s == 1) {
          zero(dg, 2 * fd);
          const Array<float> dgam = view(dg, 0, fd), dbet = view(dg, fd, fd);
          if (op == Op::lnf_bwd) ln.backward(pe, {TMP, lnf_xhat, lnf_rstd, gam, G, dgam, dbet}, cont());
          else if (op == Op::ln2_bwd) ln.backward(pe, {DLN2, b.ln2_xhat, b.ln2_rstd, gam, DMID, dgam, dbet}, cont());
          else ln.backward(pe, {DLN1, b.ln1_xhat, b.ln1_rstd, gam, TMP, dgam, dbet}, cont());
          return R::wait;
        }
        if (s == 2) return col_reduce(pe, dg, 2 * fd), R::wait;
        if (op == Op::ln2_bwd && p.residual == TrainResidual::sequential) vadd(pe, DMID, DMID, G, TD);  // dmid
        if (op == Op::ln1_bwd) {
          if (p.residual == TrainResidual::sequential) vadd(pe, G, DMID, TMP, TD);
          else {
            vadd(pe, G, G, TMP, TD);
            if (p.residual == TrainResidual::parallel) vadd(pe, G, G, DMID, TD);
          }
        }
        return R::done;
      }
      case Op::mlp_proj_bwd:
        if (s == 0) return linear(p.d_ff, d, p.mlp_bias, b.act, {}, G, DACT), lin.backward(pe, cont()), R::wait;
        return R::done;
      case Op::gelu_bwd:
        gelu.backward(pe, b.fc, DACT, DACT, TF);
        return R::done;
      case Op::mlp_fc_bwd:
        if (s == 0) return linear(d, p.d_ff, p.mlp_bias, mlp_in(b), {}, DACT, DLN2), lin.backward(pe, cont()), R::wait;
        return R::done;
      case Op::attn_out_bwd:
        if (s == 0) {
          linear(d, d, p.attn_out_bias, b.ctx, {}, p.residual == TrainResidual::sequential ? DMID : G, DCTX);
          lin.backward(pe, cont());
          return R::wait;
        }
        return R::done;
      case Op::attention_bwd:
        att.s.window = local(layer) ? p.local_window : 0;
        att.backward(pe, b.q, b.k, b.v, b.probs, DCTX, DQ, DK, DV);
        return R::done;
      case Op::qkv_bwd: {
        if (s == 2 || s == 3) vadd(pe, DLN1, DLN1, TMP, TD);
        if (s < 3) {
          linear(d, d, p.qkv_bias, b.ln1_out, {}, s == 0 ? DQ : s == 1 ? DK : DV, s == 0 ? DLN1 : TMP);
          lin.backward(pe, cont());
          return R::wait;
        }
        if (p.residual == TrainResidual::parallel_shared) vadd(pe, DLN1, DLN1, DLN2, TD);
        return R::done;
      }
      case Op::embed_bwd: {
        const std::uint32_t n = (p.vocab + (p.learned_positions ? p.seq : 0)) * fd;
        if (s == 0) {
          zero(emb, n);
          for (std::uint32_t t = 0; t < tb; ++t)
            for (std::uint32_t c = 0; c < fd; ++c) {
              emb[static_cast<std::uint32_t>(tok[t]) * fd + c] += G[t * fd + c];
              if (p.learned_positions) emb[(p.vocab + t % p.seq) * fd + c] += G[t * fd + c];
            }
          col_reduce(pe, emb, n);
          return R::wait;
        }
        return R::done;
      }
      case Op::none: break;
    }
    return R::done;
  }
};

}  // namespace wse::kernels
