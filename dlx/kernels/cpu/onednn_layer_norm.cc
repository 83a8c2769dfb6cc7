// Layer normalization over the last axis (with scale and shift) and its gradients through
// oneDNN, as XLA FFI handlers for the CPU (docs/cpu_kernels.md). x is (rows, C); the rows
// are cut into pieces run on XLA's intra-op thread pool and the calling thread
// (pieces.h). The forward pass also returns each row's mean and variance, which the
// backward pass reads instead of computing them again.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "pieces.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

const auto kFlags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;

memory::desc Data(int64_t rows, int64_t c) {
  return memory::desc({rows, c}, memory::data_type::f32, memory::format_tag::ab);
}

memory::desc Vector(int64_t n) {
  return memory::desc({n}, memory::data_type::f32, memory::format_tag::a);
}

// The forward or backward primitive for `rows` rows of C, built once and kept.
dnnl::primitive& Primitive(bool backward, int64_t rows, int64_t c, float epsilon) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::unique_ptr<dnnl::primitive>> cache;
  std::string key = std::to_string(backward) + ',' + std::to_string(rows) + ',' +
                    std::to_string(c) + ',' + std::to_string(epsilon);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  auto& eng = dlx::Engine();
  dnnl::layer_normalization_forward::primitive_desc fwd(
      {dnnl::prop_kind::forward_training, Data(rows, c), Vector(rows), epsilon, kFlags}, eng);
  std::unique_ptr<dnnl::primitive> p;
  if (backward) {
    dnnl::layer_normalization_backward::primitive_desc bwd(
        {dnnl::prop_kind::backward, Data(rows, c), Data(rows, c), Vector(rows), epsilon, kFlags},
        eng, fwd);
    p = std::make_unique<dnnl::primitive>(dnnl::layer_normalization_backward(bwd));
  } else {
    p = std::make_unique<dnnl::primitive>(dnnl::layer_normalization_forward(fwd));
  }
  return *cache.emplace(key, std::move(p)).first->second;
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale,
                   ffi::Buffer<ffi::F32> shift, ffi::ResultBuffer<ffi::F32> y,
                   ffi::ResultBuffer<ffi::F32> mean, ffi::ResultBuffer<ffi::F32> variance,
                   float epsilon) {
  auto dims = x.dimensions();
  if (dims.size() != 2 || scale.element_count() != dims[1] || shift.element_count() != dims[1]) {
    return ffi::Error::InvalidArgument("dlx oneDNN layer norm: x (rows, C), scale and shift (C)");
  }
  int64_t rows = dims[0], c = dims[1];
  if (rows == 0 || c == 0) return ffi::Error::Success();
  int64_t pieces = dlx::ElementwisePieces(pool, rows * c, rows);
  std::atomic<bool> failed{false};
  dlx::RunPieces(pool, rows, pieces, 1, [&](int64_t, int64_t r0, int64_t r1) {
    auto& eng = dlx::Engine();
    auto& stream = dlx::Stream();
    int64_t n = r1 - r0;
    try {
      Primitive(false, n, c, epsilon)
          .execute(stream,
                   {{DNNL_ARG_SRC, memory(Data(n, c), eng, x.typed_data() + r0 * c)},
                    {DNNL_ARG_DST, memory(Data(n, c), eng, y->typed_data() + r0 * c)},
                    {DNNL_ARG_MEAN, memory(Vector(n), eng, mean->typed_data() + r0)},
                    {DNNL_ARG_VARIANCE, memory(Vector(n), eng, variance->typed_data() + r0)},
                    {DNNL_ARG_SCALE, memory(Vector(c), eng, scale.typed_data())},
                    {DNNL_ARG_SHIFT, memory(Vector(c), eng, shift.typed_data())}});
      stream.wait();
    } catch (const dnnl::error&) {
      failed = true;
    }
  });
  if (failed) return ffi::Error::Internal("dlx oneDNN layer norm: oneDNN failed");
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> mean,
                    ffi::Buffer<ffi::F32> variance, ffi::Buffer<ffi::F32> scale,
                    ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dx,
                    ffi::ResultBuffer<ffi::F32> dscale, ffi::ResultBuffer<ffi::F32> dshift,
                    float epsilon) {
  auto dims = x.dimensions();
  if (dims.size() != 2 || dy.element_count() != x.element_count() ||
      mean.element_count() != dims[0] || scale.element_count() != dims[1]) {
    return ffi::Error::InvalidArgument("dlx oneDNN layer norm: shapes do not agree");
  }
  int64_t rows = dims[0], c = dims[1];
  std::fill_n(dscale->typed_data(), c, 0.0f);
  std::fill_n(dshift->typed_data(), c, 0.0f);
  if (rows == 0 || c == 0) return ffi::Error::Success();
  int64_t pieces = dlx::ElementwisePieces(pool, rows * c, rows);
  // Each piece's scale and shift gradients (sums over its rows), added up at the end.
  std::vector<float> partial(pieces * 2 * c, 0.0f);
  std::atomic<bool> failed{false};
  dlx::RunPieces(pool, rows, pieces, 1, [&](int64_t i, int64_t r0, int64_t r1) {
    auto& eng = dlx::Engine();
    auto& stream = dlx::Stream();
    int64_t n = r1 - r0;
    float* sums = partial.data() + i * 2 * c;
    try {
      Primitive(true, n, c, epsilon)
          .execute(stream,
                   {{DNNL_ARG_SRC, memory(Data(n, c), eng, x.typed_data() + r0 * c)},
                    {DNNL_ARG_DIFF_DST, memory(Data(n, c), eng, dy.typed_data() + r0 * c)},
                    {DNNL_ARG_DIFF_SRC, memory(Data(n, c), eng, dx->typed_data() + r0 * c)},
                    {DNNL_ARG_MEAN, memory(Vector(n), eng, mean.typed_data() + r0)},
                    {DNNL_ARG_VARIANCE, memory(Vector(n), eng, variance.typed_data() + r0)},
                    {DNNL_ARG_SCALE, memory(Vector(c), eng, scale.typed_data())},
                    // oneDNN 2.6 asks for the shift too, though no gradient depends on it.
                    {DNNL_ARG_SHIFT, memory(Vector(c), eng, scale.typed_data())},
                    {DNNL_ARG_DIFF_SCALE, memory(Vector(c), eng, sums)},
                    {DNNL_ARG_DIFF_SHIFT, memory(Vector(c), eng, sums + c)}});
      stream.wait();
    } catch (const dnnl::error&) {
      failed = true;
    }
  });
  if (failed) return ffi::Error::Internal("dlx oneDNN layer norm: oneDNN failed");
  for (int64_t p = 0; p < pieces; ++p) {
    const float* sums = partial.data() + p * 2 * c;
    for (int64_t j = 0; j < c; ++j) {
      dscale->typed_data()[j] += sums[j];
      dshift->typed_data()[j] += sums[c + j];
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnLayerNormForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("epsilon"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnLayerNormBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("epsilon"));

