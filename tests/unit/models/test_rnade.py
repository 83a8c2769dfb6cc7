"""RNADE (dlx/models/rnade.py) against independent references: a NumPy loop with SciPy's
normal densities, the full-covariance Gaussian that a one-component RNADE with linear
hidden units is, scikit-learn's mixture log-likelihood, and numerical quadrature of the
density (it integrates to 1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy import stats
from sklearn import mixture

from dlx.models import rnade

D, H, K = 5, 6, 3


def _params(d=D, h=H, k=K, seed=0, scale=0.7):
  """Random RNADE parameters made in NumPy (no init to compile)."""
  rng = np.random.default_rng(seed)
  return {
    "W": scale * rng.standard_normal((h, d)),
    "c": scale * rng.standard_normal(h),
    "rho": 1.0 + 0.3 * rng.standard_normal(d),
    "V": scale * rng.standard_normal((3, d, h, k)),
    "b_logits": rng.standard_normal((d, k)),
    "b_means": rng.standard_normal((d, k)),
    "b_log_scales": -0.5 + 0.3 * rng.standard_normal((d, k)),
  }


def _model(params, activation="relu"):
  d, k = params["b_means"].shape
  model = rnade.RNADE(dim=d, hidden=params["c"].shape[0], num_components=k, activation=activation)
  variables = {"params": {n: jnp.asarray(v, jnp.float32) for n, v in params.items()}}
  return model, variables


def _naive_conditionals(params, x, activation="relu"):
  """log p(x_d | x_<d) computed one dimension at a time, with SciPy's normal density."""
  act = {"relu": lambda a: np.maximum(a, 0.0), "sigmoid": special.expit}[activation]
  p = params
  out = np.zeros(x.shape)
  for n in range(x.shape[0]):
    for d in range(x.shape[1]):
      h = act(p["rho"][d] * (p["c"] + p["W"][:, :d] @ x[n, :d]))
      logits, means, log_scales = (h @ p["V"][i, d] + b for i, b in enumerate(_biases(p, d)))
      log_pi = logits - special.logsumexp(logits)
      log_normal = stats.norm.logpdf(x[n, d], means, np.exp(log_scales))
      out[n, d] = special.logsumexp(log_pi + log_normal)
  return out


def _biases(p, d):
  return p["b_logits"][d], p["b_means"][d], p["b_log_scales"][d]


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_conditionals_match_a_loop_with_scipy(activation):
  params = _params()
  model, variables = _model(params, activation)
  x = np.random.default_rng(1).standard_normal((4, D))
  got = jax.jit(model.apply)(variables, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, _naive_conditionals(params, x, activation), rtol=1e-4, atol=1e-4)


def test_one_component_with_linear_hidden_units_is_a_full_covariance_gaussian():
  """With K = 1, fixed sigmas and every a_d > 0 (ReLU acting as the identity), each mean
  is linear in x_<d: x = b + B x + s eps, so x ~ N((I - B)^-1 b, A S^2 A^T) with
  A = (I - B)^-1, a full-covariance Gaussian that SciPy scores."""
  rng = np.random.default_rng(2)
  p = _params(k=1)
  p["W"] = np.abs(p["W"]) * 0.3
  p["c"] = 5.0 + np.abs(p["c"])  # a_d > 0 for every x >= 0
  p["rho"] = np.abs(p["rho"])
  p["V"][2] = 0.0  # sigma_d = exp(b_log_scales[d]) whatever x is
  model, variables = _model(p)
  b = np.array([p["rho"][d] * p["V"][1, d, :, 0] @ p["c"] + p["b_means"][d, 0] for d in range(D)])
  B = np.zeros((D, D))
  for d in range(D):
    B[d, :d] = p["rho"][d] * p["V"][1, d, :, 0] @ p["W"][:, :d]
  A = np.linalg.inv(np.eye(D) - B)
  sigma = np.exp(p["b_log_scales"][:, 0])
  gaussian = stats.multivariate_normal(A @ b, A @ np.diag(sigma**2) @ A.T)
  x = rng.uniform(0.0, 1.0, (16, D))
  got = model.apply(variables, jnp.asarray(x, jnp.float32), method="log_prob")
  np.testing.assert_allclose(got, gaussian.logpdf(x), rtol=1e-4, atol=1e-4)


def test_mixture_log_density_matches_sklearn_score_samples():
  rng = np.random.default_rng(3)
  weights = rng.dirichlet(np.ones(4))
  means, scales = rng.standard_normal(4), np.exp(rng.uniform(-1, 0.5, 4))
  reference = mixture.GaussianMixture(4, covariance_type="spherical")
  reference.weights_, reference.means_ = weights, means[:, None]
  reference.covariances_ = scales**2
  reference.precisions_cholesky_ = 1.0 / scales
  x = np.linspace(-4, 4, 50)
  got = rnade.mixture_log_density(
    jnp.asarray(x, jnp.float32)[:, None],
    jnp.log(jnp.asarray(weights, jnp.float32)),
    jnp.asarray(means, jnp.float32),
    jnp.log(jnp.asarray(scales, jnp.float32)),
  )
  np.testing.assert_allclose(got[:, 0], reference.score_samples(x[:, None]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("d", [1, 2])
def test_density_integrates_to_one(d):
  """A trapezoid rule over a grid that holds all the mass: sigmoid hidden units keep
  every conditional's means within a few units of 0 and its scales below ~1.3."""
  params = _params(d=d, seed=4)
  params["V"][2] *= 0.1  # the log-scales' weights: sigma within exp(-1.5)..exp(0.3)
  model, variables = _model(params, "sigmoid")
  axis = np.linspace(-12.0, 12.0, 1201 if d == 1 else 601)
  grid = np.stack(np.meshgrid(*([axis] * d), indexing="ij"), -1).reshape(-1, d)
  log_p = model.apply(variables, jnp.asarray(grid, jnp.float32), method="log_prob")
  density = np.exp(np.asarray(log_p, np.float64)).reshape((len(axis),) * d)
  for _ in range(d):
    density = np.trapezoid(density, axis, axis=0)
  assert float(density) == pytest.approx(1.0, abs=2e-3)


def test_samples_have_the_gaussian_cases_mean_and_covariance():
  """Ancestral sampling of a one-component RNADE whose conditionals do not depend on
  x: independent N(b_means, exp(b_log_scales)^2) coordinates."""
  p = _params(k=1, seed=5)
  p["V"][:] = 0.0
  model, variables = _model(p)
  samples = np.asarray(model.apply(variables, jax.random.PRNGKey(0), 20000, method="sample"))
  assert samples.shape == (20000, D)
  np.testing.assert_allclose(samples.mean(0), p["b_means"][:, 0], atol=0.03)
  np.testing.assert_allclose(samples.std(0), np.exp(p["b_log_scales"][:, 0]), rtol=0.03)


def test_samples_follow_the_conditionals():
  """The probability integral transform: for ancestral samples, u_d = F(x_d | x_<d)
  under the density's own conditionals (computed in one pass, not by the sampler's
  scan) is uniform on (0, 1) in every dimension (Kolmogorov-Smirnov)."""
  params = _params(d=3, seed=6)
  model, variables = _model(params)
  samples = model.apply(variables, jax.random.PRNGKey(1), 4000, method="sample")
  logits, means, log_scales = (
    np.asarray(a, np.float64) for a in model.apply(variables, samples, method="conditionals")
  )
  z = (np.asarray(samples, np.float64)[..., None] - means) / np.exp(log_scales)
  u = np.sum(special.softmax(logits, axis=-1) * stats.norm.cdf(z), axis=-1)  # (N, D)
  for d in range(3):
    assert stats.kstest(u[:, d], "uniform").pvalue > 0.01, d
