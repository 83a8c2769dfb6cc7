"""Input adapters that run inside the compiled step, so the dataset stays small.

Fashion-MNIST is 28x28x1; the original AlexNet/VGG/GoogLeNet/ResNet take 224x224x3.
Resizing 60,000 images to 224x224 on the host would need 12 GB, so the `:full`
experiments resize each batch on the device instead.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class ResizeInputs(nn.Module):
  """Resizes NHWC images to `size` x `size` (bilinear) and repeats a single channel to
  `channels`, then runs `model`. Adds no parameters (they sit under 'model')."""

  model: nn.Module
  size: int | None = None
  channels: int | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.ndim != 4:
      raise ValueError(f"ResizeInputs expects NHWC images, got shape {x.shape}")
    if self.size is not None and x.shape[1:3] != (self.size, self.size):
      x = jax.image.resize(x, (x.shape[0], self.size, self.size, x.shape[3]), "bilinear")
    if self.channels is not None and x.shape[3] != self.channels:
      if x.shape[3] != 1:
        raise ValueError(f"can only repeat a single channel, got {x.shape[3]} channels")
      x = jnp.repeat(x, self.channels, axis=3)
    return self.model(x, train=train)
