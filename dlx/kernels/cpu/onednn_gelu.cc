// GELU (the tanh approximation or the erf form) and its derivative through oneDNN's
// element-wise kernels, as XLA FFI handlers for the CPU (docs/cpu_kernels.md). XLA:CPU
// runs each element-wise loop on one thread; these cut the array into pieces run on XLA's
// intra-op thread pool and the calling thread (pieces.h). Arrays of
// any shape are taken as flat float32 vectors.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
#include "pieces.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {


// The forward or backward primitive for `length` elements, built once and kept.
dnnl::primitive& Primitive(bool backward, bool approximate, int64_t length) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::unique_ptr<dnnl::primitive>> cache;
  std::string key = std::to_string(backward) + std::to_string(approximate) + ',' +
                    std::to_string(length);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  auto& eng = dlx::Engine();
  memory::desc md({length}, memory::data_type::f32, memory::format_tag::x);
  auto algo = approximate ? dnnl::algorithm::eltwise_gelu_tanh : dnnl::algorithm::eltwise_gelu_erf;
  dnnl::eltwise_forward::primitive_desc fwd(
      {dnnl::prop_kind::forward_training, algo, md, 0.f, 0.f}, eng);
  std::unique_ptr<dnnl::primitive> p;
  if (backward) {
    dnnl::eltwise_backward::primitive_desc bwd({algo, md, md, 0.f, 0.f}, eng, fwd);
    p = std::make_unique<dnnl::primitive>(dnnl::eltwise_backward(bwd));
  } else {
    p = std::make_unique<dnnl::primitive>(dnnl::eltwise_forward(fwd));
  }
  return *cache.emplace(key, std::move(p)).first->second;
}

// y = gelu(x[i0:i1]), or dx = dy * gelu'(x) when `dy` is given; false when oneDNN fails.
bool Span(const float* x, const float* dy, float* out, int64_t i0, int64_t i1, bool approximate) {
  auto& eng = dlx::Engine();
  auto& stream = dlx::Stream();
  memory::desc md({i1 - i0}, memory::data_type::f32, memory::format_tag::x);
  memory src(md, eng, const_cast<float*>(x + i0)), dst(md, eng, out + i0);
  try {
    if (dy == nullptr) {
      Primitive(false, approximate, i1 - i0).execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    } else {
      memory diff_dst(md, eng, const_cast<float*>(dy + i0));
      Primitive(true, approximate, i1 - i0)
          .execute(stream,
                   {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, dst}});
    }
    stream.wait();
  } catch (const dnnl::error&) {
    return false;
  }
  return true;
}

ffi::Error Run(ffi::ThreadPool& pool, const float* x, const float* dy, float* out, int64_t length,
               bool approximate) {
  if (length == 0) return ffi::Error::Success();
  int64_t pieces = dlx::ElementwisePieces(pool, length, length);
  std::atomic<bool> failed{false};
  dlx::RunPieces(pool, length, pieces, 16, [&](int64_t, int64_t i0, int64_t i1) {
    if (!Span(x, dy, out, i0, i1, approximate)) failed = true;
  });
  if (failed) return ffi::Error::Internal("dlx oneDNN gelu: oneDNN failed");
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> y,
                   bool approximate) {
  return Run(pool, x.typed_data(), nullptr, y->typed_data(), x.element_count(), approximate);
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                    ffi::ResultBuffer<ffi::F32> dx, bool approximate) {
  if (dy.element_count() != x.element_count()) {
    return ffi::Error::InvalidArgument("dlx oneDNN gelu: x and dy differ in size");
  }
  return Run(pool, x.typed_data(), dy.typed_data(), dx->typed_data(), x.element_count(),
             approximate);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnGeluForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("approximate"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnGeluBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("approximate"));

