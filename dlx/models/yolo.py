"""YOLOv1 (Redmon et al., 2016; docs/curriculum.md#f10): one network pass maps an image to
an S x S grid whose cells each predict B boxes (x, y, w, h, confidence) and C class
scores, an (N, S, S, B*5 + C) output read by `dlx.losses.yolo_v1_loss` (#b11) and
decoded by `dlx.ops.boxes.decode_yolo_predictions` (dlx/tasks/detection/yolo.py).

A small Darknet-like backbone (a 7x7 stride-2 stem and stages of 3x3 conv, batch norm
and leaky ReLU 0.1, with 2x2 max pools, as the paper's network at a fraction of its
width and depth) brings the image to the grid: 96x96 inputs and three stages give S = 6
(16-pixel cells). Two heads:

  conv   3x3 convolutions at the grid, then a 1x1 convolution: every cell runs the same
         predictor on its neighbourhood (cheap, translation-equivariant; the default)
  dense  the paper's: flatten, a fully connected layer with dropout, and a linear layer
         to S*S*(B*5 + C), so each cell sees the whole image

Outputs are linear, as in the paper. The last layer's bias starts every box at the cell
centre (x = y = 0.5) with w = h = `init_box_size`, so that the loss's sqrt(w) starts away
from 0, where its gradient is steep.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dlx import errors
from dlx.nn import blocks
from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense

HEADS = ("conv", "dense")


def leaky_relu(x, negative_slope: float = 0.1):
  return nn.leaky_relu(x, negative_slope)


def conv_bn_leaky(
  features: int, kernel_size: int = 3, strides: int = 1, negative_slope: float = 0.1
):
  """Conv (no bias) -> BatchNorm -> leaky ReLU, 'same' padded (Darknet's layer)."""
  return blocks.ConvBNReLU(features, kernel_size, strides, negative_slope=negative_slope)


class Backbone(nn.Module):
  """YOLOv1's pattern at a small scale: a stem (a `stem_kernel` conv of stride
  `stem_stride`, then a 2x2 max pool), then stages of `convs_per_stage` conv_bn_leaky
  layers of `features[i]` channels with a 2x2 max pool between stages. Total stride
  `stride(...)`: 96x96 inputs with the defaults give a 6x6 map. The two-stage detector
  parts (dlx/models/rpn.py) share it."""

  features: Sequence[int] = (32, 64, 128)
  convs_per_stage: int = 1
  stem_features: int = 16
  stem_kernel: int = 7
  stem_stride: int = 2
  negative_slope: float = 0.1

  @staticmethod
  def stride(num_stages: int, stem_stride: int = 2) -> int:
    return stem_stride * 2**num_stages

  @nn.compact
  def __call__(self, x, train: bool = False):
    blocks.require_nhwc(x, type(self).__name__)
    if not self.features or self.convs_per_stage < 1 or self.stem_stride < 1:
      raise errors.ConfigError(
        f"need at least one stage, one conv per stage and stem_stride >= 1, got "
        f"features={self.features}, convs_per_stage={self.convs_per_stage}, "
        f"stem_stride={self.stem_stride}"
      )
    slope = self.negative_slope
    x = conv_bn_leaky(self.stem_features, self.stem_kernel, self.stem_stride, slope)(x, train)
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    for i, features in enumerate(self.features):
      if i:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      for _ in range(self.convs_per_stage):
        x = conv_bn_leaky(features, negative_slope=slope)(x, train)
    return x


def output_bias_init(grid_size: int, num_boxes: int, num_classes: int, box_size: float):
  """The last layer's bias: per box (0.5, 0.5, box_size, box_size, 0), classes 0; tiled
  over the S*S cells for the dense head (`grid_size` > 0), one cell for the conv head."""
  cell = [0.5, 0.5, box_size, box_size, 0.0] * num_boxes + [0.0] * num_classes

  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.tile(jnp.asarray(cell, dtype), max(grid_size, 1) ** 2).reshape(shape)

  return init


class YOLOv1(nn.Module):
  """(N, H, W, C) images -> (N, S, S, B*5 + C), linear; see the module docstring.

  Attributes:
    grid_size: S. The backbone's map (H / (stem_stride 2^len(features))) is
      average-pooled to S x S when it is larger (adaptively, as torch's
      AdaptiveAvgPool2d).
    num_boxes: B boxes per cell.
    num_classes: C.
    features: backbone channels per stage (a 2x2 max pool between stages).
    convs_per_stage: conv_bn_leaky layers per backbone stage.
    stem_features, stem_kernel, stem_stride: the first convolution (the paper's is
      64 channels, 7x7, stride 2), followed by a 2x2 max pool.
    head: 'conv' or 'dense' (see the module docstring).
    head_features: channels of the conv head's 3x3 layers.
    head_convs: how many 3x3 layers the conv head has.
    dense_features: width of the dense head's hidden layer.
    dropout_rate: dropout before the dense head's last layer (the paper: 0.5).
    init_box_size: the initial w and h, relative to the image.
  """

  grid_size: int = 6
  num_boxes: int = 2
  num_classes: int = 10
  features: Sequence[int] = (32, 64, 128)
  convs_per_stage: int = 1
  stem_features: int = 16
  stem_kernel: int = 7
  stem_stride: int = 2
  head: str = "conv"
  head_features: int = 256
  head_convs: int = 2
  dense_features: int = 512
  dropout_rate: float = 0.0
  init_box_size: float = 0.25
  negative_slope: float = 0.1

  @property
  def outputs_per_cell(self) -> int:
    return self.num_boxes * 5 + self.num_classes

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.head not in HEADS:
      raise errors.ConfigError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
    if min(self.grid_size, self.num_boxes, self.num_classes) < 1:
      raise errors.ConfigError(
        f"grid_size, num_boxes and num_classes must be >= 1, got {self.grid_size}, "
        f"{self.num_boxes}, {self.num_classes}"
      )
    s = self.grid_size
    x = Backbone(
      self.features,
      self.convs_per_stage,
      self.stem_features,
      self.stem_kernel,
      self.stem_stride,
      self.negative_slope,
    )(x, train)
    if x.shape[1] < s or x.shape[2] < s:
      raise errors.ConfigError(
        f"the backbone's {x.shape[1]}x{x.shape[2]} map is smaller than the {s}x{s} grid; "
        "use fewer stages or larger images"
      )
    x = blocks.adaptive_avg_pool(x, (s, s))
    if self.head == "conv":
      for _ in range(self.head_convs):
        x = conv_bn_leaky(self.head_features, negative_slope=self.negative_slope)(x, train)
      bias = output_bias_init(0, self.num_boxes, self.num_classes, self.init_box_size)
      return FlaxConv(
        self.outputs_per_cell,
        (1, 1),
        kernel_init=nn.initializers.normal(0.01),
        bias_init=bias,
        name="predictions",
      )(x)
    x = x.reshape(x.shape[0], -1)
    x = leaky_relu(Dense(self.dense_features)(x), self.negative_slope)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    bias = output_bias_init(s, self.num_boxes, self.num_classes, self.init_box_size)
    x = Dense(
      s * s * self.outputs_per_cell,
      kernel_init=nn.initializers.normal(0.01),
      bias_init=bias,
      name="predictions",
    )(x)
    return x.reshape(x.shape[0], s, s, self.outputs_per_cell)
