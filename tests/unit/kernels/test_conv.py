"""dlx.kernels.conv against lax.conv_general_dilated: forward and both gradients, 1-D and
2-D, strides, paddings, dilations and groups, under jit, grad and vmap."""

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.kernels import conv
from dlx.kernels import onednn
from dlx.kernels import route

SPECS = {3: ("NWC", "WIO", "NWC"), 4: ("NHWC", "HWIO", "NHWC")}
# (x shape, kernel shape, strides, padding, dilation, groups)
CASES = [
  ((2, 9, 10, 4), (3, 3, 4, 6), (1, 1), "SAME", (1, 1), 1),
  ((2, 9, 10, 4), (3, 3, 4, 6), (2, 2), "SAME", (1, 1), 1),
  ((2, 9, 10, 4), (3, 2, 4, 5), (1, 2), "VALID", (1, 1), 1),
  ((2, 9, 10, 4), (3, 2, 2, 6), (2, 1), ((1, 2), (0, 1)), (2, 1), 2),
  ((2, 11, 11, 3), (3, 3, 3, 8), (1, 1), ((2, 2), (2, 2)), (2, 2), 1),
  ((3, 8, 8, 6), (3, 3, 1, 6), (1, 1), "SAME", (1, 1), 6),  # depthwise
  ((3, 8, 8, 6), (3, 3, 1, 12), (2, 2), "SAME", (1, 1), 6),  # depthwise, multiplier 2
  ((2, 32, 32, 1), (5, 5, 1, 6), (1, 1), "VALID", (1, 1), 1),  # LeNet-5 conv1
  ((2, 14, 14, 6), (5, 5, 6, 16), (1, 1), "VALID", (1, 1), 1),  # LeNet-5 conv2
  ((2, 7, 7, 8), (1, 1, 8, 16), (2, 2), "VALID", (1, 1), 1),  # ResNet shortcut
  ((2, 17, 5), (4, 5, 8), (2,), "VALID", (2,), 1),  # 1-D
  ((2, 16, 6), (3, 1, 6), (1,), ((2, 0),), (1,), 6),  # 1-D depthwise, causal padding
  ((2, 16, 4), (5, 4, 4), (3,), "SAME", (1,), 1),
]


def _ids(case):
  x, w, s, p, d, g = case
  return f"x{'x'.join(map(str, x))}-k{'x'.join(map(str, w[:-2]))}-s{s}-p{p}-d{d}-g{g}"


def _xla(x, w, s, p, d, g):
  spec = SPECS[x.ndim]
  return lax.conv_general_dilated(
    x, w, s, p, rhs_dilation=d, dimension_numbers=spec, feature_group_count=g
  )


def _ours(x, w, s, p, d, g):
  spec = SPECS[x.ndim]
  return conv.conv_general_dilated(
    x, w, s, p, rhs_dilation=d, dimension_numbers=spec, feature_group_count=g
  )


def _close(actual, expected):
  """rtol 1e-5, and an atol at 1e-5 of the largest entry (a sum of many products)."""
  expected = np.asarray(expected)
  scale = max(float(np.max(np.abs(expected))), 1.0)
  np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5, atol=1e-5 * scale)


def _inputs(case, seed=0):
  xs, ws = case[:2]
  kx, kw = jax.random.split(jax.random.PRNGKey(seed))
  return jax.random.normal(kx, xs), jax.random.normal(kw, ws)


def _has_ffi_call(fn, *args):
  return "dlx_onednn_conv" in str(jax.make_jaxpr(fn)(*args))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_forward_and_gradients_match_xla(case, extension):
  x, w = _inputs(case)
  params = case[2:]

  def loss(fn):
    return lambda x, w: jnp.sum(jnp.sin(fn(x, w, *params)))

  with route.use("onednn"):
    assert _has_ffi_call(lambda x, w: _ours(x, w, *params), x, w)
    y = jax.jit(lambda x, w: _ours(x, w, *params))(x, w)
    grads = jax.jit(jax.grad(loss(_ours), argnums=(0, 1)))(x, w)
  _close(y, _xla(x, w, *params))
  for ours, theirs in zip(grads, jax.grad(loss(_xla), argnums=(0, 1))(x, w)):
    _close(ours, theirs)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[6], CASES[10]], ids=_ids)
def test_vmap_matches_xla(case, extension):
  """vmap over the inputs only (folded into the batch) and over inputs and kernels (one
  oneDNN call per batch entry), with gradients of both."""
  x, w = _inputs(case)
  params = case[2:]
  xs, ws = jnp.stack([x, 2 * x, -x]), jnp.stack([w, -w, 0.5 * w])

  def per_input(fn):
    return lambda xs, w: jnp.sum(jnp.sin(jax.vmap(lambda x: fn(x, w, *params))(xs)))

  def per_pair(fn):
    return lambda xs, ws: jnp.sum(jnp.sin(jax.vmap(lambda x, w: fn(x, w, *params))(xs, ws)))

  with route.use("onednn"):
    y = jax.jit(jax.vmap(lambda x: _ours(x, w, *params)))(xs)
    y_pairs = jax.jit(jax.vmap(lambda x, w: _ours(x, w, *params)))(xs, ws)
    g = jax.jit(jax.grad(per_input(_ours), argnums=(0, 1)))(xs, w)
    g_pairs = jax.jit(jax.grad(per_pair(_ours), argnums=(0, 1)))(xs, ws)
  _close(y, jax.vmap(lambda x: _xla(x, w, *params))(xs))
  _close(y_pairs, jax.vmap(lambda x, w: _xla(x, w, *params))(xs, ws))
  for ours, theirs in zip(g, jax.grad(per_input(_xla), argnums=(0, 1))(xs, w)):
    _close(ours, theirs)
  for ours, theirs in zip(g_pairs, jax.grad(per_pair(_xla), argnums=(0, 1))(xs, ws)):
    _close(ours, theirs)


def test_nested_vmap_matches_xla(extension):
  x, w = _inputs(CASES[0])
  xs = jnp.stack([jnp.stack([x, -x]), jnp.stack([2 * x, x])])
  params = CASES[0][2:]
  with route.use("onednn"):
    y = jax.jit(jax.vmap(jax.vmap(lambda x: _ours(x, w, *params))))(xs)
  _close(y, jax.vmap(jax.vmap(lambda x: _xla(x, w, *params)))(xs))


def test_bfloat16_matches_xla_or_stays_on_xla(extension):
  x, w = (a.astype(jnp.bfloat16) for a in _inputs(CASES[0]))
  params = CASES[0][2:]
  with route.use("onednn"):
    routed = _has_ffi_call(lambda x, w: _ours(x, w, *params), x, w)
    y = jax.jit(lambda x, w: _ours(x, w, *params))(x, w)
  assert routed == onednn.supports_bfloat16()
  expected = _xla(x, w, *params).astype(jnp.float32)
  np.testing.assert_allclose(y.astype(jnp.float32), expected, rtol=2e-2, atol=0.1)


@pytest.mark.parametrize(
  "what, call",
  [
    ("xla route", lambda x, w: _ours(x, w, (1, 1), "SAME", (1, 1), 1)),
    (
      "input dilation",
      lambda x, w: conv.conv_general_dilated(
        x, w, (1, 1), ((1, 1), (1, 1)), lhs_dilation=(2, 2), dimension_numbers=SPECS[4]
      ),
    ),
    (
      "NCHW",
      lambda x, w: conv.conv_general_dilated(
        x.transpose(0, 3, 1, 2), w, (1, 1), "SAME", dimension_numbers=("NCHW", "HWIO", "NCHW")
      ),
    ),
    ("negative padding", lambda x, w: _ours(x, w, (1, 1), ((-1, 0), (0, 0)), (1, 1), 1)),
    (
      "float16",
      lambda x, w: _ours(x.astype(jnp.float16), w.astype(jnp.float16), (1, 1), "SAME", (1, 1), 1),
    ),
  ],
)
def test_uncovered_convolutions_stay_on_xla(what, call, extension):
  x, w = _inputs(CASES[0])
  expected = call(x, w)  # outside use(): the xla route
  with route.use("xla" if what == "xla route" else "onednn"):
    assert not _has_ffi_call(call, x, w), what
    np.testing.assert_array_equal(jax.jit(call)(x, w), expected)


@pytest.mark.parametrize("case", [CASES[3], CASES[6], CASES[10]], ids=_ids)
def test_gradients_of_gradients_match_xla(case, extension):
  """A gradient penalty (WGAN-GP): the gradient of |d loss / d x|^2 by x and by w."""
  x, w = _inputs(case)
  params = case[2:]

  def penalty(fn):
    def inner(x, w):
      return jnp.sum(jnp.sin(fn(x, w, *params)))

    return lambda x, w: jnp.sum(jax.grad(inner)(x, w) ** 2)

  with route.use("onednn"):
    grads = jax.jit(jax.grad(penalty(_ours), argnums=(0, 1)))(x, w)
  for ours, theirs in zip(grads, jax.grad(penalty(_xla), argnums=(0, 1))(x, w)):
    _close(ours, theirs)


@pytest.mark.parametrize("case", [CASES[3], CASES[10]], ids=_ids)
def test_forward_mode_matches_xla(case, extension):
  """jax.jvp of the gradient: the Hessian-vector product dlx.ops.hessian computes."""
  x, w = _inputs(case)
  tangent = jax.random.normal(jax.random.PRNGKey(3), w.shape)
  params = case[2:]

  def hvp(fn):
    grad = jax.grad(lambda w: jnp.sum(jnp.sin(fn(x, w, *params))))
    return lambda w: jax.jvp(grad, (w,), (tangent,))[1]

  with route.use("onednn"):
    ours = jax.jit(hvp(_ours))(w)
    eager = _ours(x, w, *params)  # outside jit too
  _close(ours, hvp(_xla)(w))
  _close(eager, _xla(x, w, *params))
