"""1D CNN for MNIST-1D (after the CNN in Greydanus, 2020)."""

from typing import Sequence, Union

import flax.linen as nn

from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense

Padding = Union[int, str]


class CNN1D(nn.Module):
  """Conv1d + ReLU stack, flatten, dense logits.

  Inputs are (N, L) or (N, L, 1). The paper's CNN uses three conv layers with
  stride 2 and padding 1; `padding` takes an int or 'SAME'/'VALID'.
  """

  channels: Sequence[int] = (32, 32, 32)
  kernel_size: Union[int, Sequence[int]] = 5  # one size, or one per layer
  strides: int = 2
  num_classes: int = 10
  dropout_rate: float = 0.0
  padding: Padding = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.ndim == 2:
      x = x[..., None]
    kernels = self.kernel_size
    if isinstance(kernels, int):
      kernels = (kernels,) * len(self.channels)
    if len(kernels) != len(self.channels):
      raise ValueError(
        f"kernel_size {self.kernel_size} must be one int or one per "
        f"layer of channels {self.channels}"
      )
    for width, kernel in zip(self.channels, kernels):
      x = FlaxConv(width, (kernel,), strides=(self.strides,), padding=self.padding)(x)
      x = nn.relu(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return Dense(self.num_classes)(x)
