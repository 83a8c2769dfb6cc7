"""The tasks that put the Gaussian NLL, the weighted and the clipped losses to use
(docs/curriculum.md#b4, #b5), against SciPy, scikit-learn and PyTorch."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics
from sklearn.utils import class_weight
import torch

from dlx import losses
from dlx.tasks import regression
from dlx.tasks.classic import heteroscedastic
from dlx.tasks.classic import imbalanced


def test_the_90_percent_interval_uses_the_normal_quantile():
  assert heteroscedastic.Z_90 == pytest.approx(stats.norm.ppf(0.95), abs=1e-12)


def test_heteroscedastic_loss_is_the_normal_log_density():
  rng = np.random.default_rng(0)
  outputs = rng.standard_normal((50, 2)).astype(np.float32)
  targets = rng.standard_normal((50, 1)).astype(np.float32)
  result = heteroscedastic.loss(jnp.asarray(outputs), {"targets": jnp.asarray(targets)})
  mean, variance = heteroscedastic.mean_and_variance(jnp.asarray(outputs))
  expected = -stats.norm.logpdf(targets, np.asarray(mean), np.sqrt(np.asarray(variance)))
  np.testing.assert_allclose(result["loss"], expected[:, 0], rtol=1e-5, atol=1e-5)
  assert np.all(np.asarray(variance) > 0)


def test_coverage_of_true_gaussians_is_ninety_percent():
  rng = np.random.default_rng(1)
  mean = rng.standard_normal(20000)
  sigma = np.exp(rng.uniform(-2, 1, 20000))
  targets = mean + sigma * rng.standard_normal(20000)
  coverage = np.mean(np.asarray(heteroscedastic.covered(mean, sigma**2, targets)))
  assert coverage == pytest.approx(0.9, abs=0.01)  # 5 standard errors of a proportion


def test_balanced_weights_are_scikit_learns():
  targets = np.array([0] * 50 + [1] * 10 + [2] * 3)
  expected = class_weight.compute_class_weight("balanced", classes=np.arange(3), y=targets)
  np.testing.assert_allclose(imbalanced.balanced_weights(targets, 3), expected[targets], rtol=1e-6)
  assert imbalanced.balanced_weights(targets, 3).mean() == pytest.approx(1.0)


def test_weighted_objective_is_pytorchs_class_weighted_cross_entropy():
  """Over a split, mean(w_i l_i) with balanced weights (mean 1) = losses.weighted(l, w)
  = sum w l / sum w, which is torch's cross_entropy(weight=...) with 'mean' reduction."""
  rng = np.random.default_rng(2)
  targets = rng.choice(4, 200, p=[0.7, 0.2, 0.07, 0.03])
  logits = rng.standard_normal((200, 4)).astype(np.float32)
  weights = imbalanced.balanced_weights(targets, 4)
  batch = {"targets": jnp.asarray(targets), "weights": jnp.asarray(weights)}
  per_example = imbalanced.loss(jnp.asarray(logits), batch)["loss"]
  cross_entropy = losses.softmax_cross_entropy(logits, targets)
  counts = np.bincount(targets, minlength=4)
  class_weights = torch.tensor(len(targets) / (4 * counts), dtype=torch.float32)
  expected = torch.nn.functional.cross_entropy(
    torch.from_numpy(logits), torch.from_numpy(targets), weight=class_weights
  )
  assert float(jnp.mean(per_example)) == pytest.approx(float(expected), rel=1e-5)
  assert float(losses.weighted(cross_entropy, weights)) == pytest.approx(float(expected), rel=1e-5)


def test_recalls_are_scikit_learns():
  rng = np.random.default_rng(3)
  targets, predictions = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
  expected = metrics.recall_score(targets, predictions, average=None)
  np.testing.assert_allclose(imbalanced.recalls(predictions, targets, 5), expected)


def test_subsample_keeps_a_fraction_of_the_minority_classes_only():
  targets = np.repeat(np.arange(4), 100)
  split = {"inputs": np.arange(400.0), "targets": targets}
  kept = imbalanced.subsample(split, (2, 3), 0.05, seed=0)
  assert np.bincount(kept["targets"]).tolist() == [100, 100, 5, 5]
  np.testing.assert_array_equal(kept["inputs"].astype(int) // 100, kept["targets"])


def test_unweighted_loss_is_the_plain_cross_entropy():
  ds = imbalanced.get_dataset(
    ml_collections.ConfigDict(
      dict(seed=0, minority_classes=(5, 6, 7, 8, 9), minority_keep=0.05, class_weights=False)
    ),
    None,
  )
  np.testing.assert_array_equal(ds.train["weights"], 1.0)
  assert np.bincount(ds.train["targets"])[5:].max() <= 8
  assert ds.test["targets"].shape == (359,)  # the test split is untouched


def test_clipped_loss_passes_no_gradient_past_the_cap():
  batch = {"targets": jnp.array([[0.0], [0.0]])}

  def total(predictions):
    return jnp.sum(regression.regression(predictions, batch, loss="clipped", clip=4.0)["loss"])

  grads = jax.grad(total)(jnp.array([[1.0], [3.0]]))  # r^2 = 1 (under C = 4) and 9 (over)
  np.testing.assert_allclose(grads, [[2.0], [0.0]])
  values = regression.regression(jnp.array([[1.0], [3.0]]), batch, loss="clipped", clip=4.0)
  np.testing.assert_allclose(values["loss"], [[1.0], [4.0]])
  np.testing.assert_allclose(values["mse"], [[1.0], [9.0]])
