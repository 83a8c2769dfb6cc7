"""MobileNet v1 (Howard et al., 2017) with group and dilated convolution options.

docs/curriculum.md#f8, #e2 (efficient architectures): group,
pointwise (1x1) and depthwise separable convolutions, bottlenecks and
dilated convolutions. A depthwise separable block is a 3x3 depthwise conv
(one filter per channel, feature_group_count = channels) followed by a 1x1
pointwise conv, each with BatchNorm and ReLU, costing about 1/9 of a full
3x3 conv. The network (Table 1 of the paper) is a 3x3/2 conv with 32 filters,
13 such blocks, global average pooling and one FC layer. At width 1.0, 224x224
and 1000 classes it has 4,231,976 parameters (paper: 4.2M; BatchNorm scale
and shift included, convs without bias).

Options beyond the paper:
  pointwise_groups=g: the 1x1 convs become group convolutions with g groups,
    each followed by a channel shuffle so the next layer mixes groups
    (ShuffleNet, Zhang et al. 2018). Cuts the pointwise parameters by g.
  dilation=d > 1: the last downsampling block keeps stride 1 and the
    depthwise convs after it are dilated by d (DeepLab's atrous trick), so the
    final map is 1/16 of the input instead of 1/32 with the same parameters.
  small_input=True: the first conv has stride 1 (for 28x28 / 32x32 inputs).
  downsampling_blocks=k < 4: only the last k of the four stride-2 blocks downsample,
    the earlier ones keep stride 1. With the stride-2 stem on 28x28 and k = 3 the
    blocks run at 14, 14, 7, 4 and 2 pixels instead of 7, 4, 2 and 1: a small image
    keeps enough resolution for most of the network, at a fraction of the cost of
    small_input.
Recommended narrow model for 32x32 grayscale:
MobileNetV1(10, width_multiplier=0.25, small_input=True).
"""

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.blocks import ConvBNReLU
from dlx.nn.blocks import batch_norm
from dlx.nn.blocks import conv_init
from dlx.nn.blocks import require_nhwc
from dlx.nn.conv import DepthwiseConv2D
from dlx.nn.dense import Dense

# (output channels, stride) of the 13 depthwise separable blocks, Table 1.
BLOCKS = (
  (64, 1),
  (128, 2),
  (128, 1),
  (256, 2),
  (256, 1),
  (512, 2),
  (512, 1),
  (512, 1),
  (512, 1),
  (512, 1),
  (512, 1),
  (1024, 2),
  (1024, 1),
)


def channel_shuffle(x, groups: int):
  """Interleaves the channels of `groups` groups (ShuffleNet, section 3.1)."""
  if groups == 1:
    return x
  *batch, channels = x.shape
  x = x.reshape((*batch, groups, channels // groups))
  return jnp.swapaxes(x, -1, -2).reshape((*batch, channels))


class DepthwiseSeparableBlock(nn.Module):
  """3x3 depthwise conv-BN-ReLU -> 1x1 (optionally grouped) conv-BN-ReLU."""

  features: int
  strides: int = 1
  dilation: int = 1
  pointwise_groups: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    channels = x.shape[-1]
    if channels % self.pointwise_groups or self.features % self.pointwise_groups:
      raise ValueError(
        f"pointwise_groups={self.pointwise_groups} must divide the input "
        f"({channels}) and output ({self.features}) channels"
      )
    # Shifts-and-multiplies depthwise conv: XLA's CPU grouped conv is 5-15x slower.
    x = DepthwiseConv2D(3, self.strides, self.dilation, kernel_init=conv_init, name="depthwise")(x)
    x = nn.relu(batch_norm(train, name="depthwise_bn")(x))
    x = ConvBNReLU(self.features, 1, groups=self.pointwise_groups, name="pointwise")(x, train)
    return channel_shuffle(x, self.pointwise_groups)


class MobileNetV1(nn.Module):
  """MobileNet v1 returning logits.

  Attributes:
    num_classes: size of the logits.
    width_multiplier: alpha; every layer has int(alpha * channels) channels.
    pointwise_groups: groups of the 1x1 convs (1 is the paper), see above.
    dilation: dilation of the last stage instead of its stride (1 is the paper).
    dropout_rate: dropout before the classifier (0 in the paper).
    small_input: stride-1 first conv for 28x28 / 32x32 inputs.
  """

  num_classes: int = 1000
  width_multiplier: float = 1.0
  pointwise_groups: int = 1
  dilation: int = 1
  dropout_rate: float = 0.0
  small_input: bool = False
  downsampling_blocks: int = 4

  def _width(self, width):
    return max(1, int(width * self.width_multiplier))

  @nn.compact
  def __call__(self, x, train: bool = False):
    require_nhwc(x, "MobileNetV1")
    if self.dilation < 1:
      raise ValueError(f"dilation must be >= 1, got {self.dilation}")
    x = ConvBNReLU(self._width(32), 3, 1 if self.small_input else 2, name="stem")(x, train)
    downsampling = [i for i, (_, s) in enumerate(BLOCKS) if s == 2]
    if not 0 <= self.downsampling_blocks <= len(downsampling):
      raise ValueError(
        f"downsampling_blocks must be in [0, {len(downsampling)}], got {self.downsampling_blocks}"
      )
    kept = downsampling[len(downsampling) - self.downsampling_blocks :]
    last_downsampling = downsampling[-1]
    for i, (features, strides) in enumerate(BLOCKS):
      if strides == 2 and i not in kept:
        strides = 1
      dilation = 1
      if self.dilation > 1 and i >= last_downsampling:
        strides = 1
        dilation = self.dilation if i > last_downsampling else 1
      x = DepthwiseSeparableBlock(
        self._width(features), strides, dilation, self.pointwise_groups, name=f"block{i + 1}"
      )(x, train)
    x = jnp.mean(x, axis=(1, 2))  # Global average pooling.
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return Dense(self.num_classes, name="classifier")(x)


def mobilenet_v1(num_classes: int = 1000, width_multiplier: float = 1.0, **kwargs):
  return MobileNetV1(num_classes, width_multiplier, **kwargs)


def mobilenet_tiny(num_classes: int = 10, **kwargs):
  """MobileNet v1 at width 1/16 (2 to 64 channels), stride-1 stem: for tests."""
  config = dict(width_multiplier=1 / 16, small_input=True)
  config.update(kwargs)
  return MobileNetV1(num_classes, **config)
