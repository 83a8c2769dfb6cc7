"""Resampling (docs/curriculum.md#d5): k-fold splits (optionally stratified), bootstrap
samples (as indices or as per-example counts) and percentile confidence intervals, and
combining the predictions of bagged models. Index bookkeeping on the host in NumPy,
seeded, so a split or an interval is reproducible from its seed; training the k or bagged
models is the caller's loop.
"""

from typing import Callable, NamedTuple, Optional

import numpy as np

from dlx import errors

BAGGING_METHODS = ("average", "vote")
_CHUNK = 256  # resamples drawn at a time: bounds memory at _CHUNK * n indices


def kfold_indices(
  n: int, k: int, seed: int, stratify_labels=None
) -> list[tuple[np.ndarray, np.ndarray]]:
  """k (train_idx, val_idx) pairs whose validation folds partition range(n).

  Points are shuffled by `seed` and dealt round-robin to the folds, so fold sizes differ by
  at most 1 (the first n % k folds are larger, as in scikit-learn's KFold). With
  `stratify_labels` the shuffle is within each class and the classes are dealt one after
  another (in order of first appearance), so each fold holds floor or ceil of
  (class count / k) of every class and the fold sizes still differ by at most 1: the same
  per-fold class counts as scikit-learn's StratifiedKFold. Index arrays are sorted.
  """
  if not 2 <= k <= n:
    raise errors.ConfigError(f"k must be in [2, n={n}], got {k}")
  rng = np.random.default_rng(seed)
  if stratify_labels is None:
    order = rng.permutation(n)
  else:
    labels = np.asarray(stratify_labels)
    if labels.shape != (n,):
      raise errors.ConfigError(f"stratify_labels must have shape ({n},), got {labels.shape}")
    # Classes in order of first appearance, as scikit-learn deals them.
    _, first_seen, classes = np.unique(labels, return_index=True, return_inverse=True)
    by_appearance = np.argsort(first_seen)
    order = np.concatenate([rng.permutation(np.flatnonzero(classes == c)) for c in by_appearance])
  fold_of = np.empty(n, np.int64)
  fold_of[order] = np.arange(n) % k
  return [(np.flatnonzero(fold_of != i), np.flatnonzero(fold_of == i)) for i in range(k)]


def _check_resampling(n, num_samples):
  if n < 1:
    raise errors.ConfigError(f"need at least one example to resample, got n={n}")
  if num_samples < 1:
    raise errors.ConfigError(f"the number of resamples must be >= 1, got {num_samples}")


def _index_chunks(n, num_samples, seed):
  """The bootstrap index rows in blocks of at most _CHUNK, one seeded stream."""
  rng = np.random.default_rng(seed)
  for start in range(0, num_samples, _CHUNK):
    yield rng.integers(0, n, (min(_CHUNK, num_samples - start), n))


def bootstrap_indices(n: int, num_samples: int, seed: int) -> np.ndarray:
  """(num_samples, n) indices, each row n draws from range(n) with replacement.

  A row holds about 1 - 1/e = 63% of the distinct examples; the rest are its out-of-bag
  examples.
  """
  _check_resampling(n, num_samples)
  return np.concatenate(list(_index_chunks(n, num_samples, seed)))


def bootstrap_weights(n: int, num_samples: int, seed: int) -> np.ndarray:
  """(n, num_samples) float32: how often each example appears in each of the
  `bootstrap_indices(n, num_samples, seed)` resamples; 0 = out of bag. Weighting the
  examples of the full sample by column m is training on resample m."""
  rows = bootstrap_indices(n, num_samples, seed)
  return np.stack([np.bincount(row, minlength=n) for row in rows], 1).astype(np.float32)


class ConfidenceInterval(NamedTuple):
  estimate: float  # the statistic on the full sample
  low: float
  high: float


def bootstrap_confidence_interval(
  values,
  statistic: Optional[Callable[[np.ndarray], float]] = None,
  *,
  confidence: float = 0.95,
  num_resamples: int = 1000,
  seed: int = 0,
) -> ConfidenceInterval:
  """Percentile bootstrap interval for a statistic of per-example values.

  Resamples the examples (the leading axis of `values`) with replacement num_resamples
  times and returns the statistic on the full sample with the (1 - confidence) / 2 and
  (1 + confidence) / 2 quantiles of its resampled values. E.g. per-example correctness
  (0/1) with the default statistic, the mean, gives an interval for the test accuracy.

  Args:
    values: (n, ...) per-example values; a statistic of several per-example quantities
      (say predictions and labels) gets them stacked along axis 1.
    statistic: resampled values -> scalar; None is the mean over axis 0 (vectorised).
    confidence: coverage in (0, 1).
    num_resamples: bootstrap resamples.
    seed: seeds the resampling.
  """
  values = np.asarray(values)
  if values.ndim == 0:
    raise errors.ConfigError("values must have a leading example axis, got a scalar")
  if not 0 < confidence < 1:
    raise errors.ConfigError(f"confidence must be in (0, 1), got {confidence}")
  n = values.shape[0]
  _check_resampling(n, num_resamples)
  if statistic is None:
    if values.ndim != 1:
      raise errors.ConfigError(f"the default statistic (mean) needs 1-D values, got {values.shape}")
    estimate = values.mean()
    stats = np.concatenate([values[rows].mean(1) for rows in _index_chunks(n, num_resamples, seed)])
  else:
    estimate = statistic(values)
    stats = np.array(
      [statistic(values[row]) for rows in _index_chunks(n, num_resamples, seed) for row in rows]
    )
  low, high = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
  return ConfidenceInterval(float(estimate), float(low), float(high))


def _check_members(array, ndim, what):
  array = np.asarray(array)
  if array.ndim != ndim or array.shape[0] < 1:
    raise errors.ConfigError(f"{what} must be {ndim}-D with at least one member, got {array.shape}")
  return array


def average_probabilities(member_probabilities) -> np.ndarray:
  """(N, C) mean of the members' (M, N, C) class probabilities (soft voting)."""
  return _check_members(member_probabilities, 3, "member_probabilities").mean(0)


def majority_vote(member_predictions, num_classes: Optional[int] = None) -> np.ndarray:
  """(N,) most frequent class among the members' (M, N) predicted classes (hard voting).

  Ties go to the smallest class index.
  """
  predictions = _check_members(member_predictions, 2, "member_predictions").astype(np.int64)
  num_classes = int(predictions.max()) + 1 if num_classes is None else num_classes
  if predictions.min() < 0 or predictions.max() >= num_classes:
    raise errors.ConfigError(f"predicted classes must be in [0, {num_classes})")
  counts = np.zeros((predictions.shape[1], num_classes), np.int64)
  np.add.at(counts, (np.arange(predictions.shape[1])[None, :], predictions), 1)
  return counts.argmax(1)


def bagging_predict(member_probabilities, method: str = "average") -> np.ndarray:
  """(N,) class predictions of a bagged ensemble from its members' (M, N, C) probabilities.

  'average' takes the argmax of the mean probabilities (soft voting, what a bagged
  ensemble of probabilistic models usually does); 'vote' the majority of the members'
  argmax classes (hard voting, Breiman's original bagging).
  """
  probabilities = _check_members(member_probabilities, 3, "member_probabilities")
  if method == "average":
    return average_probabilities(probabilities).argmax(1)
  if method == "vote":
    return majority_vote(probabilities.argmax(2), probabilities.shape[2])
  raise errors.ConfigError(f"method must be one of {BAGGING_METHODS}, got {method!r}")
