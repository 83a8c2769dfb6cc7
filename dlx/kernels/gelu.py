"""`gelu(x, approximate=True)`: jax.nn.gelu, computed by oneDNN's element-wise kernels on
XLA's thread pool when the route (dlx/kernels/route.py) is 'onednn' and x is float32;
XLA's otherwise. XLA:CPU runs an element-wise loop on one thread: in the Transformer
block's step its GELU and the GELU's derivative were 10-12 ms (benchmarks/README.md).

Two JAX primitives lowered to cpu/onednn_gelu.cc: y = gelu(x) and dx = gelu_grad(x, dy) =
dy * gelu'(x), which is linear in dy and its own transpose (a diagonal). gelu's JVP is
gelu_grad; gelu_grad's JVP in x (second order: Hessians) is XLA's formula for gelu''.
Both are element-wise, so vmap maps them as they are.
"""

import functools

import jax
from jax.interpreters import ad
from jax.interpreters import batching
import jax.numpy as jnp

from dlx.kernels import primitive
from dlx.kernels import route


def gelu(x, approximate: bool = True):
  """jax.nn.gelu(x, approximate), through oneDNN where the route and the dtype allow."""
  x = jnp.asarray(x)
  if route.current() != "onednn" or x.dtype != jnp.float32 or x.size == 0:
    return jax.nn.gelu(x, approximate=approximate)
  return _gelu_p.bind(x, approximate=bool(approximate))


def _xla_grad(x, dy, approximate):
  """dy * gelu'(x) by XLA (the second-order rule's reference)."""
  return jax.vjp(functools.partial(jax.nn.gelu, approximate=approximate), x)[1](dy)[0]


def _gelu_jvp(primals, tangents, *, approximate):
  (x,), (t,) = primals, tangents
  y = _gelu_p.bind(x, approximate=approximate)
  t = ad.instantiate_zeros(t)
  return y, _gelu_grad_p.bind(x, t, approximate=approximate)


def _gelu_grad_jvp(primals, tangents, *, approximate):
  (x, dy), (tx, tdy) = primals, tangents
  out = _gelu_grad_p.bind(x, dy, approximate=approximate)
  tangent = jnp.zeros_like(out)
  if type(tdy) is not ad.Zero:
    tangent = tangent + _gelu_grad_p.bind(x, tdy, approximate=approximate)
  if type(tx) is not ad.Zero:  # d/dx of dy * gelu'(x), through XLA's formula
    tangent = tangent + jax.jvp(lambda x: _xla_grad(x, dy, approximate), (x,), (tx,))[1]
  return out, tangent


def _gelu_grad_transpose(ct, x, dy, *, approximate):
  assert not ad.is_undefined_primal(x) and ad.is_undefined_primal(dy)
  ct = ad.instantiate_zeros(ct)
  return None, _gelu_grad_p.bind(x, ct, approximate=approximate)


_gelu_p = primitive.define(
  "dlx_onednn_gelu_forward", lambda x, **_: jax.core.ShapedArray(x.shape, x.dtype)
)
_gelu_grad_p = primitive.define(
  "dlx_onednn_gelu_backward", lambda x, dy, **_: jax.core.ShapedArray(x.shape, x.dtype)
)
ad.primitive_jvps[_gelu_p] = _gelu_jvp
ad.primitive_jvps[_gelu_grad_p] = _gelu_grad_jvp
ad.primitive_transposes[_gelu_grad_p] = _gelu_grad_transpose
batching.defvectorized(_gelu_p)
batching.defbroadcasting(_gelu_grad_p)
