"""`layer_norm(x, scale, bias, epsilon)`: layer normalization over the last axis,
(x - mean) / sqrt(var + epsilon) * scale + bias, computed by oneDNN on XLA's thread pool
when the route (dlx/kernels/route.py) is 'onednn' and everything is float32; by XLA
otherwise. In the Transformer block's step XLA's layer norms took 18 ms of 186 and in
nanoGPT's 9 of 54 (benchmarks/README.md): single-threaded loops and materialised
broadcasts.

Three JAX primitives:
  forward(x, scale, bias) -> (y, mean, var)  oneDNN (cpu/onednn_layer_norm.cc);
  tangent(x, mean, var, scale, tx, tscale, tbias) -> ty  the JVP, linear in the last three
      (XLA's formula when evaluated: forward mode);
  backward(x, mean, var, scale, dy) -> (dx, dscale, dbias)  oneDNN; the tangent's transpose.
So reverse mode runs on oneDNN; forward mode and second derivatives use XLA's formulas
for the JVP and for the backward's JVP. Under vmap a batched x alone folds into the rows;
other batched cases take XLA's formulas.
"""

import functools

import jax
from jax.interpreters import ad
from jax.interpreters import batching
from jax.interpreters import mlir
import jax.numpy as jnp
import numpy as np

from dlx.kernels import primitive
from dlx.kernels import route


def layer_norm(x, scale, bias, epsilon: float = 1e-5):
  """Normalizes x over its last axis, then scales and shifts (scale, bias: (C,))."""
  x, scale, bias = jnp.asarray(x), jnp.asarray(scale), jnp.asarray(bias)
  channels = x.shape[-1] if x.ndim else 0
  if (
    route.current() != "onednn"
    or any(a.dtype != jnp.float32 for a in (x, scale, bias))
    or scale.shape != (channels,)
    or bias.shape != (channels,)
    or x.size == 0
  ):
    return _reference(x, scale, bias, epsilon)
  y, _, _ = _forward_p.bind(x.reshape(-1, channels), scale, bias, epsilon=float(epsilon))
  return y.reshape(x.shape)


def _statistics(x):
  mean = jnp.mean(x, axis=-1)
  return mean, jnp.mean(jnp.square(x - mean[..., None]), axis=-1)


def _reference(x, scale, bias, epsilon):
  """XLA's: statistics in float32 at least, the result in the inputs' promoted dtype (as
  flax's nn.LayerNorm)."""
  dtype = jnp.result_type(x, scale, bias)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean, var = _statistics(x)
  y = (x - mean[..., None]) * jax.lax.rsqrt(var + epsilon)[..., None] * scale + bias
  return y.astype(dtype)


def _forward_formula(x, scale, bias, *, epsilon):
  mean, var = _statistics(x)
  return _reference(x, scale, bias, epsilon), mean, var


def _tangent_formula(x, mean, var, scale, tx, tscale, tbias, *, epsilon):
  rstd = jax.lax.rsqrt(var + epsilon)[..., None]
  xhat = (x - mean[..., None]) * rstd
  centred = tx - jnp.mean(tx, axis=-1, keepdims=True)
  dxhat = rstd * (centred - xhat * jnp.mean(tx * xhat, axis=-1, keepdims=True))
  return dxhat * scale + xhat * tscale + tbias


def _backward_formula(x, mean, var, scale, dy, *, epsilon):
  rstd = jax.lax.rsqrt(var + epsilon)[..., None]
  xhat = (x - mean[..., None]) * rstd
  g = dy * scale
  mean_g = jnp.mean(g, axis=-1, keepdims=True)
  dx = rstd * (g - mean_g - xhat * jnp.mean(g * xhat, axis=-1, keepdims=True))
  axes = tuple(range(x.ndim - 1))
  return dx, jnp.sum(dy * xhat, axis=axes), jnp.sum(dy, axis=axes)


def _forward_jvp(primals, tangents, *, epsilon):
  x, scale, bias = primals
  tx, tscale, tbias = (ad.instantiate_zeros(t) for t in tangents)
  y, mean, var = _forward_p.bind(x, scale, bias, epsilon=epsilon)
  ty = _tangent_p.bind(x, mean, var, scale, tx, tscale, tbias, epsilon=epsilon)
  # mean and var are the backward pass's inputs; their tangents matter to second order.
  tmean = jnp.mean(tx, axis=-1)
  tvar = 2.0 * jnp.mean((x - mean[:, None]) * tx, axis=-1)
  return (y, mean, var), (ty, tmean, tvar)


def _tangent_transpose(ct, x, mean, var, scale, tx, tscale, tbias, *, epsilon):
  for known in (x, mean, var, scale):
    assert not ad.is_undefined_primal(known)
  ct = ad.instantiate_zeros(ct)
  dx, dscale, dbias = _backward_p.bind(x, mean, var, scale, ct, epsilon=epsilon)
  wanted = [ad.is_undefined_primal(t) for t in (tx, tscale, tbias)]
  return [None] * 4 + [g if w else None for g, w in zip((dx, dscale, dbias), wanted)]


def _formula_jvp(formula):
  def rule(primals, tangents, *, epsilon):
    tangents = tuple(ad.instantiate_zeros(t) for t in tangents)
    return jax.jvp(functools.partial(formula, epsilon=epsilon), tuple(primals), tangents)

  return rule


def _formula_batch(formula):
  """vmap by XLA's formula: correct for every batching, at XLA's speed."""

  def rule(args, dims, *, epsilon):
    out = jax.vmap(functools.partial(formula, epsilon=epsilon), in_axes=dims)(*args)
    return out, jax.tree.map(lambda _: 0, out)

  return rule


def _forward_batch(args, dims, *, epsilon):
  (x, scale, bias), (dx, dscale, dbias) = args, dims
  if dscale is not None or dbias is not None:
    return _formula_batch(_forward_formula)(args, dims, epsilon=epsilon)
  x = jnp.moveaxis(x, dx, 0)
  y, mean, var = _forward_p.bind(x.reshape(-1, x.shape[-1]), scale, bias, epsilon=epsilon)
  return (y.reshape(x.shape), mean.reshape(x.shape[:2]), var.reshape(x.shape[:2])), (0, 0, 0)


def _ffi_lowering(name):
  rule = jax.ffi.ffi_lowering(name)

  def lowering(ctx, *args, epsilon):
    return rule(ctx, *args, epsilon=np.float32(epsilon))  # the handler's float attribute

  return lowering


def _shaped(*arrays):
  return [jax.core.ShapedArray(a.shape, a.dtype) for a in arrays]


_forward_p = primitive.define(
  "dlx_onednn_layer_norm_forward",
  lambda x, scale, bias, **_: _shaped(x, x.update(shape=x.shape[:1]), x.update(shape=x.shape[:1])),
  lowering=_ffi_lowering("dlx_onednn_layer_norm_forward"),
  multiple_results=True,
)
_tangent_p = primitive.define(
  "dlx_layer_norm_tangent",
  primitive.like_first,
  lowering=mlir.lower_fun(_tangent_formula, multiple_results=False),
)
_backward_p = primitive.define(
  "dlx_onednn_layer_norm_backward",
  lambda x, mean, var, scale, dy, **_: _shaped(x, scale, scale),
  lowering=_ffi_lowering("dlx_onednn_layer_norm_backward"),
  multiple_results=True,
)

ad.primitive_jvps[_forward_p] = _forward_jvp
ad.primitive_jvps[_tangent_p] = _formula_jvp(_tangent_formula)
ad.primitive_transposes[_tangent_p] = _tangent_transpose
ad.primitive_jvps[_backward_p] = _formula_jvp(_backward_formula)
batching.primitive_batchers[_forward_p] = _forward_batch
batching.primitive_batchers[_tangent_p] = _formula_batch(_tangent_formula)
batching.primitive_batchers[_backward_p] = _formula_batch(_backward_formula)
