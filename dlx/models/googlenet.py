"""GoogLeNet / Inception v1 (Szegedy et al., 2015, "Going Deeper with Convolutions").

docs/curriculum.md#f5: inception blocks mix 1x1, 3x3, 5x5 and pooled
features, 1x1 convs reduce channels first, global average pooling replaces
the big FC layers, and two auxiliary classifiers help gradients reach the
middle of the network during training.

The defaults replicate torchvision's GoogLeNet so the parameter count is
exactly torchvision's: 6,624,904 without the auxiliary heads and 13,004,888
with them (1000 classes). torchvision deviates from the paper in two ways:
every conv is followed by BatchNorm (eps 1e-3, conv without bias) and the
"5x5" branch uses a 3x3 kernel. `batch_norm=False, large_kernel=5` (see
`googlenet_paper`) gives the paper's network with biased convs and true 5x5s
(6,998,552 parameters without aux heads).

Max pools are 3x3/2 in PyTorch's ceil mode (the last window may hang over
the edge), so 224 -> 112 -> 56 -> 28 -> 14 -> 7, and small maps never vanish.
Auxiliary heads (after 4a and 4d): adaptive average pool to 4x4 (the paper's
5x5/3 pool at 14x14), 1x1 conv 128, FC 1024 + ReLU, dropout 0.7, FC classes.

Outputs: in train mode with aux_logits=True the model returns
`GoogLeNetOutputs(logits, aux1, aux2)`, a NamedTuple (so also a tuple) of
three (B, num_classes) arrays: main head, head after 4a, head after 4d. In
eval mode, or with aux_logits=False, it returns the main logits only. The aux
heads' parameters are created at init in either mode, so the variables are
the same for training and evaluation.

transform_input=True is torchvision's `transform_input`, on for its pretrained weights:
those were trained on images normalized with mean 0.5 and std 0.5, so inputs normalized
with the ImageNet mean and std are mapped back to that first (x * std / 0.5 +
(mean - 0.5) / 0.5 per channel). With dropout_rate=0.2 the model then computes
torchvision's GoogLeNet (dlx.interop.from_torchvision loads its weights).

small_input=True replaces the 7x7/2 stem conv by a 3x3/1 conv and drops the
first max pool (/8 instead of /32), for 28x28 / 32x32 inputs. Recommended
narrow model for 32x32 grayscale: GoogLeNet(10, width_multiplier=0.25,
small_input=True).
"""

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.nn.blocks import ConvBNReLU
from dlx.nn.blocks import InceptionBlock
from dlx.nn.blocks import adaptive_avg_pool
from dlx.nn.blocks import require_nhwc
from dlx.nn.dense import Dense

# (ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj), Table 1 of the paper.
INCEPTION_CONFIG = {
  "3a": (64, 96, 128, 16, 32, 32),
  "3b": (128, 128, 192, 32, 96, 64),
  "4a": (192, 96, 208, 16, 48, 64),
  "4b": (160, 112, 224, 24, 64, 64),
  "4c": (128, 128, 256, 24, 64, 64),
  "4d": (112, 144, 288, 32, 64, 64),
  "4e": (256, 160, 320, 32, 128, 128),
  "5a": (256, 160, 320, 32, 128, 128),
  "5b": (384, 192, 384, 48, 128, 128),
}
# The ImageNet normalization that transform_input undoes, per RGB channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GoogLeNetOutputs(NamedTuple):
  logits: jax.Array
  aux1: jax.Array
  aux2: jax.Array


def max_pool_ceil(x, window: int, stride: int):
  """Max pool with PyTorch's ceil_mode=True: out = ceil((n - window) / stride) + 1."""
  pads = []
  for n in x.shape[1:3]:
    out = max(1, math.ceil((n - window) / stride) + 1)
    pads.append((0, max(0, (out - 1) * stride + window - n)))
  # flax pads max_pool with -inf, so the padding never wins.
  return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)


class InceptionAux(nn.Module):
  """Auxiliary classifier: avg pool to 4x4 -> 1x1 conv -> FC -> dropout -> FC."""

  num_classes: int
  conv_features: int = 128
  hidden: int = 1024
  dropout_rate: float = 0.7
  batch_norm: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = adaptive_avg_pool(x, (4, 4))
    x = ConvBNReLU(
      self.conv_features, 1, use_batch_norm=self.batch_norm, bn_epsilon=1e-3, name="conv"
    )(x, train)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(Dense(self.hidden, name="fc1")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return Dense(self.num_classes, name="fc2")(x)


class GoogLeNet(nn.Module):
  """Inception v1 returning logits (or GoogLeNetOutputs in training, see above).

  Attributes:
    num_classes: size of the logits.
    aux_logits: build the two auxiliary classifiers (used in train mode only).
    dropout_rate: dropout before the final FC (paper 0.4; torchvision 0.2).
    aux_dropout_rate: dropout in the auxiliary heads (0.7).
    batch_norm: torchvision's BN after every conv; False is the paper.
    large_kernel: kernel of the "5x5" branch; 3 is torchvision, 5 the paper.
    width_multiplier: scales every conv width and the aux FC (rounded, >= 1).
    small_input: 3x3/1 stem conv and no first max pool, for 28x28 / 32x32.
    stem_stride: stride of the small-input 3x3 stem (2 halves the cost of every later
      layer by 4: how the CPU experiments fit their time budget).
    transform_input: map ImageNet-normalized RGB to mean-0.5/std-0.5 normalized first
      (torchvision's pretrained GoogLeNet).
  """

  num_classes: int = 1000
  aux_logits: bool = True
  dropout_rate: float = 0.4
  aux_dropout_rate: float = 0.7
  batch_norm: bool = True
  large_kernel: int = 3
  width_multiplier: float = 1.0
  small_input: bool = False
  stem_stride: int = 1
  transform_input: bool = False

  def _width(self, width):
    return max(1, round(width * self.width_multiplier))

  @nn.compact
  def __call__(self, x, train: bool = False):
    require_nhwc(x, "GoogLeNet")
    if self.transform_input:
      if x.shape[-1] != 3:
        raise ValueError(f"GoogLeNet: transform_input needs RGB inputs, got shape {x.shape}")
      std, mean = jnp.asarray(IMAGENET_STD, x.dtype), jnp.asarray(IMAGENET_MEAN, x.dtype)
      x = x * (std / 0.5) + (mean - 0.5) / 0.5

    def conv(features, kernel_size, strides, name):
      return ConvBNReLU(
        self._width(features),
        kernel_size,
        strides,
        use_batch_norm=self.batch_norm,
        bn_epsilon=1e-3,
        name=name,
      )

    def inception(name):
      widths = [self._width(c) for c in INCEPTION_CONFIG[name]]
      return InceptionBlock(
        *widths,
        large_kernel=self.large_kernel,
        use_batch_norm=self.batch_norm,
        name=f"inception{name}",
      )

    def aux(name):
      return InceptionAux(
        self.num_classes,
        self._width(128),
        self._width(1024),
        self.aux_dropout_rate,
        self.batch_norm,
        name=name,
      )

    # Aux heads also run at init so that eval-mode init creates their parameters.
    use_aux = self.aux_logits and (train or self.is_initializing())
    if self.small_input:
      x = conv(64, 3, self.stem_stride, "conv1")(x, train)
    else:
      x = conv(64, 7, 2, "conv1")(x, train)
      x = max_pool_ceil(x, 3, 2)
    x = conv(64, 1, 1, "conv2")(x, train)
    x = conv(192, 3, 1, "conv3")(x, train)
    x = max_pool_ceil(x, 3, 2)
    x = inception("3a")(x, train)
    x = inception("3b")(x, train)
    x = max_pool_ceil(x, 3, 2)
    x = inception("4a")(x, train)
    aux1 = aux("aux1")(x, train) if use_aux else None
    x = inception("4b")(x, train)
    x = inception("4c")(x, train)
    x = inception("4d")(x, train)
    aux2 = aux("aux2")(x, train) if use_aux else None
    x = inception("4e")(x, train)
    x = max_pool_ceil(x, 2, 2)
    x = inception("5a")(x, train)
    x = inception("5b")(x, train)
    x = jnp.mean(x, axis=(1, 2))  # Global average pooling.
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = Dense(self.num_classes, name="fc")(x)
    if self.aux_logits and train:
      return GoogLeNetOutputs(logits, aux1, aux2)
    return logits


def googlenet(num_classes: int = 1000, aux_logits: bool = True, **kwargs):
  """torchvision-compatible GoogLeNet (BN everywhere, 3x3 in the "5x5" branch)."""
  return GoogLeNet(num_classes, aux_logits, **kwargs)


def googlenet_paper(num_classes: int = 1000, aux_logits: bool = True, **kwargs):
  """The 2015 paper's network: no BatchNorm, true 5x5 convolutions."""
  return GoogLeNet(num_classes, aux_logits, batch_norm=False, large_kernel=5, **kwargs)


def googlenet_tiny(num_classes: int = 10, **kwargs):
  """GoogLeNet at 1/16 width with the small-input stem: for tests."""
  config = dict(width_multiplier=1 / 16, small_input=True)
  config.update(kwargs)
  return GoogLeNet(num_classes, **config)
