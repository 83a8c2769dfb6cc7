"""Batches: deterministic from (seed, step), so a resumed run sees exactly the same data.

The train stream is a pure function of the step: epoch = step // steps_per_epoch picks a
permutation seeded by (seed, epoch), and the position inside the epoch picks the slice.
Restoring the step from a checkpoint therefore restores the data position too. The grain
pipeline (`dlx.data.grain_pipeline`) reads the same batches through `batch_rows`.
"""

import queue
import threading
from typing import Callable, Iterator

import jax
import numpy as np

from dlx import errors
from dlx.data import core


def steps_per_epoch(split: core.Split, batch_size: int) -> int:
  n = core.num_examples(split)
  if n < batch_size:
    raise errors.ConfigError(
      f"--config.batch_size={batch_size}: the train split has only {n} examples, fewer "
      "than one batch; lower --config.batch_size"
    )
  return n // batch_size  # the last partial batch is dropped, as is usual


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def batch_rows(
  order: np.ndarray, step: int, batch_size: int, process_index: int = 0, process_count: int = 1
) -> np.ndarray:
  """This process's rows of the global batch of `step`, given its epoch's permutation
  `order`: a contiguous slice of the batch per process."""
  per_epoch = len(order) // batch_size
  local = batch_size // process_count
  start = (step % per_epoch) * batch_size + process_index * local
  return order[start : start + local]


def train_batches(
  split: core.Split,
  batch_size: int,
  *,
  seed: int,
  start_step: int = 0,
  process_index: int = 0,
  process_count: int = 1,
) -> Iterator[core.Split]:
  """An endless stream of shuffled train batches, starting at `start_step`.

  With several hosts each one yields its own contiguous slice of the global batch."""
  n = core.num_examples(split)
  per_epoch = steps_per_epoch(split, batch_size)
  step, epoch, order = start_step, None, None
  while True:
    if step // per_epoch != epoch:
      epoch = step // per_epoch
      order = epoch_permutation(n, seed, epoch)
    yield core.take(split, batch_rows(order, step, batch_size, process_index, process_count))
    step += 1


def stream_batches(
  make_batch: Callable[[int, int], core.Split],
  batch_size: int,
  *,
  seed: int,
  start_step: int = 0,
  process_index: int = 0,
  process_count: int = 1,
) -> Iterator[core.Split]:
  """Train batches of a `Stream`: `make_batch(seed, step)` for step = start_step, ...;
  with several hosts each one yields its own contiguous slice of the global batch."""
  local = batch_size // process_count
  step = start_step
  while True:
    batch = make_batch(seed, step)
    n = core.num_examples(batch)
    if n != batch_size:
      raise ValueError(
        f"the stream's batch for step {step} has {n} examples, not "
        f"--config.batch_size={batch_size}; make it from config.batch_size"
      )
    yield core.take(batch, slice(process_index * local, (process_index + 1) * local))
    step += 1


def padded_batches(
  split: core.Split,
  batch_size: int,
  *,
  num_examples: int | None = None,
  process_index: int = 0,
  process_count: int = 1,
) -> Iterator[tuple[core.Split, np.ndarray]]:
  """(batch, mask) over every example once, in order: the one way dlx runs a model over a
  split. Every batch has `batch_size // process_count` rows (this process's share), the
  last one padded by repeating the final example, so one compiled program serves all;
  `mask` (1 = real, 0 = padding) marks the rows that count."""
  n = core.num_examples(split)
  if num_examples is not None:
    n = min(n, num_examples)
  local = batch_size // process_count
  for start in range(0, n, batch_size):
    index = np.arange(start + process_index * local, start + (process_index + 1) * local)
    yield core.take(split, np.minimum(index, n - 1)), (index < n).astype(np.float32)


def eval_batches(
  split: core.Split,
  batch_size: int,
  *,
  num_examples: int | None = None,
  process_index: int = 0,
  process_count: int = 1,
) -> Iterator[core.Split]:
  """`padded_batches` with the mask inside each batch, as the evaluation step takes it."""
  for batch, mask in padded_batches(
    split,
    batch_size,
    num_examples=num_examples,
    process_index=process_index,
    process_count=process_count,
  ):
    batch["mask"] = mask
    yield batch


def apply_in_chunks(fn: Callable, variables, *arrays, batch_size: int = 1000):
  """`fn(variables, *chunks)` over the leading axis of `arrays` (None passes through as
  None) in chunks of exactly min(batch_size, N) rows, the last one padded as in
  `eval_batches`, so one compiled shape serves every chunk. Returns the outputs (an array
  or a pytree of arrays), padding dropped, concatenated as NumPy arrays."""
  given = {str(i): np.asarray(a) for i, a in enumerate(arrays) if a is not None}
  if not given:
    raise ValueError("apply_in_chunks needs at least one array to chunk, got only None")
  n = core.num_examples(given)
  if n == 0:
    raise ValueError("apply_in_chunks got arrays with 0 rows; nothing to apply fn to")
  parts = []
  for batch, mask in padded_batches(given, min(batch_size, n)):
    rows = int(mask.sum())
    chunks = [None if a is None else batch[str(i)] for i, a in enumerate(arrays)]
    parts.append(jax.tree.map(lambda x, r=rows: np.asarray(x)[:r], fn(variables, *chunks)))
  return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def prefetch(iterator: Iterator, put: Callable = lambda x: x, size: int = 2) -> Iterator:
  """Runs `put` (e.g. the device transfer) on a background thread, `size` batches ahead,
  so the accelerator does not wait on input. Exceptions surface in the consumer."""
  q = queue.Queue(maxsize=size)
  end = object()
  stop = threading.Event()

  def worker():
    try:
      for item in iterator:
        if stop.is_set():
          return
        q.put(put(item))
      q.put(end)
    except BaseException as e:  # pylint: disable=broad-except
      q.put(e)

  def run():
    try:
      worker()
    finally:  # a generator source (grain's loader) releases its workers now, not at exit
      close = getattr(iterator, "close", None)
      if close is not None:
        close()

  thread = threading.Thread(target=run, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is end:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    while thread.is_alive():  # unblock a worker waiting on a full queue
      try:
        q.get_nowait()
      except queue.Empty:
        thread.join(timeout=0.01)
