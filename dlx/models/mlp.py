"""Multi-layer perceptron and a linear baseline."""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.dense import Dense

_ACTIVATIONS = {
  "relu": nn.relu,
  "tanh": jnp.tanh,
  "sigmoid": nn.sigmoid,
  "leaky_relu": nn.leaky_relu,
}


def _flatten(x):
  return x.reshape((x.shape[0], -1))


class MLP(nn.Module):
  """Dense stack on flattened inputs; returns (N, num_outputs) logits."""

  hidden: Sequence[int]
  num_outputs: int
  activation: str = "relu"
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.activation not in _ACTIVATIONS:
      raise ValueError(
        f"Unknown activation {self.activation!r}; choose one of {sorted(_ACTIVATIONS)}."
      )
    act = _ACTIVATIONS[self.activation]
    x = _flatten(x)
    for width in self.hidden:
      x = act(Dense(width)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return Dense(self.num_outputs)(x)


class Linear(nn.Module):
  """One dense layer on flattened inputs (e.g. to show XOR is not linear)."""

  num_outputs: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No stochastic layers.
    return Dense(self.num_outputs)(_flatten(x))
