"""LeNet-5 (LeCun et al., 1998) as in the course (docs/curriculum.md#f2)."""

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense


class LeNet5(nn.Module):
  """LeNet-5 on 32x32x1 inputs; returns logits (softmax lives in the loss).

  conv 6@5x5 + tanh -> pool -> conv 16@5x5 + tanh -> pool -> 120 -> 84 ->
  num_classes. Pools are 2x2 stride 2 and have no parameters, which gives
  61,706 parameters for 10 classes.
  """

  num_classes: int = 10
  pooling: str = "avg"  # 'avg' is LeCun's subsampling; 'max' also allowed.

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No stochastic layers.
    if x.ndim != 4 or x.shape[1:3] != (32, 32):
      raise ValueError(
        f"LeNet5 expects (N, 32, 32, C) inputs, got {x.shape}; "
        "pad 28x28 MNIST to 32x32 (2 pixels per side)."
      )
    if self.pooling == "avg":
      pool = nn.avg_pool
    elif self.pooling == "max":
      pool = nn.max_pool
    else:
      raise ValueError(f"pooling must be 'avg' or 'max', got {self.pooling!r}")
    x = jnp.tanh(FlaxConv(6, (5, 5), padding="VALID")(x))  # 28x28x6
    x = pool(x, (2, 2), strides=(2, 2))  # 14x14x6
    x = jnp.tanh(FlaxConv(16, (5, 5), padding="VALID")(x))  # 10x10x16
    x = pool(x, (2, 2), strides=(2, 2))  # 5x5x16
    x = x.reshape((x.shape[0], -1))  # HWC order.
    x = jnp.tanh(Dense(120)(x))
    x = jnp.tanh(Dense(84)(x))
    return Dense(self.num_classes)(x)
