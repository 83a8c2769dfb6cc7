"""SRResNet and SRGAN (Ledig et al., 2017; docs/curriculum.md#f20): 4x super-resolution.

  pixel_shuffle   (N, H, W, C r^2) -> (N, H r, W r, C): sub-pixel convolution's
                  rearrangement, the same element order as torch's pixel_shuffle on NCHW
  SRResNet        9x9 conv + PReLU, residual blocks (conv-PReLU-conv + skip), a conv and
                  a long skip over the blocks, then log2(scale) x2 stages (conv to 4C
                  channels, pixel shuffle, PReLU), and a 9x9 conv to the image
  Discriminator   strided 3x3 convs with leaky ReLU, then dense layers: one logit per image
  Upscaler        an SRResNet as {'generator'}: the model of an SRResNet (pixel MSE) run
  SRGAN           {'generator', 'discriminator'}: its generator starts from an Upscaler's

Unlike the paper, no batch norm: EDSR (Lim et al., 2017) found that dropping it from the
residual blocks gives SR networks higher PSNR, and the generator then behaves the same
in training and evaluation. The output is linear (not tanh): MNIST's many exact 0 and 1
pixels are reachable; callers clip to [0, 1] to measure.
"""

import math

import flax.linen as nn

from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense


def pixel_shuffle(x, factor: int):
  """Sub-pixel rearrangement (Shi et al., 2016): channel c r^2 + i r + j of input pixel
  (h, w) becomes channel c of output pixel (h r + i, w r + j), as in
  torch.nn.functional.pixel_shuffle (which reads NCHW; this reads NHWC)."""
  n, h, w, c = x.shape
  if factor < 1 or c % (factor * factor):
    raise ValueError(f"pixel_shuffle: {c} channels do not divide into {factor}x{factor} blocks")
  out = c // (factor * factor)
  x = x.reshape((n, h, w, out, factor, factor))
  x = x.transpose((0, 1, 4, 2, 5, 3))  # n, h, i, w, j, c
  return x.reshape((n, h * factor, w * factor, out))


class ResidualBlock(nn.Module):
  """conv3x3 - PReLU - conv3x3, plus the input."""

  features: int

  @nn.compact
  def __call__(self, x):
    h = FlaxConv(self.features, (3, 3))(x)
    h = nn.PReLU(negative_slope_init=0.25)(h)
    h = FlaxConv(self.features, (3, 3))(h)
    return x + h


class SRResNet(nn.Module):
  """Low-resolution images (N, H, W, C) -> (N, H s, W s, C), s = scale (a power of 2)."""

  features: int = 64
  num_blocks: int = 16
  scale: int = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no batch norm, no dropout
    stages = int(round(math.log2(self.scale)))
    if self.scale < 2 or 2**stages != self.scale:
      raise ValueError(f"SRResNet upscales by a power of 2, got scale={self.scale}")
    if x.ndim != 4:
      raise ValueError(f"SRResNet expects (N, H, W, C) images, got shape {x.shape}")
    channels = x.shape[-1]
    h = nn.PReLU(negative_slope_init=0.25)(FlaxConv(self.features, (9, 9))(x))
    skip = h
    for _ in range(self.num_blocks):
      h = ResidualBlock(self.features)(h)
    h = skip + FlaxConv(self.features, (3, 3))(h)
    for _ in range(stages):
      h = FlaxConv(4 * self.features, (3, 3))(h)
      h = nn.PReLU(negative_slope_init=0.25)(pixel_shuffle(h, 2))
    return FlaxConv(channels, (9, 9))(h)


class Discriminator(nn.Module):
  """Images (N, H, W, C) -> real/fake logits (N,). SRGAN's pattern at MNIST size: pairs
  of 3x3 convs (the second strided, features doubling per pair), leaky ReLU 0.2, then
  dense layers of `dense` units and 1."""

  features: int = 32
  num_stages: int = 2  # stride-2 pairs: 28x28 -> 7x7
  dense: int = 128

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    h = x
    for stage in range(self.num_stages):
      features = self.features * 2**stage
      h = nn.leaky_relu(FlaxConv(features, (3, 3))(h), 0.2)
      h = nn.leaky_relu(FlaxConv(features, (3, 3), strides=(2, 2))(h), 0.2)
    h = h.reshape((h.shape[0], -1))
    h = nn.leaky_relu(Dense(self.dense)(h), 0.2)
    return Dense(1)(h)[:, 0]


class Upscaler(nn.Module):
  """An SRResNet under the name 'generator': what an SRResNet run trains with pixel MSE
  and an SRGAN run (`SRGAN`, the same 'generator' plus a discriminator) starts from."""

  features: int = 64
  num_blocks: int = 16
  scale: int = 4

  def setup(self):
    self.generator = SRResNet(self.features, self.num_blocks, self.scale)

  def __call__(self, x, train: bool = False):
    del train
    return self.generator(x)


class SRGAN(nn.Module):
  """The generator (an SRResNet) and the discriminator: params {'generator',
  'discriminator'}. The call upscales; `discriminate` scores images."""

  features: int = 64
  num_blocks: int = 16
  scale: int = 4
  disc_features: int = 32
  disc_dense: int = 128

  def setup(self):
    self.generator = SRResNet(self.features, self.num_blocks, self.scale)
    self.discriminator = Discriminator(self.disc_features, dense=self.disc_dense)

  def discriminate(self, images):
    return self.discriminator(images)

  def __call__(self, x, train: bool = False):
    del train
    images = self.generator(x)
    if self.is_initializing():
      self.discriminator(images)  # create its parameters
    return images
