"""oneDNN's matrix products (dlx/kernels/matmul.py) against XLA's: forward, gradients,
forward mode, vmap, dense layers and attention, on shapes that the handler cuts into
pieces by rows, by columns and by whole products (edges off the 16-float grid)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.kernels import matmul
from dlx.kernels import route
from dlx.nn import attention
from dlx.nn.dense import Dense

TOL = dict(rtol=1e-5, atol=1e-5)


def _close(ours, reference):
  """Equal to 1e-5 of the largest entry: sums of many products differ in their last bits
  where the two libraries add in another order."""
  scale = max(1.0, float(jnp.max(jnp.abs(reference))))
  np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5 * scale)


def _operand(key, shape):
  return jax.random.normal(jax.random.PRNGKey(key), shape, jnp.float32)


def _operands(m, k, n, transpose_a, transpose_b, lead=()):
  a = _operand(1, lead + ((k, m) if transpose_a else (m, k)))
  b = _operand(2, lead + ((n, k) if transpose_b else (k, n)))
  return a, b


# (m, k, n, leading dims): small (one piece), tall (cut by rows), wide (cut by columns),
# a batch of products (cut by products, an odd count), sizes off the 16-float grid.
SHAPES = [(5, 7, 3, ()), (300, 64, 40, ()), (24, 96, 330, ()), (37, 29, 45, (7,)), (3, 2, 4, (1,))]
TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]


@pytest.mark.parametrize("m,k,n,lead", SHAPES)
@pytest.mark.parametrize("transpose_a,transpose_b", TRANSPOSES)
def test_forward_and_gradients_match_xla(m, k, n, lead, transpose_a, transpose_b, extension):
  a, b = _operands(m, k, n, transpose_a, transpose_b, lead)

  def loss(product, a, b):
    return jnp.sum(jnp.sin(product(a, b, transpose_a, transpose_b)))

  ours = jax.jit(jax.value_and_grad(lambda a, b: loss(matmul.onednn_matmul, a, b), (0, 1)))
  xla = jax.jit(jax.value_and_grad(lambda a, b: loss(matmul._xla, a, b), (0, 1)))
  (value, grads), (value_ref, grads_ref) = ours(a, b), xla(a, b)
  product = matmul.onednn_matmul(a, b, transpose_a, transpose_b)
  _close(product, matmul._xla(a, b, transpose_a, transpose_b))
  np.testing.assert_allclose(value, value_ref, rtol=1e-4)
  for grad, grad_ref in zip(grads, grads_ref):
    _close(grad, grad_ref)


def test_a_product_of_the_wrong_shapes_is_a_type_error(extension):
  with pytest.raises(TypeError, match="do not multiply"):
    matmul.onednn_matmul(jnp.ones((3, 4)), jnp.ones((5, 6)))


@pytest.mark.parametrize("transpose_a,transpose_b", TRANSPOSES)
def test_forward_mode_and_hessian_vector_products_match_xla(transpose_a, transpose_b, extension):
  a, b = _operands(6, 5, 4, transpose_a, transpose_b)

  def hvp(product):
    grad = jax.grad(lambda b: jnp.sum(jnp.tanh(product(a, b, transpose_a, transpose_b))))
    return jax.jvp(grad, (b,), (jnp.ones_like(b),))[1]

  _close(hvp(matmul.onednn_matmul), hvp(matmul._xla))


def test_vmap_matches_xla(extension):
  a, b = _operand(1, (6, 9, 5)), _operand(2, (5, 4))
  batched_b = _operand(3, (6, 5, 4))
  product = lambda a, b: matmul.onednn_matmul(a, b)
  # a batched, b shared: folded into the rows (one call); both batched: XLA's.
  np.testing.assert_allclose(jax.vmap(product, (0, None))(a, b), a @ b, **TOL)
  np.testing.assert_allclose(jax.vmap(product)(a, batched_b), a @ batched_b, **TOL)
  transposed = jax.vmap(lambda a: matmul.onednn_matmul(a, b, transpose_a=True))
  a_t = jnp.swapaxes(a, 1, 2)
  np.testing.assert_allclose(transposed(a_t), a @ b, **TOL)
  per_example = jax.vmap(jax.grad(lambda a: jnp.sum(product(a[None], b) ** 2)))(a[:, 0])
  np.testing.assert_allclose(per_example, 2 * (a[:, 0] @ b) @ b.T, **TOL)


def _dense_and_params(features, inputs):
  layer = Dense(features)
  return layer, layer.init(jax.random.PRNGKey(0), inputs)


def test_a_dense_layer_runs_on_onednn_on_its_route_only(extension):
  inputs = _operand(1, (4, 33, 48))
  layer, params = _dense_and_params(20, inputs)
  assert "dlx_onednn_matmul" not in str(jax.make_jaxpr(layer.apply)(params, inputs))
  reference = layer.apply(params, inputs)
  with route.use("onednn"):
    assert "dlx_onednn_matmul" in str(jax.make_jaxpr(layer.apply)(params, inputs))
    ours = jax.jit(layer.apply)(params, inputs)
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, inputs) ** 2))(params)
  grads_ref = jax.grad(lambda p: jnp.sum(layer.apply(p, inputs) ** 2))(params)
  _close(ours, reference)
  jax.tree.map(
    lambda g, r: np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-4), grads, grads_ref
  )
  assert isinstance(layer, nn.Dense)  # the same class: names, parameters, isinstance checks


def test_products_oneDNN_does_not_cover_stay_on_xla(extension):
  with route.use("onednn"):
    half = Dense(8, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
    x = jnp.ones((2, 8), jnp.bfloat16)
    params = half.init(jax.random.PRNGKey(0), x)
    assert "dlx_onednn_matmul" not in str(jax.make_jaxpr(half.apply)(params, x))
    batch_dims = (((2,), (1,)), ((0,), (0,)))
    traced = jax.make_jaxpr(lambda a, b: matmul.dot_general(a, b, batch_dims))
    assert "dlx_onednn_matmul" not in str(traced(jnp.ones((2, 3, 4)), jnp.ones((2, 4, 5))))
    mixed = jax.make_jaxpr(matmul.matmul)(jnp.ones((1, 3, 4)), jnp.ones((2, 4, 5)))
    assert "dlx_onednn_matmul" not in str(mixed)


@pytest.mark.parametrize("masked", [False, True])
def test_attention_matches_xla(masked, extension):
  query, key, value = (_operand(i, (3, 17, 4, 8)) for i in range(3))
  mask = attention.causal_mask(17) if masked else None

  def run(q, k, v):
    return jnp.sum(jnp.cos(attention.scaled_dot_product_attention(q, k, v, mask)))

  reference = jax.value_and_grad(run, (0, 1, 2))(query, key, value)
  with route.use("onednn"):
    traced = jax.make_jaxpr(run)(query, key, value)
    ours = jax.jit(jax.value_and_grad(run, (0, 1, 2)))(query, key, value)
  assert str(traced).count("dlx_onednn_matmul") == 2
  jax.tree.map(_close, ours, reference)


def test_attention_broadcasts_leading_dims_as_before(extension):
  query = _operand(1, (2, 5, 6, 2, 4))
  key, value = _operand(2, (5, 7, 2, 4)), _operand(3, (5, 7, 2, 4))
  reference = attention.scaled_dot_product_attention(query, key, value)
  with route.use("onednn"):
    ours = attention.scaled_dot_product_attention(query, key, value)
  assert ours.shape == (2, 5, 6, 2, 4)
  _close(ours, reference)
