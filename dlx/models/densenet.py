"""DenseNet (Huang et al., 2017, "Densely Connected Convolutional Networks").

docs/curriculum.md#f7: concatenation instead of addition (each layer sees
all earlier feature maps of its block), transition blocks
(BN -> 1x1 conv -> 2x2 average pool) shrink channels and resolution.

DenseNet-BC: bottleneck layers (BN-ReLU-1x1 conv to bn_size * k, BN-ReLU-3x3
conv to k) and compression 0.5 in the transitions. After the last block:
BN -> ReLU -> global average pool -> FC.

densenet121() equals torchvision's densenet121 with 7,978,856 parameters.
densenet_cifar() is the paper's CIFAR DenseNet-BC: a 3x3 stem conv to 2k
channels, three dense blocks of (depth - 4) / 6 layers at 32x32, 16x16, 8x8;
depth 100, k 12 has 769,162 parameters for RGB inputs and 10 classes
(paper: 0.8M) and depth 40, k 12 has 176,122 (175,690 for grayscale).
Recommended narrow model for 32x32 grayscale: densenet_cifar(depth=40).
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.blocks import DenseBlock
from dlx.nn.blocks import TransitionBlock
from dlx.nn.blocks import batch_norm
from dlx.nn.blocks import image_stem
from dlx.nn.blocks import require_nhwc
from dlx.nn.dense import Dense


class DenseNet(nn.Module):
  """Stem -> dense blocks with transitions between them -> BN-ReLU -> GAP -> FC.

  Attributes:
    growth_rate: k, the feature maps each dense layer adds.
    block_config: number of layers in each dense block.
    num_init_features: channels of the stem conv.
    bn_size: bottleneck width factor (the 1x1 conv has bn_size * k channels).
    compression: theta; a transition keeps floor(theta * channels).
    num_classes: size of the logits.
    stem: 'imagenet' (7x7/2 conv + 3x3/2 max pool) or 'cifar' (3x3/1 conv).
    stem_stride: stride of the 'cifar' stem conv (2 = a quarter of the compute after it).
  """

  growth_rate: int = 32
  block_config: Sequence[int] = (6, 12, 24, 16)
  num_init_features: int = 64
  bn_size: int = 4
  compression: float = 0.5
  num_classes: int = 1000
  stem: str = "imagenet"
  stem_stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    require_nhwc(x, "DenseNet")
    x = image_stem(x, train, self.num_init_features, self.stem, self.stem_stride, normalize=False)
    for i, num_layers in enumerate(self.block_config):
      x = DenseBlock(num_layers, self.growth_rate, self.bn_size, name=f"denseblock{i + 1}")(
        x, train
      )
      if i < len(self.block_config) - 1:
        if min(x.shape[1:3]) < 2:
          raise ValueError(
            f"DenseNet: feature map {x.shape[1:3]} too small for transition "
            f"{i + 1}; use a larger input or stem='cifar'"
          )
        features = int(x.shape[-1] * self.compression)
        x = TransitionBlock(features, name=f"transition{i + 1}")(x, train)
    x = nn.relu(batch_norm(train, name="final_bn")(x))
    x = jnp.mean(x, axis=(1, 2))  # Global average pooling.
    return Dense(self.num_classes, name="classifier")(x)


def densenet121(num_classes: int = 1000, **kwargs):
  return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, **kwargs)


def densenet_cifar(num_classes: int = 10, depth: int = 100, growth_rate: int = 12, **kwargs):
  """DenseNet-BC for 32x32 inputs: 3 blocks of (depth - 4) // 6 bottleneck layers."""
  if (depth - 4) % 6:
    raise ValueError(f"DenseNet-BC depth must be 6n + 4, got {depth}")
  layers = (depth - 4) // 6
  return DenseNet(
    growth_rate, (layers,) * 3, 2 * growth_rate, num_classes=num_classes, stem="cifar", **kwargs
  )


def densenet_tiny(num_classes: int = 10):
  """DenseNet-BC with k=4 and blocks of 2, 2, 2 layers: for tests."""
  return DenseNet(4, (2, 2, 2), 8, num_classes=num_classes, stem="cifar")
