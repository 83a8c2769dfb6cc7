"""SimCLR (Chen et al., 2020; docs/curriculum.md#f26): an encoder f and a projection MLP g
trained so that two random views of an image land close in g(f(x)) and far from the
other images' views. The representation kept afterwards is f(x), before the projection.

`SimCLR(views=fn)` draws the two views itself from the 'sample' rng stream: in training
from the step's key, in evaluation from keys fixed by the seed, so the trainer's generic
steps score the contrastive loss on fixed random views of the validation and test images.
`LinearProbe` is the same encoder with a linear classifier, frozen (trained from
`init_from`) or not (the supervised reference).
"""

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.nn import blocks
from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense


class ConvEncoder(nn.Module):
  """3x3 conv + BatchNorm + ReLU per stage, 2x2 max pool between stages, global average
  pool at the end: (N, H, W, C) -> (N, widths[-1])."""

  widths: Sequence[int] = (32, 64, 128)
  convs_per_stage: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    blocks.require_nhwc(x, "ConvEncoder")
    for stage, width in enumerate(self.widths):
      if stage:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      for _ in range(self.convs_per_stage):
        x = FlaxConv(width, (3, 3), padding="SAME", use_bias=False, kernel_init=blocks.conv_init)(x)
        x = nn.relu(blocks.batch_norm(train)(x))
    return jnp.mean(x, axis=(1, 2))


class ProjectionHead(nn.Module):
  """g: Dense -> BatchNorm -> ReLU -> Dense (SimCLR's 2-layer MLP)."""

  hidden: int = 128
  output: int = 64

  @nn.compact
  def __call__(self, h, train: bool = False):
    h = nn.relu(blocks.batch_norm(train)(Dense(self.hidden, use_bias=False)(h)))
    return Dense(self.output)(h)


class SimCLR(nn.Module):
  """images (N, H, W, C) -> {'z1', 'z2'}: projections (N, output) of two random views.

  Both views go through the encoder as one batch of 2N (one set of BatchNorm statistics).
  `features` is the encoder alone, on the images as given (the frozen representation)."""

  widths: Sequence[int] = (32, 64, 128)
  convs_per_stage: int = 1
  projection_hidden: int = 128
  projection_dim: int = 64
  views: Optional[Callable] = None  # fn(rng, images) -> (view_1, view_2)

  def setup(self):
    self.encoder = ConvEncoder(self.widths, self.convs_per_stage)
    self.projector = ProjectionHead(self.projection_hidden, self.projection_dim)

  def features(self, images, train: bool = False):
    return self.encoder(images, train)

  def __call__(self, images, train: bool = False):
    if self.views is None:
      raise ValueError("SimCLR needs views=fn(rng, images) -> (view_1, view_2)")
    first, second = self.views(self.make_rng("sample"), images)
    n = images.shape[0]
    z = self.projector(self.encoder(jnp.concatenate([first, second]), train), train)
    return {"z1": z[:n], "z2": z[n:]}


class LinearProbe(nn.Module):
  """A linear classifier on ConvEncoder features (params 'encoder' and 'head').

  frozen=True: the encoder runs in evaluation mode (running BatchNorm statistics) and
  no gradient reaches it; pair it with an optimizer that leaves 'encoder' unchanged
  (weight decay too), so only the head trains."""

  num_classes: int = 10
  widths: Sequence[int] = (32, 64, 128)
  convs_per_stage: int = 1
  frozen: bool = True

  @nn.compact
  def __call__(self, images, train: bool = False):
    encoder = ConvEncoder(self.widths, self.convs_per_stage, name="encoder")
    h = encoder(images, train and not self.frozen)
    if self.frozen:
      # Standardised frozen features (BatchNorm without scale or bias, as MAE's linear
      # probe): an affine map at evaluation, so the classifier stays linear in f(x), and
      # it trains in a few epochs.
      h = nn.BatchNorm(
        use_running_average=not train, use_scale=False, use_bias=False, name="feature_norm"
      )(jax.lax.stop_gradient(h))
    return Dense(self.num_classes, name="head")(h)
