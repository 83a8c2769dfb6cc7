"""ResNet-18/34/50 (He et al., 2016, "Deep Residual Learning for Image Recognition").

docs/curriculum.md#f6. Matches torchvision's ResNet (v1.5: the stride of a bottleneck
sits on its 3x3 conv) parameter for parameter at 1000 classes:
ResNet-18 11,689,512, ResNet-34 21,797,672, ResNet-50 25,557,032.

stem='imagenet': 7x7/2 conv (64) + BN + ReLU + 3x3/2 max pool.
stem='cifar': 3x3/1 conv + BN + ReLU, no max pool (for 28x28 / 32x32 inputs);
  stem_stride=2 makes that conv 3x3/2 (a quarter of the compute after it).
Recommended narrow model for 32x32 grayscale: resnet18(10, stem='cifar', width=16).
"""

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.blocks import BottleneckBlock
from dlx.nn.blocks import ResidualBlock
from dlx.nn.blocks import image_stem
from dlx.nn.blocks import require_nhwc
from dlx.nn.dense import Dense


class ResNet(nn.Module):
  """Stem -> 4 stages of blocks (widths width * 1, 2, 4, 8) -> global avg pool -> FC.

  The first block of stages 2-4 halves the resolution with stride 2.
  """

  block: Callable[..., nn.Module]
  stage_sizes: Sequence[int]
  num_classes: int = 1000
  stem: str = "imagenet"
  width: int = 64
  stem_stride: int = 1  # of the 'cifar' stem

  @nn.compact
  def __call__(self, x, train: bool = False):
    require_nhwc(x, "ResNet")
    x = image_stem(x, train, self.width, self.stem, self.stem_stride)
    for stage, num_blocks in enumerate(self.stage_sizes):
      for i in range(num_blocks):
        strides = 2 if stage > 0 and i == 0 else 1
        x = self.block(
          self.width * 2**stage, strides=strides, name=f"stage{stage + 1}_block{i + 1}"
        )(x, train)
    x = jnp.mean(x, axis=(1, 2))  # Global average pooling.
    return Dense(self.num_classes, name="classifier")(x)


def resnet18(
  num_classes: int = 1000, stem: str = "imagenet", width: int = 64, stem_stride: int = 1
):
  return ResNet(ResidualBlock, (2, 2, 2, 2), num_classes, stem, width, stem_stride)


def resnet34(
  num_classes: int = 1000, stem: str = "imagenet", width: int = 64, stem_stride: int = 1
):
  return ResNet(ResidualBlock, (3, 4, 6, 3), num_classes, stem, width, stem_stride)


def resnet50(
  num_classes: int = 1000, stem: str = "imagenet", width: int = 64, stem_stride: int = 1
):
  return ResNet(BottleneckBlock, (3, 4, 6, 3), num_classes, stem, width, stem_stride)


def resnet(depth: int = 18, num_classes: int = 1000, **kwargs):
  """ResNet-`depth` (18, 34 or 50)."""
  depths = {18: resnet18, 34: resnet34, 50: resnet50}
  if depth not in depths:
    raise ValueError(f"ResNet depth must be one of {sorted(depths)}, got {depth}")
  return depths[depth](num_classes, **kwargs)


def resnet_tiny(num_classes: int = 10):
  """One basic block per stage, width 4, CIFAR stem: for tests."""
  return ResNet(ResidualBlock, (1, 1, 1, 1), num_classes, stem="cifar", width=4)
