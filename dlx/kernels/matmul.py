"""`dot_general`: lax.dot_general's signature, computed by oneDNN's sgemm when the route
(dlx/kernels/route.py) is 'onednn' and the product is a dense layer's: float32
`inputs (..., K) @ kernel (K, N)` with no batch dimensions (flax's nn.Dense takes it as
`dot_general`). XLA's otherwise.

`matmul(a, b, transpose_a, transpose_b)`: batched products (attention's scores and
weighted values), oneDNN's on the same route for float32, XLA's otherwise.

`onednn_matmul` binds one JAX primitive, c = op(a) @ op(b) with op a transpose or not
(of matrices, or of a batch of them), lowered to cpu/onednn_matmul.cc. It is bilinear and
both of its transposes are products of the same kind (dx = dy @ w^T, dw = x^T @ dy), so
reverse mode, jax.jvp and gradients of gradients all stay on oneDNN, and no transposed
copy of an operand is made. Under vmap a batched `a` folds into the rows (one call);
other batched cases go to XLA's matmul.
"""

import functools

import jax
from jax import lax
from jax.interpreters import ad
from jax.interpreters import batching
import jax.numpy as jnp

from dlx.kernels import primitive
from dlx.kernels import route


def _dense_layer_product(lhs, rhs, dimension_numbers, preferred_element_type):
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
  if lhs_batch or rhs_batch or rhs.ndim != 2 or lhs.ndim < 1:
    return False
  if tuple(lhs_contract) != (lhs.ndim - 1,) or tuple(rhs_contract) != (0,):
    return False
  if lhs.dtype != jnp.float32 or rhs.dtype != jnp.float32:
    return False
  if preferred_element_type is not None and jnp.dtype(preferred_element_type) != jnp.float32:
    return False
  return min(lhs.shape) > 0 and min(rhs.shape) > 0


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, **kw):
  """lax.dot_general, through oneDNN where the route and the arguments allow."""
  if (
    route.current() != "onednn"
    or kw
    or not _dense_layer_product(lhs, rhs, dimension_numbers, preferred_element_type)
  ):
    return lax.dot_general(
      lhs,
      rhs,
      dimension_numbers,
      precision=precision,
      preferred_element_type=preferred_element_type,
      **kw,
    )
  rows = lhs.reshape(-1, lhs.shape[-1])
  return onednn_matmul(rows, rhs).reshape(lhs.shape[:-1] + rhs.shape[-1:])


def matmul(a, b, transpose_a=False, transpose_b=False):
  """op(a) @ op(b) over the last two dims, with the same leading (batch) dims on both:
  oneDNN on its route for float32, XLA's matmul otherwise."""
  if (
    route.current() != "onednn"
    or a.dtype != jnp.float32
    or b.dtype != jnp.float32
    or a.ndim < 2
    or a.shape[:-2] != b.shape[:-2]
    or min(a.shape + b.shape) == 0
  ):
    return _xla(a, b, transpose_a, transpose_b)
  lead = a.shape[:-2]
  a3, b3 = a.reshape((-1,) + a.shape[-2:]), b.reshape((-1,) + b.shape[-2:])
  out = onednn_matmul(a3, b3, transpose_a, transpose_b)
  return out.reshape(lead + out.shape[-2:])


def onednn_matmul(a, b, transpose_a=False, transpose_b=False):
  """op(a) @ op(b) for float32 matrices, or batches of them (rank 3), by oneDNN's sgemm."""
  return _matmul_p.bind(a, b, transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))


def _abstract(a, b, *, transpose_a, transpose_b):
  k_a = a.shape[-2] if transpose_a else a.shape[-1]
  k_b = b.shape[-1] if transpose_b else b.shape[-2]
  if a.ndim not in (2, 3) or b.ndim != a.ndim or a.shape[:-2] != b.shape[:-2] or k_a != k_b:
    raise TypeError(f"onednn_matmul: shapes {a.shape} and {b.shape} do not multiply")
  m = a.shape[-1] if transpose_a else a.shape[-2]
  n = b.shape[-2] if transpose_b else b.shape[-1]
  return jax.core.ShapedArray(a.shape[:-2] + (m, n), a.dtype)


def _xla(a, b, transpose_a, transpose_b):
  t = lambda x, flag: jnp.swapaxes(x, -1, -2) if flag else x
  return jnp.matmul(t(a, transpose_a), t(b, transpose_b))


def _batch(args, dims, *, transpose_a, transpose_b):
  (a, b), (da, db) = args, dims
  if db is None and not transpose_a and a.ndim == 3:
    a = jnp.moveaxis(a, da, 0)
    rows = _matmul_p.bind(a.reshape(-1, a.shape[-1]), b, transpose_a=False, transpose_b=transpose_b)
    return rows.reshape(a.shape[:2] + rows.shape[-1:]), 0
  # Batched weights (per-example products): XLA's batched matmul.
  a = a if da is None else jnp.moveaxis(a, da, 0)
  b = b if db is None else jnp.moveaxis(b, db, 0)
  fn = functools.partial(_xla, transpose_a=transpose_a, transpose_b=transpose_b)
  return jax.vmap(fn, in_axes=(None if da is None else 0, None if db is None else 0))(a, b), 0


# Transposes of c = op_a(a) @ op_b(b) with cotangent g (each again one product):
#   a: g @ op_b(b)^T, or its transpose op_b(b) @ g^T when a is stored transposed;
#   b: op_a(a)^T @ g, or its transpose g^T @ op_a(a) when b is stored transposed.
def _transpose_a(g, a, b, *, transpose_a, transpose_b):
  del a
  if transpose_a:
    return _matmul_p.bind(b, g, transpose_a=transpose_b, transpose_b=True)
  return _matmul_p.bind(g, b, transpose_a=False, transpose_b=not transpose_b)


def _transpose_b(g, a, b, *, transpose_a, transpose_b):
  del b
  if transpose_b:
    return _matmul_p.bind(g, a, transpose_a=True, transpose_b=transpose_a)
  return _matmul_p.bind(a, g, transpose_a=not transpose_a, transpose_b=False)


_matmul_p = primitive.define("dlx_onednn_matmul", _abstract)
batching.primitive_batchers[_matmul_p] = _batch
ad.defbilinear(_matmul_p, _transpose_a, _transpose_b)
