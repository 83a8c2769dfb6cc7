"""Pooling (docs/curriculum.md#e3) on channels-last inputs (N, spatial..., C), 1D-3D.

Pooling has no parameters; it shrinks the feature map and keeps the strongest
(max) or typical (average) response in each window. The output size is
conv_output_size(in, window, stride, padding) (dlx.nn.conv).

Unlike flax.linen's pools, `stride` defaults to the window (non-overlapping
pooling, PyTorch's default) and padding may be an int per side.
"""

import numbers
from typing import Optional, Sequence, Union

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.conv import normalize_padding

IntOrSeq = Union[int, Sequence[int]]


def _window_args(x, window, stride, padding):
  """(window, strides, padding) tuples for flax's pools."""
  if isinstance(window, numbers.Integral):
    if x.ndim < 3:
      raise ValueError(f"pooling expects (N, spatial..., C) inputs, got shape {x.shape}")
    window = (window,) * (x.ndim - 2)
  window = tuple(window)
  ndim = len(window)
  if x.ndim != ndim + 2:
    raise ValueError(
      f"a {ndim}D window needs (N, {ndim} spatial dims, C) inputs, got shape {x.shape}"
    )
  if stride is None:
    stride = window
  elif isinstance(stride, numbers.Integral):
    stride = (stride,) * ndim
  return window, tuple(stride), normalize_padding(padding, ndim)


def max_pool(x, window: IntOrSeq, stride: Optional[IntOrSeq] = None, padding=0):
  """Maximum over each window. Padded positions are -inf, so never chosen."""
  window, stride, padding = _window_args(x, window, stride, padding)
  return nn.max_pool(x, window, strides=stride, padding=padding)


def avg_pool(
  x, window: IntOrSeq, stride: Optional[IntOrSeq] = None, padding=0, count_include_pad: bool = True
):
  """Mean over each window.

  count_include_pad=True divides every window by its full size, so padded
  zeros pull border outputs towards 0 (PyTorch's default); False divides by
  the number of real input elements in the window (the mean of what is there).
  The two agree without padding.
  """
  window, stride, padding = _window_args(x, window, stride, padding)
  return nn.avg_pool(
    x, window, strides=stride, padding=padding, count_include_pad=count_include_pad
  )


def overlapping_max_pool(x, window: IntOrSeq = 3, stride: IntOrSeq = 2, padding=0):
  """AlexNet's overlapping max pooling (Krizhevsky et al. 2012, section 3.4).

  With stride s smaller than the window z (s=2, z=3) neighbouring windows
  overlap; the paper reports 0.4% / 0.3% lower top-1 / top-5 error than
  s = z = 2 and slightly less overfitting.
  """
  return max_pool(x, window, stride, padding)


def _spatial_axes(x):
  if x.ndim < 3:
    raise ValueError(f"global pooling expects (N, spatial..., C) inputs, got shape {x.shape}")
  return tuple(range(1, x.ndim - 1))


def global_avg_pool(x, keepdims: bool = False):
  """Mean over all spatial positions: (N, ..., C) -> (N, C) (Lin et al. 2013).

  Replaces flatten + large dense layers (GoogLeNet, ResNet) and works for any
  input size.
  """
  return jnp.mean(x, axis=_spatial_axes(x), keepdims=keepdims)


def global_max_pool(x, keepdims: bool = False):
  """Maximum over all spatial positions: (N, ..., C) -> (N, C)."""
  return jnp.max(x, axis=_spatial_axes(x), keepdims=keepdims)
