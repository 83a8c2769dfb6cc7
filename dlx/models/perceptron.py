"""Rosenblatt's perceptron: a linear unit with a step activation (docs/curriculum.md#f1)."""

import flax.linen as nn
import jax.numpy as jnp


def step(scores):
  """The Heaviside step as the perceptron uses it: 1 where the score is >= 0, else 0."""
  return (scores >= 0).astype(jnp.int32)


class Perceptron(nn.Module):
  """Returns the scores w.x + b, (N,), of flattened inputs; the prediction is
  `step(scores)`. The parameters are named 'weights' (d,) and 'bias' () so the
  perceptron learning rule can update them by hand (it takes no gradient)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No stochastic layers.
    x = x.reshape((x.shape[0], -1))
    weights = self.param("weights", nn.initializers.zeros, (x.shape[1],))
    bias = self.param("bias", nn.initializers.zeros, ())
    return x @ weights + bias
