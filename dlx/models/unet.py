"""U-Nets: encoder-decoder convnets whose decoder reads the encoder's map of the same
resolution through a skip connection.

  UNet              DDPM's small noise model for 28x28x1 images (docs/curriculum.md#f21):
                    residual GroupNorm-SiLU blocks with a time embedding
  SegmentationUNet  Ronneberger et al. 2015 for per-pixel classes (docs/curriculum.md#f9)

The two share the shape, not the blocks: the segmentation net has no time input and
uses the paper's plain conv pairs (here with BatchNorm, dlx.nn.blocks.ConvBNReLU).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx import errors
from dlx.nn import blocks
from dlx.nn import conv
from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense
from dlx.nn.embeddings import sinusoidal_embedding

UPSAMPLING = ("transpose", "resize")


class ResBlock(nn.Module):
  """GroupNorm-SiLU-Conv twice, adding the projected time embedding in between."""

  features: int
  num_groups: int = 8
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, temb, train: bool = False):
    h = nn.silu(nn.GroupNorm(num_groups=self.num_groups)(x))
    h = FlaxConv(self.features, (3, 3))(h)
    # Per-channel shift from the time embedding, broadcast over H and W.
    h = h + Dense(self.features)(nn.silu(temb))[:, None, None, :]
    h = nn.silu(nn.GroupNorm(num_groups=self.num_groups)(h))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = FlaxConv(self.features, (3, 3))(h)
    if x.shape[-1] != self.features:
      x = FlaxConv(self.features, (1, 1))(x)
    return x + h


class UNet(nn.Module):
  """Predicts the noise in x_t; output has x's shape.

  Time: sinusoidal embedding -> 2-layer MLP, added inside every ResBlock.
  Down path: one ResBlock per resolution (28 -> 14 -> 7 for three widths),
  halving with stride-2 convs; a second ResBlock at the bottom; up path:
  nearest upsampling, concat the skip, one ResBlock. H and W must divide by
  2 ** (len(channels) - 1); widths must divide by num_groups.

  Default widths are small because XLA:CPU is slow at conv weight gradients:
  a train step at batch 128 takes ~0.26-0.31 s on 2 CPU cores with
  (8, 16, 32), ~0.65-0.8 s with (16, 32, 64), ~2.1 s with (32, 64, 128).
  """

  channels: Sequence[int] = (8, 16, 32)
  time_dim: int = 128
  num_groups: int = 8
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, t, train: bool = False):
    block = lambda c: ResBlock(c, self.num_groups, self.dropout_rate)
    temb = sinusoidal_embedding(t, self.time_dim).astype(x.dtype)  # x's dtype: bf16 products
    temb = Dense(self.time_dim)(temb)
    temb = Dense(self.time_dim)(nn.silu(temb))

    h = FlaxConv(self.channels[0], (3, 3))(x)
    skips = []
    for i, c in enumerate(self.channels):
      h = block(c)(h, temb, train)
      if i < len(self.channels) - 1:
        skips.append(h)
        h = FlaxConv(c, (3, 3), strides=(2, 2))(h)  # Halve H and W.
    h = block(self.channels[-1])(h, temb, train)

    for i in reversed(range(len(self.channels) - 1)):
      skip = skips[i]
      # Nearest-neighbour upsampling; the next block's convs mix the pixels.
      h = jax.image.resize(h, skip.shape[:3] + h.shape[3:], "nearest")
      h = jnp.concatenate([h, skip], axis=-1)
      h = block(self.channels[i])(h, temb, train)

    h = nn.silu(nn.GroupNorm(num_groups=self.num_groups)(h))
    return FlaxConv(x.shape[-1], (3, 3))(h)


class SegmentationUNet(nn.Module):
  """U-Net for semantic segmentation (Ronneberger, Fischer and Brox, 2015):
  (N, H, W, C) -> (N, H, W, num_classes) logits.

  Contracting path: at each level `convs_per_level` 3x3 conv-BN-ReLU of width
  features[i], then a 2x2 max pool; expanding path: upsample 2x, concatenate the
  encoder's map of that level, the same convs; a 1x1 convolution scores the classes.
  upsampling='transpose' is the paper's 2x2 stride-2 "up-convolution" (to features[i]
  channels); 'resize' is nearest-neighbour resizing then a 3x3 conv (no checkerboard
  pattern). Unlike the paper the convs are 'same' padded, so the output has the input's
  size and no crop is needed; H and W must divide by 2 ** (len(features) - 1).
  dropout_rate applies at the bottom, as the paper's dropout at the end of the
  contracting path.

  patch_size p > 1 runs the net at 1/p resolution without losing a pixel: the input's
  p x p patches become channels (space-to-depth) and the classifier predicts p * p
  pixels' classes per cell, rearranged back (depth-to-space, the "sub-pixel
  convolution" of Shi et al. 2016). On a CPU the full-resolution levels, wide and few
  channels, cost the most; p = 2 removes them.

  deep_supervision=True (training only) also returns auxiliary logits from the bottom
  and every coarser decoder level (a 1x1 convolution, resized bilinearly to the input),
  as (logits, aux...), coarsest first; a loss adds them with a weight (nnU-Net's deep
  supervision). Without them the class of a digit, which only the coarse levels see
  whole, reaches the loss through every randomly initialised decoder stage, and on
  digit scenes the net sat for hundreds of steps knowing ink from background but not
  which digit (measured); the short path through an auxiliary head teaches the
  encoder the classes first, as FCN-32s's single head does.
  """

  num_classes: int = 11
  features: Sequence[int] = (8, 16, 32, 64, 128)
  convs_per_level: int = 2
  batch_norm: bool = True
  upsampling: str = "transpose"
  dropout_rate: float = 0.0
  patch_size: int = 1
  deep_supervision: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.upsampling not in UPSAMPLING:
      raise errors.ConfigError(
        f"upsampling must be one of {', '.join(UPSAMPLING)}, got {self.upsampling!r}"
      )
    blocks.require_nhwc(x, "SegmentationUNet")
    p = self.patch_size
    factor = 2 ** (len(self.features) - 1) * p
    if p < 1 or x.shape[1] % factor or x.shape[2] % factor:
      raise errors.ConfigError(
        f"SegmentationUNet with {len(self.features)} levels and patch_size {p} needs H and "
        f"W divisible by {factor}, got {x.shape[1:3]}"
      )
    aux_shape = x.shape[:3] + (self.num_classes,)
    x = space_to_depth(x, p)

    def conv_block(h, width, name):
      for i in range(self.convs_per_level):
        h = blocks.ConvBNReLU(width, use_batch_norm=self.batch_norm, name=f"{name}_conv{i + 1}")(
          h, train
        )
      return h

    skips = []
    for level, width in enumerate(self.features):
      x = conv_block(x, width, f"down{level}")
      if level < len(self.features) - 1:
        skips.append(x)
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)

    aux = []
    for level in reversed(range(len(self.features) - 1)):
      if self.deep_supervision:  # made in eval too (init), unused there
        coarse = FlaxConv(self.num_classes, (1, 1), name=f"aux_classifier{level + 1}")(x)
        if train:
          aux.append(jax.image.resize(coarse, aux_shape, "bilinear"))
      width = self.features[level]
      bn, name = self.batch_norm, f"up{level}_upconv"
      if self.upsampling == "transpose":
        x = conv.ConvTranspose(
          width, 2, strides=2, padding=0, use_bias=not bn, kernel_init=blocks.conv_init, name=name
        )(x)
      else:
        x = jax.image.resize(x, skips[level].shape[:3] + x.shape[3:], "nearest")
        x = FlaxConv(width, (3, 3), use_bias=not bn, kernel_init=blocks.conv_init, name=name)(x)
      if bn:  # On the skip's scale, so the deep path is heard from the first step.
        x = nn.relu(blocks.batch_norm(train, name=f"{name}_bn")(x))
      x = jnp.concatenate([skips[level], x], axis=-1)
      x = conv_block(x, width, f"up{level}")
    logits = depth_to_space(FlaxConv(self.num_classes * p * p, (1, 1), name="classifier")(x), p)
    return (logits, *aux) if aux else logits


def space_to_depth(x, p: int):
  """(N, H, W, C) -> (N, H/p, W/p, p * p * C): each p x p patch becomes one cell."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // p, p, w // p, p, c)
  return jnp.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(n, h // p, w // p, p * p * c)


def depth_to_space(x, p: int):
  """The inverse of space_to_depth: (N, h, w, p * p * C) -> (N, p h, p w, C)."""
  n, h, w, c = x.shape
  x = x.reshape(n, h, w, p, p, c // (p * p))
  return jnp.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(n, h * p, w * p, c // (p * p))
