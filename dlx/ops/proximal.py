"""Proximal operators (docs/curriculum.md#c7): where a penalty has no gradient at 0, a
proximal step minimises it exactly instead of following a subgradient.

prox_{t g}(x) = argmin_z 0.5 |z - x|^2 + t g(z). For g = |.| this is soft thresholding,
which sets small weights to exactly 0; a subgradient step on t|w| only pushes them back
and forth around 0. Proximal gradient descent (ISTA) on loss + t |w|_1 alternates a
gradient step on the loss with prox_l1 at threshold lr * t.
"""

import jax
import jax.numpy as jnp

from dlx import errors


def prox_l1(x, threshold):
  """Soft thresholding, elementwise over an array or a pytree of arrays.

  sign(x) max(|x| - threshold, 0): entries with |x| <= threshold become exactly +0, the
  rest move threshold towards 0. It is the argmin over z of 0.5 (z - x)^2 + threshold |z|.
  """
  if isinstance(threshold, (int, float)) and threshold < 0:
    raise errors.ConfigError(f"threshold must be >= 0, got {threshold}")

  def shrink(leaf):
    leaf = jnp.asarray(leaf)
    small = jnp.abs(leaf) <= threshold
    return jnp.where(small, jnp.zeros_like(leaf), leaf - threshold * jnp.sign(leaf))

  return jax.tree.map(shrink, x)
