"""Gaussian mixtures (dlx/ops/mixture.py, dlx/models/mixture.py) against scipy and
scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dlx import errors
from dlx.models import mixture as mixture_model
from dlx.ops import mixture

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[0.0, 0.0], [2.0, -1.0], [-1.5, 2.5]])
COVARIANCES = np.array(
  [[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.2], [-0.2, 0.9]], [[2.0, 0.0], [0.0, 0.1]]]
)


def _scipy_log_density(x, weights, means, covariances):
  densities = [
    w * stats.multivariate_normal(m, c).pdf(x) for w, m, c in zip(weights, means, covariances)
  ]
  return np.log(np.sum(densities, axis=0))


def _points(n=50, seed=0):
  return np.random.default_rng(seed).normal(size=(n, 2)) * 2.0


def test_log_density_matches_scipy():
  x = _points()

  @jax.jit
  def log_density(x, weights, means, covariances):
    precision = mixture.precision_cholesky_from_covariances(covariances)
    return mixture.log_density(x, jnp.log(weights), means, precision)

  got = log_density(x, WEIGHTS, MEANS, COVARIANCES)
  np.testing.assert_allclose(got, _scipy_log_density(x, WEIGHTS, MEANS, COVARIANCES), rtol=1e-5)


def test_precision_cholesky_is_lower_triangular_and_round_trips():
  precision = jax.jit(mixture.precision_cholesky_from_covariances)(COVARIANCES)
  np.testing.assert_allclose(precision, np.tril(precision), atol=0)
  assert np.all(np.diagonal(precision, axis1=1, axis2=2) > 0)
  back = jax.jit(mixture.covariances_from_precision_cholesky)(precision)
  np.testing.assert_allclose(back, COVARIANCES, rtol=1e-5, atol=1e-6)


def test_module_density_is_the_mixture_of_its_parameters():
  model = mixture_model.GaussianMixture(num_components=3, dim=2)
  x = _points().astype(np.float32)
  rng = np.random.default_rng(1)
  shapes = {"logits": (3,), "means": (3, 2), "log_diagonal": (3, 2), "lower": (3, 2, 2)}
  params = {"params": {k: 0.5 * rng.standard_normal(v) for k, v in shapes.items()}}
  weights, means, covariances = jax.jit(lambda p: model.apply(p, method="mixture_parameters"))(
    params
  )
  np.testing.assert_allclose(float(jnp.sum(weights)), 1.0, rtol=1e-6)
  np.testing.assert_allclose(
    jax.jit(model.apply)(params, x),
    _scipy_log_density(
      np.asarray(x), *(np.asarray(a, np.float64) for a in (weights, means, covariances))
    ),
    rtol=1e-4,
  )


def test_em_steps_never_lower_the_likelihood():
  x = _points(200, seed=1).astype(np.float32)
  start = (np.ones(3, np.float32) / 3, MEANS.astype(np.float32), COVARIANCES.astype(np.float32))
  *_, history = mixture.em_fit(x, *start, num_steps=20)
  history = np.asarray(history)
  assert history[-1] > history[0] + 0.1
  assert np.all(np.diff(history) >= -1e-5)


def test_em_step_matches_the_textbook_m_step():
  x = _points(30, seed=2)
  em_step = jax.jit(lambda *args: mixture.em_step(*args, reg=0.0))
  weights, means, covariances, ll = em_step(x, WEIGHTS, MEANS, COVARIANCES)
  joint = np.stack(
    [w * stats.multivariate_normal(m, c).pdf(x) for w, m, c in zip(WEIGHTS, MEANS, COVARIANCES)], 1
  )
  resp = joint / joint.sum(1, keepdims=True)
  counts = resp.sum(0)
  expected_means = resp.T @ x / counts[:, None]
  np.testing.assert_allclose(ll, np.mean(np.log(joint.sum(1))), rtol=1e-5)
  np.testing.assert_allclose(weights, counts / len(x), rtol=1e-5)
  np.testing.assert_allclose(means, expected_means, rtol=1e-4, atol=1e-6)
  for k in range(3):
    centred = x - expected_means[k]
    expected = (resp[:, k, None] * centred).T @ centred / counts[k]
    np.testing.assert_allclose(covariances[k], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # scikit-learn's import and fit: ~2 s
def test_em_reaches_scikit_learns_fit_on_separated_blobs():
  from sklearn import mixture as sk_mixture  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(3)
  x = np.concatenate([rng.multivariate_normal(m, c, 150) for m, c in zip(MEANS * 3, COVARIANCES)])
  sk = sk_mixture.GaussianMixture(3, covariance_type="full", random_state=0).fit(x)
  start = (np.ones(3) / 3, MEANS * 3 + 0.5, np.tile(np.eye(2), (3, 1, 1)))
  *_, history = mixture.em_fit(*(a.astype(np.float32) for a in (x, *start)), num_steps=50)
  np.testing.assert_allclose(float(history[-1]), sk.score(x), atol=1e-3)


def test_mismatched_shapes_are_a_config_error():
  with pytest.raises(errors.ConfigError, match="must be"):
    mixture.component_log_densities(jnp.zeros((4, 3)), jnp.zeros((2, 2)), jnp.zeros((2, 2, 2)))
