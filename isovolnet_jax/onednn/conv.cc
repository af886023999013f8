// 2-D convolutions (forward, backward-data, backward-weights) by oneDNN, as
// one XLA FFI handler for JAX's CPU backend, and a second handler for
// inference's conv + bias + activation (the activation a oneDNN post-op).
//
// Layouts are the ones flax uses: activations NHWC, kernels HWIO with
// I = C / groups. Activations are handed to oneDNN in place (no reorder);
// kernels are reordered to the layout the chosen oneDNN kernel asks for by a
// reorder primitive built (and cached) with the convolution's.
//
// Every call is checked before any memory is touched: the three buffers'
// shapes must agree with each other and with the attributes (N, C = I *
// groups, O % groups, the output size from the padded input, strides,
// dilation), and all three dtypes must be the same float32 or bfloat16;
// anything else is an FFI error, as is every C++ exception.
//
// Primitives are built once per shape and kept in a bounded LRU cache (a
// fixed-size key; built outside the lock); concurrent calls (one per JAX CPU
// device) share it, and each thread has its own 64-byte-aligned scratch,
// released when it is much larger than the call needs.
//
// Threads: each call runs oneDNN with a thread count chosen by the policy
// that ISOVOLNET_ONEDNN_THREADS names, read at every call (so an A/B needs
// neither a rebuild nor a retrace):
//   budget: a process-wide pool of as many threads as the machine
//     has physical cores (set from Python at load). A call takes what is free,
//     at least 1 (the calling XLA thread itself, busy either way), at most the
//     whole pool, rounded down to a power of two when the pool is not whole
//     (so a shape has few thread counts, hence few primitives), and gives it
//     back when done. Concurrent calls (one per CPU device, and the backward
//     pass's two gradients, which XLA may run at once) share the cores; a
//     lone call gets all of them.
//   fixed (default): the `threads` attribute, i.e. the physical cores divided
//     among the CPU devices, whatever else runs; measured as fast as budget
//     with 1 CPU device and faster with 2 (results/onednn/threads).
// The count is applied by ScopedOmpThreads, which restores the calling
// thread's OpenMP state when the call ends; the count is part of the
// primitive cache's key, since a oneDNN primitive is built for the thread
// count current when it is created.
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

// Set by setup.py: the SHA-256 (hex, first 16) of this file, and the jaxlib
// whose FFI headers it was compiled against; checked by __init__.py at load.
#ifndef ISOVOLNET_SOURCE_HASH
#define ISOVOLNET_SOURCE_HASH "unknown"
#endif
#ifndef ISOVOLNET_JAXLIB_VERSION
#define ISOVOLNET_JAXLIB_VERSION "unknown"
#endif

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

// kForwardBiasAct: inference's conv + bias + activation in one primitive
// (BatchNorm folded into the kernel and bias by the caller; the activation a
// oneDNN post-op applied to the float32 accumulator before the store).
enum Kind : int64_t {
  kForward = 0, kBackwardData = 1, kBackwardWeights = 2, kForwardBiasAct = 3
};
constexpr int kKinds = 4;

// The activation of kForwardBiasAct, as the FFI attribute `act` codes it.
enum Act : int64_t { kNone = 0, kRelu = 1, kSwish = 2, kClip = 3 };

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

constexpr size_t kKeySize = 24;
using Key = std::array<int64_t, kKeySize>;

// What defines a convolution; the three kinds share it. Built only from
// checked shapes (`Check`).
struct Geometry {
  int64_t n, h, w, c;       // input
  int64_t oh, ow, o;        // output
  int64_t kh, kw, groups;   // kernel (HWIO, I = c / groups)
  memory::dims strides, dilates, pad_l, pad_r;  // dilates count from 0
  memory::data_type type;
  int64_t act = kNone;             // kForwardBiasAct only
  float alpha = 0.f, beta = 0.f;   // the activation's parameters

  memory::desc Activations(int64_t rows, int64_t cols, int64_t channels) const {
    // NHWC memory, dims in oneDNN's logical order (N, C, H, W).
    return memory::desc({n, channels, rows, cols}, type, tag::nhwc);
  }
  memory::desc Src() const { return Activations(h, w, c); }
  // kForwardBiasAct's bias: float32, one per output channel.
  memory::desc Bias() const { return memory::desc({o}, memory::data_type::f32, tag::a); }
  memory::desc Dst() const { return Activations(oh, ow, o); }
  // The HWIO kernel, in oneDNN's logical (O, I, H, W) or (G, O/G, I/G, H, W).
  memory::desc UserWeights() const {
    const int64_t i = c / groups;
    if (groups == 1)
      return memory::desc({o, i, kh, kw}, type, tag::hwio);
    const int64_t og = o / groups;
    return memory::desc({groups, og, i, kh, kw}, type,
                        memory::dims{og, 1, o, kw * i * o, i * o});
  }
  memory::desc AnyWeights() const {
    if (groups == 1)
      return memory::desc({o, c, kh, kw}, type, tag::any);
    return memory::desc({groups, o / groups, c / groups, kh, kw}, type, tag::any);
  }
  // `threads`: the OpenMP thread count the primitive is built for (oneDNN's
  // convolutions split their work by the max threads current at creation).
  Key MakeKey(int64_t kind, int64_t threads) const {
    return {kind, static_cast<int64_t>(type), n, h, w, c, oh, ow, o, kh, kw,
            groups, strides[0], strides[1], dilates[0], dilates[1], pad_l[0],
            pad_l[1], pad_r[0], pad_r[1], threads, act, FloatBits(alpha),
            FloatBits(beta)};
  }
  static int64_t FloatBits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the words
    for (int64_t v : k) {
      h ^= static_cast<uint64_t>(v);
      h *= 1099511628211ull;
    }
    return static_cast<size_t>(h);
  }
};

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training,
      dnnl::algorithm::convolution_direct, g.Src(), g.AnyWeights(), g.Dst(),
      g.strides, g.dilates, g.pad_l, g.pad_r, UserScratchpad());
}

// Inference's conv + bias (float32, per output channel) + activation.
dnnl::convolution_forward::primitive_desc BiasActDesc(const Geometry& g) {
  dnnl::primitive_attr attr = UserScratchpad();
  if (g.act != kNone) {
    dnnl::post_ops ops;
    const auto alg = g.act == kRelu    ? dnnl::algorithm::eltwise_relu
                     : g.act == kSwish ? dnnl::algorithm::eltwise_swish
                                       : dnnl::algorithm::eltwise_clip_v2;
    ops.append_eltwise(alg, g.alpha, g.beta);
    attr.set_post_ops(ops);
  }
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_inference,
      dnnl::algorithm::convolution_direct, g.Src(), g.AnyWeights(),
      g.Bias(), g.Dst(), g.strides,
      g.dilates, g.pad_l, g.pad_r, attr);
}

// A built primitive with what a call needs besides the buffers: the kernel
// layout it wants and, when that is not HWIO, the reorder to (forward,
// backward-data) or from (backward-weights) HWIO.
struct Entry {
  dnnl::primitive prim;
  memory::desc weights;
  memory::desc scratch;
  memory::desc user_weights;
  bool reorder = false;
  dnnl::reorder reorder_prim;
  memory::desc reorder_scratch;
};

Entry Build(const Geometry& g, int64_t kind) {
  Entry e;
  if (kind == kForward || kind == kForwardBiasAct) {
    auto pd = kind == kForward ? ForwardDesc(g) : BiasActDesc(g);
    e.prim = dnnl::convolution_forward(pd);
    e.weights = pd.weights_desc();
    e.scratch = pd.scratchpad_desc();
  } else if (kind == kBackwardData) {
    auto hint = ForwardDesc(g);
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, g.Src(), g.AnyWeights(),
        g.Dst(), g.strides, g.dilates, g.pad_l, g.pad_r, hint, UserScratchpad());
    e.prim = dnnl::convolution_backward_data(pd);
    e.weights = pd.weights_desc();
    e.scratch = pd.scratchpad_desc();
  } else {
    auto hint = ForwardDesc(g);
    dnnl::convolution_backward_weights::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, g.Src(), g.AnyWeights(),
        g.Dst(), g.strides, g.dilates, g.pad_l, g.pad_r, hint, UserScratchpad());
    e.prim = dnnl::convolution_backward_weights(pd);
    e.weights = pd.diff_weights_desc();
    e.scratch = pd.scratchpad_desc();
  }
  e.user_weights = g.UserWeights();
  e.reorder = e.weights != e.user_weights;
  if (e.reorder) {
    const bool to_user = kind == kBackwardWeights;
    dnnl::reorder::primitive_desc pd(
        Engine(), to_user ? e.weights : e.user_weights, Engine(),
        to_user ? e.user_weights : e.weights, UserScratchpad());
    e.reorder_prim = dnnl::reorder(pd);
    e.reorder_scratch = pd.scratchpad_desc();
  }
  return e;
}

// --- The primitive cache: LRU, bounded. -------------------------------------

constexpr size_t kDefaultCacheCapacity = 256;
std::atomic<size_t> cache_capacity{kDefaultCacheCapacity};  // tests lower it
using Lru = std::list<std::pair<Key, std::shared_ptr<const Entry>>>;
std::mutex cache_mutex;
Lru lru;  // most recently used first
std::unordered_map<Key, Lru::iterator, KeyHash> cache_index;
std::atomic<int64_t> builds{0};
std::atomic<int64_t> calls[kKinds];

// Drops the least recently used entries past the capacity; holds the lock.
void EvictLocked() {
  const size_t capacity = std::max<size_t>(1, cache_capacity.load());
  while (lru.size() > capacity) {
    cache_index.erase(lru.back().first);
    lru.pop_back();
  }
}

// Built for the calling thread's current OpenMP max threads, which is in the key.
std::shared_ptr<const Entry> Lookup(const Geometry& g, int64_t kind) {
  const Key key = g.MakeKey(kind, omp_get_max_threads());
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache_index.find(key);
    if (it != cache_index.end()) {
      lru.splice(lru.begin(), lru, it->second);
      return it->second->second;
    }
  }
  // Built outside the lock: other shapes' calls do not wait on it. Two
  // threads may build the same entry; the first one stored wins.
  auto entry = std::make_shared<const Entry>(Build(g, kind));
  ++builds;
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = cache_index.find(key);
  if (it != cache_index.end()) {
    lru.splice(lru.begin(), lru, it->second);
    return it->second->second;
  }
  lru.emplace_front(key, entry);
  cache_index.emplace(key, lru.begin());
  EvictLocked();
  return entry;
}

// --- Per-thread scratch: 64-byte aligned, shrunk when far too large. -------

class AlignedBuffer {
 public:
  ~AlignedBuffer() { std::free(data_); }
  void* Get(size_t size) {
    if (size == 0) return nullptr;
    const bool too_small = size > capacity_;
    const bool too_large = capacity_ > (size_t{1} << 20) && capacity_ > 4 * size;
    if (too_small || too_large) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      const size_t rounded = (size + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, rounded);
      if (data_ == nullptr) throw std::bad_alloc();
      capacity_ = rounded;
    }
    return data_;
  }
  size_t capacity() const { return capacity_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

thread_local AlignedBuffer scratch_buf, weights_buf;

// --- Threads: the policy, the budget, and the OpenMP state. ----------------

enum class Policy { kBudget, kFixed, kInvalid };

// ISOVOLNET_ONEDNN_THREADS at this call: unset or empty = fixed.
Policy CurrentPolicy() {
  const char* v = std::getenv("ISOVOLNET_ONEDNN_THREADS");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "fixed") == 0)
    return Policy::kFixed;
  if (std::strcmp(v, "budget") == 0) return Policy::kBudget;
  return Policy::kInvalid;
}

// The budget: `budget_total` threads (the physical cores), `budget_free` of
// them not taken. Free goes below 0 only by the calling threads themselves
// (the "at least 1"), which run whatever the policy.
std::atomic<int64_t> budget_total{1};
std::atomic<int64_t> budget_free{1};

int64_t FloorPow2(int64_t n) {
  int64_t p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

// Takes threads for one call: all of `want` when that many are free, else the
// largest power of two that is free, at least 1. Never waits.
int64_t TakeThreads(int64_t want) {
  want = std::max<int64_t>(1, want);
  int64_t free = budget_free.load();
  int64_t take;
  do {
    take = free >= want ? want : FloorPow2(std::max<int64_t>(1, free));
  } while (!budget_free.compare_exchange_weak(free, free - take));
  return take;
}

void GiveThreads(int64_t n) { budget_free += n; }

// Holds `n` threads of the budget for its lifetime (0: holds none).
class BudgetHold {
 public:
  explicit BudgetHold(int64_t want) : n_(TakeThreads(want)) {}
  ~BudgetHold() { GiveThreads(n_); }
  int64_t threads() const { return n_; }
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;

 private:
  int64_t n_;
};

// Sets the calling thread's OpenMP max threads (the nthreads-var that
// omp_set_num_threads changes, i.e. what oneDNN reads at primitive creation
// and for every parallel region it opens) for its lifetime, and restores the
// previous value after: XLA's worker threads keep the state they had.
//
// Why this and not an explicit `#pragma omp parallel num_threads(n)` around
// the call: oneDNN's OpenMP build opens its own parallel regions, and inside
// an active region it sees itself nested and runs on one thread; the count
// it uses is the caller's omp_get_max_threads(), which is what is set here.
// omp_set_num_threads outside a parallel region only changes the calling
// thread's own ICV, so other threads (other concurrent calls) are unaffected.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int64_t n) : saved_(omp_get_max_threads()) {
    if (n > 0 && n != saved_) {
      omp_set_num_threads(static_cast<int>(n));
      changed_ = true;
    }
  }
  ~ScopedOmpThreads() {
    if (changed_) omp_set_num_threads(saved_);
  }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int saved_;
  bool changed_ = false;
};

// Runs one checked convolution with the calling thread's current OpenMP
// thread count; throws on oneDNN's or the allocator's errors.
// `bias`: kForwardBiasAct's float32 bias (nullptr for the other kinds).
void ExecuteHere(const Geometry& g, int64_t kind, void* a, void* b, void* out,
                 void* bias) {
  auto entry = Lookup(g, kind);
  auto& eng = Engine();
  dnnl::stream stream(eng);
  const size_t scratch_size =
      std::max(entry->scratch.get_size(),
               entry->reorder ? entry->reorder_scratch.get_size() : size_t{0});
  void* scratch_ptr = scratch_buf.Get(scratch_size);
  memory scratch(entry->scratch, eng, scratch_ptr);

  void* user_ptr = kind == kBackwardWeights ? out : b;
  void* w_ptr = entry->reorder ? weights_buf.Get(entry->weights.get_size()) : user_ptr;
  memory weights(entry->weights, eng, w_ptr);
  auto run_reorder = [&] {
    memory user(entry->user_weights, eng, user_ptr);
    memory rscratch(entry->reorder_scratch, eng, scratch_ptr);
    const bool to_user = kind == kBackwardWeights;
    entry->reorder_prim.execute(
        stream, {{DNNL_ARG_FROM, to_user ? weights : user},
                 {DNNL_ARG_TO, to_user ? user : weights},
                 {DNNL_ARG_SCRATCHPAD, rscratch}});
  };

  if (kind == kForward || kind == kForwardBiasAct) {
    if (entry->reorder) run_reorder();
    memory src(g.Src(), eng, a);
    memory dst(g.Dst(), eng, out);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights},
                                         {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratch}};
    if (kind == kForwardBiasAct)
      args.emplace(DNNL_ARG_BIAS,
                   memory(g.Bias(), eng, bias));
    entry->prim.execute(stream, args);
  } else if (kind == kBackwardData) {
    if (entry->reorder) run_reorder();
    memory diff_dst(g.Dst(), eng, a);
    memory diff_src(g.Src(), eng, out);
    entry->prim.execute(stream, {{DNNL_ARG_DIFF_DST, diff_dst},
                                 {DNNL_ARG_WEIGHTS, weights},
                                 {DNNL_ARG_DIFF_SRC, diff_src},
                                 {DNNL_ARG_SCRATCHPAD, scratch}});
  } else {
    memory src(g.Src(), eng, a);
    memory diff_dst(g.Dst(), eng, b);
    entry->prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst},
                                 {DNNL_ARG_DIFF_WEIGHTS, weights},
                                 {DNNL_ARG_SCRATCHPAD, scratch}});
    if (entry->reorder) run_reorder();
  }
  stream.wait();
  ++calls[kind];
}

// Runs one checked convolution with the threads `policy` gives it (`fixed`:
// the fixed count, <= 0 leaving the current one), the calling thread's
// OpenMP state restored after, the budget returned, exception or not.
void Execute(const Geometry& g, int64_t kind, void* a, void* b, void* out,
             Policy policy, int64_t fixed, void* bias = nullptr) {
  if (policy == Policy::kFixed) {
    ScopedOmpThreads omp(fixed);
    ExecuteHere(g, kind, a, b, out, bias);
  } else {
    BudgetHold hold(budget_total.load());
    ScopedOmpThreads omp(hold.threads());
    ExecuteHere(g, kind, a, b, out, bias);
  }
}

memory::data_type ToDnnl(ffi::DataType t) {
  switch (t) {
    case ffi::DataType::F32: return memory::data_type::f32;
    case ffi::DataType::BF16: return memory::data_type::bf16;
    default: return memory::data_type::undef;
  }
}

// Dims as (x NHWC, y NHWC, kernel HWIO) of one kind's three buffers:
// kForward: a = x, b = kernel, out = y; kBackwardData: a = dy, b = kernel,
// out = dx; kBackwardWeights: a = x, b = dy, out = dkernel.
// Returns '' and fills `g`, or why the call is malformed.
std::string Check(int64_t kind, ffi::Span<const int64_t> x,
                  ffi::Span<const int64_t> y, ffi::Span<const int64_t> k,
                  ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
                  ffi::Span<const int64_t> padding, int64_t groups, Geometry& g) {
  if (kind < kForward || kind >= kKinds) return "unknown kind";
  if (x.size() != 4 || y.size() != 4 || k.size() != 4)
    return "rank-4 NHWC/HWIO operands only";
  if (strides.size() != 2 || dilation.size() != 2 || padding.size() != 4)
    return "strides and dilation need 2 values, padding 4";
  constexpr int64_t kMaxDim = int64_t{1} << 31;
  for (auto dims : {x, y, k})
    for (int64_t d : dims)
      if (d < 1 || d >= kMaxDim) return "every dimension must be in [1, 2^31)";
  if (groups < 1) return "groups must be >= 1";
  for (int i = 0; i < 2; ++i) {
    if (strides[i] < 1 || strides[i] >= kMaxDim) return "strides must be >= 1";
    if (dilation[i] < 1 || dilation[i] >= kMaxDim) return "dilation must be >= 1";
  }
  for (int i = 0; i < 4; ++i)
    if (padding[i] < 0 || padding[i] >= kMaxDim) return "padding must be >= 0";
  if (x[0] != y[0]) return "input and output batch sizes differ";
  if (k[3] != y[3]) return "kernel O differs from the output's channels";
  if (k[2] * groups != x[3]) return "kernel I * groups differs from the input's channels";
  if (k[3] % groups != 0) return "output channels are not a multiple of groups";
  for (int i = 0; i < 2; ++i) {
    const int64_t extent = (k[i] - 1) * dilation[i] + 1;
    const int64_t padded = x[1 + i] + padding[2 * i] + padding[2 * i + 1];
    if (padded < extent) return "the dilated kernel is larger than the padded input";
    if ((padded - extent) / strides[i] + 1 != y[1 + i])
      return "the output size does not follow from input, kernel, strides, "
             "dilation and padding";
  }
  g.n = x[0]; g.h = x[1]; g.w = x[2]; g.c = x[3];
  g.oh = y[1]; g.ow = y[2]; g.o = y[3];
  g.kh = k[0]; g.kw = k[1]; g.groups = groups;
  g.strides = {strides[0], strides[1]};
  g.dilates = {dilation[0] - 1, dilation[1] - 1};  // oneDNN counts from 0.
  g.pad_l = {padding[0], padding[2]};
  g.pad_r = {padding[1], padding[3]};
  return "";
}

// Runs `body` (which returns '' or why the call is malformed), turning every
// C++ exception into an FFI error: nothing thrown here ends the process.
template <typename Body>
ffi::Error Guarded(Body body) {
  try {
    const std::string why = body();
    if (!why.empty()) return ffi::Error::InvalidArgument("onednn_conv: " + why);
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("onednn_conv: oneDNN: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      "onednn_conv: out of memory");
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("onednn_conv: ") + e.what());
  } catch (...) {
    return ffi::Error::Internal("onednn_conv: unknown C++ exception");
  }
  return ffi::Error::Success();
}

// The dtype of buffers that must all be float32 or all bfloat16, else undef.
memory::data_type CommonType(std::initializer_list<ffi::DataType> types) {
  const auto type = ToDnnl(*types.begin());
  for (auto t : types)
    if (t != *types.begin()) return memory::data_type::undef;
  return type;
}

std::string CheckPolicy(Policy& policy) {
  policy = CurrentPolicy();
  return policy == Policy::kInvalid
             ? "ISOVOLNET_ONEDNN_THREADS must be 'budget', 'fixed' or unset"
             : "";
}

ffi::Error Run(int64_t kind, ffi::AnyBuffer a, ffi::AnyBuffer b,
               ffi::Result<ffi::AnyBuffer> out, ffi::Span<const int64_t> strides,
               ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> padding,
               int64_t groups, int64_t threads) {
  return Guarded([&]() -> std::string {
    if (kind == kForwardBiasAct) return "the bias + activation kind has its own target";
    const auto x_dims = kind == kBackwardData ? out->dimensions() : a.dimensions();
    const auto y_dims = kind == kForward ? out->dimensions()
                        : kind == kBackwardData ? a.dimensions() : b.dimensions();
    const auto k_dims = kind == kBackwardWeights ? out->dimensions() : b.dimensions();
    Geometry g;
    std::string why = Check(kind, x_dims, y_dims, k_dims, strides, dilation,
                            padding, groups, g);
    if (!why.empty()) return why;
    g.type = CommonType({a.element_type(), b.element_type(), out->element_type()});
    if (g.type == memory::data_type::undef)
      return "all three buffers must be float32, or all bfloat16";
    Policy policy;
    if (!(why = CheckPolicy(policy)).empty()) return why;
    Execute(g, kind, a.untyped_data(), b.untyped_data(), out->untyped_data(),
            policy, threads);
    return "";
  });
}

// Inference's y = act(conv(x, kernel) + bias): x and y NHWC, kernel HWIO, in
// one dtype (float32 or bfloat16); bias float32 of y's channels; `act` an
// `Act` with its `alpha` and `beta` (oneDNN's eltwise parameters).
ffi::Error RunBiasAct(ffi::AnyBuffer x, ffi::AnyBuffer kernel, ffi::AnyBuffer bias,
                      ffi::Result<ffi::AnyBuffer> out, ffi::Span<const int64_t> strides,
                      ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> padding,
                      int64_t groups, int64_t threads, int64_t act, float alpha,
                      float beta) {
  return Guarded([&]() -> std::string {
    Geometry g;
    std::string why = Check(kForwardBiasAct, x.dimensions(), out->dimensions(),
                            kernel.dimensions(), strides, dilation, padding, groups, g);
    if (!why.empty()) return why;
    g.type = CommonType({x.element_type(), kernel.element_type(), out->element_type()});
    if (g.type == memory::data_type::undef)
      return "input, kernel and output must be float32, or all bfloat16";
    if (bias.element_type() != ffi::DataType::F32 || bias.dimensions().size() != 1 ||
        bias.dimensions()[0] != g.o)
      return "the bias must be float32 of the output's channels";
    if (act < kNone || act > kClip) return "unknown activation";
    if (!std::isfinite(alpha) || !std::isfinite(beta))
      return "activation parameters must be finite";
    g.act = act;
    g.alpha = alpha;
    g.beta = beta;
    Policy policy;
    if (!(why = CheckPolicy(policy)).empty()) return why;
    Execute(g, kForwardBiasAct, x.untyped_data(), kernel.untyped_data(),
            out->untyped_data(), policy, threads, bias.untyped_data());
    return "";
  });
}

// --- The start-up probe: a tiny conv of each kind against a direct loop. ----
// (kForwardBiasAct's with a bias and ReLU.)

uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);  // exact for the small integers used
}

float FromBf16(uint16_t v) {
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// `threads` <= 0: the budget's policy, else that many threads (fixed).
std::string Probe(bool bf16, int64_t threads) {
  // N=2, 6x5 input, 4 channels in 2 groups, a 3x2 kernel, strides (1, 2),
  // dilation (2, 1), padding (2, 1 | 0, 1): every asymmetry has a use.
  const int64_t n = 2, h = 6, w = 5, c = 4, groups = 2, o = 6, kh = 3, kw = 2;
  const int64_t sh = 1, sw = 2, dh = 2, dw = 1, pt = 2, pb = 1, pl = 0, pr = 1;
  const int64_t i_g = c / groups, o_g = o / groups;
  const int64_t oh = (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1;
  const int64_t ow = (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1;
  std::vector<float> x(n * h * w * c), k(kh * kw * i_g * o), dy(n * oh * ow * o);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 5) - 2;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<float>(i % 7) - 3;
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<float>(i % 3) - 1;
  std::vector<float> y(dy.size()), dx(x.size()), dk(k.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < oh; ++p)
      for (int64_t q = 0; q < ow; ++q)
        for (int64_t oc = 0; oc < o; ++oc)
          for (int64_t u = 0; u < kh; ++u)
            for (int64_t v = 0; v < kw; ++v)
              for (int64_t ic = 0; ic < i_g; ++ic) {
                const int64_t r = p * sh - pt + u * dh, s = q * sw - pl + v * dw;
                if (r < 0 || r >= h || s < 0 || s >= w) continue;
                const int64_t xc = (oc / o_g) * i_g + ic;
                const int64_t xi = ((b * h + r) * w + s) * c + xc;
                const int64_t ki = ((u * kw + v) * i_g + ic) * o + oc;
                const int64_t yi = ((b * oh + p) * ow + q) * o + oc;
                y[yi] += x[xi] * k[ki];
                dx[xi] += dy[yi] * k[ki];
                dk[ki] += x[xi] * dy[yi];
              }
  const int64_t x_dims[] = {n, h, w, c}, y_dims[] = {n, oh, ow, o},
                k_dims[] = {kh, kw, i_g, o}, strides[] = {sh, sw},
                dilation[] = {dh, dw}, padding[] = {pt, pb, pl, pr};
  Geometry g;
  const std::string why = Check(
      kForward, ffi::Span<const int64_t>(x_dims, 4), ffi::Span<const int64_t>(y_dims, 4),
      ffi::Span<const int64_t>(k_dims, 4), ffi::Span<const int64_t>(strides, 2),
      ffi::Span<const int64_t>(dilation, 2), ffi::Span<const int64_t>(padding, 4),
      groups, g);
  if (!why.empty()) return "probe geometry: " + why;
  g.type = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  const size_t bytes = bf16 ? 2 : 4;
  auto pack = [&](const std::vector<float>& v) {
    std::vector<uint8_t> buf(v.size() * bytes);
    for (size_t i = 0; i < v.size(); ++i) {
      if (bf16) {
        const uint16_t b = ToBf16(v[i]);
        std::memcpy(&buf[2 * i], &b, 2);
      } else {
        std::memcpy(&buf[4 * i], &v[i], 4);
      }
    }
    return buf;
  };
  auto matches = [&](const std::vector<uint8_t>& buf, const std::vector<float>& want) {
    for (size_t i = 0; i < want.size(); ++i) {
      float got;
      if (bf16) {
        uint16_t b;
        std::memcpy(&b, &buf[2 * i], 2);
        got = FromBf16(b);
      } else {
        std::memcpy(&got, &buf[4 * i], 4);
      }
      if (std::fabs(got - want[i]) > 1e-3f) return false;  // integers, exact
    }
    return true;
  };
  try {
    auto xb = pack(x), kb = pack(k), dyb = pack(dy);
    std::vector<uint8_t> yb(y.size() * bytes), dxb(dx.size() * bytes),
        dkb(dk.size() * bytes);
    const Policy policy = threads > 0 ? Policy::kFixed : Policy::kBudget;
    Execute(g, kForward, xb.data(), kb.data(), yb.data(), policy, threads);
    if (!matches(yb, y)) return "the forward pass gave wrong values";
    std::vector<float> bias(o), y_act(y.size());
    for (int64_t oc = 0; oc < o; ++oc) bias[oc] = static_cast<float>(oc) - 3;
    for (size_t i = 0; i < y.size(); ++i) y_act[i] = std::max(0.f, y[i] + bias[i % o]);
    Geometry g_act = g;
    g_act.act = kRelu;
    std::vector<uint8_t> y_act_b(y.size() * bytes);
    Execute(g_act, kForwardBiasAct, xb.data(), kb.data(), y_act_b.data(), policy, threads,
            bias.data());
    if (!matches(y_act_b, y_act))
      return "the forward pass with bias and ReLU gave wrong values";
    Execute(g, kBackwardData, dyb.data(), kb.data(), dxb.data(), policy, threads);
    if (!matches(dxb, dx)) return "the input gradient gave wrong values";
    Execute(g, kBackwardWeights, xb.data(), dyb.data(), dkb.data(), policy, threads);
    if (!matches(dkb, dk)) return "the kernel gradient gave wrong values";
  } catch (const dnnl::error& e) {
    return std::string("oneDNN: ") + e.what();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown C++ exception";
  }
  return "";
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    IsovolnetOnednnConv, Run,
    ffi::Ffi::Bind()
        .Attr<int64_t>("kind")
        .Arg<ffi::AnyBuffer>()
        .Arg<ffi::AnyBuffer>()
        .Ret<ffi::AnyBuffer>()
        .Attr<ffi::Span<const int64_t>>("strides")
        .Attr<ffi::Span<const int64_t>>("dilation")
        .Attr<ffi::Span<const int64_t>>("padding")
        .Attr<int64_t>("groups")
        .Attr<int64_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    IsovolnetOnednnConvBiasAct, RunBiasAct,
    ffi::Ffi::Bind()
        .Arg<ffi::AnyBuffer>()
        .Arg<ffi::AnyBuffer>()
        .Arg<ffi::AnyBuffer>()
        .Ret<ffi::AnyBuffer>()
        .Attr<ffi::Span<const int64_t>>("strides")
        .Attr<ffi::Span<const int64_t>>("dilation")
        .Attr<ffi::Span<const int64_t>>("padding")
        .Attr<int64_t>("groups")
        .Attr<int64_t>("threads")
        .Attr<int64_t>("act")
        .Attr<float>("alpha")
        .Attr<float>("beta"));

extern "C" {

// The instruction set oneDNN dispatches to on this CPU, e.g. "avx512_core_bf16".
const char* isovolnet_onednn_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx2_vnni_2: return "avx2_vnni_2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_fp16: return "avx512_core_fp16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_core_amx_fp16: return "avx512_core_amx_fp16";
    default: return "other";
  }
}

// How many primitives have been built (the cache's misses), for the tests.
int64_t isovolnet_onednn_builds() { return builds.load(); }

// How many calls of `kind` (0 forward, 1 input, 2 kernel gradient, 3
// inference's conv + bias + activation) ran.
int64_t isovolnet_onednn_calls(int64_t kind) {
  return kind >= 0 && kind < kKinds ? calls[kind].load() : -1;
}

// Entries in the primitive cache, and its bound.
int64_t isovolnet_onednn_cache_size() {
  std::lock_guard<std::mutex> lock(cache_mutex);
  return static_cast<int64_t>(lru.size());
}
int64_t isovolnet_onednn_cache_capacity() {
  return static_cast<int64_t>(cache_capacity.load());
}

// Sets the bound (at least 1; tests lower it to force evictions), evicting at
// once what is past it; returns the previous bound.
int64_t isovolnet_onednn_set_cache_capacity(int64_t capacity) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  const size_t previous =
      cache_capacity.exchange(static_cast<size_t>(std::max<int64_t>(1, capacity)));
  EvictLocked();
  return static_cast<int64_t>(previous);
}

// The thread budget (the budget policy's pool): its size, set once at load
// to the physical cores (at least 1; calls in flight keep theirs, and give
// them back to the new pool), and how many are free now (the size when no
// call is running).
void isovolnet_onednn_set_thread_budget(int64_t total) {
  total = std::max<int64_t>(1, total);
  const int64_t previous = budget_total.exchange(total);
  budget_free += total - previous;
}
int64_t isovolnet_onednn_thread_budget() { return budget_total.load(); }
int64_t isovolnet_onednn_threads_free() { return budget_free.load(); }

// The budget's arithmetic on its own, for the tests: take up to `want`
// threads (what a call takes), and give `n` back.
int64_t isovolnet_onednn_take_threads(int64_t want) { return TakeThreads(want); }
void isovolnet_onednn_give_threads(int64_t n) { GiveThreads(n); }

// The calling thread's OpenMP max threads, and a setter: the same OpenMP
// runtime the kernels use, for the tests of ScopedOmpThreads.
int64_t isovolnet_onednn_omp_max_threads() { return omp_get_max_threads(); }
void isovolnet_onednn_omp_set_num_threads(int64_t n) {
  omp_set_num_threads(static_cast<int>(std::max<int64_t>(1, n)));
}

// This thread's scratch capacity in bytes (for the tests).
int64_t isovolnet_onednn_scratch_capacity() {
  return static_cast<int64_t>(scratch_buf.capacity());
}

// '' where a tiny conv of every kind ran and matched a direct loop in this
// dtype (0 float32, 1 bfloat16) on this CPU, else why not; on the calling
// thread, by the path an FFI call takes (ScopedOmpThreads and, for
// `threads` <= 0, the budget; > 0: that many threads, as policy fixed). Not
// thread-safe for the returned text: called once per dtype at load, and by
// the tests.
const char* isovolnet_onednn_probe(int64_t dtype, int64_t threads) {
  static std::string result[2];
  if (dtype != 0 && dtype != 1) return "unknown dtype";
  result[dtype] = Probe(dtype == 1, threads);
  return result[dtype].c_str();
}

const char* isovolnet_onednn_source_hash() { return ISOVOLNET_SOURCE_HASH; }
const char* isovolnet_onednn_jaxlib_version() { return ISOVOLNET_JAXLIB_VERSION; }

}  // extern "C"
