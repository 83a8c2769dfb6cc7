// Work cut into pieces and run on XLA's intra-op thread pool and the calling thread, and
// the oneDNN engine the handlers doing so share (docs/cpu_kernels.md): no OpenMP team beside XLA's threads, so the cores are not
// oversubscribed. Pieces go to whichever thread comes first; the caller takes them too,
// so it never waits on a piece still queued behind other work, and two handlers that cut
// their work at once cannot deadlock.
#ifndef DLX_KERNELS_CPU_PIECES_H_
#define DLX_KERNELS_CPU_PIECES_H_

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace dlx {

// The CPU engine, and one stream per thread, that the pool-run handlers share.
inline dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

inline dnnl::stream& Stream() {
  thread_local dnnl::stream stream(Engine());
  return stream;
}

// The threads a call cuts its work for: set from Python (DlxOnednnSetPoolThreads, the
// cores this process may use); 0 = the size of XLA's pool.
inline std::atomic<int>& PoolThreads() {
  static std::atomic<int> threads{0};
  return threads;
}

inline int64_t Threads(xla::ffi::ThreadPool& pool) {
  int64_t threads = PoolThreads().load();
  return threads >= 1 ? threads : std::max<int64_t>(1, pool.num_threads());
}

// The pieces an element-wise or row-wise call on `elements` floats, `items` separable
// units (rows, or the elements themselves), is cut into: one below 2^15 elements, where
// handing a piece to another thread costs more than it saves.
inline int64_t ElementwisePieces(xla::ffi::ThreadPool& pool, int64_t elements, int64_t items) {
  return elements < (int64_t{1} << 15) ? 1 : std::max<int64_t>(1, std::min(Threads(pool), items));
}

// Cuts [0, length) into `pieces` spans, edges on multiples of `align` (16 floats: one
// AVX-512 vector), and calls piece(i, begin, end) once for each non-empty span i; returns
// when all have returned. Each piece runs with one OpenMP thread, so the oneDNN calls
// inside start no team.
template <typename Fn>
void RunPieces(xla::ffi::ThreadPool& pool, int64_t length, int64_t pieces, int64_t align,
               Fn piece) {
  int64_t step = (length + pieces - 1) / pieces;
  step = (step + align - 1) / align * align;
  struct State {
    State(Fn fn, int64_t length, int64_t pieces, int64_t step)
        : fn(std::move(fn)), length(length), pieces(pieces), step(step) {}
    Fn fn;
    int64_t length, pieces, step;
    std::atomic<int64_t> next{0}, done{0};

    void Work() {
      for (int64_t i; (i = next.fetch_add(1)) < pieces;) {
        int64_t begin = std::min(length, i * step), end = std::min(length, begin + step);
        if (begin < end) {
          if (omp_get_max_threads() != 1) omp_set_num_threads(1);
          fn(i, begin, end);
        }
        done.fetch_add(1, std::memory_order_release);
      }
    }
  };
  auto state = std::make_shared<State>(std::move(piece), length, pieces, step);
  for (int64_t i = 1; i < pieces; ++i) pool.Schedule([state] { state->Work(); });
  state->Work();
  while (state->done.load(std::memory_order_acquire) < pieces) std::this_thread::yield();
}

}  // namespace dlx

#endif  // DLX_KERNELS_CPU_PIECES_H_
