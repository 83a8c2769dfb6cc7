"""A mixture of K full-covariance Gaussians as a Flax module, fitted by gradient descent
on the negative log-likelihood (docs/curriculum.md#f22).

The parameters are unconstrained, so any optimizer step gives a valid mixture: mixing
weights are a softmax of logits, and each precision is P P^T with P lower triangular,
its diagonal exp(log_diagonal) > 0 and its strictly lower part free (dlx/ops/mixture.py).
"""

import flax.linen as nn
import jax.numpy as jnp

from dlx.ops import mixture


class GaussianMixture(nn.Module):
  """`__call__(x)` returns the (N,) log density of points x (N, dim)."""

  num_components: int = 8
  dim: int = 2
  init_scale: float = 1.0  # means start ~ N(0, init_scale^2), covariances at identity

  def setup(self):
    k, d = self.num_components, self.dim
    self.logits = self.param("logits", nn.initializers.zeros, (k,))
    self.means = self.param("means", nn.initializers.normal(self.init_scale), (k, d))
    self.log_diagonal = self.param("log_diagonal", nn.initializers.zeros, (k, d))
    self.lower = self.param("lower", nn.initializers.zeros, (k, d, d))

  def precision_cholesky(self):
    """(K, D, D) lower-triangular factors with a positive diagonal."""
    strict = jnp.tril(self.lower, k=-1)
    return strict + jnp.exp(self.log_diagonal)[..., None] * jnp.eye(self.dim, dtype=strict.dtype)

  def mixture_parameters(self):
    """(weights (K,), means (K, D), covariances (K, D, D)), as EM and scikit-learn hold them."""
    weights = jnp.exp(nn.log_softmax(self.logits))
    return (
      weights,
      self.means,
      mixture.covariances_from_precision_cholesky(self.precision_cholesky()),
    )

  def __call__(self, x, train: bool = False):
    del train
    x = x.reshape((x.shape[0], -1))
    return mixture.log_density(x, self.logits, self.means, self.precision_cholesky())
