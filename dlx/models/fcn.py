"""Fully convolutional networks for semantic segmentation (Long, Shelhamer and Darrell,
2015; docs/curriculum.md#f9).

A classifier becomes a dense predictor once its fully connected layers are
convolutions: a small VGG-like backbone (stages of 3x3 conv-BN-ReLU, each ending in a 2x2
max pool, five stages = stride 32), "fc6"/"fc7" as convolutions, and a 1x1 convolution
scoring every class at every cell of the coarse map. The variants differ in how much
fine detail reaches the output:

  32s  pool5's scores, upsampled 32x
  16s  pool5's scores upsampled 2x, plus the scores of pool4 (1x1 conv), upsampled 16x
  8s   that sum upsampled 2x, plus the scores of pool3, upsampled 8x

As in the paper the skips are fused by addition, the skip score layers start at zero
(the untrained 16s/8s is the 32s net), the 2x upsamplings are transposed convolutions
(kernel 4, stride 2) initialised to bilinear interpolation and learned, and the last,
large upsampling is a fixed bilinear transposed convolution. Convolutions are 'same'
padded, so no crop layers are needed; H and W must divide by 32.
"""

from typing import Sequence, Union

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from dlx import errors
from dlx.nn import blocks
from dlx.nn import conv
from dlx.nn.conv import FlaxConv

VARIANTS = {"32s": 5, "16s": 4, "8s": 3}  # variant -> the finest pool whose scores it adds


def bilinear_taps(factor: int) -> np.ndarray:
  """The 2f weights 1 - |t - (f - 1/2)| / f of linear interpolation by f."""
  return (1 - np.abs(np.arange(2 * factor) - (factor - 0.5)) / factor).astype(np.float32)


def bilinear_kernel(factor: int) -> np.ndarray:
  """The (2f, 2f) kernel with which a stride-f transposed convolution (padding f/2,
  PyTorch's convention) interpolates bilinearly, as the paper's `upsample_filt`."""
  taps = bilinear_taps(factor)
  return np.outer(taps, taps)


def bilinear_init(key, shape, dtype=jnp.float32):
  """A transposed-convolution kernel (k, k, out, in) that upsamples each channel
  bilinearly on its own (zero between channels)."""
  del key
  k, k2, out_features, in_features = shape
  if k != k2 or k % 2:
    raise errors.ConfigError(f"bilinear init needs an even square kernel, got {shape[:2]}")
  kernel = np.zeros(shape, np.float32)
  for c in range(min(out_features, in_features)):
    kernel[:, :, c, c] = bilinear_kernel(k // 2)
  return jnp.asarray(kernel, dtype)


def upsampling_matrix(size: int, factor: int) -> np.ndarray:
  """(factor * size, size): the 1D transposed convolution (kernel 2f, stride f, padding
  f/2) with the bilinear taps, as a matrix: out[o] = sum_i taps[o + f/2 - f i] x[i]."""
  taps = bilinear_taps(factor)
  matrix = np.zeros((factor * size, size), np.float32)
  for i in range(size):
    for t, weight in enumerate(taps):
      o = factor * i - factor // 2 + t
      if 0 <= o < factor * size:
        matrix[o, i] = weight
  return matrix


def bilinear_upsample(x, factor: int):
  """Fixed bilinear upsampling by an even `factor` (the paper's frozen last
  deconvolution): (N, H, W, C) -> (N, fH, fW, C), each channel on its own. It equals the
  stride-f transposed convolution with the (2f, 2f) bilinear kernel, computed as two
  small matrix products because that kernel is separable (as a convolution, XLA would
  multiply (2f)^2 mostly-zero taps per output pixel). Away from the border it is
  half-pixel-centred bilinear resizing; at the border it fades towards zero padding."""
  if factor == 1:
    return x
  if factor % 2:
    raise errors.ConfigError(f"bilinear_upsample needs an even factor (or 1), got {factor}")
  rows = jnp.asarray(upsampling_matrix(x.shape[1], factor), x.dtype)
  cols = jnp.asarray(upsampling_matrix(x.shape[2], factor), x.dtype)
  return jnp.einsum("oh,nhwc,pw->nopc", rows, x, cols)


class FCN(nn.Module):
  """FCN-32s / 16s / 8s on a VGG-like backbone; (N, H, W, C) -> (N, H, W, num_classes)
  logits.

  features: the widths of the five backbone stages; convs_per_stage: 3x3 convs per
  stage (an int, or one per stage; VGG-16 has 2, 2, 3, 3, 3); head_features and
  head_kernel: fc6 (head_kernel x head_kernel) and fc7 (1x1) as convolutions (VGG's are
  4096 wide, fc6 7x7); dropout_rate: after fc6 and fc7 (0.5 in the paper).
  """

  num_classes: int = 11
  variant: str = "8s"
  features: Sequence[int] = (16, 32, 64, 128, 128)
  convs_per_stage: Union[int, Sequence[int]] = 2
  head_features: int = 256
  head_kernel: int = 3
  batch_norm: bool = True
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.variant not in VARIANTS:
      raise errors.ConfigError(
        f"FCN variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"
      )
    if len(self.features) != 5:
      raise errors.ConfigError(f"FCN has five backbone stages, got features={self.features}")
    blocks.require_nhwc(x, "FCN")
    if x.shape[1] % 32 or x.shape[2] % 32:
      raise errors.ConfigError(f"FCN needs H and W divisible by 32, got {x.shape[1:3]}")
    per_stage = self.convs_per_stage
    per_stage = (per_stage,) * 5 if isinstance(per_stage, int) else tuple(per_stage)

    pools = {}
    for stage, (width, n) in enumerate(zip(self.features, per_stage), start=1):
      for i in range(n):
        x = blocks.ConvBNReLU(width, use_batch_norm=self.batch_norm, name=f"conv{stage}_{i + 1}")(
          x, train
        )
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
      pools[stage] = x

    # fc6 and fc7 as convolutions: the classifier slides over every cell of pool5.
    h = blocks.ConvBNReLU(
      self.head_features, self.head_kernel, use_batch_norm=self.batch_norm, name="fc6"
    )(x, train)
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = blocks.ConvBNReLU(self.head_features, 1, use_batch_norm=self.batch_norm, name="fc7")(
      h, train
    )
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    scores = FlaxConv(self.num_classes, (1, 1), name="score_fr")(h)

    finest = VARIANTS[self.variant]
    for stage in range(4, finest - 1, -1):  # 16s adds pool4, 8s then pool3
      scores = conv.ConvTranspose(
        self.num_classes,
        4,
        strides=2,
        padding=1,
        use_bias=False,
        kernel_init=bilinear_init,
        name=f"upscore_pool{stage}",
      )(scores)
      # Zero-initialised, so training starts from the coarser net's prediction.
      skip = FlaxConv(
        self.num_classes, (1, 1), kernel_init=nn.initializers.zeros, name=f"score_pool{stage}"
      )(pools[stage])
      scores = scores + skip
    return bilinear_upsample(scores, 2**finest)
