"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012), one-stream version.

docs/curriculum.md#f3: ReLU, local response normalization, overlapping max
pooling (3x3, stride 2) and dropout in the fully connected layers. The
paper splits most layers over two GPUs; this is the single-stream network
with the paper's full widths (torchvision's AlexNet is the narrower
"one weird trick" variant with 64/192 filters and no LRN):

  conv1 96@11x11/4 -> ReLU -> LRN -> maxpool 3x3/2
  conv2 256@5x5    -> ReLU -> LRN -> maxpool 3x3/2
  conv3 384@3x3 -> conv4 384@3x3 -> conv5 256@3x3 -> ReLU each -> maxpool 3x3/2
  dropout -> FC 4096 -> ReLU -> dropout -> FC 4096 -> ReLU -> FC num_classes

224 vs 227: the paper says 224x224 inputs, but an 11x11/4 conv only yields
its 55x55 map from 227x227 unpadded. We take 224x224 with 2 pixels of zero
padding on conv1 (as torchvision does): floor((224 + 4 - 11) / 4) + 1 = 55,
then 27 -> 13 -> 6, a 6x6x256 final map, 62,378,344 parameters at 1000
classes. (227x227 unpadded gives the same sizes.) Other input sizes pass an
adaptive average pool to pooled_size x pooled_size (a no-op at 224x224).

torchvision's AlexNet is `AlexNet(conv_widths=TORCHVISION_WIDTHS, use_lrn=False)`: the
same layers, pools, padding and classifier (dropout before fc6 and fc7) with
64, 192, 384, 256, 256 filters and no LRN, 61,100,840 parameters at 1000 classes
(dlx.interop.from_torchvision loads its weights).

small_input=True replaces conv1 by a 3x3/1 conv (padding 1) for 28x28 /
32x32 inputs: 32 -> 15 -> 7 -> 3 after the three pools. Recommended narrow
model for 32x32 grayscale: AlexNet(10, width_multiplier=0.25,
small_input=True, pooled_size=3).
"""

from typing import Sequence

import flax.linen as nn

from dlx.nn.blocks import adaptive_avg_pool
from dlx.nn.blocks import conv_init
from dlx.nn.blocks import require_nhwc
from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense
from dlx.nn.normalization import LocalResponseNorm

# Filters of conv1..conv5: the paper's one-stream widths, and torchvision's.
PAPER_WIDTHS = (96, 256, 384, 384, 256)
TORCHVISION_WIDTHS = (64, 192, 384, 256, 256)


class AlexNet(nn.Module):
  """One-stream AlexNet returning logits.

  Attributes:
    num_classes: size of the logits.
    width_multiplier: scales every conv and hidden FC width (rounded, >= 1).
    dropout_rate: dropout before the two hidden FC layers (0.5 in the paper).
    use_lrn: LRN (n=5, alpha=1e-4, beta=0.75, k=2) after conv1 and conv2.
    small_input: 3x3 stride-1 conv1 for 28x28 / 32x32 inputs.
    stem_stride: stride of the small-input 3x3 stem (2 halves the cost of every later
      layer by 4: how the CPU experiments fit their time budget).
    pooled_size: side of the adaptive average pool before the classifier.
    conv_widths: filters of conv1..conv5 (before width_multiplier).
  """

  num_classes: int = 1000
  width_multiplier: float = 1.0
  dropout_rate: float = 0.5
  use_lrn: bool = True
  small_input: bool = False
  stem_stride: int = 1
  pooled_size: int = 6
  conv_widths: Sequence[int] = PAPER_WIDTHS

  def _width(self, width):
    return max(1, round(width * self.width_multiplier))

  @nn.compact
  def __call__(self, x, train: bool = False):
    require_nhwc(x, "AlexNet")

    def overlapping_pool(x):
      if min(x.shape[1:3]) < 3:
        raise ValueError(
          f"AlexNet: feature map {x.shape[1:3]} is smaller than the 3x3 "
          "pool; use a larger input or small_input=True"
        )
      return nn.max_pool(x, (3, 3), strides=(2, 2))

    def conv(features, kernel_size, strides, padding, name):
      return FlaxConv(
        self._width(features),
        (kernel_size, kernel_size),
        strides=strides,
        padding=((padding, padding), (padding, padding)),
        kernel_init=conv_init,
        name=name,
      )

    if len(self.conv_widths) != 5:
      raise ValueError(f"AlexNet: conv_widths needs 5 widths, got {tuple(self.conv_widths)}")
    w1, w2, w3, w4, w5 = self.conv_widths
    if self.small_input:
      x = nn.relu(conv(w1, 3, self.stem_stride, 1, "conv1")(x))
    else:
      x = nn.relu(conv(w1, 11, 4, 2, "conv1")(x))
    if self.use_lrn:
      x = LocalResponseNorm()(x)
    x = overlapping_pool(x)
    x = nn.relu(conv(w2, 5, 1, 2, "conv2")(x))
    if self.use_lrn:
      x = LocalResponseNorm()(x)
    x = overlapping_pool(x)
    x = nn.relu(conv(w3, 3, 1, 1, "conv3")(x))
    x = nn.relu(conv(w4, 3, 1, 1, "conv4")(x))
    x = nn.relu(conv(w5, 3, 1, 1, "conv5")(x))
    x = overlapping_pool(x)
    x = adaptive_avg_pool(x, (self.pooled_size, self.pooled_size))
    x = x.reshape((x.shape[0], -1))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.relu(Dense(self._width(4096), name="fc6")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.relu(Dense(self._width(4096), name="fc7")(x))
    return Dense(self.num_classes, name="fc8")(x)


def alexnet(num_classes: int = 1000, **kwargs):
  return AlexNet(num_classes, **kwargs)


def alexnet_tiny(num_classes: int = 10, **kwargs):
  """AlexNet at 1/16 width (conv 6-24 filters, FC 256), 3x3 stem: for tests."""
  config = dict(width_multiplier=1 / 16, small_input=True, pooled_size=2)
  config.update(kwargs)
  return AlexNet(num_classes, **config)
