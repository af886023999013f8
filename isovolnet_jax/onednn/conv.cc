// 2-D convolutions (forward, backward-data, backward-weights) by oneDNN, as
// one XLA FFI handler for JAX's CPU backend.
//
// Layouts are the ones flax uses: activations NHWC, kernels HWIO with
// I = C / groups. Activations are handed to oneDNN in place (no reorder);
// kernels are reordered to the layout the chosen oneDNN kernel asks for,
// once per call. Primitives are built once per shape and cached, keyed by
// everything that defines them; concurrent calls (one per JAX CPU device)
// share the cache and each uses its own scratchpad and stream.
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

enum Kind : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// What defines a convolution; the three kinds share it.
struct Geometry {
  int64_t n, h, w, c;       // input
  int64_t oh, ow, o;        // output
  int64_t kh, kw, groups;   // kernel
  memory::dims strides, dilates, pad_l, pad_r;
  memory::data_type weights_type, act_type;

  memory::desc Activations(int64_t rows, int64_t cols, int64_t channels) const {
    // NHWC memory, dims in oneDNN's logical order (N, C, H, W).
    return memory::desc({n, channels, rows, cols}, act_type, tag::nhwc);
  }
  memory::desc Src() const { return Activations(h, w, c); }
  memory::desc Dst() const { return Activations(oh, ow, o); }
  // The HWIO kernel, in oneDNN's logical (O, I, H, W) or (G, O/G, I/G, H, W).
  memory::desc UserWeights(memory::data_type type) const {
    const int64_t i = c / groups;
    if (groups == 1)
      return memory::desc({o, i, kh, kw}, type, tag::hwio);
    const int64_t og = o / groups;
    return memory::desc({groups, og, i, kh, kw}, type,
                        memory::dims{og, 1, o, kw * i * o, i * o});
  }
  memory::desc AnyWeights(memory::data_type type) const {
    if (groups == 1)
      return memory::desc({o, c, kh, kw}, type, tag::any);
    return memory::desc({groups, o / groups, c / groups, kh, kw}, type, tag::any);
  }
  std::string Key(int64_t kind, int64_t out_type) const {
    std::ostringstream s;
    s << kind << ':' << static_cast<int>(act_type) << ':'
      << static_cast<int>(weights_type) << ':' << out_type << ':' << n << ','
      << h << ',' << w << ',' << c << ',' << oh << ',' << ow << ',' << o << ','
      << kh << ',' << kw << ',' << groups;
    for (const auto* v : {&strides, &dilates, &pad_l, &pad_r})
      for (auto x : *v) s << ',' << x;
    return s.str();
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
      dnnl::algorithm::convolution_direct, g.Src(),
      g.AnyWeights(g.weights_type), g.Dst(), g.strides, g.dilates, g.pad_l,
      g.pad_r, UserScratchpad());
}

// A built primitive with what a call needs besides the buffers.
struct Entry {
  dnnl::primitive prim;
  memory::desc weights;  // the layout the primitive wants its kernel in
  memory::desc scratch;
};

Entry Build(const Geometry& g, int64_t kind, memory::data_type out_type) {
  if (kind == kForward) {
    auto pd = ForwardDesc(g);
    return {dnnl::convolution_forward(pd), pd.weights_desc(), pd.scratchpad_desc()};
  }
  auto hint = ForwardDesc(g);
  if (kind == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, g.Src(),
        g.AnyWeights(g.weights_type), g.Dst(), g.strides, g.dilates, g.pad_l,
        g.pad_r, hint, UserScratchpad());
    return {dnnl::convolution_backward_data(pd), pd.weights_desc(),
            pd.scratchpad_desc()};
  }
  dnnl::convolution_backward_weights::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, g.Src(),
      g.AnyWeights(out_type), g.Dst(), g.strides, g.dilates, g.pad_l, g.pad_r,
      hint, UserScratchpad());
  return {dnnl::convolution_backward_weights(pd), pd.diff_weights_desc(),
          pd.scratchpad_desc()};
}

std::mutex cache_mutex;
std::unordered_map<std::string, std::shared_ptr<Entry>> cache;
int64_t builds = 0;

std::shared_ptr<Entry> Lookup(const Geometry& g, int64_t kind,
                              memory::data_type out_type) {
  const std::string key = g.Key(kind, static_cast<int64_t>(out_type));
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto entry = std::make_shared<Entry>(Build(g, kind, out_type));
  ++builds;
  cache.emplace(key, entry);
  return entry;
}

memory::data_type ToDnnl(ffi::DataType t) {
  switch (t) {
    case ffi::DataType::F32: return memory::data_type::f32;
    case ffi::DataType::BF16: return memory::data_type::bf16;
    default: return memory::data_type::undef;
  }
}

ffi::Error Run(int64_t kind, ffi::AnyBuffer a, ffi::AnyBuffer b,
               ffi::Result<ffi::AnyBuffer> out, ffi::Span<const int64_t> strides,
               ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> padding,
               int64_t groups, int64_t threads) {
  // kForward: a = x (NHWC), b = kernel (HWIO), out = y (NHWC).
  // kBackwardData: a = dy, b = kernel, out = dx.
  // kBackwardWeights: a = x, b = dy, out = dkernel.
  const auto x_dims = kind == kBackwardData ? out->dimensions() : a.dimensions();
  const auto y_dims = kind == kForward ? out->dimensions()
                      : kind == kBackwardData ? a.dimensions() : b.dimensions();
  const auto k_dims = kind == kBackwardWeights ? out->dimensions() : b.dimensions();
  if (x_dims.size() != 4 || y_dims.size() != 4 || k_dims.size() != 4 ||
      strides.size() != 2 || dilation.size() != 2 || padding.size() != 4)
    return ffi::Error::InvalidArgument("onednn_conv: rank-4 NHWC/HWIO operands only");
  const auto act = ToDnnl(kind == kBackwardWeights ? a.element_type()
                                                   : out->element_type());
  const auto wt = ToDnnl(kind == kBackwardWeights ? out->element_type()
                                                  : b.element_type());
  if (act == memory::data_type::undef || wt == memory::data_type::undef)
    return ffi::Error::InvalidArgument("onednn_conv: float32 or bfloat16 only");

  Geometry g;
  g.n = x_dims[0]; g.h = x_dims[1]; g.w = x_dims[2]; g.c = x_dims[3];
  g.oh = y_dims[1]; g.ow = y_dims[2]; g.o = y_dims[3];
  g.kh = k_dims[0]; g.kw = k_dims[1]; g.groups = groups;
  g.strides = {strides[0], strides[1]};
  g.dilates = {dilation[0] - 1, dilation[1] - 1};  // oneDNN counts from 0.
  g.pad_l = {padding[0], padding[2]};
  g.pad_r = {padding[1], padding[3]};
  g.act_type = act;
  g.weights_type = wt;

  if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
  try {
    auto entry = Lookup(g, kind, wt);
    auto& eng = Engine();
    dnnl::stream stream(eng);
    thread_local std::vector<uint8_t> scratch_buf, weights_buf;
    scratch_buf.resize(entry->scratch.get_size());
    memory scratch(entry->scratch, eng, scratch_buf.data());

    const memory::desc user_w = g.UserWeights(wt);
    const bool reorder = entry->weights != user_w;
    if (reorder) weights_buf.resize(entry->weights.get_size());
    void* w_ptr = reorder ? weights_buf.data()
                          : (kind == kBackwardWeights ? out->untyped_data()
                                                      : b.untyped_data());
    memory weights(entry->weights, eng, w_ptr);

    if (kind == kForward) {
      if (reorder) {
        memory user(user_w, eng, b.untyped_data());
        dnnl::reorder(user, weights).execute(stream, user, weights);
      }
      memory src(g.Src(), eng, a.untyped_data());
      memory dst(g.Dst(), eng, out->untyped_data());
      entry->prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights},
                                   {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratch}});
    } else if (kind == kBackwardData) {
      if (reorder) {
        memory user(user_w, eng, b.untyped_data());
        dnnl::reorder(user, weights).execute(stream, user, weights);
      }
      memory diff_dst(g.Dst(), eng, a.untyped_data());
      memory diff_src(g.Src(), eng, out->untyped_data());
      entry->prim.execute(stream, {{DNNL_ARG_DIFF_DST, diff_dst},
                                   {DNNL_ARG_WEIGHTS, weights},
                                   {DNNL_ARG_DIFF_SRC, diff_src},
                                   {DNNL_ARG_SCRATCHPAD, scratch}});
    } else {
      memory src(g.Src(), eng, a.untyped_data());
      memory diff_dst(g.Dst(), eng, b.untyped_data());
      entry->prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst},
                                   {DNNL_ARG_DIFF_WEIGHTS, weights},
                                   {DNNL_ARG_SCRATCHPAD, scratch}});
      if (reorder) {
        memory user(user_w, eng, out->untyped_data());
        dnnl::reorder(weights, user).execute(stream, weights, user);
      }
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("onednn_conv: ") + e.what());
  }
  return ffi::Error::Success();
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
int64_t isovolnet_onednn_builds() {
  std::lock_guard<std::mutex> lock(cache_mutex);
  return builds;
}

}  // extern "C"
