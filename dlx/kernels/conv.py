"""`conv_general_dilated`: lax.conv_general_dilated's signature, computed by oneDNN when the
route (dlx/kernels/route.py) is 'onednn' and the convolution is one it covers; XLA's
otherwise. Covered: 1-D and 2-D, channels-last (NWC/NHWC inputs, WIO/HWIO kernels, the
layout of flax's nn.Conv), float32 (and bfloat16 where this CPU has oneDNN's bfloat16
kernels: AVX-512), any stride, explicit or SAME/VALID padding (>= 0),
kernel dilation and feature groups (depthwise included). Not covered, so XLA's: input
(lhs) dilation, batch groups, other dtypes and layouts, 3-D, empty arrays.

`onednn_conv` binds three JAX primitives lowered to the FFI handlers of cpu/onednn_conv.cc
(forward, input gradient, kernel gradient), with JVP, transpose and batching rules: jit,
grad, gradients of gradients, jax.jvp and vmap all run on oneDNN. (A jax.custom_vjp
around ffi_call would refuse jax.jvp, which dlx.ops.hessian's Hessian-vector products
take.) Under vmap the batch becomes a leading dimension; when the kernel is not batched
the handler folds it into N: one oneDNN call.
"""

import functools

import jax
from jax import lax
from jax.interpreters import ad
from jax.interpreters import batching
import jax.numpy as jnp
import numpy as np

from dlx.kernels import onednn
from dlx.kernels import primitive
from dlx.kernels import route


def _spec(ndim):
  return {3: ("NWC", "WIO", "NWC"), 4: ("NHWC", "HWIO", "NHWC")}.get(ndim)


def _channels_last(lhs, rhs, dimension_numbers):
  spec = _spec(lhs.ndim)
  if spec is None or rhs.ndim != lhs.ndim:
    return False
  ours = lax.conv_dimension_numbers(lhs.shape, rhs.shape, spec)
  theirs = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  return ours == theirs


def _pads(lhs, rhs, window_strides, padding, rhs_dilation):
  """Explicit (low, high) pairs; SAME/VALID resolved as lax does."""
  if isinstance(padding, str):
    dilated = [(k - 1) * d + 1 for k, d in zip(rhs.shape[:-2], rhs_dilation)]
    return tuple(lax.padtype_to_pads(lhs.shape[1:-1], dilated, window_strides, padding))
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _covered(
  lhs, rhs, window_strides, pads, lhs_dilation, groups, batch_group_count, preferred_element_type
):
  if rhs.dtype != lhs.dtype:
    return False
  if lhs.dtype != jnp.float32 and not (lhs.dtype == jnp.bfloat16 and onednn.supports_bfloat16()):
    return False
  if preferred_element_type is not None and jnp.dtype(preferred_element_type) != lhs.dtype:
    return False
  if lhs_dilation is not None and any(d != 1 for d in lhs_dilation):
    return False
  if batch_group_count != 1 or min(lhs.shape) == 0 or min(rhs.shape) == 0:
    return False
  if rhs.shape[-2] * groups != lhs.shape[-1] or rhs.shape[-1] % groups:
    return False
  return all(lo >= 0 and hi >= 0 for lo, hi in pads) and all(s >= 1 for s in window_strides)


def conv_general_dilated(
  lhs,
  rhs,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count=1,
  batch_group_count=1,
  precision=None,
  preferred_element_type=None,
):
  """lax.conv_general_dilated, through oneDNN where the route and the arguments allow
  (flax's nn.Conv takes it as `conv_general_dilated`)."""
  xla = functools.partial(
    lax.conv_general_dilated,
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=lhs_dilation,
    rhs_dilation=rhs_dilation,
    dimension_numbers=dimension_numbers,
    feature_group_count=feature_group_count,
    batch_group_count=batch_group_count,
    precision=precision,
    preferred_element_type=preferred_element_type,
  )
  if route.current() != "onednn" or not _channels_last(lhs, rhs, dimension_numbers):
    return xla()
  spatial = lhs.ndim - 2
  strides = tuple(int(s) for s in window_strides)
  dilation = tuple(int(d) for d in (rhs_dilation or (1,) * spatial))
  pads = _pads(lhs, rhs, strides, padding, dilation)
  if not _covered(
    lhs,
    rhs,
    strides,
    pads,
    lhs_dilation,
    feature_group_count,
    batch_group_count,
    preferred_element_type,
  ):
    return xla()
  sizes = zip(lhs.shape[1:-1], rhs.shape[:-2], strides, pads, dilation)
  if any(_out_size(n, k, s, p, d) < 1 for n, k, s, p, d in sizes):
    return xla()  # a kernel larger than the padded input: XLA's own error
  return onednn_conv(lhs, rhs, strides, pads, dilation, int(feature_group_count))


def _out_size(n, k, s, pad, d):
  return (n + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def onednn_conv(x, w, strides, pads, dilation, groups=1):
  """A channels-last 1-D or 2-D convolution by oneDNN. x (N, [H,] W, C); w ([KH,] KW,
  C / groups, O); strides, dilation: one int per spatial dim; pads: (low, high) pairs."""
  if x.ndim == 3:  # 1-D: a 2-D convolution over one row
    conf = _normal(((1, *strides), ((0, 0), *pads), (1, *dilation), groups))
    return _forward(x[:, None], w[None], conf)[:, 0]
  return _forward(x, w, _normal((strides, pads, dilation, groups)))


def _normal(conf):
  """(strides, pads, dilation, groups) as hashable ints: a static parameter."""
  strides, pads, dilation, groups = conf
  pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  return tuple(map(int, strides)), pads, tuple(map(int, dilation)), int(groups)


# Three JAX primitives, one per FFI handler: y = forward(x, w), dx = backward_data(dy, w)
# and dw = backward_weights(x, dy). Each is bilinear and its transposes are the other two
# (as for lax's own convolution), so reverse mode, forward mode (jax.jvp: a Hessian-vector
# product) and gradients of gradients all stay on oneDNN. Arguments may carry the same
# number of leading (vmap) dims, each 1 or the batch size; the handler broadcasts them.
def _forward(x, w, conf):
  strides, pads, dilation, _ = conf
  sizes = zip(x.shape[-3:-1], w.shape[-4:-2], strides, pads, dilation)
  out = [_out_size(n, k, s, p, d) for n, k, s, p, d in sizes]
  return _forward_p.bind(x, w, shape=(x.shape[-4], *out, w.shape[-1]), conf=conf)


def _lead(a, b):
  return tuple(max(i, j) for i, j in zip(a.shape[:-4], b.shape[:-4]))


def _abstract(a, b, *, shape, conf):
  del conf
  return jax.core.ShapedArray(_lead(a, b) + shape, a.dtype)


def _lowering(target):
  rule = jax.ffi.ffi_lowering(target)

  def lower(ctx, a, b, *, shape, conf):
    del shape
    strides, pads, dilation, groups = conf
    return rule(
      ctx,
      a,
      b,
      strides=np.asarray(strides, np.int64),
      pad_lo=np.asarray([lo for lo, _ in pads], np.int64),
      pad_hi=np.asarray([hi for _, hi in pads], np.int64),
      dilation=np.asarray(dilation, np.int64),
      groups=np.int64(groups),
    )

  return lower


def _batch(primitive):
  def rule(args, dims, *, shape, conf):
    moved = [
      jnp.expand_dims(x, 0) if d is None else jnp.moveaxis(x, d, 0) for x, d in zip(args, dims)
    ]
    return primitive.bind(*moved, shape=shape, conf=conf), 0

  return rule


def _unbroadcast(value, aval):
  """`value` summed over the leading dims that `aval` (the primal) had as 1."""
  axes = tuple(i for i, n in enumerate(aval.shape[:-4]) if n == 1 and value.shape[i] != 1)
  return jnp.sum(value, axis=axes, keepdims=True) if axes else value


def _define(name):
  prim = primitive.define(name, _abstract, lowering=_lowering(name))
  batching.primitive_batchers[prim] = _batch(prim)
  return prim


_forward_p = _define("dlx_onednn_conv_forward")
_backward_data_p = _define("dlx_onednn_conv_backward_data")
_backward_weights_p = _define("dlx_onednn_conv_backward_weights")


def _trailing(aval):
  return tuple(aval.shape[-4:])


# Transposes: <forward(x, w), dy> = <x, backward_data(dy, w)> = <w, backward_weights(x, dy)>.
def _transpose(primitive, undefined_index, cotangent_first):
  """The transpose rule that gives the undefined argument's cotangent by `primitive`,
  called with the cotangent and the known argument (in that order or the other)."""

  def rule(ct, a, b, *, shape, conf):
    del shape
    undefined, known = (a, b) if undefined_index == 0 else (b, a)
    args = (ct, known) if cotangent_first else (known, ct)
    aval = undefined.aval
    return _unbroadcast(primitive.bind(*args, shape=_trailing(aval), conf=conf), aval)

  return rule


ad.defbilinear(
  _forward_p, _transpose(_backward_data_p, 0, True), _transpose(_backward_weights_p, 1, False)
)
ad.defbilinear(
  _backward_data_p, _transpose(_forward_p, 0, True), _transpose(_backward_weights_p, 1, True)
)
ad.defbilinear(
  _backward_weights_p, _transpose(_backward_data_p, 0, False), _transpose(_forward_p, 1, False)
)
