"""Train batches through grain's DataLoader (`--config.input_pipeline=grain`,
docs/curriculum.md#a6, #a9).

One grain record is one step's batch for this process: `BatchSource[step]` holds the rows
`dlx.data.pipeline` gives that step (the permutation of (seed, epoch), this process's slice of
the global batch) and reads them from a `LazySplit` on disk, decoded and transformed, or takes
them from in-memory arrays. Batches therefore stay a pure function of (seed, step), the same as
the memory pipeline's, whatever the number of grain workers. grain adds the worker processes
that read and decode (`grain_workers`), read-ahead, and an iterator state that the trainer
saves with each checkpoint and restores on relaunch.

Records are batches, not examples, for two reasons measured in benchmarks/input_pipeline.py:
grain's per-record bookkeeping (its IndexSampler builds a random generator per record) costs
about 0.1 ms a record, and each grain worker batches only the records it read, so per-example
records would make the batches depend on the worker count.
"""

import ctypes
import json
import multiprocessing
import os
import signal
import sys

from absl import flags
import grain.python as grain
import numpy as np

from dlx import errors
from dlx.data import core
from dlx.data import pipeline

# Per process: threads reading batches, and how many batches they may read ahead (grain's
# defaults, 16 and 500, are meant for single examples on remote disks).
READ_THREADS = 2
READ_AHEAD = 4


class BatchSource:
  """grain's random-access source of train batches: record `step` is {'step', 'batch'}.

  Its `repr` names what decides the batches (data, batch size, seed, process count), so
  grain refuses a checkpoint's state made for other ones; the process index is left out:
  every process restores the state process 0 saved (all consume the same steps)."""

  def __init__(self, split, batch_size: int, *, seed: int, process_index=0, process_count=1):
    self.split = split
    self.batch_size, self.seed = batch_size, seed
    self.process_index, self.process_count = process_index, process_count
    self.num_examples = core.num_examples(split)
    self.per_epoch = pipeline.steps_per_epoch(split, batch_size)
    self._order = (None, None)  # (epoch, its permutation): one permutation per epoch

  def __len__(self) -> int:
    return sys.maxsize  # endless: the trainer stops after its last step

  def __getitem__(self, step: int):
    epoch = step // self.per_epoch
    cached, order = self._order
    if cached != epoch:
      order = pipeline.epoch_permutation(self.num_examples, self.seed, epoch)
      self._order = (epoch, order)
    rows = pipeline.batch_rows(order, step, self.batch_size, self.process_index, self.process_count)
    return {"step": np.int64(step), "batch": core.take(self.split, rows)}

  def __getstate__(self):
    return {**self.__dict__, "_order": (None, None)}

  def __setstate__(self, state):
    self.__dict__.update(state)
    _exit_with_parent()  # unpickled: we are in a grain worker process

  def __repr__(self):
    data = (
      repr(self.split)
      if isinstance(self.split, core.LazySplit)
      else f"{self.num_examples} examples in memory"
    )
    return (
      f"BatchSource({data}, batch_size={self.batch_size}, seed={self.seed}, "
      f"{self.process_count} process(es))"
    )


def _exit_with_parent():
  """Has Linux kill this grain worker when the process that started it dies. A training
  process killed with SIGKILL cannot stop its workers, and grain's would wait forever on
  their full output queues, each holding a copy of the data. (Linux sends the signal when
  the starting *thread* ends, hence `train_batches` starts the workers itself.)"""
  parent = multiprocessing.parent_process()
  if parent is None or not sys.platform.startswith("linux"):
    return
  pr_set_pdeathsig = 1
  ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
  if os.getppid() != parent.pid:  # it died before the call
    os._exit(1)  # pylint: disable=protected-access


def make_loader(source: BatchSource, worker_count: int = 0) -> grain.DataLoader:
  """A DataLoader over the source's records in order, read by `worker_count` processes."""
  if worker_count < 0:
    raise errors.ConfigError(f"--config.grain_workers={worker_count}: must be >= 0")
  if worker_count and not flags.FLAGS.is_parsed():
    # grain reads its absl flags when it starts workers; outside an absl app (tests,
    # notebooks) they were never parsed, so let them keep their defaults.
    flags.FLAGS.mark_as_parsed()
  return grain.DataLoader(
    data_source=source,
    sampler=grain.SequentialSampler(len(source), grain.NoSharding()),
    worker_count=worker_count,
    shard_options=grain.NoSharding(),
    read_options=grain.ReadOptions(num_threads=READ_THREADS, prefetch_buffer_size=READ_AHEAD),
  )


def train_batches(
  split,
  batch_size: int,
  *,
  seed: int,
  start_step: int = 0,
  state: dict | None = None,
  process_index: int = 0,
  process_count: int = 1,
  worker_count: int = 0,
):
  """Endless (batch, state) pairs from `start_step` on: `state` is the loader's state once
  that batch is taken (JSON-able), which a checkpoint written after training on the batch
  saves. A relaunch passes it back as `state`, and the loader continues at `start_step`.

  The workers start here, in the calling thread, not in whichever thread first asks for a
  batch: Linux ties their lifetime to that thread (see `_exit_with_parent`)."""
  source = BatchSource(
    split, batch_size, seed=seed, process_index=process_index, process_count=process_count
  )
  iterator = iter(make_loader(source, worker_count))
  if state is not None:
    _restore(iterator, state, worker_count)
  elif start_step:
    raise ValueError("a grain pipeline resumes from its saved state; pass state=")
  if worker_count:
    iterator.start_prefetch()
  return _checked(iterator, start_step)


def _checked(iterator, start_step):
  expected = start_step
  for record in iterator:
    if int(record["step"]) != expected:
      raise RuntimeError(f"grain gave the batch of step {int(record['step'])}, not {expected}")
    yield record["batch"], json.loads(iterator.get_state())
    expected += 1


def _restore(iterator, state: dict, worker_count: int):
  saved = state.get("worker_count")
  if saved != worker_count:
    raise errors.ConfigError(
      f"--config.grain_workers={worker_count}: the checkpoint's data position was saved "
      f"with {saved} grain workers; relaunch with --config.grain_workers={saved}"
    )
  try:
    iterator.set_state(json.dumps(state).encode())
  except ValueError as e:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise errors.ConfigError(
      f"--config.input_pipeline=grain: the checkpoint's data position does not fit this run's "
      f"data ({first}); resume with the same dataset, seed, batch size and process count, or "
      "use a new --workdir"
    ) from e
