#pragma once
/// \file
/// Decoder-only transformer models as data: wse::stream::ModelSpec, the published presets
/// (GPT-2, GPT-Neo, GPT-J, GPT-NeoX) and tiny versions of each family, and the list of
/// parameter tensors a spec implies. Stream layer; hosted.
///
/// Conventions every part of weight streaming shares (store, planner, executor, the PyTorch
/// reference in tests/): a linear layer is y = x W + b with W stored row-major as
/// [in_features, out_features]; tensors are named like "h.3.attn.q.weight"; fp32.
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wse::stream {

/// A spec the library cannot use; the message names the field and the reason.
class ModelError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class Positions : std::uint8_t {
  learned,  ///< a [context, d_model] table added to the token embedding (GPT-2, GPT-Neo)
  rotary,   ///< rotary embedding on the first rotary_dims of each query/key head (GPT-J, NeoX)
};
enum class RotaryStyle : std::uint8_t {
  interleaved,  ///< rotates pairs (0,1), (2,3), ... (GPT-J "rotate_every_two")
  half,         ///< rotates pairs (i, i + rotary_dims/2) (GPT-NeoX "rotate_half")
};
enum class Residual : std::uint8_t {
  sequential,        ///< x += attn(ln1(x)); x += mlp(ln2(x))            (GPT-2, GPT-Neo)
  parallel_shared,   ///< x += attn(ln1(x)) + mlp(ln1(x)): one norm      (GPT-J)
  parallel,          ///< x += attn(ln1(x)) + mlp(ln2(x)): two norms     (GPT-NeoX)
};
enum class Gelu : std::uint8_t {
  tanh,  ///< 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (GPT-2, GPT-Neo, GPT-J "gelu_new")
  erf,   ///< 0.5 x (1 + erf(x / sqrt 2))                      (GPT-NeoX "gelu")
};
/// Which layers use the local (sliding-window) attention when local_window > 0.
enum class LocalLayers : std::uint8_t {
  none,  ///< every layer attends to all earlier positions
  odd,   ///< layers 1, 3, 5, ... are local, the others global (GPT-Neo)
  all,   ///< every layer is local
};

/// One decoder-only transformer. Aggregate: write a new one with designated initializers or
/// start from a preset and change fields. validate() says what is wrong with one.
struct ModelSpec {
  std::string name;                ///< for reports ("gpt-j-6b")
  std::uint32_t vocab = 0;         ///< token ids 0..vocab-1
  std::uint32_t context = 0;       ///< longest sequence (rows of the learned position table)
  std::uint32_t d_model = 0;       ///< features per token
  std::uint32_t layers = 0;        ///< transformer blocks
  std::uint32_t heads = 0;         ///< attention heads; d_model % heads == 0
  std::uint32_t d_ff = 0;          ///< MLP hidden features
  Positions positions = Positions::learned;
  std::uint32_t rotary_dims = 0;   ///< rotary: dimensions of each head rotated (even, <= head dim)
  RotaryStyle rotary_style = RotaryStyle::interleaved;
  /// Rotary: the pair with index i (0 <= i < rotary_dims/2; pairs as rotary_style says) of the
  /// token at position pos (from 0 in its sequence) is rotated by pos * base^(-2i/rotary_dims):
  /// (a, b) -> (a cos - b sin, a sin + b cos).
  float rotary_base = 10000.0f;
  Residual residual = Residual::sequential;
  Gelu gelu = Gelu::tanh;
  std::uint32_t local_window = 0;  ///< local layers see this many positions (itself included)
  LocalLayers local_layers = LocalLayers::none;
  bool scale_attention = true;     ///< scores divided by sqrt(head dim) (GPT-Neo: false)
  bool qkv_bias = true;            ///< biases on the query, key and value projections
  bool attn_out_bias = true;       ///< bias on the attention output projection
  bool mlp_bias = true;            ///< biases on both MLP projections
  bool tied_head = true;           ///< logits = x wte^T (no separate head weight)
  bool head_bias = false;          ///< untied head only: a bias on the logits (GPT-J)
  float layer_norm_eps = 1e-5f;

  std::uint32_t head_dim() const { return heads ? d_model / heads : 0; }
  /// True when block `layer` uses the local window.
  bool is_local(std::uint32_t layer) const {
    if (local_window == 0) return false;
    return local_layers == LocalLayers::all || (local_layers == LocalLayers::odd && layer % 2 == 1);
  }
  /// Field by field, the name included.
  friend bool operator==(const ModelSpec&, const ModelSpec&) = default;
};

/// Throws ModelError naming the first field that makes `m` unusable.
inline void validate(const ModelSpec& m) {
  auto fail = [&](const std::string& why) { throw ModelError("model '" + m.name + "': " + why); };
  if (m.vocab == 0) fail("vocab must be at least 1");
  if (m.context == 0) fail("context must be at least 1");
  if (m.d_model == 0) fail("d_model must be at least 1");
  if (m.layers == 0) fail("layers must be at least 1");
  if (m.heads == 0) fail("heads must be at least 1");
  if (m.d_ff == 0) fail("d_ff must be at least 1");
  if (static_cast<unsigned>(m.positions) > 1) fail("positions is not learned or rotary");
  if (static_cast<unsigned>(m.rotary_style) > 1) fail("rotary_style is not interleaved or half");
  if (static_cast<unsigned>(m.residual) > 2) fail("residual is not sequential, parallel_shared or parallel");
  if (static_cast<unsigned>(m.gelu) > 1) fail("gelu is not tanh or erf");
  if (static_cast<unsigned>(m.local_layers) > 2) fail("local_layers is not none, odd or all");
  if (m.d_model % m.heads != 0)
    fail("d_model " + std::to_string(m.d_model) + " is not a multiple of heads " + std::to_string(m.heads));
  if (m.positions == Positions::rotary) {
    if (m.rotary_dims == 0 || m.rotary_dims % 2 != 0 || m.rotary_dims > m.head_dim())
      fail("rotary_dims " + std::to_string(m.rotary_dims) + " must be even and in 2.." + std::to_string(m.head_dim()) +
           " (the head dimension)");
    if (!(m.rotary_base > 1.0f)) fail("rotary_base must be greater than 1");
  } else if (m.rotary_dims != 0) {
    fail("rotary_dims is set but positions are learned");
  }
  if (m.local_layers != LocalLayers::none && m.local_window == 0) fail("local_layers chooses local layers but local_window is 0");
  if (m.local_window != 0 && m.local_layers == LocalLayers::none) fail("local_window is set but no layer is local");
  if (m.tied_head && m.head_bias) fail("head_bias needs an untied head (tied_head = false)");
  if (!(m.layer_norm_eps > 0.0f) || !(m.layer_norm_eps < 1.0f)) fail("layer_norm_eps must be in (0, 1)");
}

/// One parameter tensor of a model: its name and shape, rows x cols, row-major (vectors are
/// one row).
struct TensorSpec {
  std::string name;
  std::uint32_t rows = 1;
  std::uint32_t cols = 1;
  /// Which transformer block owns it, or -1 for the embeddings and the final norm/head.
  std::int32_t layer = -1;
  std::uint64_t elements() const { return std::uint64_t{rows} * cols; }
};

/// Every parameter tensor of `m`, in a fixed order: embeddings, then each block in order,
/// then the final norm and the head. Names (layer i):
///   wte [vocab, d]; wpe [context, d] (learned positions)
///   h.i.ln1.{weight,bias} [1, d]; h.i.ln2.{weight,bias} (sequential and parallel residuals)
///   h.i.attn.{q,k,v,out}.weight [d, d]; .bias [1, d] where the spec has them
///   h.i.mlp.fc.weight [d, d_ff]; h.i.mlp.fc.bias [1, d_ff]; h.i.mlp.proj.weight [d_ff, d]; .bias [1, d]
///   lnf.{weight,bias} [1, d]; head.weight [d, vocab] (untied); head.bias [1, vocab] (head_bias)
inline std::vector<TensorSpec> parameters(const ModelSpec& m) {
  validate(m);
  std::vector<TensorSpec> t;
  const std::uint32_t d = m.d_model;
  t.push_back({"wte", m.vocab, d, -1});
  if (m.positions == Positions::learned) t.push_back({"wpe", m.context, d, -1});
  for (std::uint32_t i = 0; i < m.layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    const auto L = static_cast<std::int32_t>(i);
    auto norm = [&](const char* n) {
      t.push_back({p + n + ".weight", 1, d, L});
      t.push_back({p + n + ".bias", 1, d, L});
    };
    norm("ln1");
    for (const char* proj : {"q", "k", "v"}) {
      t.push_back({p + "attn." + proj + ".weight", d, d, L});
      if (m.qkv_bias) t.push_back({p + "attn." + proj + ".bias", 1, d, L});
    }
    t.push_back({p + "attn.out.weight", d, d, L});
    if (m.attn_out_bias) t.push_back({p + "attn.out.bias", 1, d, L});
    if (m.residual != Residual::parallel_shared) norm("ln2");
    t.push_back({p + "mlp.fc.weight", d, m.d_ff, L});
    if (m.mlp_bias) t.push_back({p + "mlp.fc.bias", 1, m.d_ff, L});
    t.push_back({p + "mlp.proj.weight", m.d_ff, d, L});
    if (m.mlp_bias) t.push_back({p + "mlp.proj.bias", 1, d, L});
  }
  t.push_back({"lnf.weight", 1, d, -1});
  t.push_back({"lnf.bias", 1, d, -1});
  if (!m.tied_head) {
    t.push_back({"head.weight", d, m.vocab, -1});
    if (m.head_bias) t.push_back({"head.bias", 1, m.vocab, -1});
  }
  return t;
}

/// Total parameter count of `m`.
inline std::uint64_t parameter_count(const ModelSpec& m) {
  std::uint64_t n = 0;
  for (const auto& t : parameters(m)) n += t.elements();
  return n;
}

namespace detail {
inline ModelSpec gpt2_family(std::string name, std::uint32_t vocab, std::uint32_t ctx, std::uint32_t d, std::uint32_t layers,
                             std::uint32_t heads) {
  return ModelSpec{.name = std::move(name), .vocab = vocab, .context = ctx, .d_model = d, .layers = layers, .heads = heads,
                   .d_ff = 4 * d};
}
inline ModelSpec neo_family(std::string name, std::uint32_t vocab, std::uint32_t ctx, std::uint32_t d, std::uint32_t layers,
                            std::uint32_t heads, std::uint32_t window) {
  ModelSpec m = gpt2_family(std::move(name), vocab, ctx, d, layers, heads);
  m.local_window = window;
  m.local_layers = LocalLayers::odd;  // global, local, global, ...
  m.scale_attention = false;          // GPT-Neo does not divide scores by sqrt(head dim)
  m.qkv_bias = false;
  return m;
}
inline ModelSpec j_family(std::string name, std::uint32_t vocab, std::uint32_t ctx, std::uint32_t d, std::uint32_t layers,
                          std::uint32_t heads, std::uint32_t rotary) {
  ModelSpec m = gpt2_family(std::move(name), vocab, ctx, d, layers, heads);
  m.positions = Positions::rotary;
  m.rotary_dims = rotary;
  m.rotary_style = RotaryStyle::interleaved;
  m.residual = Residual::parallel_shared;
  m.qkv_bias = false;
  m.attn_out_bias = false;
  m.tied_head = false;
  m.head_bias = true;
  return m;
}
inline ModelSpec neox_family(std::string name, std::uint32_t vocab, std::uint32_t ctx, std::uint32_t d, std::uint32_t layers,
                             std::uint32_t heads, std::uint32_t rotary) {
  ModelSpec m = gpt2_family(std::move(name), vocab, ctx, d, layers, heads);
  m.positions = Positions::rotary;
  m.rotary_dims = rotary;
  m.rotary_style = RotaryStyle::half;
  m.residual = Residual::parallel;
  m.gelu = Gelu::erf;
  m.tied_head = false;
  return m;
}
}  // namespace detail

/// The names preset() knows, published shapes first, then the tiny test models.
inline std::vector<std::string> preset_names() {
  return {"gpt2-small", "gpt-neo-125m", "gpt-neo-1.3b", "gpt-j-6b", "gpt-neox-20b",
          "tiny-gpt2",  "tiny-neo",     "tiny-j",       "tiny-neox"};
}

/// A preset by name; throws ModelError listing the known names. Published shapes (Hugging
/// Face configs): GPT-2 small 124M, GPT-Neo 125M and 1.3B (local window 256 on odd layers),
/// GPT-J 6B (rotary 64 of 256 head dims, parallel residual, untied head with bias), GPT-NeoX
/// 20B (rotary 24 of 96, parallel residual with two norms, exact GELU). The tiny models keep
/// each family's structure at d_model 32, 2 blocks, 4 heads, vocab 64, context 16 (tiny-j and
/// tiny-neox rotate 4 of 8 head dims, so the two rotary styles differ).
inline ModelSpec preset(std::string_view name) {
  using namespace detail;
  if (name == "gpt2-small") return gpt2_family("gpt2-small", 50257, 1024, 768, 12, 12);
  if (name == "gpt-neo-125m") return neo_family("gpt-neo-125m", 50257, 2048, 768, 12, 12, 256);
  if (name == "gpt-neo-1.3b") return neo_family("gpt-neo-1.3b", 50257, 2048, 2048, 24, 16, 256);
  if (name == "gpt-j-6b") return j_family("gpt-j-6b", 50400, 2048, 4096, 28, 16, 64);
  if (name == "gpt-neox-20b") return neox_family("gpt-neox-20b", 50432, 2048, 6144, 44, 64, 24);
  if (name == "tiny-gpt2") return gpt2_family("tiny-gpt2", 64, 16, 32, 2, 4);
  if (name == "tiny-neo") return neo_family("tiny-neo", 64, 16, 32, 2, 4, 4);
  if (name == "tiny-j") return j_family("tiny-j", 64, 16, 32, 2, 4, 4);
  if (name == "tiny-neox") return neox_family("tiny-neox", 64, 16, 32, 2, 4, 4);
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw ModelError("unknown model preset '" + std::string(name) + "'; known presets: " + known);
}

/// `m` as one JSON object (every field, enums as their names): the format the PyTorch
/// reference script in tests/ reads.
inline std::string to_json(const ModelSpec& m) {
  auto q = [](std::string_view s) {  // a JSON string: quotes, backslashes and controls escaped
    std::string out = "\"";
    for (const char c : s) {
      if (c == '"' || c == '\\') out += '\\', out += c;
      else if (static_cast<unsigned char>(c) < 0x20) {
        char u[8];
        std::snprintf(u, sizeof u, "\\u%04x", static_cast<unsigned>(c));
        out += u;
      } else out += c;
    }
    return out + "\"";
  };
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  auto u = [](std::uint32_t v) { return std::to_string(v); };
  const char* pos = m.positions == Positions::learned ? "learned" : "rotary";
  const char* style = m.rotary_style == RotaryStyle::interleaved ? "interleaved" : "half";
  const char* res = m.residual == Residual::sequential ? "sequential" : m.residual == Residual::parallel ? "parallel" : "parallel_shared";
  const char* gelu = m.gelu == Gelu::tanh ? "tanh" : "erf";
  const char* local = m.local_layers == LocalLayers::none ? "none" : m.local_layers == LocalLayers::odd ? "odd" : "all";
  auto f = [](float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
    return std::string(buf);
  };
  return "{\"name\": " + q(m.name) + ", \"vocab\": " + u(m.vocab) + ", \"context\": " + u(m.context) +
         ", \"d_model\": " + u(m.d_model) + ", \"layers\": " + u(m.layers) + ", \"heads\": " + u(m.heads) +
         ", \"d_ff\": " + u(m.d_ff) + ", \"positions\": " + q(pos) + ", \"rotary_dims\": " + u(m.rotary_dims) +
         ", \"rotary_style\": " + q(style) + ", \"rotary_base\": " + f(m.rotary_base) + ", \"residual\": " + q(res) + ", \"gelu\": " + q(gelu) +
         ", \"local_window\": " + u(m.local_window) + ", \"local_layers\": " + q(local) +
         ", \"scale_attention\": " + b(m.scale_attention) + ", \"qkv_bias\": " + b(m.qkv_bias) +
         ", \"attn_out_bias\": " + b(m.attn_out_bias) + ", \"mlp_bias\": " + b(m.mlp_bias) +
         ", \"tied_head\": " + b(m.tied_head) + ", \"head_bias\": " + b(m.head_bias) + ", \"layer_norm_eps\": " + f(m.layer_norm_eps) + "}";
}

}  // namespace wse::stream
