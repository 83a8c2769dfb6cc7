"""oneDNN's softmax (dlx/kernels/softmax.py) against jax.nn.softmax: values, gradients,
forward mode, second order and vmap, with masked (lowest-float) scores as attention
gives them, on arrays cut into pieces and on small ones (one piece)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.kernels import route
from dlx.kernels import softmax

SHAPES = [(3, 5), (5, 3, 70, 129), (2, 4, 64, 64)]


def _close(ours, reference, rtol=1e-5):
  scale = max(1.0, float(jnp.max(jnp.abs(reference))))
  np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * scale)


def _scores(shape):
  x = 3.0 * jax.random.normal(jax.random.PRNGKey(0), shape)
  return x.at[..., : shape[-1] // 4].set(jnp.finfo(jnp.float32).min)  # masked keys


def _loss(fn):
  return lambda x: jnp.sum(jnp.sin(fn(x)) * jnp.arange(x.shape[-1]))


def _reference(x):
  return jax.nn.softmax(x, axis=-1)


@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_gradients_match_xla(shape, extension):
  x = _scores(shape)
  with route.use("onednn"):
    assert "dlx_onednn_softmax_forward" in str(jax.make_jaxpr(softmax.softmax)(x))
    values = jax.jit(softmax.softmax)(x)
    grads = jax.jit(jax.grad(_loss(softmax.softmax)))(x)
  _close(values, _reference(x))
  _close(grads, jax.grad(_loss(_reference))(x))


def test_forward_mode_and_second_order_match_xla(extension):
  x = _scores((4, 6, 33))
  direction = jax.random.normal(jax.random.PRNGKey(1), x.shape)
  with route.use("onednn"):
    tangent = jax.jvp(softmax.softmax, (x,), (direction,))[1]
    hvp = jax.jvp(jax.grad(_loss(softmax.softmax)), (x,), (direction,))[1]
  _close(tangent, jax.jvp(_reference, (x,), (direction,))[1])
  _close(hvp, jax.jvp(jax.grad(_loss(_reference)), (x,), (direction,))[1], rtol=1e-4)


def test_vmap_matches_xla(extension):
  x = _scores((3, 5, 17))
  cotangent = jax.random.normal(jax.random.PRNGKey(2), x.shape)
  with route.use("onednn"):
    mapped = jax.vmap(jax.grad(_loss(softmax.softmax)), in_axes=1, out_axes=1)(x)
    pullback = jax.vmap(lambda x, c: jax.vjp(softmax.softmax, x)[1](c)[0], (1, None), 1)
    pulled = pullback(x, cotangent[:, 0])
  _close(mapped, jax.grad(_loss(_reference))(x))
  reference = jax.vmap(lambda x, c: jax.vjp(_reference, x)[1](c)[0], (1, None), 1)
  _close(pulled, reference(x, cotangent[:, 0]))


def test_other_dtypes_and_the_xla_route_stay_on_xla(extension):
  x = jnp.ones((2, 8))
  with route.use("onednn"):
    assert "dlx_onednn_softmax" not in str(jax.make_jaxpr(softmax.softmax)(x.astype(jnp.bfloat16)))
  assert "dlx_onednn_softmax" not in str(jax.make_jaxpr(softmax.softmax)(x))
