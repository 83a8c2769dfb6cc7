"""Tests for dlx/ops/resampling.py (docs/curriculum.md#d5): k-fold splits against
scikit-learn's KFold and StratifiedKFold (fold sizes and per-fold class counts; the order
of the points differs), the bootstrap against its closed forms (1 - 1/e distinct points,
the normal interval for a mean), and ensemble voting against hand-computed cases.
"""

import math

import numpy as np
import pytest
from sklearn import model_selection

from dlx import errors
from dlx.ops import resampling


def _assert_partition(folds, n):
  validation = np.concatenate([val for _, val in folds])
  np.testing.assert_array_equal(np.sort(validation), np.arange(n))  # disjoint and covering
  for train, val in folds:
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
    assert np.intersect1d(train, val).size == 0


@pytest.mark.parametrize("n, k", [(10, 2), (103, 5), (7, 7)])
def test_kfold_is_a_partition_with_kfold_sizes(n, k):
  folds = resampling.kfold_indices(n, k, seed=0)
  assert len(folds) == k
  _assert_partition(folds, n)
  reference = model_selection.KFold(k).split(np.zeros(n))
  assert [len(val) for _, val in folds] == [len(val) for _, val in reference]


def test_stratified_kfold_matches_sklearn_class_counts():
  rng = np.random.default_rng(0)
  labels = rng.choice(np.array(["cat", "dog", "eel"]), 101, p=[0.6, 0.3, 0.1])
  folds = resampling.kfold_indices(101, 5, seed=1, stratify_labels=labels)
  _assert_partition(folds, 101)
  classes, totals = np.unique(labels, return_counts=True)
  counts = np.array([[np.sum(labels[val] == c) for c in classes] for _, val in folds])
  assert np.all(np.abs(counts - totals / 5) < 1)  # class proportions kept to within 1
  sizes = counts.sum(1)
  assert sizes.max() - sizes.min() <= 1
  reference = model_selection.StratifiedKFold(5).split(np.zeros(101), labels)
  reference_counts = np.array([[np.sum(labels[val] == c) for c in classes] for _, val in reference])
  np.testing.assert_array_equal(counts, reference_counts)


def test_kfold_is_determined_by_its_seed():
  labels = np.arange(50) % 3
  first = resampling.kfold_indices(50, 5, 7, labels)
  again = resampling.kfold_indices(50, 5, 7, labels)
  other = resampling.kfold_indices(50, 5, 8, labels)
  for (t1, v1), (t2, v2) in zip(first, again):
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(v1, v2)
  assert any(not np.array_equal(v1, v3) for (_, v1), (_, v3) in zip(first, other))


def test_bootstrap_indices():
  indices = resampling.bootstrap_indices(1000, 300, seed=0)
  assert indices.shape == (300, 1000) and indices.dtype.kind == "i"
  assert indices.min() >= 0 and indices.max() < 1000
  np.testing.assert_array_equal(indices, resampling.bootstrap_indices(1000, 300, seed=0))
  assert not np.array_equal(indices, resampling.bootstrap_indices(1000, 300, seed=1))
  # Drawn with replacement: a row holds 1 - (1 - 1/n)^n ~ 1 - 1/e of the points (sd ~0.015
  # per row, ~0.001 over 300 rows).
  distinct = np.mean([np.unique(row).size / 1000 for row in indices])
  assert distinct == pytest.approx(1 - (1 - 1 / 1000) ** 1000, abs=0.005)


def test_bootstrap_weights_count_each_resamples_draws():
  weights = resampling.bootstrap_weights(50, 4, seed=3)
  assert weights.shape == (50, 4) and weights.dtype == np.float32
  rows = resampling.bootstrap_indices(50, 4, seed=3)
  for m in range(4):
    np.testing.assert_array_equal(weights[:, m], np.bincount(rows[m], minlength=50))
  np.testing.assert_array_equal(weights.sum(0), 50)  # n draws per resample


def test_bootstrap_interval_of_a_mean_is_the_normal_interval():
  sample = np.random.default_rng(0).normal(2.0, 3.0, 10_000)
  ci = resampling.bootstrap_confidence_interval(sample, num_resamples=2000, seed=1)
  half_width = 1.959964 * sample.std(ddof=1) / math.sqrt(sample.size)  # ~0.059
  assert ci.estimate == pytest.approx(sample.mean(), rel=1e-12)
  # The percentile error with 2000 resamples is ~0.002.
  assert ci.low == pytest.approx(sample.mean() - half_width, abs=0.008)
  assert ci.high == pytest.approx(sample.mean() + half_width, abs=0.008)


def test_bootstrap_interval_is_the_percentiles_of_resampled_statistics():
  # An accuracy from stacked (prediction, label) pairs through a custom statistic equals
  # the default mean of the per-example correctness, and both equal the percentiles of
  # the statistic over bootstrap_indices with the same seed.
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 3, 500)
  predictions = np.where(rng.random(500) < 0.8, labels, (labels + 1) % 3)
  correct = (predictions == labels).astype(np.float64)
  accuracy = lambda v: np.mean(v[:, 0] == v[:, 1])
  pairs = np.stack([predictions, labels], 1)
  by_pairs = resampling.bootstrap_confidence_interval(pairs, accuracy, confidence=0.9, seed=3)
  by_correct = resampling.bootstrap_confidence_interval(correct, confidence=0.9, seed=3)
  resampled = correct[resampling.bootstrap_indices(500, 1000, seed=3)].mean(1)
  expected = (correct.mean(), *np.quantile(resampled, [0.05, 0.95]))
  np.testing.assert_allclose(by_pairs, expected, rtol=1e-12)
  np.testing.assert_allclose(by_correct, expected, rtol=1e-12)
  assert by_pairs.low < by_pairs.estimate < by_pairs.high


def test_bagging_soft_and_hard_voting():
  # Example 0: one confident member against two lukewarm ones: averaging and voting
  # disagree. Example 1: members agree on class 2.
  probabilities = np.array(
    [
      [[0.9, 0.1, 0.0], [0.1, 0.1, 0.8]],
      [[0.4, 0.6, 0.0], [0.2, 0.2, 0.6]],
      [[0.45, 0.55, 0.0], [0.3, 0.0, 0.7]],
    ]
  )
  np.testing.assert_allclose(
    resampling.average_probabilities(probabilities),
    [[1.75 / 3, 1.25 / 3, 0.0], [0.2, 0.1, 0.7]],
  )
  np.testing.assert_array_equal(resampling.bagging_predict(probabilities, "average"), [0, 2])
  np.testing.assert_array_equal(resampling.bagging_predict(probabilities, "vote"), [1, 2])


def test_majority_vote_counts_and_breaks_ties_low():
  predictions = np.array([[0, 2, 1, 3], [1, 2, 0, 3], [1, 0, 2, 3]])
  np.testing.assert_array_equal(resampling.majority_vote(predictions), [1, 2, 0, 3])
  np.testing.assert_array_equal(resampling.majority_vote(predictions, num_classes=5), [1, 2, 0, 3])


@pytest.mark.parametrize(
  "call",
  [
    lambda: resampling.kfold_indices(10, 1, 0),
    lambda: resampling.kfold_indices(3, 4, 0),
    lambda: resampling.kfold_indices(10, 2, 0, stratify_labels=np.zeros(9)),
    lambda: resampling.bootstrap_indices(0, 5, 0),
    lambda: resampling.bootstrap_indices(5, 0, 0),
    lambda: resampling.bootstrap_confidence_interval(np.ones(5), confidence=1.0),
    lambda: resampling.bootstrap_confidence_interval(np.ones((5, 2))),
    lambda: resampling.bagging_predict(np.ones((2, 3, 4)), "median"),
    lambda: resampling.majority_vote(np.array([[0, 3]]), num_classes=3),
  ],
)
def test_bad_arguments_raise_config_error(call):
  with pytest.raises(errors.ConfigError):
    call()
