"""oneDNN's GELU (dlx/kernels/gelu.py) against jax.nn.gelu: values, gradients, forward
mode, second order and vmap, for the tanh approximation and the erf form, on arrays cut
into pieces (sizes off the 16-float grid) and on small ones (one piece)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.kernels import gelu
from dlx.kernels import route
from dlx.nn import transformer

SHAPES = [(7,), (3, 70001), (2, 4, 129)]


def _close(ours, reference, rtol=1e-5):
  scale = max(1.0, float(jnp.max(jnp.abs(reference))))
  np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * scale)


def _inputs(shape):
  return 3.0 * jax.random.normal(jax.random.PRNGKey(0), shape, jnp.float32)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("approximate", [True, False])
def test_values_and_gradients_match_xla(shape, approximate, extension):
  x = _inputs(shape)

  def loss(fn, x):
    return jnp.sum(jnp.sin(fn(x, approximate=approximate)))

  with route.use("onednn"):
    assert "dlx_onednn_gelu" in str(jax.make_jaxpr(lambda x: gelu.gelu(x, approximate))(x))
    values = jax.jit(lambda x: gelu.gelu(x, approximate))(x)
    grads = jax.jit(jax.grad(lambda x: loss(gelu.gelu, x)))(x)
  _close(values, jax.nn.gelu(x, approximate=approximate))
  _close(grads, jax.grad(lambda x: loss(jax.nn.gelu, x))(x))


@pytest.mark.parametrize("approximate", [True, False])
def test_forward_mode_and_second_order_match_xla(approximate, extension):
  x = _inputs((5, 33))
  direction = jax.random.normal(jax.random.PRNGKey(1), x.shape)

  def hvp(fn):
    grad = jax.grad(lambda x: jnp.sum(jnp.cos(fn(x, approximate=approximate))))
    return jax.jvp(grad, (x,), (direction,))[1]

  with route.use("onednn"):
    ours = hvp(gelu.gelu)
    tangent = jax.jvp(lambda x: gelu.gelu(x, approximate), (x,), (direction,))[1]
  reference = jax.jvp(lambda x: jax.nn.gelu(x, approximate), (x,), (direction,))[1]
  _close(tangent, reference)
  _close(ours, hvp(jax.nn.gelu), rtol=1e-4)  # gelu'' sums more rounded terms


def test_vmap_matches_xla(extension):
  x = _inputs((4, 6, 9))
  with route.use("onednn"):
    mapped = jax.vmap(jax.grad(lambda row: jnp.sum(gelu.gelu(row) ** 2)))(x)
  _close(mapped, jax.vmap(jax.grad(lambda row: jnp.sum(jax.nn.gelu(row) ** 2)))(x))


def test_other_dtypes_and_the_xla_route_stay_on_xla(extension):
  half = jnp.ones((4,), jnp.bfloat16)
  with route.use("onednn"):
    assert "dlx_onednn_gelu" not in str(jax.make_jaxpr(gelu.gelu)(half))
  assert "dlx_onednn_gelu" not in str(jax.make_jaxpr(gelu.gelu)(jnp.ones((4,))))


def test_the_transformer_gelus_are_oneDNN_on_its_route(extension):
  x = _inputs((2, 8))
  for name, approximate in (("gelu", True), ("gelu_exact", False)):
    with route.use("onednn"):
      traced = jax.make_jaxpr(transformer.ACTIVATIONS[name])(x)
      ours = transformer.ACTIVATIONS[name](x)
    assert "dlx_onednn_gelu_forward" in str(traced)
    _close(ours, jax.nn.gelu(x, approximate=approximate))
