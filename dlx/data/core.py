"""The data types experiments return: `Dataset` (every loader's) and `Stream`.

A `Dataset` holds three splits, each a dict of NumPy arrays with the same leading size.
By convention the model reads `inputs` and the loss reads `targets`; a split may carry
more keys, and `inputs` may itself be a dict of arrays (an encoder-decoder reads
{'source', 'target_in'}). Everything the classic curriculum uses fits in host memory,
which keeps the input pipeline deterministic and exactly resumable (see
`dlx.data.pipeline`). A `Stream` makes its training batches from (seed, step) instead.
A train split too big to hold is a `LazySplit`: read from disk row by row on demand
(`--config.input_pipeline=grain`, docs/curriculum.md#a6); `num_examples` and `take` accept
it, so the batching code does not care which it gets.
"""

import dataclasses
from typing import Any, Callable

import numpy as np

from dlx import errors

Split = dict[str, np.ndarray]
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Dataset:
  train: Split
  validation: Split
  test: Split
  info: dict[str, Any] = dataclasses.field(default_factory=dict)

  def split(self, name: str) -> Split:
    if name not in SPLITS:
      raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
    return getattr(self, name)

  def size(self, name: str) -> int:
    return num_examples(self.split(name))

  def map(self, fn: Callable[[Split], Split]) -> "Dataset":
    """Applies `fn` (a function of one split's arrays) to every split; a `LazySplit`
    keeps it, to apply to each batch it reads."""
    train = self.train.map(fn) if isinstance(self.train, LazySplit) else fn(self.train)
    return dataclasses.replace(
      self, train=train, validation=fn(self.validation), test=fn(self.test)
    )

  def __repr__(self):
    sizes = ", ".join(f"{s}={self.size(s)}" for s in SPLITS)
    first = take(self.train, slice(0, 1))
    shapes = {
      k: (v.shape[1:] if hasattr(v, "shape") else {n: a.shape[1:] for n, a in v.items()})
      for k, v in first.items()
    }
    streamed = "; train streamed from disk" if isinstance(self.train, LazySplit) else ""
    return f"Dataset({self.info.get('name', '?')}: {sizes}; shapes {shapes}{streamed})"


class LazySplit:
  """A split read on demand from a random-access `source` instead of held in memory.

  `source[i]` is example i as a dict of arrays without the leading axis (`len(source)`
  examples; its `repr` names it, for checkpoints); `fns` are the experiment's split
  transforms, applied in order to every batch read. Rows are read with `take(split, rows)`.
  A transform must be per-example (a row's result may not depend on the other rows read
  with it): `map` checks that on a few rows, so statistics of the whole split fail at once
  instead of silently becoming statistics of each batch.
  """

  def __init__(self, source, fns: tuple = ()):
    self.source = source
    self.fns = tuple(fns)

  def __len__(self) -> int:
    return len(self.source)

  def read(self, index) -> Split:
    """The rows `index` (a slice, an integer array or an integer) after every transform."""
    if isinstance(index, (int, np.integer)):
      return take(self.read(np.array([index])), 0)
    positions = range(*index.indices(len(self))) if isinstance(index, slice) else index
    keys = [int(i) for i in np.asarray(positions).reshape(-1)]
    if not keys:  # no rows: the shapes of one, cut to none
      return take(self.read(slice(0, 1)), slice(0, 0))
    read_many = getattr(self.source, "__getitems__", None)
    examples = read_many(keys) if read_many is not None else [self.source[k] for k in keys]
    rows = self.apply(_stack(examples))
    _check_rows_kept(rows, len(keys))
    return rows

  def apply(self, batch: Split) -> Split:
    for fn in self.fns:
      batch = fn(batch)
    return batch

  def map(self, fn: Callable[[Split], Split]) -> "LazySplit":
    mapped = LazySplit(self.source, (*self.fns, fn))
    _check_per_example(fn, self.read(slice(0, min(3, len(self)))))
    return mapped

  def __getitem__(self, key):
    raise errors.ConfigError(
      f"the train split streams from disk (--config.input_pipeline=grain) and has no "
      f"whole-split array {key!r}; read rows with dlx.data.core.take(split, rows), or use "
      "--config.input_pipeline=memory"
    )

  def __repr__(self):
    return f"LazySplit({self.source!r}, {len(self.fns)} transform(s))"


def _stack(examples: list) -> Split:
  first = examples[0]
  return {
    k: _stack([e[k] for e in examples])
    if isinstance(first[k], dict)
    else np.stack([np.asarray(e[k]) for e in examples])
    for k in first
  }


def _check_rows_kept(rows: Split, n: int):
  if num_examples(rows) != n:
    raise errors.ConfigError(
      "--config.input_pipeline=grain: a transform of the streamed train split drops or adds "
      "rows (a filter?), which a batch read from disk cannot do; filter the data when "
      "preparing it, or use --config.input_pipeline=memory"
    )


def _check_per_example(fn, rows: Split):
  """Raises ConfigError unless `fn` maps each of `rows` alone as it maps it among the others."""
  mapped = fn(rows)
  _check_rows_kept(mapped, num_examples(rows))
  together = _leaves_by_path(mapped)
  alone = _leaves_by_path(
    concatenate([fn(take(rows, slice(i, i + 1))) for i in range(num_examples(rows))])
  )
  same = together.keys() == alone.keys() and all(
    together[k].shape == alone[k].shape
    and np.allclose(together[k], alone[k], rtol=1e-5, atol=1e-6, equal_nan=True)
    for k in together
  )
  if not same:
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', fn)}"
    raise errors.ConfigError(
      f"--config.input_pipeline=grain: the transform {name} of the "
      "streamed train split is not per-example (a row comes out different alone than in a "
      "batch, e.g. whole-split statistics or one random draw per split); make it per-example "
      "or use --config.input_pipeline=memory"
    )


def _leaves_by_path(split, prefix=""):
  out = {}
  for k, v in split.items():
    if isinstance(v, dict):
      out.update(_leaves_by_path(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = np.asarray(v)
  return out


@dataclasses.dataclass(frozen=True)
class Stream:
  """Training data the experiment makes on the fly (synthetic data, later rollouts).

  `batch(seed, step)` returns the global training batch of step `step` as NumPy arrays
  (a pure function of its arguments, so a resumed run sees exactly the batches an
  uninterrupted one sees); validation and test are fixed splits, as in a `Dataset`.
  A stream has no epochs: give the run's length as `num_train_steps`.
  """

  batch: Callable[[int, int], Split]
  validation: Split
  test: Split
  info: dict[str, Any] = dataclasses.field(default_factory=dict)

  def split(self, name: str) -> Split:
    if name == "train":
      raise ValueError("a Stream has no fixed train split; use train_sample(seed, n)")
    if name not in SPLITS:
      raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
    return getattr(self, name)

  def train_sample(self, seed: int, size: int) -> Split:
    """The first `size` training examples the stream yields (steps 0, 1, ...): what the
    final evaluation scores as 'train'."""
    parts, count = [], 0
    while count < size:
      parts.append(self.batch(seed, len(parts)))
      count += num_examples(parts[-1])
    return take(concatenate(parts), slice(0, size))

  def map(self, fn: Callable[[Split], Split]) -> "Stream":
    batch = self.batch
    return dataclasses.replace(
      self,
      batch=lambda seed, step: fn(batch(seed, step)),
      validation=fn(self.validation),
      test=fn(self.test),
    )

  def __repr__(self):
    return (
      f"Stream({self.info.get('name', '?')}: batches made per step; "
      f"validation={num_examples(self.validation)}, test={num_examples(self.test)})"
    )


def concatenate(splits: list[Split]) -> Split:
  """Row-wise concatenation of splits with the same keys (nested dicts included)."""
  first = splits[0]
  return {
    k: concatenate([s[k] for s in splits])
    if isinstance(first[k], dict)
    else np.concatenate([s[k] for s in splits])
    for k in first
  }


def num_examples(split: Split) -> int:
  if isinstance(split, LazySplit):
    return len(split)
  sizes = {len(v) for v in _leaves(split)}
  if len(sizes) != 1:
    raise ValueError(f"arrays of one split differ in length: {sizes}")
  return sizes.pop()


def _leaves(split):
  for value in split.values():
    if isinstance(value, dict):
      yield from _leaves(value)
    else:
      yield value


def take(split: Split, index) -> Split:
  """The rows `index` of every array (nested dicts included); a `LazySplit` reads them."""
  if isinstance(split, LazySplit):
    return split.read(index)
  return {k: take(v, index) if isinstance(v, dict) else v[index] for k, v in split.items()}


def train_validation_test(
  inputs, targets, *, validation_fraction: float, test_fraction: float, seed: int, info=None
) -> Dataset:
  """Splits one pool of examples into three, after a shuffle fixed by `seed`."""
  n = len(inputs)
  order = np.random.default_rng(seed).permutation(n)
  n_test = int(round(n * test_fraction))
  n_val = int(round(n * validation_fraction))
  test, val, train = np.split(order, [n_test, n_test + n_val])
  pool = {"inputs": inputs, "targets": targets}
  return Dataset(take(pool, train), take(pool, val), take(pool, test), dict(info or {}))


def split_off_validation(
  train: Split, test: Split, *, validation_fraction: float, info=None
) -> Dataset:
  """Uses the last `validation_fraction` of a train split as validation (no shuffle,
  so the split is the same for every seed)."""
  n = num_examples(train)
  n_val = int(round(n * validation_fraction))
  return Dataset(
    take(train, slice(0, n - n_val)), take(train, slice(n - n_val, n)), test, dict(info or {})
  )
