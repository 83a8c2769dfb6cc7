"""oneDNN's layer norm (dlx/kernels/layer_norm.py) against flax's nn.LayerNorm: values,
gradients of the input, scale and bias, forward mode, second order and vmap, on arrays cut
into pieces (rows and channels off the 16-float grid) and on small ones (one piece)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.kernels import layer_norm
from dlx.kernels import route
from dlx.nn import normalization
from dlx.nn import transformer

EPSILON = 1e-5
SHAPES = [(3, 7), (3, 50, 129), (700, 64)]


def _close(ours, reference, rtol=1e-5):
  scale = max(1.0, float(jnp.max(jnp.abs(reference))))
  np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * scale)


def _inputs(shape):
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  x = 2.0 * jax.random.normal(keys[0], shape) + 1.0
  scale = 1.0 + 0.1 * jax.random.normal(keys[1], shape[-1:])
  bias = 0.1 * jax.random.normal(keys[2], shape[-1:])
  return x, scale, bias


def _flax(x, scale, bias):
  params = {"params": {"scale": scale, "bias": bias}}
  return nn.LayerNorm(epsilon=EPSILON).apply(params, x)


def _loss(norm):
  # Weights along the channels, so that the gradients are not zero by symmetry.
  return lambda x, s, b: jnp.sum(jnp.sin(norm(x, s, b)) * jnp.arange(x.shape[-1]))


def _ours(x, scale, bias):
  return layer_norm.layer_norm(x, scale, bias, EPSILON)


@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_gradients_match_flax(shape, extension):
  x, scale, bias = _inputs(shape)
  with route.use("onednn"):
    assert "dlx_onednn_layer_norm_forward" in str(jax.make_jaxpr(_ours)(x, scale, bias))
    values = jax.jit(_ours)(x, scale, bias)
    grads = jax.jit(jax.grad(_loss(_ours), (0, 1, 2)))(x, scale, bias)
  _close(values, _flax(x, scale, bias))
  for ours, reference in zip(grads, jax.grad(_loss(_flax), (0, 1, 2))(x, scale, bias)):
    _close(ours, reference)


def test_forward_mode_and_second_order_match_flax(extension):
  x, scale, bias = _inputs((6, 40))
  directions = tuple(0.3 * a for a in (x, scale, bias))

  def hvp(norm):
    return jax.jvp(jax.grad(_loss(norm), (0, 1, 2)), (x, scale, bias), directions)[1]

  with route.use("onednn"):
    tangent = jax.jvp(_ours, (x, scale, bias), directions)[1]
    ours = hvp(_ours)
  _close(tangent, jax.jvp(_flax, (x, scale, bias), directions)[1])
  for o, r in zip(ours, hvp(_flax)):
    _close(o, r, rtol=1e-4)  # second derivatives sum more rounded terms


def test_vmap_matches_flax(extension):
  x, scale, bias = _inputs((4, 9, 33))
  scales = jnp.stack([scale, 2 * scale, scale, -scale])
  with route.use("onednn"):
    folded = jax.vmap(jax.grad(lambda x: _loss(_ours)(x, scale, bias)))(x)
    per_example = jax.vmap(_ours, (0, 0, None))(x, scales, bias)
  _close(folded, jax.vmap(jax.grad(lambda x: _loss(_flax)(x, scale, bias)))(x))
  _close(per_example, jax.vmap(_flax, (0, 0, None))(x, scales, bias))


def test_other_dtypes_and_the_xla_route_stay_on_xla(extension):
  x, scale, bias = _inputs((4, 8))
  with route.use("onednn"):
    half = jax.make_jaxpr(_ours)(x.astype(jnp.bfloat16), scale, bias)
    assert "dlx_onednn_layer_norm" not in str(half)
  assert "dlx_onednn_layer_norm" not in str(jax.make_jaxpr(_ours)(x, scale, bias))
  _close(_ours(x, scale, bias), _flax(x, scale, bias))


def test_the_module_has_flax_parameters_and_the_transformer_uses_it_on_the_route(extension):
  x = _inputs((2, 5, 16))[0]
  flax_params = nn.LayerNorm(epsilon=EPSILON).init(jax.random.PRNGKey(0), x)
  ours = normalization.LayerNorm(epsilon=EPSILON)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(0), x)) == jax.tree.map(
    jnp.shape, flax_params
  )
  layer = transformer.EncoderLayer(2, 16, 32, norm="pre")
  params = layer.init(jax.random.PRNGKey(0), x)
  with route.use("onednn"):
    traced = str(jax.make_jaxpr(lambda p: layer.apply(p, x))(params))
    on_route = layer.apply(params, x)
  assert "dlx_onednn_layer_norm_forward" in traced
  _close(on_route, layer.apply(params, x))
