"""Convolutions (docs/curriculum.md#e2): 1D/2D/3D, padding, dilation, groups,
depthwise separable, pointwise and transposed; channels-last (N, ..., C).

Output sizes (per spatial dimension; in, k, s, d, padding (lo, hi)):

  convolution:  out = floor((in + lo + hi - d * (k - 1) - 1) / s) + 1
                'valid' is lo = hi = 0; 'same' is ceil(in / s) (XLA / Flax).
  transposed:   out = (in - 1) * s - lo - hi + d * (k - 1) + output_padding + 1
                which for lo = hi = p is PyTorch's ConvTranspose formula.

Parameters of a k x k convolution from C to D channels in g groups:
k * k * (C / g) * D weights plus D biases. (The course writes w*w*C*D*K with K
"the number of kernels", but K and D are the same number; the count is
w*w*C*D.) A depthwise separable convolution (MobileNet v1, Howard et al. 2017)
replaces k*k*C*D with k*k*C + C*D.

Every convolution here, and flax's nn.Conv wherever dlx builds one (`FlaxConv`), computes
through dlx.kernels.conv.conv_general_dilated: oneDNN on one CPU device when the trainer's
`--config.cpu_kernels` route allows (docs/cpu_kernels.md), XLA's otherwise.

Conv and PointwiseConv share their scope with the wrapped Flax module (via
nn.share_scope), so their parameters are exactly nn.Conv's / nn.ConvTranspose's
{'kernel', 'bias'}, with no extra level of nesting.
"""

import functools
import numbers
from typing import Callable, Optional, Sequence, Union

import flax.linen as nn
from jax import lax
import jax.numpy as jnp

from dlx.kernels import conv as kernels_conv
from dlx.kernels import route as kernels_route
from dlx.nn import activations

IntOrSeq = Union[int, Sequence[int]]
# flax's nn.Conv (same class, names and parameters) with its convolution routed through
# dlx.kernels: the models build their convolutions with it.
FlaxConv = functools.partial(nn.Conv, conv_general_dilated=kernels_conv.conv_general_dilated)
Padding = Union[str, int, Sequence[Union[int, Sequence[int]]]]


def _is_int(x):
  return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _per_dim(value, ndim, name):
  """An int -> ndim copies; a sequence must already have ndim entries."""
  if _is_int(value):
    return (value,) * ndim
  value = tuple(value)
  if len(value) != ndim or not all(_is_int(v) for v in value):
    raise ValueError(f"{name} must be an int or {ndim} ints, got {value!r}")
  return value


def _positive(values, name):
  if any(v < 1 for v in values):
    raise ValueError(f"{name} must be >= 1, got {values!r}")
  return values


def normalize_padding(padding: Padding, ndim: int):
  """Returns 'SAME' / 'VALID' or ndim (low, high) pairs.

  Accepts 'same' / 'valid' (any case); an int (that many on every side); one
  entry per spatial dimension, each an int or a (low, high) pair; and, for
  ndim == 1, a bare (low, high) pair.
  """
  if isinstance(padding, str):
    upper = padding.upper()
    if upper not in ("SAME", "VALID"):
      raise ValueError(f"padding must be 'same', 'valid', an int or pairs, got {padding!r}")
    return upper
  if _is_int(padding):
    return ((padding, padding),) * ndim
  padding = tuple(padding)
  if ndim == 1 and len(padding) == 2 and all(_is_int(p) for p in padding):
    return (padding,)
  if len(padding) != ndim:
    raise ValueError(f"padding needs one entry per spatial dimension ({ndim}), got {padding!r}")
  pairs = []
  for p in padding:
    if _is_int(p):
      pairs.append((p, p))
    elif isinstance(p, Sequence) and len(p) == 2 and all(_is_int(q) for q in p):
      pairs.append(tuple(p))
    else:
      raise ValueError(f"each padding entry must be an int or a (low, high) pair, got {p!r}")
  return tuple(pairs)


def _broadcast(input_size, kernel_size, stride, dilation):
  """Number of dims (from the first sequence argument), or None if all ints."""
  for value in (input_size, kernel_size, stride, dilation):
    if not _is_int(value):
      return len(tuple(value))
  return None


def conv_output_size(
  input_size: IntOrSeq,
  kernel_size: IntOrSeq,
  stride: IntOrSeq = 1,
  padding: Padding = 0,
  dilation: IntOrSeq = 1,
):
  """Spatial output size of a convolution (or pooling) layer.

  out = floor((in + lo + hi - dilation * (kernel - 1) - 1) / stride) + 1, with
  'valid' meaning no padding and 'same' meaning ceil(in / stride) as in XLA.

  Returns an int when input_size, kernel_size, stride and dilation are all
  ints, else a tuple with one size per dimension. Raises ValueError when a
  size would be < 1 (the kernel does not fit in the padded input).
  """
  ndim = _broadcast(input_size, kernel_size, stride, dilation)
  scalar = ndim is None
  ndim = ndim or 1
  sizes = _per_dim(input_size, ndim, "input_size")
  kernels = _positive(_per_dim(kernel_size, ndim, "kernel_size"), "kernel_size")
  strides = _positive(_per_dim(stride, ndim, "stride"), "stride")
  dilations = _positive(_per_dim(dilation, ndim, "dilation"), "dilation")
  pads = normalize_padding(padding, ndim)
  out = []
  for i in range(ndim):
    n, k, s, d = sizes[i], kernels[i], strides[i], dilations[i]
    if pads == "SAME":
      size = -(-n // s)
    else:
      lo, hi = (0, 0) if pads == "VALID" else pads[i]
      size = (n + lo + hi - d * (k - 1) - 1) // s + 1
    if size < 1:
      raise ValueError(
        f"convolution output size {size} < 1 in dim {i}: input {n}, kernel "
        f"{k}, stride {s}, padding {padding!r}, dilation {d} (dilated kernel "
        f"{d * (k - 1) + 1} is larger than the padded input)"
      )
    out.append(size)
  return out[0] if scalar else tuple(out)


def conv_transpose_output_size(
  input_size: IntOrSeq,
  kernel_size: IntOrSeq,
  stride: IntOrSeq = 1,
  padding: Padding = 0,
  output_padding: IntOrSeq = 0,
  dilation: IntOrSeq = 1,
):
  """Spatial output size of a transposed convolution (`ConvTranspose`).

  Explicit padding follows PyTorch:
    out = (in - 1) * stride - lo - hi + dilation * (kernel - 1)
          + output_padding + 1.
  'same' and 'valid' follow jax.lax.conv_transpose: in * stride and
  in * stride + max(dilation * (kernel - 1) + 1 - stride, 0). output_padding
  needs explicit padding and must be < max(stride, dilation), as in PyTorch.
  """
  ndim = _broadcast(input_size, kernel_size, stride, dilation)
  scalar = ndim is None and _is_int(output_padding)
  ndim = ndim or (1 if _is_int(output_padding) else len(output_padding))
  sizes = _per_dim(input_size, ndim, "input_size")
  kernels = _positive(_per_dim(kernel_size, ndim, "kernel_size"), "kernel_size")
  strides = _positive(_per_dim(stride, ndim, "stride"), "stride")
  dilations = _positive(_per_dim(dilation, ndim, "dilation"), "dilation")
  extras = _check_output_padding(output_padding, padding, strides, dilations)
  pads = normalize_padding(padding, ndim)
  out = []
  for i in range(ndim):
    n, k, s, d = sizes[i], kernels[i], strides[i], dilations[i]
    if pads == "SAME":
      size = n * s
    elif pads == "VALID":
      size = n * s + max(d * (k - 1) + 1 - s, 0)
    else:
      lo, hi = pads[i]
      size = (n - 1) * s - lo - hi + d * (k - 1) + extras[i] + 1
    if size < 1:
      raise ValueError(
        f"transposed convolution output size {size} < 1 in dim {i}: input "
        f"{n}, kernel {k}, stride {s}, padding {padding!r}, dilation {d}"
      )
    out.append(size)
  return out[0] if scalar else tuple(out)


def _check_output_padding(output_padding, padding, strides, dilations):
  extras = _per_dim(output_padding, len(strides), "output_padding")
  if any(extras) and isinstance(padding, str):
    raise ValueError(f"output_padding needs explicit (int) padding, got padding={padding!r}")
  for e, s, d in zip(extras, strides, dilations):
    if not 0 <= e < max(s, d):
      raise ValueError(
        f"output_padding {e} must be in [0, max(stride {s}, dilation {d})) as in PyTorch"
      )
  return extras


def _spatial_ndim(kernel_size, ndim, x, name):
  """Spatial dims: len(kernel_size), else `ndim`, else x.ndim - 2."""
  if not _is_int(kernel_size):
    if ndim is not None and ndim != len(kernel_size):
      raise ValueError(f"{name}: ndim={ndim} but kernel_size={kernel_size!r}")
    return len(kernel_size)
  if ndim is not None:
    return ndim
  if x.ndim < 3:
    raise ValueError(f"{name} expects (N, spatial..., C) inputs, got shape {x.shape}")
  return x.ndim - 2


class Conv(nn.Module):
  """N-D convolution: nn.Conv with int/pair padding, ints for all sizes, groups.

  The number of spatial dims comes from len(kernel_size), or `ndim`, or the
  input (x.ndim - 2) when kernel_size is an int. padding is 'SAME' (output
  ceil(in / stride)), 'VALID', an int per side, or per-dimension ints / (low,
  high) pairs. groups splits the channels into independent convolutions
  (groups == input channels is a depthwise convolution); both the input
  channels and `features` must be divisible by it. Kernel layout is Flax's
  (k..., C_in / groups, features), e.g. HWIO; PyTorch's is OIHW.
  """

  features: int
  kernel_size: IntOrSeq
  strides: IntOrSeq = 1
  padding: Padding = "SAME"
  dilation: IntOrSeq = 1
  groups: int = 1
  use_bias: bool = True
  ndim: Optional[int] = None
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    ndim = _spatial_ndim(self.kernel_size, self.ndim, x, "Conv")
    in_channels = x.shape[-1]
    groups = self.groups
    if groups < 1 or in_channels % groups or self.features % groups:
      raise ValueError(
        f"Conv groups={groups} must divide both the input channels "
        f"({in_channels}) and features ({self.features})"
      )
    kernels = _per_dim(self.kernel_size, ndim, "kernel_size")
    conv = FlaxConv(
      self.features,
      _positive(kernels, "kernel_size"),
      strides=_positive(_per_dim(self.strides, ndim, "strides"), "strides"),
      padding=normalize_padding(self.padding, ndim),
      kernel_dilation=_positive(_per_dim(self.dilation, ndim, "dilation"), "dilation"),
      feature_group_count=groups,
      use_bias=self.use_bias,
      kernel_init=self.kernel_init,
      bias_init=self.bias_init,
    )
    nn.share_scope(self, conv)  # Keep nn.Conv's {'kernel', 'bias'} layout.
    return conv(x)


class PointwiseConv(nn.Module):
  """1x1 (pointwise) convolution: a Dense layer applied at every position.

  Mixes channels without looking at neighbours; used to change the number of
  channels cheaply (C_in * features weights), e.g. in Inception and MobileNet.
  """

  features: int
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    ndim = _spatial_ndim(1, None, x, "PointwiseConv")
    conv = FlaxConv(
      self.features,
      (1,) * ndim,
      padding="VALID",
      use_bias=self.use_bias,
      kernel_init=self.kernel_init,
    )
    nn.share_scope(self, conv)  # Keep nn.Conv's {'kernel', 'bias'} layout.
    return conv(x)


def depthwise_conv2d(x, kernel, strides: int = 1, dilation: int = 1):
  """Depthwise 2D convolution (one kh x kw filter per channel, PyTorch-style padding
  dilation * (k - 1) // 2 per side) as a sum of kh * kw shifted, scaled copies of x.

  The same numbers as lax.conv_general_dilated with feature_group_count = C, but XLA's
  CPU grouped convolution is slow (measured 5-15x slower for a 3x3 on 14x14x48 with its
  gradient), while shifts and multiplies are plain vector work. On the oneDNN route
  (docs/cpu_kernels.md) oneDNN's depthwise convolution runs instead. x (N, H, W, C); kernel
  (kh, kw, 1, C), the layout nn.Conv uses for a depthwise kernel."""
  kh, kw, one, channels = kernel.shape
  if one != 1 or channels != x.shape[-1]:
    raise ValueError(
      f"depthwise kernel {kernel.shape} does not fit {x.shape[-1]} channels; "
      "expected (kh, kw, 1, C)"
    )
  pad_h, pad_w = dilation * (kh - 1) // 2, dilation * (kw - 1) // 2
  if kernels_route.current() == "onednn" and x.dtype == kernel.dtype == jnp.float32 and x.size:
    # oneDNN's depthwise kernel beats these shifts (benchmarks/onednn_conv.py).
    pads = ((pad_h, pad_h), (pad_w, pad_w))
    return kernels_conv.onednn_conv(x, kernel, (strides,) * 2, pads, (dilation,) * 2, channels)
  padded = jnp.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
  out_h = conv_output_size(x.shape[1], kh, strides, pad_h, dilation)
  out_w = conv_output_size(x.shape[2], kw, strides, pad_w, dilation)
  out = None
  for i in range(kh):
    for j in range(kw):
      start = (0, i * dilation, j * dilation, 0)
      limit = (
        x.shape[0],
        start[1] + (out_h - 1) * strides + 1,
        start[2] + (out_w - 1) * strides + 1,
        channels,
      )
      term = lax.slice(padded, start, limit, (1, strides, strides, 1)) * kernel[i, j, 0]
      out = term if out is None else out + term
  return out


class DepthwiseConv2D(nn.Module):
  """Depthwise kxk convolution without bias (`depthwise_conv2d`); kernel (k, k, 1, C)."""

  kernel_size: int = 3
  strides: int = 1
  dilation: int = 1
  kernel_init: Callable = nn.initializers.he_normal()

  @nn.compact
  def __call__(self, x):
    kernel = self.param(
      "kernel", self.kernel_init, (self.kernel_size, self.kernel_size, 1, x.shape[-1])
    )
    return depthwise_conv2d(x, kernel.astype(x.dtype), self.strides, self.dilation)


class DepthwiseSeparableConv(nn.Module):
  """MobileNet v1 block (Howard et al. 2017, Fig. 3): depthwise k x k conv
  (groups = input channels) + BN + activation, then pointwise 1x1 conv + BN +
  activation.

  Weights: k^d * C_in (depthwise) + C_in * features (pointwise), plus BN's
  scale and shift (2 * C_in + 2 * features) when use_bn, else biases
  (C_in + features). Padding is d * (k - 1) // 2 per side, the symmetric
  padding of PyTorch's MobileNet, so the output size is ceil(in / stride) for
  odd k.
  BatchNorm uses PyTorch's defaults (momentum 0.1, i.e. Flax 0.9; eps 1e-5).
  `activation` is a callable or a name for activations.get.
  """

  features: int
  kernel_size: IntOrSeq = 3
  strides: IntOrSeq = 1
  dilation: IntOrSeq = 1
  use_bn: bool = True
  activation: Union[str, Callable] = activations.relu

  @nn.compact
  def __call__(self, x, train: bool = False):
    act = activations.get(self.activation) if isinstance(self.activation, str) else self.activation
    ndim = _spatial_ndim(self.kernel_size, None, x, "DepthwiseSeparableConv")
    kernels = _per_dim(self.kernel_size, ndim, "kernel_size")
    dilations = _per_dim(self.dilation, ndim, "dilation")
    padding = [d * (k - 1) // 2 for k, d in zip(kernels, dilations)]
    in_channels = x.shape[-1]
    x = Conv(
      in_channels,
      kernels,
      self.strides,
      padding,
      dilations,
      groups=in_channels,
      use_bias=not self.use_bn,
      name="depthwise",
    )(x)
    if self.use_bn:
      x = self._batch_norm(train, "depthwise_bn")(x)
    x = act(x)
    x = PointwiseConv(self.features, use_bias=not self.use_bn, name="pointwise")(x)
    if self.use_bn:
      x = self._batch_norm(train, "pointwise_bn")(x)
    return act(x)

  @staticmethod
  def _batch_norm(train, name):
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class ConvTranspose(nn.Module):
  """Transposed convolution ("deconvolution") with PyTorch's semantics.

  It is the gradient of a strided convolution with respect to its input: it
  upsamples by `strides`. With int / pair padding the output size is PyTorch's
  (in - 1) * s - 2 * p + d * (k - 1) + output_padding + 1 (see
  conv_transpose_output_size); 'SAME' gives in * s and 'VALID' follows
  jax.lax.conv_transpose.

  How: PyTorch's explicit padding p removes p rows from each side of the full
  output, which equals padding the stride-dilated input by d * (k - 1) - p (low)
  and d * (k - 1) - p + output_padding (high) before a stride-1 convolution;
  that is the padding passed to nn.ConvTranspose. transpose_kernel=True makes
  the kernel (k..., features, C_in) the kernel of the forward convolution being
  transposed, so PyTorch's weight (C_in, features, k...) is
  kernel.transpose(n + 1, n, 0, ..., n - 1) for n spatial dims, with no
  spatial flip.
  No groups: nn.ConvTranspose has no feature_group_count.
  """

  features: int
  kernel_size: IntOrSeq
  strides: IntOrSeq = 1
  padding: Padding = "SAME"
  output_padding: IntOrSeq = 0
  dilation: IntOrSeq = 1
  use_bias: bool = True
  ndim: Optional[int] = None
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    ndim = _spatial_ndim(self.kernel_size, self.ndim, x, "ConvTranspose")
    kernels = _positive(_per_dim(self.kernel_size, ndim, "kernel_size"), "kernel_size")
    strides = _positive(_per_dim(self.strides, ndim, "strides"), "strides")
    dilations = _positive(_per_dim(self.dilation, ndim, "dilation"), "dilation")
    extras = _check_output_padding(self.output_padding, self.padding, strides, dilations)
    # Validates the sizes and gives a readable error before XLA would.
    conv_transpose_output_size(x.shape[1:-1], kernels, strides, self.padding, extras, dilations)
    padding = normalize_padding(self.padding, ndim)
    if not isinstance(padding, str):
      padding = tuple(
        (d * (k - 1) - lo, d * (k - 1) - hi + e)
        for (lo, hi), k, d, e in zip(padding, kernels, dilations, extras)
      )
    conv = nn.ConvTranspose(
      self.features,
      kernels,
      strides=strides,
      padding=padding,
      kernel_dilation=dilations,
      use_bias=self.use_bias,
      kernel_init=self.kernel_init,
      bias_init=self.bias_init,
      transpose_kernel=True,
    )
    nn.share_scope(self, conv)  # Keep nn.ConvTranspose's parameter layout.
    return conv(x)
