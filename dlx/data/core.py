"""The data types experiments return: `Dataset` (every loader's) and `Stream`.

A `Dataset` holds three splits, each a dict of NumPy arrays with the same leading size.
By convention the model reads `inputs` and the loss reads `targets`; a split may carry
more keys, and `inputs` may itself be a dict of arrays (an encoder-decoder reads
{'source', 'target_in'}). Everything the classic curriculum uses fits in host memory,
which keeps the input pipeline deterministic and exactly resumable (see
`dlx.data.pipeline`). A `Stream` makes its training batches from (seed, step) instead.
"""

import dataclasses
from typing import Any, Callable

import numpy as np

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
    """Applies `fn` (a function of one split's arrays) to every split."""
    return dataclasses.replace(
      self, train=fn(self.train), validation=fn(self.validation), test=fn(self.test)
    )

  def __repr__(self):
    sizes = ", ".join(f"{s}={self.size(s)}" for s in SPLITS)
    shapes = {
      k: (v.shape[1:] if hasattr(v, "shape") else {n: a.shape[1:] for n, a in v.items()})
      for k, v in self.train.items()
    }
    return f"Dataset({self.info.get('name', '?')}: {sizes}; shapes {shapes})"


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
  """The rows `index` of every array (nested dicts included)."""
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
