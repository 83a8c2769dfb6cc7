// 2-D convolutions (forward, gradient of the input, gradient of the weights) through
// oneDNN, as XLA FFI handlers for the CPU (docs/cpu_kernels.md). Layouts are dlx's:
// inputs and outputs NHWC, weights HWIO with the O axis split into feature groups as XLA
// does. 1-D convolutions arrive here as 2-D ones with H = 1 (dlx/kernels/conv.py).
//
// vmap: dlx/kernels/conv.py's batching rule gives every argument the same leading batch
// dimensions, each either 1 (not batched) or the batch size. When the weights are not
// batched the leading dimensions fold into N: one oneDNN call.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

enum Kind { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

// One convolution: x (n, h, w, c), weights (kh, kw, c / g, o), y (n, oh, ow, o).
struct Geometry {
  int64_t n, h, w, c, kh, kw, o, oh, ow, g;
  int64_t stride[2], dilation[2], pad_lo[2], pad_hi[2];
  memory::data_type dtype;
  Kind kind;
  int64_t threads = 0;  // OpenMP threads; oneDNN splits the work by it when it builds a plan

  std::string Key() const {
    std::string key;
    for (int64_t v : {n, h, w, c, kh, kw, o, oh, ow, g, stride[0], stride[1], dilation[0],
                      dilation[1], pad_lo[0], pad_lo[1], pad_hi[0], pad_hi[1],
                      static_cast<int64_t>(dtype), static_cast<int64_t>(kind), threads}) {
      key += std::to_string(v);
      key += ',';
    }
    return key;
  }
};

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The primitive for one Geometry, with the reorder between dlx's weight layout and the
// one oneDNN's kernel prefers (blocked layouts are what its fast kernels use).
struct Plan {
  dnnl::primitive conv;
  memory::desc x_md, y_md, user_w_md, conv_w_md;
  bool reorder_w = false;
  dnnl::reorder w_reorder;
  size_t scratch_bytes = 0;
};

memory::desc WeightsDesc(const Geometry& g, bool any) {
  auto tag = any ? memory::format_tag::any : memory::format_tag::hwio;
  if (g.g == 1) return memory::desc({g.o, g.c, g.kh, g.kw}, g.dtype, tag);
  // XLA groups the O axis as (g, o / g), g outermost: HWIO is then oneDNN's hwigo.
  tag = any ? memory::format_tag::any : memory::format_tag::hwigo;
  return memory::desc({g.g, g.o / g.g, g.c / g.g, g.kh, g.kw}, g.dtype, tag);
}

std::unique_ptr<Plan> MakePlan(const Geometry& g) {
  auto plan = std::make_unique<Plan>();
  auto& eng = Engine();
  plan->x_md = memory::desc({g.n, g.c, g.h, g.w}, g.dtype, memory::format_tag::nhwc);
  plan->y_md = memory::desc({g.n, g.o, g.oh, g.ow}, g.dtype, memory::format_tag::nhwc);
  plan->user_w_md = WeightsDesc(g, false);
  memory::desc any_w = WeightsDesc(g, true);
  // oneDNN counts dilation from 0 (no gaps); XLA from 1.
  memory::dims strides = {g.stride[0], g.stride[1]};
  memory::dims dilates = {g.dilation[0] - 1, g.dilation[1] - 1};
  memory::dims lo = {g.pad_lo[0], g.pad_lo[1]}, hi = {g.pad_hi[0], g.pad_hi[1]};
  auto algo = dnnl::algorithm::convolution_direct;
  // Scratch memory is ours (per thread), so that two XLA threads can run convolutions at once.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::convolution_forward::primitive_desc fwd(
      {dnnl::prop_kind::forward_training, algo, plan->x_md, any_w, plan->y_md, strides,
       dilates, lo, hi},
      attr, eng);
  if (g.kind == kForward) {
    plan->conv = dnnl::convolution_forward(fwd);
    plan->conv_w_md = fwd.weights_desc();
    plan->scratch_bytes = fwd.scratchpad_desc().get_size();
  } else if (g.kind == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        {algo, plan->x_md, any_w, plan->y_md, strides, dilates, lo, hi}, attr, eng, fwd);
    plan->conv = dnnl::convolution_backward_data(pd);
    plan->conv_w_md = pd.weights_desc();
    plan->scratch_bytes = pd.scratchpad_desc().get_size();
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        {algo, plan->x_md, any_w, plan->y_md, strides, dilates, lo, hi}, attr, eng, fwd);
    plan->conv = dnnl::convolution_backward_weights(pd);
    plan->conv_w_md = pd.diff_weights_desc();
    plan->scratch_bytes = pd.scratchpad_desc().get_size();
  }
  plan->reorder_w = plan->conv_w_md != plan->user_w_md;
  if (plan->reorder_w) {
    // Forward and input gradient read the weights (dlx -> oneDNN); the weight gradient
    // writes them (oneDNN -> dlx).
    bool to_user = g.kind == kBackwardWeights;
    dnnl::reorder::primitive_desc rpd(eng, to_user ? plan->conv_w_md : plan->user_w_md, eng,
                                      to_user ? plan->user_w_md : plan->conv_w_md);
    plan->w_reorder = dnnl::reorder(rpd);
  }
  return plan;
}

// Plans are built once per Geometry (the first call of a compiled step) and kept.
Plan& GetPlan(const Geometry& g) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::unique_ptr<Plan>> plans;
  std::string key = g.Key();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = plans.find(key);
  if (it == plans.end()) it = plans.emplace(key, MakePlan(g)).first;
  return *it->second;
}

// 64-byte aligned scratch that grows as needed, one per XLA thread.
void* Scratch(int slot, size_t bytes) {
  thread_local std::vector<std::unique_ptr<char[]>> buffers(2);
  thread_local std::vector<size_t> sizes(2, 0);
  if (bytes > sizes[slot]) {
    buffers[slot].reset(new char[bytes + 64]);
    sizes[slot] = bytes;
  }
  auto p = reinterpret_cast<uintptr_t>(buffers[slot].get());
  return reinterpret_cast<void*>((p + 63) & ~uintptr_t{63});
}

std::atomic<int> num_threads{0};
// Below this many floating-point operations a convolution runs on one thread.
constexpr double kSerialFlops = 1 << 25;

// Runs one convolution. For kForward: a = x, b = w, out = y. kBackwardData: a = dy,
// b = w, out = dx. kBackwardWeights: a = x, b = dy, out = dw.
void Run(Geometry g, void* a, void* b, void* out) {
  // Small convolutions run on one thread: an OpenMP team's start and barriers cost more
  // than they save there (most on a busy machine), and XLA may run another op meanwhile.
  double flops = 2.0 * g.n * g.oh * g.ow * g.o * g.kh * g.kw * (g.c / g.g);
  int threads = flops < kSerialFlops ? 1 : num_threads.load();
  if (threads < 1) threads = omp_get_num_procs();
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
  g.threads = threads;
  Plan& plan = GetPlan(g);
  auto& eng = Engine();
  thread_local dnnl::stream stream(eng);
  void* w_user = g.kind == kBackwardWeights ? out : b;
  memory user_w(plan.user_w_md, eng, w_user);
  memory conv_w = plan.reorder_w ? memory(plan.conv_w_md, eng, Scratch(1, plan.conv_w_md.get_size()))
                                 : user_w;
  if (plan.reorder_w && g.kind != kBackwardWeights) {
    plan.w_reorder.execute(stream, user_w, conv_w);
  }
  memory scratch(memory::desc({static_cast<int64_t>(plan.scratch_bytes)}, memory::data_type::u8,
                              memory::format_tag::x),
                 eng, Scratch(0, std::max<size_t>(plan.scratch_bytes, 64)));
  if (g.kind == kForward) {
    plan.conv.execute(stream, {{DNNL_ARG_SRC, memory(plan.x_md, eng, a)},
                               {DNNL_ARG_WEIGHTS, conv_w},
                               {DNNL_ARG_DST, memory(plan.y_md, eng, out)},
                               {DNNL_ARG_SCRATCHPAD, scratch}});
  } else if (g.kind == kBackwardData) {
    plan.conv.execute(stream, {{DNNL_ARG_DIFF_DST, memory(plan.y_md, eng, a)},
                               {DNNL_ARG_WEIGHTS, conv_w},
                               {DNNL_ARG_DIFF_SRC, memory(plan.x_md, eng, out)},
                               {DNNL_ARG_SCRATCHPAD, scratch}});
  } else {
    plan.conv.execute(stream, {{DNNL_ARG_SRC, memory(plan.x_md, eng, a)},
                               {DNNL_ARG_DIFF_DST, memory(plan.y_md, eng, b)},
                               {DNNL_ARG_DIFF_WEIGHTS, conv_w},
                               {DNNL_ARG_SCRATCHPAD, scratch}});
    if (plan.reorder_w) plan.w_reorder.execute(stream, conv_w, user_w);
  }
  stream.wait();
}

std::vector<int64_t> Dims(const ffi::AnyBuffer& buffer) {
  auto d = buffer.dimensions();
  return std::vector<int64_t>(d.begin(), d.end());
}

int64_t Product(const std::vector<int64_t>& v, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= v[i];
  return p;
}

ffi::Error Convolve(Kind kind, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                    ffi::Span<const int64_t> strides, ffi::Span<const int64_t> pad_lo,
                    ffi::Span<const int64_t> pad_hi, ffi::Span<const int64_t> dilation,
                    int64_t groups) {
  auto da = Dims(a), db = Dims(b), dout = Dims(*out);
  if (da.size() < 4 || da.size() != db.size() || da.size() != dout.size() ||
      strides.size() != 2 || pad_lo.size() != 2 || pad_hi.size() != 2 || dilation.size() != 2) {
    return ffi::Error::InvalidArgument("dlx oneDNN conv: expects rank-4 arrays and 2 spatial dims");
  }
  auto type = a.element_type();
  if (type != b.element_type() || type != out->element_type() ||
      (type != ffi::DataType::F32 && type != ffi::DataType::BF16)) {
    return ffi::Error::InvalidArgument("dlx oneDNN conv: float32 or bfloat16 arrays, all alike");
  }
  size_t lead = da.size() - 4;
  // The trailing 4 dims of x, w and y, whichever two are inputs here.
  const auto& x = kind == kBackwardData ? dout : da;
  const auto& w = kind == kBackwardWeights ? dout : db;
  const auto& y = kind == kForward ? dout : (kind == kBackwardData ? da : db);
  Geometry g;
  g.n = x[lead], g.h = x[lead + 1], g.w = x[lead + 2], g.c = x[lead + 3];
  g.kh = w[lead], g.kw = w[lead + 1], g.o = w[lead + 3];
  g.oh = y[lead + 1], g.ow = y[lead + 2], g.g = groups;
  for (int i = 0; i < 2; ++i) {
    g.stride[i] = strides[i], g.dilation[i] = dilation[i];
    g.pad_lo[i] = pad_lo[i], g.pad_hi[i] = pad_hi[i];
  }
  g.dtype = type == ffi::DataType::F32 ? memory::data_type::f32 : memory::data_type::bf16;
  g.kind = kind;
  if (groups < 1 || g.c % groups || g.o % groups || w[lead + 2] * groups != g.c) {
    return ffi::Error::InvalidArgument("dlx oneDNN conv: weights do not fit the groups");
  }
  // Leading (vmap) dims: b unbatched and an input a -> fold them into N.
  std::vector<int64_t> out_lead(dout.begin(), dout.begin() + lead);
  bool b_batched = Product(db, 0, lead) > 1;
  size_t bytes = type == ffi::DataType::F32 ? 4 : 2;
  try {
    if (kind != kBackwardWeights && !b_batched) {
      g.n *= Product(da, 0, lead);
      Run(g, a.untyped_data(), b.untyped_data(), out->untyped_data());
      return ffi::Error::Success();
    }
    int64_t size_a = Product(da, lead, da.size()) * bytes;
    int64_t size_b = Product(db, lead, db.size()) * bytes;
    int64_t size_out = Product(dout, lead, dout.size()) * bytes;
    int64_t total = Product(dout, 0, lead);
    for (int64_t i = 0; i < total; ++i) {
      // Row-major index into the leading dims; a dim of size 1 broadcasts.
      int64_t rest = i, off_a = 0, off_b = 0, step_a = 1, step_b = 1;
      for (size_t k = lead; k-- > 0;) {
        int64_t idx = rest % out_lead[k];
        rest /= out_lead[k];
        if (da[k] > 1) off_a += idx * step_a;
        if (db[k] > 1) off_b += idx * step_b;
        step_a *= da[k], step_b *= db[k];
      }
      Run(g, static_cast<char*>(a.untyped_data()) + off_a * size_a,
          static_cast<char*>(b.untyped_data()) + off_b * size_b,
          static_cast<char*>(out->untyped_data()) + i * size_out);
    }
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("dlx oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> y,
                   ffi::Span<const int64_t> s, ffi::Span<const int64_t> lo,
                   ffi::Span<const int64_t> hi, ffi::Span<const int64_t> d, int64_t groups) {
  return Convolve(kForward, x, w, y, s, lo, hi, d, groups);
}

ffi::Error BackwardData(ffi::AnyBuffer dy, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> dx,
                        ffi::Span<const int64_t> s, ffi::Span<const int64_t> lo,
                        ffi::Span<const int64_t> hi, ffi::Span<const int64_t> d, int64_t groups) {
  return Convolve(kBackwardData, dy, w, dx, s, lo, hi, d, groups);
}

ffi::Error BackwardWeights(ffi::AnyBuffer x, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dw,
                           ffi::Span<const int64_t> s, ffi::Span<const int64_t> lo,
                           ffi::Span<const int64_t> hi, ffi::Span<const int64_t> d,
                           int64_t groups) {
  return Convolve(kBackwardWeights, x, dy, dw, s, lo, hi, d, groups);
}

}  // namespace

#define DLX_CONV_BINDING                        \
  ffi::Ffi::Bind()                              \
      .Arg<ffi::AnyBuffer>()                    \
      .Arg<ffi::AnyBuffer>()                    \
      .Ret<ffi::AnyBuffer>()                    \
      .Attr<ffi::Span<const int64_t>>("strides") \
      .Attr<ffi::Span<const int64_t>>("pad_lo")  \
      .Attr<ffi::Span<const int64_t>>("pad_hi")  \
      .Attr<ffi::Span<const int64_t>>("dilation") \
      .Attr<int64_t>("groups")

XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnConvForward, Forward, DLX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnConvBackwardData, BackwardData, DLX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnConvBackwardWeights, BackwardWeights, DLX_CONV_BINDING);

// The OpenMP threads each convolution uses (0 = OpenMP's default, the machine's cores).
// Set per calling thread, since XLA calls from its own worker threads.
extern "C" void DlxOnednnSetThreads(int threads) { num_threads.store(threads); }
extern "C" int DlxOnednnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}

// 1 when this CPU has oneDNN bfloat16 convolutions (all three kinds), else 0: oneDNN
// 2.6 needs AVX-512 for them.
extern "C" int DlxOnednnSupportsBf16() {
  try {
    for (Kind kind : {kForward, kBackwardData, kBackwardWeights}) {
      Geometry g;
      g.n = 1, g.h = g.w = 4, g.c = g.o = 16, g.kh = g.kw = 3, g.oh = g.ow = 4, g.g = 1;
      for (int i = 0; i < 2; ++i) g.stride[i] = g.dilation[i] = g.pad_lo[i] = g.pad_hi[i] = 1;
      g.dtype = memory::data_type::bf16;
      g.kind = kind;
      MakePlan(g);
    }
  } catch (const dnnl::error&) {
    return 0;
  }
  return 1;
}
