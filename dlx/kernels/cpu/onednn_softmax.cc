// Softmax over the last axis and its backward pass through oneDNN, as XLA FFI handlers
// for the CPU (docs/cpu_kernels.md): y = softmax(x), and dx = y * (dy - sum(dy * y)) from
// y and dy. Arrays are taken as (rows, N); the rows are cut into pieces run on XLA's
// intra-op thread pool and the calling thread (pieces.h).
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


memory::desc Data(int64_t rows, int64_t n) {
  return memory::desc({rows, n}, memory::data_type::f32, memory::format_tag::ab);
}

// The forward or backward primitive for `rows` rows of n, built once and kept.
dnnl::primitive& Primitive(bool backward, int64_t rows, int64_t n) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::unique_ptr<dnnl::primitive>> cache;
  std::string key = std::to_string(backward) + ',' + std::to_string(rows) + ',' + std::to_string(n);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  auto& eng = dlx::Engine();
  dnnl::softmax_forward::primitive_desc fwd({dnnl::prop_kind::forward_training, Data(rows, n), 1},
                                            eng);
  std::unique_ptr<dnnl::primitive> p;
  if (backward) {
    dnnl::softmax_backward::primitive_desc bwd({Data(rows, n), Data(rows, n), 1}, eng, fwd);
    p = std::make_unique<dnnl::primitive>(dnnl::softmax_backward(bwd));
  } else {
    p = std::make_unique<dnnl::primitive>(dnnl::softmax_forward(fwd));
  }
  return *cache.emplace(key, std::move(p)).first->second;
}

// forward: a = x, out = y. backward: a = y, b = dy, out = dx.
ffi::Error Run(ffi::ThreadPool& pool, bool backward, const ffi::Buffer<ffi::F32>& a,
               const float* b, float* out) {
  auto dims = a.dimensions();
  if (dims.size() < 1) return ffi::Error::InvalidArgument("dlx oneDNN softmax: a scalar");
  int64_t n = dims[dims.size() - 1], total = a.element_count();
  if (n == 0 || total == 0) return ffi::Error::Success();
  int64_t rows = total / n;
  int64_t pieces = dlx::ElementwisePieces(pool, total, rows);
  std::atomic<bool> failed{false};
  const float* in = a.typed_data();
  dlx::RunPieces(pool, rows, pieces, 1, [&](int64_t, int64_t r0, int64_t r1) {
    auto& eng = dlx::Engine();
    auto& stream = dlx::Stream();
    auto md = Data(r1 - r0, n);
    memory src(md, eng, const_cast<float*>(in + r0 * n)), dst(md, eng, out + r0 * n);
    try {
      if (!backward) {
        Primitive(false, r1 - r0, n).execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
      } else {
        memory diff_dst(md, eng, const_cast<float*>(b + r0 * n));
        Primitive(true, r1 - r0, n)
            .execute(stream,
                     {{DNNL_ARG_DST, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, dst}});
      }
      stream.wait();
    } catch (const dnnl::error&) {
      failed = true;
    }
  });
  if (failed) return ffi::Error::Internal("dlx oneDNN softmax: oneDNN failed");
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> y) {
  return Run(pool, false, x, nullptr, y->typed_data());
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> y, ffi::Buffer<ffi::F32> dy,
                    ffi::ResultBuffer<ffi::F32> dx) {
  if (dy.element_count() != y.element_count()) {
    return ffi::Error::InvalidArgument("dlx oneDNN softmax: y and dy differ in size");
  }
  return Run(pool, true, y, dy.typed_data(), dx->typed_data());
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnSoftmaxForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnSoftmaxBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

