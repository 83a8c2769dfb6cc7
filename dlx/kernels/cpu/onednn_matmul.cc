// Row-major float32 matrix products c = op(a) @ op(b) through oneDNN's sgemm, as an XLA FFI
// handler for the CPU (docs/cpu_kernels.md). op(x) is x or its transpose, so one handler
// gives a dense layer's forward product and both of its gradients without a copy: XLA's
// own weight gradient transposes its operands first (benchmarks/README.md).
//
// Threads: the product is cut into pieces (whole products of a batch, or rows / columns of
// c), each a one-thread sgemm, run on XLA's own intra-op thread pool and the calling
// thread (pieces.h). An OpenMP team beside XLA's pool oversubscribes the cores (XLA runs
// other ops, and its idle workers spin): small products ran slower inside a step than alone.
//
// Batches: rank-3 arrays are a batch of products (attention's heads), cut into pieces of
// whole products. vmap: dlx/kernels/matmul.py folds a batched `a` into its rows where it
// can and leaves the other batched cases to XLA.
#include <algorithm>
#include <atomic>
#include <cstdint>

#include "oneapi/dnnl/dnnl.h"
#include "pieces.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Below this many floating-point operations a product runs in one piece.
constexpr double kSerialFlops = 1 << 22;

// One row-major product, on the calling thread only.
struct Gemm {
  char ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  const float *a, *b;
  float* c;

  // Rows [i0, i1) of c, or columns when `by_rows` is false.
  dnnl_status_t Run(bool by_rows, int64_t i0, int64_t i1) const {
    if (by_rows) {
      const float* a0 = a + (ta == 'N' ? i0 * lda : i0);
      return dnnl_sgemm(ta, tb, i1 - i0, n, k, 1.0f, a0, lda, b, ldb, 0.0f, c + i0 * ldc, ldc);
    }
    const float* b0 = b + (tb == 'N' ? i0 : i0 * ldb);
    return dnnl_sgemm(ta, tb, m, i1 - i0, k, 1.0f, a, lda, b0, ldb, 0.0f, c + i0, ldc);
  }
};

// One call's product, cut by whole products of the batch or by rows / columns of c.
struct Job {
  Gemm gemm;
  int64_t a_size, b_size, c_size;  // floats between one product's operands and the next's
  bool by_groups, by_rows;
  int64_t length, pieces;
  std::atomic<bool> failed{false};

  // Products [i0, i1) of the batch, or rows / columns [i0, i1) of c.
  void Span(int64_t i0, int64_t i1) {
    if (!by_groups) {
      if (gemm.Run(by_rows, i0, i1) != dnnl_success) failed = true;
      return;
    }
    for (int64_t g = i0; g < i1; ++g) {
      Gemm one = gemm;
      one.a += g * a_size, one.b += g * b_size, one.c += g * c_size;
      if (one.Run(true, 0, one.m) != dnnl_success) failed = true;
    }
  }
};

// c[g] = op(a[g]) @ op(b[g]) for every g of the leading (batch) dimension, when there is one.
ffi::Error Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                  ffi::ResultBuffer<ffi::F32> c, bool transpose_a, bool transpose_b) {
  auto da = a.dimensions(), db = b.dimensions(), dc = c->dimensions();
  size_t rank = da.size();
  if ((rank != 2 && rank != 3) || db.size() != rank || dc.size() != rank) {
    return ffi::Error::InvalidArgument("dlx oneDNN matmul: expects rank-2 or rank-3 arrays");
  }
  size_t r = rank - 2;  // the first matrix dimension
  int64_t groups = rank == 3 ? da[0] : 1;
  if (rank == 3 && (db[0] != groups || dc[0] != groups)) {
    return ffi::Error::InvalidArgument("dlx oneDNN matmul: batch sizes differ");
  }
  int64_t m = transpose_a ? da[r + 1] : da[r], k = transpose_a ? da[r] : da[r + 1];
  int64_t kb = transpose_b ? db[r + 1] : db[r], n = transpose_b ? db[r] : db[r + 1];
  if (k != kb || dc[r] != m || dc[r + 1] != n) {
    return ffi::Error::InvalidArgument("dlx oneDNN matmul: shapes do not multiply");
  }
  if (m == 0 || n == 0 || groups == 0) return ffi::Error::Success();
  Job job;
  job.gemm = Gemm{transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, da[r + 1],
                   db[r + 1], n, a.typed_data(), b.typed_data(), c->typed_data()};
  job.a_size = m * k, job.b_size = k * n, job.c_size = m * n;
  int64_t threads = dlx::Threads(pool);
  job.by_groups = groups >= threads;
  job.by_rows = m >= n;
  job.length = job.by_groups ? groups : std::max(m, n);
  bool serial = 2.0 * m * n * k * groups < kSerialFlops || job.length < (job.by_groups ? 2 : 32);
  int64_t most = job.by_groups ? job.length : job.length / 16;
  job.pieces = serial ? 1 : std::max<int64_t>(1, std::min(threads, most));
  dlx::RunPieces(pool, job.length, job.pieces, job.by_groups ? 1 : 16,
                 [&job](int64_t, int64_t i0, int64_t i1) { job.Span(i0, i1); });
  if (job.failed) return ffi::Error::Internal("dlx oneDNN matmul: dnnl_sgemm failed");
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(DlxOnednnMatmul, Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("transpose_a")
                                  .Attr<bool>("transpose_b"));

// The pieces every pool-run handler (matmul, GELU, layer norm, softmax) cuts its work into.
extern "C" void DlxOnednnSetPoolThreads(int threads) { dlx::PoolThreads().store(threads); }
