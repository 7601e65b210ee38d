#pragma once
/// \file
/// The off-wafer weight store: every parameter tensor of a ModelSpec (fp32) and its optimizer
/// state, in memory or file-backed, with deterministic initialization, load/save in the shared
/// parameter file format, and the optimizer update run when a tensor's (reduced) gradient
/// arrives. Stream layer; hosted. See docs/weight-store.md.
///
///   wse::stream::WeightStore store(wse::stream::preset("tiny-gpt2"), wse::stream::AdamW{.lr = 1e-3});
///   store.initialize({.seed = 1});
///   for (each tensor t, when its gradient g arrives) store.apply_gradient(t.name, g);
///   store.end_step();   // throws naming any tensor that got no gradient this step
///
/// Parameter file format (shared with the PyTorch reference in tests/): the fp32 tensors of
/// parameters(spec), concatenated in that order, little-endian, row-major, no header.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "model.hpp"
#include "optimizer.hpp"

namespace wse::stream {

// ---- deterministic initialization -------------------------------------------------------

/// splitmix64 (Steele, Lea, Flood 2014): a 64-bit state advanced by 0x9E3779B97F4A7C15 and
/// mixed; plus uniform and normal doubles built from it with documented, portable steps.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t state) : state_(state) {}

  std::uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  /// (next() >> 11) * 2^-53: uniform in [0, 1) on a grid of 2^-53.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// A standard normal deviate by Marsaglia's polar method: x = 2u - 1, y = 2u - 1 (two
  /// uniform() calls, x first) until 0 < s = x^2 + y^2 < 1; then f = sqrt(-2 ln(s) / s) and the
  /// deviates are x f, then y f (the second one is kept for the next call). Only log comes from
  /// the math library (sqrt is exact in IEEE 754).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double x, y, s;
    do {
      x = 2.0 * uniform() - 1.0;
      y = 2.0 * uniform() - 1.0;
      s = x * x + y * y;
    } while (!(s > 0.0 && s < 1.0));
    const double f = std::sqrt(-2.0 * std::log(s) / s);
    spare_ = y * f;
    has_spare_ = true;
    return x * f;
  }

 private:
  std::uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

/// FNV-1a 64 of `s` (offset basis 0xCBF29CE484222325, prime 0x100000001B3).
inline std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  return h;
}

/// How initialize() fills the parameters.
struct InitConfig {
  std::uint64_t seed = 0;
  double std = 0.02;             ///< standard deviation of the normal tensors
  bool scale_residual = false;   ///< GPT-2: attn.out.weight and mlp.proj.weight use std / sqrt(2 layers)
};

enum class InitKind : std::uint8_t {
  normal,  ///< embeddings and every matrix: normal(0, std)
  ones,    ///< LayerNorm weights (ln1, ln2, lnf)
  zeros,   ///< every bias
};

/// What initialize() puts in tensor `t`: zeros for names ending ".bias", ones for a ".weight"
/// whose owner starts with "ln" (h.i.ln1, h.i.ln2, lnf), normal otherwise.
inline InitKind init_kind(const TensorSpec& t) {
  const std::string_view n = t.name;
  auto ends = [&](std::string_view suffix) { return n.size() >= suffix.size() && n.substr(n.size() - suffix.size()) == suffix; };
  if (ends(".bias")) return InitKind::zeros;
  if (ends(".weight")) {
    std::string_view owner = n.substr(0, n.size() - 7);
    if (const auto dot = owner.rfind('.'); dot != std::string_view::npos) owner = owner.substr(dot + 1);
    if (owner.starts_with("ln")) return InitKind::ones;
  }
  return InitKind::normal;
}

/// The standard deviation initialize() uses for tensor `t` of a model with `layers` blocks.
inline double init_std(const TensorSpec& t, std::uint32_t layers, const InitConfig& c) {
  const std::string_view n = t.name;
  auto ends = [&](std::string_view suffix) { return n.size() >= suffix.size() && n.substr(n.size() - suffix.size()) == suffix; };
  if (c.scale_residual && (ends(".attn.out.weight") || ends(".mlp.proj.weight")))
    return c.std / std::sqrt(2.0 * static_cast<double>(layers));
  return c.std;
}

/// The random stream of tensor `name`: SplitMix64(seed ^ fnv1a64(name)). Each tensor has its
/// own stream, so its values do not depend on the other tensors of the model or their order.
inline SplitMix64 tensor_rng(std::uint64_t seed, std::string_view name) { return SplitMix64(seed ^ fnv1a64(name)); }

// ---- configuration ---------------------------------------------------------------------

/// The files of a file-backed store. Resident memory is a few working buffers of
/// `buffer_bytes` each (parameters, gradient, one per optimizer state slot), whatever the
/// model's size.
struct FileBacking {
  std::filesystem::path params;       ///< the parameter file (the shared format)
  std::filesystem::path state = {};   ///< optimizer state; empty: params with ".state" appended
  std::size_t buffer_bytes = 1u << 20;
  /// false: create both files (zeros), replacing what is there. true: use the parameter file
  /// as it is (it must have exactly the model's size) and the state file if it exists (it must
  /// match model and optimizer), else a zero state.
  bool keep_existing = false;
};

/// A tensor by name ("h.0.attn.q.weight") or by index into parameters(spec).
class TensorRef {
 public:
  template <std::integral I> TensorRef(I index) : index_(static_cast<std::size_t>(index)), by_index_(true) {}
  TensorRef(std::string_view name) : name_(name) {}
  TensorRef(const char* name) : name_(name) {}
  TensorRef(const std::string& name) : name_(name) {}
  bool by_index() const { return by_index_; }
  std::size_t index() const { return index_; }
  std::string_view name() const { return name_; }

 private:
  std::string_view name_;
  std::size_t index_ = 0;
  bool by_index_ = false;
};

namespace detail {

inline void byteswap32(std::span<float> v) {
  for (float& f : v) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    u = (u >> 24) | ((u >> 8) & 0xFF00u) | ((u << 8) & 0xFF0000u) | (u << 24);
    std::memcpy(&f, &u, 4);
  }
}

/// Reads n fp32 little-endian values; false when the stream ran short.
inline bool read_floats(std::istream& in, std::span<float> out) {
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size_bytes()));
  if (static_cast<std::size_t>(in.gcount()) != out.size_bytes()) return false;
  if constexpr (std::endian::native == std::endian::big) byteswap32(out);
  return true;
}

inline bool write_floats(std::ostream& out, std::span<const float> in) {
  if constexpr (std::endian::native == std::endian::big) {
    std::vector<float> tmp(in.begin(), in.end());
    byteswap32(tmp);
    out.write(reinterpret_cast<const char*>(tmp.data()), static_cast<std::streamsize>(tmp.size() * 4));
  } else {
    out.write(reinterpret_cast<const char*>(in.data()), static_cast<std::streamsize>(in.size_bytes()));
  }
  return static_cast<bool>(out);
}

inline void put_u64(std::string& s, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
inline void put_u32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
inline std::uint64_t get_le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

inline constexpr char state_magic[8] = {'W', 'S', 'E', 'S', 'T', 'A', 'T', 'E'};
inline constexpr std::uint32_t state_version = 1;

/// The optimizer state file header (see docs/weight-store.md): magic, version, optimizer kind
/// (1 SGD, 2 AdamW), slots, tensors, elements, completed steps, then one update count per
/// tensor; all little-endian. The state values follow it.
struct StateHeader {
  std::uint32_t kind = 0;
  std::uint32_t slots = 0;
  std::uint32_t tensors = 0;
  std::uint64_t elements = 0;
  std::uint64_t step = 0;
  std::vector<std::uint64_t> updates;

  static std::uint64_t bytes(std::size_t tensors) { return 40 + 8 * std::uint64_t{tensors}; }

  std::string encode() const {
    std::string s(state_magic, 8);
    put_u32(s, state_version);
    put_u32(s, kind);
    put_u32(s, slots);
    put_u32(s, tensors);
    put_u64(s, elements);
    put_u64(s, step);
    for (const auto u : updates) put_u64(s, u);
    return s;
  }

  /// Reads a header; throws naming `file` when it is not one.
  static StateHeader decode(std::istream& in, const std::filesystem::path& file) {
    std::array<unsigned char, 40> fixed{};
    in.read(reinterpret_cast<char*>(fixed.data()), 40);
    if (in.gcount() != 40 || std::memcmp(fixed.data(), state_magic, 8) != 0)
      throw StoreError("optimizer state file '" + file.string() + "' is not a wse state file (no WSESTATE header)");
    if (get_le(fixed.data() + 8, 4) != state_version)
      throw StoreError("optimizer state file '" + file.string() + "' has version " + std::to_string(get_le(fixed.data() + 8, 4)) +
                       ", expected " + std::to_string(state_version));
    StateHeader h;
    h.kind = static_cast<std::uint32_t>(get_le(fixed.data() + 12, 4));
    h.slots = static_cast<std::uint32_t>(get_le(fixed.data() + 16, 4));
    h.tensors = static_cast<std::uint32_t>(get_le(fixed.data() + 20, 4));
    h.elements = get_le(fixed.data() + 24, 8);
    h.step = get_le(fixed.data() + 32, 8);
    if (h.tensors > (1u << 24))
      throw StoreError("optimizer state file '" + file.string() + "' claims " + std::to_string(h.tensors) + " tensors");
    std::vector<unsigned char> counts(8 * std::size_t{h.tensors});
    in.read(reinterpret_cast<char*>(counts.data()), static_cast<std::streamsize>(counts.size()));
    if (static_cast<std::size_t>(in.gcount()) != counts.size())
      throw StoreError("optimizer state file '" + file.string() + "' ends inside its header");
    for (std::uint32_t i = 0; i < h.tensors; ++i) h.updates.push_back(get_le(counts.data() + 8 * i, 8));
    return h;
  }
};

/// Throws naming `file` when state header `h` does not fit a store whose header is `want`.
inline void check_state_matches(const StateHeader& h, const StateHeader& want, const std::filesystem::path& file) {
  auto no = [&](const std::string& what) {
    throw StoreError("optimizer state file '" + file.string() + "' does not match this store: " + what);
  };
  if (h.kind != want.kind || h.slots != want.slots)
    no("it holds " + std::string(h.kind == 1 ? "sgd" : h.kind == 2 ? "adamw" : "unknown") + " state with " +
       std::to_string(h.slots) + " slot(s), the store uses " + (want.kind == 1 ? "sgd" : "adamw") + " with " +
       std::to_string(want.slots));
  if (h.tensors != want.tensors || h.elements != want.elements)
    no("it is for " + std::to_string(h.tensors) + " tensors of " + std::to_string(h.elements) + " elements, the model has " +
       std::to_string(want.tensors) + " of " + std::to_string(want.elements));
  for (std::size_t i = 0; i < h.updates.size(); ++i)
    if (h.updates[i] != h.step && h.updates[i] != h.step + 1)
      no("tensor " + std::to_string(i) + " has " + std::to_string(h.updates[i]) + " updates after " + std::to_string(h.step) +
         " completed steps");
}

/// Where a store's values live: region 0 the parameters, region 1 + s state slot s, each
/// `total` elements laid out like the parameter file.
class Storage {
 public:
  virtual ~Storage() = default;
  virtual void read(std::size_t region, std::uint64_t offset, std::span<float> out, std::string_view tensor) = 0;
  virtual void write(std::size_t region, std::uint64_t offset, std::span<const float> in, std::string_view tensor) = 0;
  virtual void zero_state() = 0;
  virtual void store_header(const StateHeader&) {}
  virtual void flush() {}
  virtual const std::filesystem::path* params_file() const { return nullptr; }
  virtual const std::filesystem::path* state_file() const { return nullptr; }
};

class MemoryStorage final : public Storage {
 public:
  MemoryStorage(std::uint64_t total, std::size_t slots) : regions_(1 + slots, std::vector<float>(total, 0.0f)) {}
  void read(std::size_t region, std::uint64_t offset, std::span<float> out, std::string_view) override {
    std::copy_n(regions_[region].begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
  }
  void write(std::size_t region, std::uint64_t offset, std::span<const float> in, std::string_view) override {
    std::copy(in.begin(), in.end(), regions_[region].begin() + static_cast<std::ptrdiff_t>(offset));
  }
  void zero_state() override {
    for (std::size_t r = 1; r < regions_.size(); ++r) std::fill(regions_[r].begin(), regions_[r].end(), 0.0f);
  }

 private:
  std::vector<std::vector<float>> regions_;
};

class FileStorage final : public Storage {
 public:
  FileStorage(const FileBacking& f, std::uint64_t total, std::size_t tensors, const StateHeader& fresh, StateHeader& found)
      : params_(f.params), state_(f.state.empty() ? std::filesystem::path(f.params.string() + ".state") : f.state),
        total_(total), header_bytes_(StateHeader::bytes(tensors)), slots_(fresh.slots) {
    namespace fs = std::filesystem;
    const std::uint64_t param_bytes = total * 4;
    {  // one file for both would overwrite the weights with the optimizer state
      std::error_code ec;
      const bool same = fs::weakly_canonical(params_, ec) == fs::weakly_canonical(state_, ec) ||
                        (fs::exists(params_, ec) && fs::exists(state_, ec) && fs::equivalent(params_, state_, ec));
      if (same)
        throw StoreError("parameter file '" + params_.string() + "' and state file '" + state_.string() +
                         "' are the same file; give FileBacking::state another path (or leave it empty)");
    }
    if (f.keep_existing) {
      std::error_code ec;
      const auto size = fs::file_size(params_, ec);
      if (ec) throw StoreError("parameter file '" + params_.string() + "' cannot be opened: " + ec.message());
      if (size != param_bytes)
        throw StoreError("parameter file '" + params_.string() + "' has " + std::to_string(size) + " bytes; the model needs " +
                         std::to_string(param_bytes));
    } else {
      create(params_, param_bytes);
    }
    open(pf_, params_);
    found = fresh;
    bool state_ok = false;
    if (f.keep_existing && fs::exists(state_)) {
      std::ifstream in(state_, std::ios::binary);
      found = StateHeader::decode(in, state_);
      check_state_matches(found, fresh, state_);
      std::error_code ec;
      const auto size = fs::file_size(state_, ec);
      const std::uint64_t want = header_bytes_ + std::uint64_t{slots_} * total * 4;
      if (ec || size != want)
        throw StoreError("optimizer state file '" + state_.string() + "' has " + std::to_string(size) + " bytes, expected " +
                         std::to_string(want));
      state_ok = true;
    }
    if (!state_ok) create(state_, header_bytes_ + std::uint64_t{slots_} * total * 4);
    open(sf_, state_);
    if (!state_ok) store_header(fresh);
  }

  ~FileStorage() override = default;

  void read(std::size_t region, std::uint64_t offset, std::span<float> out, std::string_view tensor) override {
    std::fstream& s = region == 0 ? pf_ : sf_;
    s.clear();
    s.seekg(static_cast<std::streamoff>(position(region, offset)));
    if (!s || !read_floats(s, out)) fail("read", region, tensor);
  }
  void write(std::size_t region, std::uint64_t offset, std::span<const float> in, std::string_view tensor) override {
    std::fstream& s = region == 0 ? pf_ : sf_;
    s.clear();
    s.seekp(static_cast<std::streamoff>(position(region, offset)));
    if (!s || !write_floats(s, in)) fail("write", region, tensor);
  }
  void zero_state() override {
    // Shrinking to the header and growing back gives zeros without writing them.
    sf_.close();
    std::error_code ec;
    std::filesystem::resize_file(state_, header_bytes_, ec);
    if (!ec) std::filesystem::resize_file(state_, header_bytes_ + std::uint64_t{slots_} * total_ * 4, ec);
    if (ec) throw StoreError("optimizer state file '" + state_.string() + "' cannot be reset: " + ec.message());
    open(sf_, state_);
  }
  void store_header(const StateHeader& h) override {
    const std::string bytes = h.encode();
    sf_.clear();
    sf_.seekp(0);
    sf_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!sf_) throw StoreError("optimizer state file '" + state_.string() + "': cannot write the header");
  }
  void flush() override {
    pf_.flush();
    sf_.flush();
    if (!pf_) throw StoreError("parameter file '" + params_.string() + "': flush failed");
    if (!sf_) throw StoreError("optimizer state file '" + state_.string() + "': flush failed");
  }
  const std::filesystem::path* params_file() const override { return &params_; }
  const std::filesystem::path* state_file() const override { return &state_; }

 private:
  std::uint64_t position(std::size_t region, std::uint64_t offset) const {
    return region == 0 ? offset * 4 : header_bytes_ + ((region - 1) * total_ + offset) * 4;
  }
  [[noreturn]] void fail(const char* what, std::size_t region, std::string_view tensor) const {
    const std::string file = region == 0 ? "parameter file '" + params_.string() + "'"
                                         : "optimizer state file '" + state_.string() + "'";
    throw StoreError(std::string("cannot ") + what + " tensor '" + std::string(tensor) + "' in " + file);
  }
  static void create(const std::filesystem::path& p, std::uint64_t bytes) {
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      if (!out) throw StoreError("cannot create file '" + p.string() + "'");
    }
    std::error_code ec;
    std::filesystem::resize_file(p, bytes, ec);
    if (ec) throw StoreError("cannot size file '" + p.string() + "' to " + std::to_string(bytes) + " bytes: " + ec.message());
  }
  static void open(std::fstream& s, const std::filesystem::path& p) {
    s.open(p, std::ios::in | std::ios::out | std::ios::binary);
    if (!s) throw StoreError("cannot open file '" + p.string() + "' for reading and writing");
  }

  std::filesystem::path params_, state_;
  std::fstream pf_, sf_;
  std::uint64_t total_;
  std::uint64_t header_bytes_;
  std::size_t slots_;
};

}  // namespace detail

// ---- the store -------------------------------------------------------------------------

/// Parameters and optimizer state of one model. Not thread-safe. Movable, not copyable (a
/// moved-from store may only be destroyed or assigned to).
///
/// Step protocol: every tensor receives exactly one gradient per step (apply_gradient or
/// apply_gradients), in any order, and its optimizer update runs at once; end_step() closes
/// the step and throws naming the tensors that got none. A second gradient for a tensor in the
/// same step is refused (naming it) before anything changes.
class WeightStore {
 public:
  /// An in-memory store of `model`: parameters and state zero until initialize() or load().
  WeightStore(const ModelSpec& model, const Optimizer& optimizer) : WeightStore(model, optimizer, nullptr) {
    storage_ = std::make_unique<detail::MemoryStorage>(total_, state_slots(optimizer_));
    chunk_ = 1u << 16;
  }

  /// A file-backed store of `model` (see FileBacking).
  WeightStore(const ModelSpec& model, const Optimizer& optimizer, const FileBacking& files)
      : WeightStore(model, optimizer, nullptr) {
    detail::StateHeader found;
    storage_ = std::make_unique<detail::FileStorage>(files, total_, tensors_.size(), header(), found);
    step_ = found.step;
    updates_ = found.updates;
    chunk_ = std::max<std::size_t>(1, files.buffer_bytes / 4);
  }

  WeightStore(WeightStore&&) noexcept = default;
  WeightStore& operator=(WeightStore&&) noexcept = default;
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  /// A file-backed store writes its state header and flushes; errors are swallowed here (call
  /// flush() to see them).
  ~WeightStore() {
    if (storage_ && storage_->state_file()) {
      try {
        flush();
      } catch (...) {
      }
    }
  }

  const ModelSpec& model() const { return model_; }
  /// parameters(model()), the order of the parameter file.
  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  const TensorSpec& tensor(TensorRef t) const { return tensors_[index(t)]; }
  /// The index of a tensor; throws naming an unknown name or an out-of-range index.
  std::size_t index(TensorRef t) const {
    if (t.by_index()) {
      if (t.index() >= tensors_.size())
        throw StoreError("tensor index " + std::to_string(t.index()) + " out of range: model '" + model_.name + "' has " +
                         std::to_string(tensors_.size()) + " tensors");
      return t.index();
    }
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      if (tensors_[i].name == t.name()) return i;
    throw StoreError("no tensor '" + std::string(t.name()) + "' in model '" + model_.name + "' (" +
                     std::to_string(tensors_.size()) + " tensors, e.g. '" + tensors_.front().name + "')");
  }
  /// Element offset of tensor `t` in the parameter file (bytes: 4x).
  std::uint64_t offset(TensorRef t) const { return offsets_[index(t)]; }
  /// Parameters of the model.
  std::uint64_t total_elements() const { return total_; }
  const Optimizer& optimizer() const { return optimizer_; }
  /// Changes the learning rate from the next update on (schedules).
  void set_learning_rate(double lr) {
    Optimizer next = optimizer_;
    std::visit([&](auto& o) { o.lr = lr; }, next);
    validate(next);
    optimizer_ = next;
  }
  bool file_backed() const { return storage_->params_file() != nullptr; }
  /// The files of a file-backed store (nullptr in memory).
  const std::filesystem::path* params_file() const { return storage_->params_file(); }
  const std::filesystem::path* state_file() const { return storage_->state_file(); }
  /// Bytes of the working buffers allocated so far (at most 2 + state_slots buffers of the
  /// chunk size: FileBacking::buffer_bytes, 256 KiB in memory). A file-backed store holds
  /// nothing else per element.
  std::size_t buffer_bytes() const {
    std::size_t b = (pbuf_.capacity() + gbuf_.capacity()) * 4;
    for (const auto& s : sbuf_) b += s.capacity() * 4;
    return b;
  }

  // -- parameters --

  /// Fills every parameter as InitConfig and init_kind() say: normal tensors get
  /// float(std * z) for the deviates z of tensor_rng(seed, name), in row-major order. The
  /// optimizer state is not touched (see reset_state()).
  void initialize(const InitConfig& c = {}) {
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const TensorSpec& t = tensors_[i];
      const InitKind kind = init_kind(t);
      const double sd = init_std(t, model_.layers, c);
      SplitMix64 rng = tensor_rng(c.seed, t.name);
      for_chunks(i, [&](std::uint64_t at, std::span<float> p) {
        for (float& x : p)
          x = kind == InitKind::zeros ? 0.0f : kind == InitKind::ones ? 1.0f : static_cast<float>(sd * rng.normal());
        storage_->write(0, offsets_[i] + at, p, t.name);
      });
    }
  }

  /// Tensor `t` into `out` (exactly its elements).
  void read(TensorRef t, std::span<float> out) const {
    const std::size_t i = index(t);
    check_size(i, out.size(), "read buffer");
    storage_->read(0, offsets_[i], out, tensors_[i].name);
  }
  std::vector<float> read(TensorRef t) const {
    std::vector<float> v(tensors_[index(t)].elements());
    read(t, v);
    return v;
  }
  /// Replaces tensor `t`'s values (optimizer state untouched).
  void write(TensorRef t, std::span<const float> values) {
    const std::size_t i = index(t);
    check_size(i, values.size(), "values");
    storage_->write(0, offsets_[i], values, tensors_[i].name);
  }

  /// Writes every parameter to `file` in the parameter file format.
  void save(const std::filesystem::path& file) {
    if (same_file(file, params_file())) return flush();
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    if (!out) throw StoreError("cannot create parameter file '" + file.string() + "'");
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      for_chunks(i, [&](std::uint64_t at, std::span<float> p) {
        storage_->read(0, offsets_[i] + at, p, tensors_[i].name);
        if (!detail::write_floats(out, p))
          throw StoreError("cannot write tensor '" + tensors_[i].name + "' to parameter file '" + file.string() + "'");
      });
    out.close();
    if (!out) throw StoreError("cannot write parameter file '" + file.string() + "'");
  }

  /// Reads every parameter from `file` (the parameter file format, exactly the model's size).
  /// The optimizer state is not touched.
  void load(const std::filesystem::path& file) {
    if (same_file(file, params_file())) return;
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) throw StoreError("cannot open parameter file '" + file.string() + "': " + ec.message());
    if (size != total_ * 4) {
      std::string detail;
      if (size < total_ * 4) {
        std::size_t i = 0;
        while ((offsets_[i] + tensors_[i].elements()) * 4 <= size) ++i;
        detail = "; it ends inside tensor '" + tensors_[i].name + "'";
      }
      throw StoreError("parameter file '" + file.string() + "' has " + std::to_string(size) + " bytes but model '" +
                       model_.name + "' needs " + std::to_string(total_ * 4) + " (" + std::to_string(tensors_.size()) +
                       " fp32 tensors)" + detail);
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) throw StoreError("cannot open parameter file '" + file.string() + "'");
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      for_chunks(i, [&](std::uint64_t at, std::span<float> p) {
        if (!detail::read_floats(in, p))
          throw StoreError("cannot read tensor '" + tensors_[i].name + "' from parameter file '" + file.string() + "'");
        storage_->write(0, offsets_[i] + at, p, tensors_[i].name);
      });
  }

  // -- optimizer state --

  /// Writes the optimizer state (header, update counts, state values) to `file`.
  void save_state(const std::filesystem::path& file) {
    if (same_file(file, state_file())) return flush();
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    if (!out) throw StoreError("cannot create optimizer state file '" + file.string() + "'");
    const std::string h = header().encode();
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (std::size_t s = 0; s < state_slots(optimizer_); ++s)
      for (std::size_t i = 0; i < tensors_.size(); ++i)
        for_chunks(i, [&](std::uint64_t at, std::span<float> v) {
          storage_->read(1 + s, offsets_[i] + at, v, tensors_[i].name);
          if (!detail::write_floats(out, v))
            throw StoreError("cannot write the state of tensor '" + tensors_[i].name + "' to '" + file.string() + "'");
        });
    out.close();
    if (!out) throw StoreError("cannot write optimizer state file '" + file.string() + "'");
  }

  /// Reads optimizer state saved by save_state() for the same model and optimizer kind (the
  /// hyperparameters may differ). The header is checked before anything changes; a file that
  /// ends early leaves the state partly replaced.
  void load_state(const std::filesystem::path& file) {
    if (same_file(file, state_file())) return;
    std::ifstream in(file, std::ios::binary);
    if (!in) throw StoreError("cannot open optimizer state file '" + file.string() + "'");
    const detail::StateHeader h = detail::StateHeader::decode(in, file);
    detail::check_state_matches(h, header(), file);
    for (std::size_t s = 0; s < state_slots(optimizer_); ++s)
      for (std::size_t i = 0; i < tensors_.size(); ++i)
        for_chunks(i, [&](std::uint64_t at, std::span<float> v) {
          if (!detail::read_floats(in, v))
            throw StoreError("optimizer state file '" + file.string() + "' ends inside the state of tensor '" +
                             tensors_[i].name + "'");
          storage_->write(1 + s, offsets_[i] + at, v, tensors_[i].name);
        });
    step_ = h.step;
    updates_ = h.updates;
    storage_->store_header(header());
  }

  /// Zero optimizer state and update counts, step 0 (a fresh optimizer).
  void reset_state() {
    storage_->zero_state();
    step_ = 0;
    std::fill(updates_.begin(), updates_.end(), 0);
    storage_->store_header(header());
  }

  /// File-backed: writes the state header (step, update counts) and flushes both files.
  void flush() {
    storage_->store_header(header());
    storage_->flush();
  }

  // -- updates --

  /// The gradient of tensor `t` (its elements, row-major; the mean over the global batch)
  /// arrived: runs its optimizer update. Sizes and the step protocol are checked before
  /// anything changes; a file I/O error halfway leaves the tensor partly updated.
  void apply_gradient(TensorRef t, std::span<const float> grad) {
    const std::size_t i = index(t);
    check_size(i, grad.size(), "gradient");
    update(i, [&](std::uint64_t at, std::span<float> g) { std::copy_n(grad.begin() + static_cast<std::ptrdiff_t>(at), g.size(), g.begin()); });
  }

  /// The gradients of tensor `t` from N data-parallel replicas arrived: the update uses
  /// tree_reduce(replicas) / divisor (fp32 division). Replicas that send the gradient of the
  /// summed loss over their local examples pass divisor = the global example (or token) count;
  /// see apply_gradients(t, replicas) for replicas that send means.
  void apply_gradients(TensorRef t, std::span<const std::span<const float>> replicas, float divisor) {
    const std::size_t i = index(t);
    if (replicas.empty()) throw StoreError("no replica gradients for tensor '" + tensors_[i].name + "'");
    if (!(divisor > 0.0f) || !std::isfinite(divisor))
      throw StoreError("divisor " + std::to_string(divisor) + " for tensor '" + tensors_[i].name + "' must be positive");
    for (std::size_t r = 0; r < replicas.size(); ++r)
      check_size(i, replicas[r].size(), "gradient of replica " + std::to_string(r));
    std::vector<std::span<const float>> parts(replicas.size());
    update(i, [&](std::uint64_t at, std::span<float> g) {
      for (std::size_t r = 0; r < replicas.size(); ++r) parts[r] = replicas[r].subspan(at, g.size());
      tree_reduce(parts, g);
      if (divisor != 1.0f)
        for (float& x : g) x = x / divisor;
    });
  }
  /// Replicas that each send the mean gradient over equal-sized local batches: the global mean
  /// is tree_reduce(replicas) / N.
  void apply_gradients(TensorRef t, std::span<const std::span<const float>> replicas) {
    apply_gradients(t, replicas, static_cast<float>(replicas.size()));
  }
  void apply_gradients(TensorRef t, std::initializer_list<std::span<const float>> replicas, float divisor) {
    apply_gradients(t, std::span<const std::span<const float>>(replicas.begin(), replicas.size()), divisor);
  }
  void apply_gradients(TensorRef t, std::initializer_list<std::span<const float>> replicas) {
    apply_gradients(t, std::span<const std::span<const float>>(replicas.begin(), replicas.size()));
  }

  /// Closes the step: every tensor must have had its gradient. Throws naming the tensors that
  /// did not (nothing changes then). Returns the number of completed steps.
  std::uint64_t end_step() {
    const std::vector<std::string> missing = pending();
    if (!missing.empty()) {
      std::string names;
      for (std::size_t k = 0; k < missing.size() && k < 8; ++k) names += (k ? ", '" : "'") + missing[k] + "'";
      if (missing.size() > 8) names += " and " + std::to_string(missing.size() - 8) + " more";
      throw StoreError("step " + std::to_string(step_ + 1) + " of model '" + model_.name + "' cannot end: " +
                       std::to_string(missing.size()) + " of " + std::to_string(tensors_.size()) +
                       " tensors got no gradient: " + names);
    }
    ++step_;
    if (file_backed()) storage_->store_header(header());
    return step_;
  }
  /// Tensors still waiting for their gradient in the current step, in file order.
  std::vector<std::string> pending() const {
    std::vector<std::string> v;
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      if (updates_[i] == step_) v.push_back(tensors_[i].name);
    return v;
  }
  /// Completed steps.
  std::uint64_t step() const { return step_; }
  /// Updates tensor `t` has had (its AdamW step count).
  std::uint64_t updates(TensorRef t) const { return updates_[index(t)]; }

 private:
  WeightStore(const ModelSpec& model, const Optimizer& optimizer, std::nullptr_t)
      : model_(model), tensors_(parameters(model)), optimizer_(optimizer) {
    validate(optimizer_);
    if (tensors_.size() > 0xFFFFFFFFu) throw StoreError("model '" + model_.name + "' has too many tensors");
    for (const auto& t : tensors_) {
      offsets_.push_back(total_);
      total_ += t.elements();
    }
    updates_.assign(tensors_.size(), 0);
  }

  detail::StateHeader header() const {
    detail::StateHeader h;
    h.kind = std::holds_alternative<Sgd>(optimizer_) ? 1 : 2;
    h.slots = static_cast<std::uint32_t>(state_slots(optimizer_));
    h.tensors = static_cast<std::uint32_t>(tensors_.size());
    h.elements = total_;
    h.step = step_;
    h.updates = updates_;
    return h;
  }

  void check_size(std::size_t i, std::size_t n, const std::string& what) const {
    const TensorSpec& t = tensors_[i];
    if (n != t.elements())
      throw StoreError(what + " for tensor '" + t.name + "' has " + std::to_string(n) + " elements; it is " +
                       std::to_string(t.rows) + " x " + std::to_string(t.cols) + " = " + std::to_string(t.elements()));
  }

  static bool same_file(const std::filesystem::path& a, const std::filesystem::path* b) {
    if (!b) return false;
    std::error_code ec;
    return std::filesystem::exists(a, ec) && std::filesystem::equivalent(a, *b, ec);
  }

  /// Calls f(element offset in the tensor, working buffer of that run) for each run of tensor
  /// i, at most chunk_ elements each.
  template <class F> void for_chunks(std::size_t i, F&& f) const {
    const std::uint64_t n = tensors_[i].elements();
    pbuf_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, chunk_)));
    for (std::uint64_t at = 0; at < n; at += chunk_) {
      pbuf_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(chunk_, n - at)));
      f(at, std::span<float>(pbuf_));
    }
  }

  /// The optimizer update of tensor i, run by runs; fill(at, g) puts the gradient run in g.
  template <class Fill> void update(std::size_t i, Fill&& fill) {
    const TensorSpec& t = tensors_[i];
    if (updates_[i] > step_)
      throw StoreError("tensor '" + t.name + "' already got its gradient in step " + std::to_string(step_ + 1) +
                       " (one gradient per tensor per step; call end_step() to close the step)");
    const std::size_t slots = state_slots(optimizer_);
    const std::uint64_t count = updates_[i] + 1;
    const std::uint64_t n = t.elements();
    const std::size_t run = static_cast<std::size_t>(std::min<std::uint64_t>(n, chunk_));
    pbuf_.reserve(run);
    gbuf_.reserve(run);
    for (std::size_t s = 0; s < slots; ++s) sbuf_[s].reserve(run);
    for (std::uint64_t at = 0; at < n; at += chunk_) {
      const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_, n - at));
      pbuf_.resize(len);
      gbuf_.resize(len);
      fill(at, std::span<float>(gbuf_));
      storage_->read(0, offsets_[i] + at, pbuf_, t.name);
      for (std::size_t s = 0; s < slots; ++s) {
        sbuf_[s].resize(len);
        storage_->read(1 + s, offsets_[i] + at, sbuf_[s], t.name);
      }
      if (const auto* sgd = std::get_if<Sgd>(&optimizer_))
        sgd_update(*sgd, count == 1, pbuf_, gbuf_, slots ? std::span<float>(sbuf_[0]) : std::span<float>());
      else
        adamw_update(std::get<AdamW>(optimizer_), count, pbuf_, gbuf_, sbuf_[0], sbuf_[1]);
      storage_->write(0, offsets_[i] + at, pbuf_, t.name);
      for (std::size_t s = 0; s < slots; ++s) storage_->write(1 + s, offsets_[i] + at, sbuf_[s], t.name);
    }
    updates_[i] = count;
  }

  ModelSpec model_;
  std::vector<TensorSpec> tensors_;
  std::vector<std::uint64_t> offsets_;
  std::uint64_t total_ = 0;
  Optimizer optimizer_;
  std::unique_ptr<detail::Storage> storage_;
  std::size_t chunk_ = 1u << 16;
  std::uint64_t step_ = 0;
  std::vector<std::uint64_t> updates_;
  mutable std::vector<float> pbuf_, gbuf_;
  std::array<std::vector<float>, 2> sbuf_;
};

/// Tensor `name` of `model` straight from a parameter file, without a store.
inline std::vector<float> read_parameter(const std::filesystem::path& file, const ModelSpec& model, std::string_view name) {
  std::uint64_t offset = 0;
  for (const auto& t : parameters(model)) {
    if (t.name != name) {
      offset += t.elements();
      continue;
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) throw StoreError("cannot open parameter file '" + file.string() + "' to read tensor '" + t.name + "'");
    in.seekg(static_cast<std::streamoff>(offset * 4));
    std::vector<float> v(t.elements());
    if (!in || !detail::read_floats(in, v))
      throw StoreError("parameter file '" + file.string() + "' ends inside tensor '" + t.name + "' (model '" + model.name + "')");
    return v;
  }
  throw StoreError("no tensor '" + std::string(name) + "' in model '" + model.name + "'");
}

}  // namespace wse::stream
