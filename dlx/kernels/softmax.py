"""`softmax(x)`: jax.nn.softmax over the last axis, computed by oneDNN on XLA's thread pool
when the route (dlx/kernels/route.py) is 'onednn' and x is float32; XLA's otherwise.
Attention's weights take it (dlx.nn.attention): in the Transformer block's step XLA's
softmax and masks took 9.5 of 158 ms, in nanoGPT's 4.7 of 46 (benchmarks/README.md).

Two JAX primitives lowered to cpu/onednn_softmax.cc: y = softmax(x) and
dx = softmax_grad(y, dy) = y * (dy - sum(dy * y)), linear in dy and its own transpose
(the Jacobian is symmetric). softmax's JVP is softmax_grad at its output; softmax_grad's
JVP in y (second order) is XLA's formula. Rows are independent, so vmap maps them as
they are.
"""

import jax
from jax.interpreters import ad
from jax.interpreters import batching
import jax.numpy as jnp

from dlx.kernels import primitive
from dlx.kernels import route


def softmax(x):
  """jax.nn.softmax(x, axis=-1), through oneDNN where the route and the dtype allow."""
  x = jnp.asarray(x)
  if route.current() != "onednn" or x.dtype != jnp.float32 or x.ndim == 0 or x.size == 0:
    return jax.nn.softmax(x, axis=-1)
  return _softmax_p.bind(x)


def _grad_formula(y, dy):
  return y * (dy - jnp.sum(dy * y, axis=-1, keepdims=True))


def _softmax_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = _softmax_p.bind(x)
  return y, _grad_p.bind(y, ad.instantiate_zeros(t))


def _grad_jvp(primals, tangents):
  tangents = tuple(ad.instantiate_zeros(t) for t in tangents)
  out = _grad_p.bind(*primals)
  # Linear in dy (the same product again); the y part by XLA's formula.
  return out, _grad_p.bind(primals[0], tangents[1]) + jax.jvp(
    lambda y: _grad_formula(y, primals[1]), (primals[0],), (tangents[0],)
  )[1]


def _grad_transpose(ct, y, dy):
  assert not ad.is_undefined_primal(y) and ad.is_undefined_primal(dy)
  return None, _grad_p.bind(y, ad.instantiate_zeros(ct))


def _batch(prim):
  """Every row is independent: move the batch axis first and keep the last axis last."""

  def rule(args, dims):
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    moved = [
      jnp.broadcast_to(a, (size,) + a.shape) if d is None else jnp.moveaxis(a, d, 0)
      for a, d in zip(args, dims)
    ]
    return prim.bind(*moved), 0

  return rule


_softmax_p = primitive.define(
  "dlx_onednn_softmax_forward", lambda x: jax.core.ShapedArray(x.shape, x.dtype)
)
_grad_p = primitive.define(
  "dlx_onednn_softmax_backward", lambda y, dy: jax.core.ShapedArray(y.shape, y.dtype)
)
ad.primitive_jvps[_softmax_p] = _softmax_jvp
ad.primitive_jvps[_grad_p] = _grad_jvp
ad.primitive_transposes[_grad_p] = _grad_transpose
batching.primitive_batchers[_softmax_p] = _batch(_softmax_p)
batching.primitive_batchers[_grad_p] = _batch(_grad_p)
