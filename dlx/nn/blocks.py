"""Convolutional building blocks of the classic ImageNet networks (docs/curriculum.md#e8).

All blocks take NHWC inputs and a `train` flag: BatchNorm normalises with the
batch statistics and updates the 'batch_stats' collection when `train` is
True, and uses the running averages otherwise. Conv layers that feed a
BatchNorm have no bias (the BatchNorm shift replaces it), as in torchvision,
so parameter counts match torchvision's.

  ResidualBlock     He et al. 2016, "Deep Residual Learning", Fig. 2 (basic).
  BottleneckBlock   He et al. 2016, Fig. 5 right; stride on the 3x3 (v1.5).
  InceptionBlock    Szegedy et al. 2015, "Going Deeper with Convolutions", Fig. 2b.
  DenseLayer/Block  Huang et al. 2017, "Densely Connected Convolutional Networks".
  TransitionBlock   Huang et al. 2017, section 3 (pooling layers).

The course (docs/curriculum.md#e8) describes the same blocks: skip
connections that learn the residual F(x) = H(x) - x, 1x1 convolutions that
reduce channels before the expensive 3x3/5x5, concatenation instead of
addition, and BN -> 1x1 conv -> 2x2 average pool transitions.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.conv import FlaxConv

# He et al. 2015 ("Delving Deep into Rectifiers") initialisation for ReLU nets.
conv_init = nn.initializers.he_normal()


def batch_norm(train: bool, epsilon: float = 1e-5, name=None):
  """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=epsilon, name=name)


def torch_padding(kernel_size: int, dilation: int = 1):
  """Symmetric padding of (k - 1) * d / 2 pixels, PyTorch's `padding=k // 2`."""
  pad = dilation * (kernel_size - 1) // 2
  return ((pad, pad), (pad, pad))


def require_nhwc(x, model_name: str):
  """Raises a ValueError unless `x` is a batch of images (N, H, W, C)."""
  if x.ndim != 4:
    raise ValueError(f"{model_name} expects NHWC inputs (N, H, W, C), got shape {x.shape}")


def adaptive_avg_pool(x, output_size: Sequence[int]):
  """Average pooling to a fixed (H, W), like torch's AdaptiveAvgPool2d.

  Output cell i along an axis of length n averages input rows
  floor(i * n / m) to ceil((i + 1) * n / m) - 1 for an output length m, so
  inputs smaller than the output are repeated and an input of the output
  size is returned unchanged.
  """
  out_h, out_w = output_size
  height, width = x.shape[1:3]
  if (height, width) == (out_h, out_w):
    return x
  if height % out_h == 0 and width % out_w == 0:
    window = (height // out_h, width // out_w)
    return nn.avg_pool(x, window, strides=window)

  def pool_axis(x, axis, out_len):
    n = x.shape[axis]
    cells = []
    for i in range(out_len):
      start, stop = (i * n) // out_len, math.ceil((i + 1) * n / out_len)
      cells.append(
        jnp.mean(jnp.take(x, jnp.arange(start, stop), axis=axis), axis=axis, keepdims=True)
      )
    return jnp.concatenate(cells, axis=axis)

  # Each output cell is a rectangle, so averaging rows then columns is exact.
  return pool_axis(pool_axis(x, 1, out_h), 2, out_w)


def image_stem(
  x, train: bool, features: int, kind: str = "imagenet", stride: int = 1, normalize: bool = True
):
  """The first layers of the ImageNet-family networks, called inside a module's compact
  `__call__` (the layers are that module's `stem_conv` and `stem_bn`).

  kind='imagenet': 7x7/2 conv + BN + ReLU + 3x3/2 max pool (ResNet, DenseNet).
  kind='cifar': 3x3 conv with `stride` (1 as in the papers' CIFAR models; 2 for a quarter
  of the compute after it), then BN + ReLU when `normalize` (ResNet; DenseNet-BC's CIFAR
  stem is the bare conv, since its first dense layer starts with BN-ReLU).
  """
  if kind == "imagenet":
    x = FlaxConv(
      features,
      (7, 7),
      strides=2,
      padding=torch_padding(7),
      use_bias=False,
      kernel_init=conv_init,
      name="stem_conv",
    )(x)
    x = nn.relu(batch_norm(train, name="stem_bn")(x))
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
  if kind == "cifar":
    x = FlaxConv(
      features,
      (3, 3),
      strides=stride,
      padding=torch_padding(3),
      use_bias=False,
      kernel_init=conv_init,
      name="stem_conv",
    )(x)
    return nn.relu(batch_norm(train, name="stem_bn")(x)) if normalize else x
  raise ValueError(f"stem must be 'imagenet' or 'cifar', got {kind!r}")


class ConvBNReLU(nn.Module):
  """Conv (no bias) -> BatchNorm -> ReLU, or Conv (bias) -> ReLU without BN.

  With PyTorch-style symmetric padding of kernel_size // 2 (times dilation).
  negative_slope > 0 makes the ReLU leaky (Darknet's conv-BN-leaky layer, YOLO).
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  dilation: int = 1
  groups: int = 1
  use_batch_norm: bool = True
  bn_epsilon: float = 1e-5
  negative_slope: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    k = self.kernel_size
    x = FlaxConv(
      self.features,
      (k, k),
      strides=self.strides,
      padding=torch_padding(k, self.dilation),
      kernel_dilation=self.dilation,
      feature_group_count=self.groups,
      use_bias=not self.use_batch_norm,
      kernel_init=conv_init,
    )(x)
    if self.use_batch_norm:
      x = batch_norm(train, self.bn_epsilon)(x)
    return nn.leaky_relu(x, self.negative_slope) if self.negative_slope else nn.relu(x)


class ResidualBlock(nn.Module):
  """Basic residual block: relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x)).

  The shortcut is the identity, or a 1x1 conv (stride `strides`) + BN
  projection ("option B") when the stride or the channel count changes.
  """

  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    shortcut = x
    y = FlaxConv(
      self.features,
      (3, 3),
      strides=self.strides,
      padding=torch_padding(3),
      use_bias=False,
      kernel_init=conv_init,
    )(x)
    y = nn.relu(batch_norm(train)(y))
    y = FlaxConv(
      self.features, (3, 3), padding=torch_padding(3), use_bias=False, kernel_init=conv_init
    )(y)
    y = batch_norm(train)(y)
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = FlaxConv(
        self.features,
        (1, 1),
        strides=self.strides,
        use_bias=False,
        kernel_init=conv_init,
        name="projection",
      )(x)
      shortcut = batch_norm(train, name="projection_bn")(shortcut)
    return nn.relu(y + shortcut)


class BottleneckBlock(nn.Module):
  """Bottleneck residual block: 1x1 reduce -> 3x3 -> 1x1 expand to 4 * features.

  `features` is the width of the 3x3 (64 in ResNet-50's first stage, which
  outputs 256 channels). The stride sits on the 3x3 conv as in torchvision
  ("ResNet v1.5"); the paper puts it on the first 1x1. Projection shortcut
  (1x1 conv + BN) when the stride or the channel count changes.
  """

  features: int
  strides: int = 1
  expansion: int = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    out_features = self.features * self.expansion
    shortcut = x
    y = FlaxConv(self.features, (1, 1), use_bias=False, kernel_init=conv_init)(x)
    y = nn.relu(batch_norm(train)(y))
    y = FlaxConv(
      self.features,
      (3, 3),
      strides=self.strides,
      padding=torch_padding(3),
      use_bias=False,
      kernel_init=conv_init,
    )(y)
    y = nn.relu(batch_norm(train)(y))
    y = FlaxConv(out_features, (1, 1), use_bias=False, kernel_init=conv_init)(y)
    y = batch_norm(train)(y)
    if self.strides != 1 or x.shape[-1] != out_features:
      shortcut = FlaxConv(
        out_features,
        (1, 1),
        strides=self.strides,
        use_bias=False,
        kernel_init=conv_init,
        name="projection",
      )(x)
      shortcut = batch_norm(train, name="projection_bn")(shortcut)
    return nn.relu(y + shortcut)


class InceptionBlock(nn.Module):
  """Inception module with dimension reductions (GoogLeNet, Fig. 2b).

  Four parallel branches concatenated along channels:
    1x1 conv (ch1x1);
    1x1 reduce (ch3x3_reduce) -> 3x3 conv (ch3x3);
    1x1 reduce (ch5x5_reduce) -> large_kernel conv (ch5x5);
    3x3 max pool, stride 1 -> 1x1 projection (pool_proj).
  Every conv is followed by ReLU. `large_kernel=5` is the paper; torchvision's
  GoogLeNet uses 3 in this branch (a known bug kept for its weights), and
  `use_batch_norm=True` with `bn_epsilon=1e-3` is torchvision's BasicConv2d.
  """

  ch1x1: int
  ch3x3_reduce: int
  ch3x3: int
  ch5x5_reduce: int
  ch5x5: int
  pool_proj: int
  large_kernel: int = 5
  use_batch_norm: bool = True
  bn_epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x, train: bool = False):
    def conv(features, kernel_size, name):
      return ConvBNReLU(
        features,
        kernel_size,
        use_batch_norm=self.use_batch_norm,
        bn_epsilon=self.bn_epsilon,
        name=name,
      )

    branch1 = conv(self.ch1x1, 1, "branch1x1")(x, train)
    branch2 = conv(self.ch3x3_reduce, 1, "branch3x3_reduce")(x, train)
    branch2 = conv(self.ch3x3, 3, "branch3x3")(branch2, train)
    branch3 = conv(self.ch5x5_reduce, 1, "branch5x5_reduce")(x, train)
    branch3 = conv(self.ch5x5, self.large_kernel, "branch5x5")(branch3, train)
    branch4 = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    branch4 = conv(self.pool_proj, 1, "pool_proj")(branch4, train)
    return jnp.concatenate([branch1, branch2, branch3, branch4], axis=-1)


class DenseLayer(nn.Module):
  """DenseNet-B layer: BN-ReLU-1x1 conv (bn_size * k) -BN-ReLU-3x3 conv (k).

  Returns only the k = growth_rate new feature maps; DenseBlock concatenates
  them to its running input.
  """

  growth_rate: int
  bn_size: int = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = nn.relu(batch_norm(train)(x))
    y = FlaxConv(self.bn_size * self.growth_rate, (1, 1), use_bias=False, kernel_init=conv_init)(y)
    y = nn.relu(batch_norm(train)(y))
    return FlaxConv(
      self.growth_rate, (3, 3), padding=torch_padding(3), use_bias=False, kernel_init=conv_init
    )(y)


class DenseBlock(nn.Module):
  """`num_layers` DenseLayers, each fed the concatenation of all earlier maps.

  Output channels: input channels + num_layers * growth_rate.
  """

  num_layers: int
  growth_rate: int
  bn_size: int = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i in range(self.num_layers):
      new = DenseLayer(self.growth_rate, self.bn_size, name=f"layer{i + 1}")(x, train)
      x = jnp.concatenate([x, new], axis=-1)
    return x


class TransitionBlock(nn.Module):
  """DenseNet transition: BN-ReLU-1x1 conv to `features` -> 2x2 average pool.

  DenseNet-C sets features = floor(compression * input channels).
  """

  features: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(batch_norm(train)(x))
    x = FlaxConv(self.features, (1, 1), use_bias=False, kernel_init=conv_init)(x)
    return nn.avg_pool(x, (2, 2), strides=(2, 2))
