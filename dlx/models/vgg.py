"""VGG-11/13/16/19 (Simonyan and Zisserman, 2015, configurations A, B, D, E).

docs/curriculum.md#f4: depth from stacked 3x3 convs (two 3x3s see a
5x5 field with fewer parameters) instead of large kernels. Each stage is a
run of 3x3 convs (stride 1, padding 1) + ReLU followed by a 2x2/2 max pool;
then, as in torchvision, an adaptive average pool to 7x7 (a no-op at 224x224,
so other input sizes give the same classifier) and 25088 -> 4096 -> 4096 ->
num_classes with ReLU and dropout. Parameter counts at 224x224x3 and 1000
classes equal torchvision's: VGG-11 132,863,336, VGG-13 133,047,848,
VGG-16 138,357,544, VGG-19 143,667,240 (batch_norm=False).

small_input=True drops the last max pool (four poolings, /16), so 28x28 and
32x32 inputs keep a 1x1 / 2x2 map (five pools would shrink 28x28 to nothing).
Recommended narrow model for 32x32 grayscale:
vgg11(10, width_multiplier=0.25, batch_norm=True, small_input=True,
pooled_size=1, classifier_width=256).
"""

from typing import Sequence

import flax.linen as nn

from dlx.nn.blocks import adaptive_avg_pool
from dlx.nn.blocks import batch_norm
from dlx.nn.blocks import conv_init
from dlx.nn.blocks import require_nhwc
from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense

VGG11 = ((64,), (128,), (256, 256), (512, 512), (512, 512))
VGG13 = ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512))
VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VGG19 = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


class VGG(nn.Module):
  """Stages of 3x3 convs + max pool, adaptive avg pool, three FC layers.

  Attributes:
    stage_config: conv widths per stage, e.g. VGG16; a max pool ends each stage.
    num_classes: size of the logits.
    batch_norm: BN after every conv (torchvision's vgg*_bn); convs keep their bias.
    dropout_rate: dropout after each hidden FC layer (inactive in eval).
    width_multiplier: scales every conv width (rounded, at least 1).
    classifier_width: hidden FC width (4096 in the paper).
    pooled_size: side of the adaptive average pool before the classifier.
    small_input: skip the last max pool, for 28x28 / 32x32 inputs.
  """

  stage_config: Sequence[Sequence[int]]
  num_classes: int = 1000
  batch_norm: bool = False
  dropout_rate: float = 0.5
  width_multiplier: float = 1.0
  classifier_width: int = 4096
  pooled_size: int = 7
  small_input: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    require_nhwc(x, "VGG")
    num_stages = len(self.stage_config)
    for stage, widths in enumerate(self.stage_config):
      for i, width in enumerate(widths):
        features = max(1, round(width * self.width_multiplier))
        x = FlaxConv(
          features,
          (3, 3),
          padding=((1, 1), (1, 1)),
          kernel_init=conv_init,
          name=f"stage{stage + 1}_conv{i + 1}",
        )(x)
        if self.batch_norm:
          x = batch_norm(train, name=f"stage{stage + 1}_bn{i + 1}")(x)
        x = nn.relu(x)
      if self.small_input and stage == num_stages - 1:
        continue
      if min(x.shape[1:3]) < 2:
        raise ValueError(
          f"VGG: feature map {x.shape[1:3]} too small to pool after stage "
          f"{stage + 1}; use a larger input or small_input=True"
        )
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = adaptive_avg_pool(x, (self.pooled_size, self.pooled_size))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(Dense(self.classifier_width, name="fc1")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.relu(Dense(self.classifier_width, name="fc2")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return Dense(self.num_classes, name="fc3")(x)


def vgg11(num_classes: int = 1000, **kwargs):
  return VGG(VGG11, num_classes, **kwargs)


def vgg13(num_classes: int = 1000, **kwargs):
  return VGG(VGG13, num_classes, **kwargs)


def vgg16(num_classes: int = 1000, **kwargs):
  return VGG(VGG16, num_classes, **kwargs)


def vgg19(num_classes: int = 1000, **kwargs):
  return VGG(VGG19, num_classes, **kwargs)


DEPTHS = {11: VGG11, 13: VGG13, 16: VGG16, 19: VGG19}


def vgg(depth: int = 16, num_classes: int = 1000, **kwargs):
  """VGG-`depth` (11, 13, 16 or 19 weight layers)."""
  if depth not in DEPTHS:
    raise ValueError(f"VGG depth must be one of {sorted(DEPTHS)}, got {depth}")
  return VGG(DEPTHS[depth], num_classes, **kwargs)


def vgg_tiny(num_classes: int = 10, **kwargs):
  """VGG-11 at 1/16 width with BN, four pools and a 32-wide classifier: for tests."""
  config = dict(
    width_multiplier=1 / 16, batch_norm=True, small_input=True, pooled_size=1, classifier_width=32
  )
  config.update(kwargs)
  return VGG(VGG11, num_classes, **config)
