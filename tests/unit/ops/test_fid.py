"""Tests for dlx/ops/fid.py (MNIST-FID, docs/curriculum.md#f18): the Frechet distance
against closed forms and a direct scipy.linalg.sqrtm computation, the classifier scores
against hand counts, and real digits scoring far better than noise under a classifier
trained here (always runs) and under the lenet5_mnist run (when this checkout has it).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import linalg

from dlx import data
from dlx import errors
from dlx.data import core
from dlx.models import mlp
from dlx.ops import fid
from tests import conftest

LENET_RUN = conftest.REPO / "runs" / "lenet5_mnist"


def _random_covariance(rng, d, rank=None):
  a = rng.normal(size=(d, rank or d))
  return a @ a.T / d


def _scipy_distance(mean1, cov1, mean2, cov2):
  # The textbook formula, with a general (non-symmetric) matrix square root.
  cross = linalg.sqrtm(cov1 @ cov2).real
  return np.sum((mean1 - mean2) ** 2) + np.trace(cov1 + cov2 - 2 * cross)


def test_a_set_is_at_distance_zero_from_itself():
  x = np.random.default_rng(0).normal(size=(500, 16)) * 3.0 + 1.0
  assert fid.features_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_a_shifted_set_is_at_the_squared_shift():
  # Shifting changes the mean only, so the distance is exactly ||shift||^2.
  rng = np.random.default_rng(1)
  x = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8))
  shift = rng.normal(size=8)
  assert fid.features_distance(x, x + shift) == pytest.approx(np.sum(shift**2), rel=1e-9)


def test_diagonal_gaussians_match_the_closed_form():
  # Commuting covariances: tr(S1 + S2 - 2 (S1 S2)^(1/2)) = sum (sqrt(a) - sqrt(b))^2.
  a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
  mean1, mean2 = np.zeros(3), np.array([1.0, -2.0, 0.0])
  expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert fid.frechet_distance(mean1, np.diag(a), mean2, np.diag(b)) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_direct_scipy_computation(seed):
  rng = np.random.default_rng(seed)
  d = 12
  mean1, mean2 = rng.normal(size=d), rng.normal(size=d)
  cov1, cov2 = _random_covariance(rng, d), _random_covariance(rng, d)
  assert fid.frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(
    _scipy_distance(mean1, cov1, mean2, cov2), rel=1e-8
  )
  # Fitted to samples: the same as the distance between the fitted statistics.
  x, y = rng.normal(size=(300, d)), rng.normal(size=(200, d)) * 2.0
  fitted = (x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T))
  assert fid.features_distance(x, y) == pytest.approx(_scipy_distance(*fitted), rel=1e-8)


def test_singular_covariances_give_a_finite_symmetric_distance():
  # Fewer samples than features: rank-deficient covariances, where sqrtm of the
  # product may go complex; the symmetric form stays real, >= 0 and symmetric.
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(10, 30)), rng.normal(size=(10, 30)) + 0.5
  forward, backward = fid.features_distance(x, y), fid.features_distance(y, x)
  assert math.isfinite(forward) and forward > 0
  assert forward == pytest.approx(backward, rel=1e-6)
  cov1, cov2 = _random_covariance(rng, 6, rank=2), _random_covariance(rng, 6, rank=3)
  assert fid.frechet_distance(np.zeros(6), cov1, np.zeros(6), cov2) == pytest.approx(
    _scipy_distance(np.zeros(6), cov1, np.zeros(6), cov2), abs=1e-6
  )


def test_bad_inputs_are_user_errors():
  with pytest.raises(errors.ConfigError, match="must be"):
    fid.feature_statistics(np.zeros((1, 3)))
  with pytest.raises(errors.ConfigError, match="NaN"):
    fid.feature_statistics(np.full((4, 3), np.nan))
  with pytest.raises(errors.ConfigError, match="cov2"):
    fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
  with pytest.raises(errors.ConfigError, match="means"):
    fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(3))
  with pytest.raises(errors.ConfigError, match="28x28 or 32x32"):
    fid.lenet_inputs(np.zeros((2, 16, 16, 1)))


def test_classifier_scores_match_hand_counts():
  logits = np.array([[10.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 10.0], [0.0, 5.0, 0.0]])
  # Top probabilities: ~1, ~0.42, ~1, ~0.987.
  assert fid.confident_fraction(logits) == 0.75
  # Predicted classes 0, 0, 2, 1: histogram (1/2, 1/4, 1/4).
  assert fid.class_entropy(logits) == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
  assert fid.class_entropy(np.eye(10)) == pytest.approx(math.log(10))
  assert fid.class_entropy(np.tile([0.0, 1.0], (5, 1))) == 0.0


def test_lenet_inputs_pads_mnist_to_32():
  images = np.ones((3, 784), np.float32)
  padded = fid.lenet_inputs(images)
  assert padded.shape == (3, 32, 32, 1)
  assert padded.sum() == 3 * 784 and padded[:, :2].sum() == 0


class _Probe(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    del train
    h = jnp.tanh(nn.Dense(5, name="hidden")(x))
    return nn.Dense(3, name="out")(h)


def test_classifier_outputs_catches_the_input_of_the_last_dense_layer():
  model = _Probe()
  x = np.random.default_rng(4).normal(size=(7, 4)).astype(np.float32)
  variables = model.init(jax.random.PRNGKey(0), x)
  features, logits = fid.classifier_outputs(model, variables, x, batch_size=3)
  hidden = variables["params"]["hidden"]
  expected = np.tanh(x @ hidden["kernel"] + hidden["bias"])
  np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logits, model.apply(variables, x), rtol=1e-5, atol=1e-6)


class _Frozen:
  def __init__(self, model, variables):
    self.model, self.variables = model, variables


def _train_digits_classifier():
  """A 64-32-10 MLP on scikit-learn's 8x8 digits, full-batch Adam: ~97% test accuracy."""
  ds = data.load("digits")
  model = mlp.MLP(hidden=(32,), num_outputs=10, activation="tanh")
  x, y = ds.train["inputs"], ds.train["targets"]
  params = model.init(jax.random.PRNGKey(0), x)["params"]
  optimizer = optax.adam(1e-2)

  @jax.jit
  def step(params, opt_state):
    def loss(params):
      logits = model.apply({"params": params}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state)
    return optax.apply_updates(params, updates), opt_state

  opt_state = optimizer.init(params)
  for _ in range(300):
    params, opt_state = step(params, opt_state)
  return ds, _Frozen(model, {"params": params})


def test_real_digits_score_far_better_than_noise():
  ds, classifier = _train_digits_classifier()
  test = ds.test["inputs"]
  features, logits = fid.classifier_outputs(classifier.model, classifier.variables, test)
  assert np.mean(np.argmax(logits, -1) == ds.test["targets"]) > 0.9
  reference = fid.feature_statistics(features)
  train = fid.feature_statistics(
    fid.classifier_outputs(classifier.model, classifier.variables, ds.train["inputs"])[0]
  )
  noise = np.random.default_rng(0).random(test.shape, np.float32)
  noise_features, noise_logits = fid.classifier_outputs(
    classifier.model, classifier.variables, noise
  )
  real_distance = fid.frechet_distance(*train, *reference)
  noise_distance = fid.features_distance(noise_features, features)
  assert real_distance < 0.1 * noise_distance
  assert fid.class_entropy(logits) > 0.95 * math.log(10)  # every digit is predicted
  assert fid.class_entropy(noise_logits) < fid.class_entropy(logits)


@pytest.mark.skipif(
  not LENET_RUN.is_dir(),
  reason=f"no trained lenet5_mnist run at {LENET_RUN} "
  "(./launch.sh lenet5_mnist --data_dir=../shared/tfds makes it)",
)
def test_mnist_fid_of_the_test_split_is_far_below_noise(tfds_dir):
  from dlx.training import warm_start  # pylint: disable=g-import-not-at-top

  classifier = warm_start.load_frozen(str(LENET_RUN))
  ds = data.load("mnist", data_dir=tfds_dir).map(data.transforms.scale_images)
  test = core.take(ds.test, slice(0, 2000))["inputs"]
  train = core.take(ds.train, slice(0, 2000))["inputs"]
  features, _ = fid.classifier_outputs(
    classifier.model, classifier.variables, fid.lenet_inputs(test)
  )
  reference = fid.feature_statistics(features)
  real = fid.mnist_fid(classifier, train, reference)
  noise = fid.mnist_fid(classifier, np.random.default_rng(0).random(test.shape), reference)
  # Measured on 10,000 vs 10,000: 0.079 (train vs test) and 87.8 (uniform noise).
  assert real["mnist_fid"] < 1.0 < 20.0 < noise["mnist_fid"]
  assert real["confident_fraction"] > 0.95
  assert real["class_entropy"] > 0.99 * math.log(10) > noise["class_entropy"]
