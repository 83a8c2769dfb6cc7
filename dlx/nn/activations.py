"""Activation functions (re-exported from jax.nn) and a lookup by name.

  relu(x)         = max(0, x)
  leaky_relu(x)   = x if x >= 0 else negative_slope * x
  sigmoid(x)      = 1 / (1 + exp(-x))   (the course's printed c / (1 + e^{-b+wx})
                                         (docs/curriculum.md#e1) has a sign
                                         typo: the exponent is -(b+wx))
  hard_sigmoid(x) = relu6(x + 3) / 6 = (relu(x + 3) - relu(x - 3)) / 6
  tanh(x)         = (exp(x) - exp(-x)) / (exp(x) + exp(-x))
  softmax(x)_i    = exp(x_i) / sum_j exp(x_j)

The course (docs/curriculum.md#e1) describes the hard sigmoid only as a
piecewise-linear ramp (0, then linear, then 1) built from two ReLUs, without
constants; we use PyTorch's and JAX's constants (ramp on [-3, 3], slope 1/6),
which is exactly such a difference of two ReLUs. Keras uses a different one
(clip(0.2 x + 0.5, 0, 1)), so do not mix the two when porting weights.
jax.nn.softmax subtracts max(x) before exponentiating, so large logits do not
overflow.
"""

import jax
import jax.numpy as jnp

relu = jax.nn.relu
leaky_relu = jax.nn.leaky_relu  # leaky_relu(x, negative_slope=0.01)
sigmoid = jax.nn.sigmoid
hard_sigmoid = jax.nn.hard_sigmoid
tanh = jnp.tanh
softmax = jax.nn.softmax  # softmax(x, axis=-1)

_BY_NAME = {
  "relu": relu,
  "leaky_relu": leaky_relu,
  "sigmoid": sigmoid,
  "hard_sigmoid": hard_sigmoid,
  "tanh": tanh,
  "softmax": softmax,
}


def get(name):
  """Returns the activation called `name`, e.g. get('relu')."""
  try:
    return _BY_NAME[name]
  except (KeyError, TypeError):
    raise ValueError(
      f"unknown activation {name!r}; valid names: {', '.join(sorted(_BY_NAME))}"
    ) from None
