"""Gaussian mixtures (docs/curriculum.md#f22): the log density, and EM as the
closed-form fit that gradient descent on the same likelihood is checked against.

A component's covariance is held as the Cholesky factor P of its precision,
Sigma^{-1} = P P^T with P lower triangular and a positive diagonal (scikit-learn's
`precisions_cholesky_`): then log N(x | mu, Sigma) = sum(log diag P) - |P^T (x - mu)|^2 / 2
- D/2 log 2 pi needs no matrix inverse or determinant, only a product, and every
lower-triangular P with a positive diagonal is a valid covariance.
"""

import math

import jax
import jax.numpy as jnp

from dlx import errors


def component_log_densities(x, means, precision_cholesky):
  """(N, K) log N(x_n | mu_k, Sigma_k) for x (N, D), means (K, D) and precision
  Cholesky factors (K, D, D)."""
  if x.ndim != 2 or means.ndim != 2 or x.shape[1] != means.shape[1]:
    raise errors.ConfigError(
      f"points {tuple(x.shape)} and means {tuple(means.shape)} must be (N, D) and (K, D)"
    )
  d = x.shape[1]
  # z_nk = P_k^T (x_n - mu_k), written as two products so each is one matmul.
  z = jnp.einsum("nd,kde->nke", x, precision_cholesky) - jnp.einsum(
    "kd,kde->ke", means, precision_cholesky
  )
  log_det = jnp.sum(jnp.log(jnp.diagonal(precision_cholesky, axis1=1, axis2=2)), axis=-1)
  return log_det - 0.5 * jnp.sum(z**2, axis=-1) - 0.5 * d * math.log(2 * math.pi)


def log_density(x, log_weights, means, precision_cholesky):
  """(N,) log sum_k pi_k N(x_n | mu_k, Sigma_k); log_weights (K,) normalised or not
  (they are normalised here, so logits work too)."""
  log_weights = jax.nn.log_softmax(log_weights)
  return jax.nn.logsumexp(log_weights + component_log_densities(x, means, precision_cholesky), -1)


def precision_cholesky_from_covariances(covariances):
  """(K, D, D) lower-triangular P with P P^T = Sigma^{-1} (the Cholesky factor of the
  precision), from covariances (K, D, D)."""
  return jnp.linalg.cholesky(jnp.linalg.inv(covariances))


def covariances_from_precision_cholesky(precision_cholesky):
  """(K, D, D) covariances Sigma = (P P^T)^{-1}."""
  return jnp.linalg.inv(precision_cholesky @ jnp.swapaxes(precision_cholesky, -1, -2))


def em_step(x, weights, means, covariances, reg: float = 1e-6):
  """One EM iteration for a full-covariance mixture: (weights, means, covariances) of
  the M step after the E step's responsibilities, and the mean log-likelihood of x
  under the parameters it started from (EM never lowers it). `reg` is added to the
  covariances' diagonals, as scikit-learn's `reg_covar`."""
  log_joint = jnp.log(weights) + component_log_densities(
    x, means, precision_cholesky_from_covariances(covariances)
  )
  log_likelihood = jax.nn.logsumexp(log_joint, axis=-1)
  resp = jnp.exp(log_joint - log_likelihood[:, None])  # (N, K) responsibilities
  counts = jnp.sum(resp, axis=0) + 10 * jnp.finfo(x.dtype).eps
  new_means = resp.T @ x / counts[:, None]
  centred = x[None] - new_means[:, None]  # (K, N, D)
  new_covariances = jnp.einsum("nk,knd,kne->kde", resp, centred, centred) / counts[:, None, None]
  new_covariances += reg * jnp.eye(x.shape[1])
  return counts / x.shape[0], new_means, new_covariances, jnp.mean(log_likelihood)


def em_fit(x, weights, means, covariances, num_steps: int = 200, reg: float = 1e-6):
  """`num_steps` EM iterations from the given parameters; returns the final
  (weights, means, covariances) and the (num_steps,) mean log-likelihood before each."""

  def step(params, _):
    *params, ll = em_step(x, *params, reg=reg)
    return tuple(params), ll

  params, history = jax.lax.scan(step, (weights, means, covariances), None, length=num_steps)
  return (*params, history)
