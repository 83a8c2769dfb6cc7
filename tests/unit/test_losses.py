"""Tests for dlx.losses: values against PyTorch or closed forms, gradients
against central finite differences (float64), edge cases, jit and vmap.

Float64 is switched on per test with the `x64` fixture (`jax.enable_x64` as a
context manager) so other test files keep the default float32. Edge-case tests
run in float32 on purpose: that is where overflow would show.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import errors
from dlx import losses

LOG2 = math.log(2.0)
SHAPES = [(5,), (3, 4), (2, 3, 4)]
TORCH_REASON = "PyTorch is the reference; install torch to compare with it"


# Eager JAX compiles every primitive separately; one jit per loss keeps the
# suite fast. Python-valued switches are static.
_STATIC = {
  "elbo": ("likelihood",),
  "gan_generator_loss": ("non_saturating",),
  "yolo_v1_loss": ("num_boxes", "num_classes"),
  "gradient_penalty": ("critic_fn",),
}


@functools.cache
def _jitted(name):
  return jax.jit(getattr(losses, name), static_argnames=_STATIC.get(name, ()))


class _JittedLosses:
  def __getattr__(self, name):
    return _jitted(name)


L = _JittedLosses()


def grad_of(fn, argnums=0):
  """Jitted gradient of sum(fn(...))."""
  return jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a)), argnums))


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def import_torch():
  # Inputs are float64 numpy arrays, so torch computes in float64 too.
  return pytest.importorskip("torch", reason=TORCH_REASON)


def t(torch, x):
  return torch.as_tensor(np.asarray(x))


def normal(rng, shape, scale=1.0):
  return scale * rng.standard_normal(shape)


def probs(rng, shape):
  x = rng.standard_normal(shape)
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_log_softmax(x):
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def assert_finite(tree):
  for leaf in jax.tree.leaves(tree):
    assert np.all(np.isfinite(np.asarray(leaf))), leaf


# ------------------------------------------------------- shared case table
# name -> (fn of arrays only, make_args(rng) -> tuple of float64 numpy inputs,
#          argnums to differentiate). Used by the finite-difference, jit and
#          vmap tests; every public loss appears here.


def _linear_critic(x):
  return x.reshape(x.shape[0], -1) @ jnp.arange(1.0, 1.0 + x[0].size) / 10.0


def _tanh_critic(x):
  flat = x.reshape(x.shape[0], -1)
  w = jnp.linspace(-1.0, 1.0, flat.shape[1])
  return jnp.tanh(flat @ w) + 0.1 * jnp.sum(flat**2, axis=-1)


def _yolo_args(rng):
  s, b, c = 2, 2, 3
  pred = rng.uniform(0.1, 0.9, (2, s, s, b * 5 + c))
  target = np.zeros((2, s, s, 5 + c))
  target[..., :4] = rng.uniform(0.1, 0.9, (2, s, s, 4))
  target[..., 4] = rng.integers(0, 2, (2, s, s))
  target[..., 5:] = np.eye(c)[rng.integers(0, c, (2, s, s))]
  return pred, target


CASES = {
  "mse": (losses.mse, lambda r: (normal(r, (3, 4)), normal(r, (3, 4))), (0, 1)),
  "mae": (losses.mae, lambda r: (normal(r, (3, 4)), normal(r, (3, 4))), (0, 1)),
  "huber": (
    lambda p, y: losses.huber(p, y, delta=0.7),
    lambda r: (normal(r, (3, 4)), normal(r, (3, 4))),
    (0, 1),
  ),
  "smooth_l1": (
    lambda p, y: losses.smooth_l1(p, y, beta=0.7),
    lambda r: (normal(r, (3, 4)), normal(r, (3, 4))),
    (0, 1),
  ),
  "clipped_mse": (
    lambda p, y: losses.clipped_mse(p, y, 0.8),
    lambda r: (normal(r, (3, 4)), normal(r, (3, 4))),
    (0, 1),
  ),
  "weighted": (losses.weighted, lambda r: (normal(r, (6,)), r.uniform(0.1, 1.0, (6,))), (0, 1)),
  "sigmoid_binary_cross_entropy": (
    losses.sigmoid_binary_cross_entropy,
    lambda r: (normal(r, (3, 4), 3.0), r.uniform(0, 1, (3, 4))),
    (0, 1),
  ),
  "binary_cross_entropy": (
    losses.binary_cross_entropy,
    lambda r: (r.uniform(0.05, 0.95, (3, 4)), r.uniform(0, 1, (3, 4))),
    (0, 1),
  ),
  "softmax_cross_entropy": (
    lambda x, y: losses.softmax_cross_entropy(x, y, label_smoothing=0.1),
    lambda r: (normal(r, (3, 5), 2.0), r.integers(0, 5, (3,))),
    (0,),
  ),
  "softmax_cross_entropy_soft": (
    lambda x, y: losses.softmax_cross_entropy(x, y, label_smoothing=0.2),
    lambda r: (normal(r, (3, 5), 2.0), probs(r, (3, 5))),
    (0, 1),
  ),
  "sequence_cross_entropy": (
    losses.sequence_cross_entropy,
    lambda r: (
      normal(r, (2, 4, 5)),
      r.integers(0, 5, (2, 4)),
      np.array([[1, 1, 0, 1], [0, 0, 0, 0]]),
    ),
    (0,),
  ),
  "pixel_cross_entropy": (
    lambda x, y: losses.pixel_cross_entropy(x, y, class_weights=np.array([0.5, 1.0, 2.0])),
    lambda r: (normal(r, (2, 3, 4, 3), 2.0), r.integers(0, 3, (2, 3, 4))),
    (0,),
  ),
  "soft_dice_loss": (
    lambda x, y: losses.soft_dice_loss(x, y, smooth=0.5),
    lambda r: (normal(r, (2, 3, 4, 3), 2.0), r.integers(0, 3, (2, 3, 4))),
    (0,),
  ),
  "soft_jaccard_loss": (
    lambda x, y: losses.soft_jaccard_loss(x, y, smooth=0.5),
    lambda r: (normal(r, (2, 3, 4, 3), 2.0), r.integers(0, 3, (2, 3, 4))),
    (0,),
  ),
  "kl_divergence": (losses.kl_divergence, lambda r: (probs(r, (3, 4)), probs(r, (3, 4))), (0, 1)),
  "js_divergence": (losses.js_divergence, lambda r: (probs(r, (3, 4)), probs(r, (3, 4))), (0, 1)),
  "gaussian_kl": (
    losses.gaussian_kl,
    lambda r: (normal(r, (3, 4)), normal(r, (3, 4), 0.5)),
    (0, 1),
  ),
  "gaussian_nll": (
    losses.gaussian_nll,
    lambda r: (normal(r, (3, 4)), normal(r, (3, 4)), r.uniform(0.2, 2.0, (3, 4))),
    (0, 1, 2),
  ),
  "l1_penalty": (
    lambda w: losses.l1_penalty(w, losses.exclude_biases),
    lambda r: ({"kernel": normal(r, (3, 2)), "bias": normal(r, (2,))},),
    (0,),
  ),
  "l2_penalty": (
    lambda w: losses.l2_penalty(w, {"kernel": True, "bias": False}),
    lambda r: ({"kernel": normal(r, (3, 2)), "bias": normal(r, (2,))},),
    (0,),
  ),
  "contrastive": (
    lambda a, b, s: losses.contrastive(a, b, s, margin=2.0),
    lambda r: (normal(r, (6, 3)), normal(r, (6, 3)), np.array([1, 0, 1, 0, 0, 1])),
    (0, 1),
  ),
  "clip_contrastive": (
    losses.clip_contrastive,
    lambda r: (normal(r, (4, 3)), normal(r, (4, 3)), np.asarray(r.uniform(0.1, 1.0))),
    (0, 1, 2),
  ),
  "elbo_bernoulli": (
    lambda x, y, m, v: losses.elbo(x, y, m, v, beta=0.5),
    lambda r: (
      normal(r, (2, 3, 2)),
      r.uniform(0, 1, (2, 3, 2)),
      normal(r, (2, 3)),
      normal(r, (2, 3), 0.5),
    ),
    (0, 1, 2, 3),
  ),
  "elbo_gaussian": (
    lambda x, y, m, v: losses.elbo(x, y, m, v, likelihood="gaussian"),
    lambda r: (
      normal(r, (2, 3, 2)),
      normal(r, (2, 3, 2)),
      normal(r, (2, 3)),
      normal(r, (2, 3), 0.5),
    ),
    (0, 1, 2, 3),
  ),
  "gan_discriminator_loss": (
    losses.gan_discriminator_loss,
    lambda r: (normal(r, (4,), 3.0), normal(r, (4,), 3.0)),
    (0, 1),
  ),
  "gan_generator_loss": (losses.gan_generator_loss, lambda r: (normal(r, (4,), 3.0),), (0,)),
  "gan_generator_loss_saturating": (
    lambda x: losses.gan_generator_loss(x, non_saturating=False),
    lambda r: (normal(r, (4,), 3.0),),
    (0,),
  ),
  "wgan_critic_loss": (
    losses.wgan_critic_loss,
    lambda r: (normal(r, (4,)), normal(r, (4,))),
    (0, 1),
  ),
  "wgan_generator_loss": (losses.wgan_generator_loss, lambda r: (normal(r, (4,)),), (0,)),
  "gradient_penalty": (
    lambda real, fake, key: losses.gradient_penalty(_tanh_critic, real, fake, key),
    lambda r: (
      normal(r, (3, 2, 2)),
      normal(r, (3, 2, 2)),
      np.asarray(jax.random.key_data(jax.random.key(int(r.integers(1000))))),
    ),
    (0, 1),
  ),
  "diffusion_noise_mse": (
    losses.diffusion_noise_mse,
    lambda r: (normal(r, (2, 3, 2)), normal(r, (2, 3, 2))),
    (0, 1),
  ),
  "yolo_v1_loss": (
    lambda p, y: losses.yolo_v1_loss(p, y, num_boxes=2, num_classes=3),
    _yolo_args,
    (0,),
  ),
  "distillation_loss": (
    lambda s, te, y: losses.distillation_loss(s, te, y, 2.0, 0.7),
    lambda r: (normal(r, (3, 5), 2.0), normal(r, (3, 5), 2.0), r.integers(0, 5, (3,))),
    (0, 1),
  ),
  "clip_params": (
    lambda w: losses.clip_params(w, 0.5),
    lambda r: ({"w": normal(r, (3, 2))},),
    (0,),
  ),
}


def _wrap_key(fn, name):
  # gradient_penalty's key travels through the table as raw uint32 data so it
  # can be stacked for vmap; rewrap it as a typed key.
  if name != "gradient_penalty":
    return fn
  return lambda real, fake, key: fn(real, fake, jax.random.wrap_key_data(key))


def _case(name):
  fn, make_args, argnums = CASES[name]
  return _wrap_key(fn, name), make_args, argnums


def _as_numpy(args):
  # Numpy inputs: building shifted / stacked copies costs no XLA compiles.
  return tuple(jax.tree.map(np.asarray, a) for a in args)


def check_finite_differences(fn, args, argnums, seed=0, h=1e-6, rtol=1e-5, atol=1e-6):
  """Compares <grad, v> with (f(x + h v) - f(x - h v)) / 2h, random v."""
  rng = np.random.default_rng(seed)
  out = jax.eval_shape(fn, *args)
  cotangent = jax.tree.map(lambda o: rng.standard_normal(o.shape), out)

  def scalar(*a):
    products = jax.tree.map(lambda o, c: jnp.sum(o * c), fn(*a), cotangent)
    return sum(jax.tree.leaves(products))

  # One compiled function serves the gradient and all the shifted values.
  value_and_grad = jax.jit(jax.value_and_grad(scalar, argnums))
  _, grads = value_and_grad(*args)
  for i, g in zip(argnums, grads):
    direction = jax.tree.map(lambda x: rng.standard_normal(np.shape(x)), args[i])

    def shifted(sign, i=i, direction=direction):
      new = list(args)
      new[i] = jax.tree.map(lambda x, v: x + sign * h * v, args[i], direction)
      return float(value_and_grad(*new)[0])

    numeric = (shifted(1.0) - shifted(-1.0)) / (2 * h)
    analytic = sum(
      jax.tree.leaves(jax.tree.map(lambda a, b: np.sum(np.asarray(a) * b), g, direction))
    )
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=f"argnum {i}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_finite_differences(name, x64):
  fn, make_args, argnums = _case(name)
  args = _as_numpy(make_args(np.random.default_rng(1)))
  check_finite_differences(fn, args, argnums)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_and_vmap(name):
  fn, make_args, _ = _case(name)
  rng = np.random.default_rng(2)
  # float32 here: the default dtype callers use.
  samples = [
    jax.tree.map(
      lambda x: x.astype(np.float32) if x.dtype == np.float64 else x, _as_numpy(make_args(rng))
    )
    for _ in range(2)
  ]
  stacked = jax.tree.map(lambda *xs: np.stack(xs), *samples)

  @jax.jit  # One compile for both the plain and the vmapped calls.
  def run(samples, stacked):
    return [fn(*args) for args in samples], jax.vmap(fn)(*stacked)

  expected, batched = run(samples, stacked)
  for k in range(2):
    jax.tree.map(
      lambda a, b, k=k: np.testing.assert_allclose(a[k], b, rtol=1e-5, atol=1e-6),
      batched,
      expected[k],
    )


# --------------------------------------------------------- PyTorch values

ELEMENTWISE = {
  "mse": (L.mse, lambda F, p, y: F.mse_loss(p, y, reduction="none")),
  "mae": (L.mae, lambda F, p, y: F.l1_loss(p, y, reduction="none")),
  "huber": (L.huber, lambda F, p, y: F.huber_loss(p, y, reduction="none")),
  "huber_delta_0.3": (
    lambda p, y: L.huber(p, y, delta=0.3),
    lambda F, p, y: F.huber_loss(p, y, reduction="none", delta=0.3),
  ),
  "huber_delta_2": (
    lambda p, y: L.huber(p, y, delta=2.0),
    lambda F, p, y: F.huber_loss(p, y, reduction="none", delta=2.0),
  ),
  "smooth_l1": (L.smooth_l1, lambda F, p, y: F.smooth_l1_loss(p, y, reduction="none")),
  "smooth_l1_beta_0.3": (
    lambda p, y: L.smooth_l1(p, y, beta=0.3),
    lambda F, p, y: F.smooth_l1_loss(p, y, reduction="none", beta=0.3),
  ),
  "smooth_l1_beta_0": (
    lambda p, y: L.smooth_l1(p, y, beta=0.0),
    lambda F, p, y: F.smooth_l1_loss(p, y, reduction="none", beta=0.0),
  ),
}


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_matches_torch(name, shape, x64):
  torch = import_torch()
  ours, theirs = ELEMENTWISE[name]
  rng = np.random.default_rng(3)
  p, y = normal(rng, shape, 2.0), normal(rng, shape)
  expected = theirs(torch.nn.functional, t(torch, p), t(torch, y)).numpy()
  np.testing.assert_allclose(ours(p, y), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES)
def test_sigmoid_binary_cross_entropy_matches_torch(shape, x64):
  torch = import_torch()
  rng = np.random.default_rng(4)
  x = normal(rng, shape, 5.0)
  x.flat[0] = 50.0  # Saturated logits too.
  z = rng.uniform(0, 1, shape)
  expected = torch.nn.functional.binary_cross_entropy_with_logits(
    t(torch, x), t(torch, z), reduction="none"
  ).numpy()
  np.testing.assert_allclose(L.sigmoid_binary_cross_entropy(x, z), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES)
def test_binary_cross_entropy_matches_torch(shape, x64):
  torch = import_torch()
  rng = np.random.default_rng(5)
  p = rng.uniform(0, 1, shape)
  p.flat[0], p.flat[-1] = 0.0, 1.0  # Exactly 0 and 1: torch clamps the logs.
  z = rng.uniform(0, 1, shape)
  expected = torch.nn.functional.binary_cross_entropy(
    t(torch, p), t(torch, z), reduction="none"
  ).numpy()
  np.testing.assert_allclose(L.binary_cross_entropy(p, z), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("shape", [(6,), (2, 3)])
@pytest.mark.parametrize("soft", [False, True])
def test_softmax_cross_entropy_matches_torch(shape, smoothing, soft, x64):
  torch = import_torch()
  rng = np.random.default_rng(6)
  num_classes = 5
  logits = normal(rng, shape + (num_classes,), 3.0)
  if soft:
    labels = probs(rng, shape + (num_classes,))
    torch_labels = t(torch, labels.reshape(-1, num_classes))
  else:
    labels = rng.integers(0, num_classes, shape)
    torch_labels = t(torch, labels.reshape(-1))
  expected = (
    torch.nn.functional.cross_entropy(
      t(torch, logits.reshape(-1, num_classes)),
      torch_labels,
      reduction="none",
      label_smoothing=smoothing,
    )
    .numpy()
    .reshape(shape)
  )
  got = L.softmax_cross_entropy(logits, labels, label_smoothing=smoothing)
  assert got.shape == shape
  np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_softmax_cross_entropy_one_hot_equals_integer_labels():
  rng = np.random.default_rng(7)
  logits = normal(rng, (4, 6))
  labels = rng.integers(0, 6, (4,))
  np.testing.assert_allclose(
    L.softmax_cross_entropy(logits, np.eye(6)[labels], 0.3),
    L.softmax_cross_entropy(logits, labels, 0.3),
    rtol=1e-6,
  )


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES)
def test_kl_divergence_matches_torch(shape, x64):
  torch = import_torch()
  rng = np.random.default_rng(8)
  p, q = probs(rng, shape), probs(rng, shape)
  p[..., 0] = 0.0  # 0 log 0 = 0.
  p /= p.sum(-1, keepdims=True)
  expected = (
    torch.nn.functional.kl_div(t(torch, q).log(), t(torch, p), reduction="none").sum(-1).numpy()
  )
  np.testing.assert_allclose(L.kl_divergence(p, q), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES)
def test_gaussian_nll_matches_torch(shape, x64):
  torch = import_torch()
  rng = np.random.default_rng(9)
  mean, y = normal(rng, shape), normal(rng, shape)
  var = rng.uniform(0.01, 3.0, shape)
  var.flat[0] = 0.0  # Clamped at eps by both.
  expected = torch.nn.functional.gaussian_nll_loss(
    t(torch, mean), t(torch, y), t(torch, var), full=True, reduction="none"
  ).numpy()
  np.testing.assert_allclose(L.gaussian_nll(mean, y, var), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("batch,dim", [(1, 3), (4, 3), (8, 16)])
def test_clip_contrastive_matches_torch(batch, dim, x64):
  torch = import_torch()
  F = torch.nn.functional
  rng = np.random.default_rng(10)
  a, b = normal(rng, (batch, dim)), normal(rng, (batch, dim))
  temperature = 0.07
  ta, tb = F.normalize(t(torch, a), dim=-1), F.normalize(t(torch, b), dim=-1)
  logits = ta @ tb.T / temperature
  labels = torch.arange(batch)
  expected = 0.5 * (
    F.cross_entropy(logits, labels, reduction="none")
    + F.cross_entropy(logits.T, labels, reduction="none")
  )
  np.testing.assert_allclose(
    L.clip_contrastive(a, b, temperature), expected.numpy(), rtol=1e-10, atol=1e-12
  )


@pytest.mark.torch
@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.9), (2.0, 0.0), (3.0, 1.0)])
def test_distillation_loss_matches_torch(temperature, alpha, x64):
  torch = import_torch()
  F = torch.nn.functional
  rng = np.random.default_rng(11)
  s, te = normal(rng, (6, 10), 3.0), normal(rng, (6, 10), 3.0)
  y = rng.integers(0, 10, (6,))
  ts, tt = t(torch, s), t(torch, te)
  soft = F.kl_div(
    F.log_softmax(ts / temperature, -1), F.softmax(tt / temperature, -1), reduction="none"
  ).sum(-1)
  hard = F.cross_entropy(ts, t(torch, y), reduction="none")
  expected = alpha * temperature**2 * soft + (1 - alpha) * hard
  np.testing.assert_allclose(
    L.distillation_loss(s, te, y, temperature, alpha), expected.numpy(), rtol=1e-10, atol=1e-12
  )


def test_distillation_loss_identical_logits_leaves_only_the_hard_term():
  rng = np.random.default_rng(12)
  s = normal(rng, (3, 4))
  y = rng.integers(0, 4, (3,))
  np.testing.assert_allclose(
    L.distillation_loss(s, s, y, 3.0, 0.4),
    0.6 * L.softmax_cross_entropy(s, y),
    rtol=1e-5,
    atol=1e-6,
  )


# ---------------------------------------------------------- closed forms


def test_clipped_mse_closed_form():
  p = np.array([0.0, 1.0, 3.0, -2.0])
  y = np.array([0.5, 0.0, 0.0, 0.0])
  np.testing.assert_allclose(L.clipped_mse(p, y, 2.0), [0.25, 1.0, 2.0, 2.0])
  # No gradient once clipped.
  g = jax.grad(lambda p: jnp.sum(L.clipped_mse(p, y, 2.0)))(p)
  np.testing.assert_allclose(g, [-1.0, 2.0, 0.0, 0.0])


def test_weighted_closed_form_and_zero_weights():
  values = np.array([1.0, 2.0, 3.0, 4.0])
  w = np.array([1.0, 0.0, 2.0, 1.0])
  np.testing.assert_allclose(L.weighted(values, w), (1 + 6 + 4) / 4)
  poisoned = np.array([1.0, np.nan, 3.0, np.inf])
  w = np.array([1.0, 0.0, 1.0, 0.0])
  np.testing.assert_allclose(L.weighted(poisoned, w), 2.0)
  g = jax.grad(L.weighted)(jnp.asarray(poisoned), jnp.asarray(w))
  np.testing.assert_allclose(g, [0.5, 0.0, 0.5, 0.0])
  assert float(L.weighted(poisoned, np.zeros(4))) == 0.0
  assert_finite(jax.grad(L.weighted)(jnp.asarray(poisoned), jnp.zeros(4)))
  # Broadcast: a (B,) weight over (B, T) L.
  np.testing.assert_allclose(
    L.weighted(np.ones((2, 3)) * [[1.0], [5.0]], np.array([[0.0], [1.0]])), 5.0
  )


def test_sequence_cross_entropy_hand_computed():
  logits = np.array([[[0.0, 0.0], [1.0, 0.0], [3.0, -1.0]], [[2.0, 0.0], [0.0, 5.0], [1.0, 1.0]]])
  targets = np.array([[0, 1, 0], [1, 1, 0]])
  mask = np.array([[1, 1, 0], [0, 0, 0]])
  # Row 0: tokens 0 and 1: log 2 and log(1 + e).
  expected_0 = (math.log(2.0) + math.log(1.0 + math.e)) / 2
  got = L.sequence_cross_entropy(logits, targets, mask)
  assert got.shape == (2,)
  np.testing.assert_allclose(got, [expected_0, 0.0], rtol=1e-6)
  # A NaN in a masked position must not leak either.
  logits[0, 2, 0] = np.nan
  np.testing.assert_allclose(
    L.sequence_cross_entropy(logits, targets, mask.astype(bool)), [expected_0, 0.0], rtol=1e-6
  )


def test_pixel_cross_entropy_mean_and_class_weights():
  rng = np.random.default_rng(0)
  logits, labels = rng.standard_normal((2, 3, 4, 5)), rng.integers(0, 5, (2, 3, 4))
  per_pixel = -np.take_along_axis(np_log_softmax(logits), labels[..., None], -1)[..., 0]
  got = L.pixel_cross_entropy(logits, labels)
  np.testing.assert_allclose(got, per_pixel.mean(axis=(1, 2)), rtol=1e-5)
  weights = np.array([0.0, 1.0, 2.0, 3.0, 0.5])
  w = weights[labels]
  expected = (w * per_pixel).sum(axis=(1, 2)) / w.sum(axis=(1, 2))
  got = losses.pixel_cross_entropy(logits, labels, class_weights=weights)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_soft_dice_and_jaccard_hand_computed():
  # One image of two pixels, two classes; softmax(log p) = p.
  p = np.array([[[[0.8, 0.2], [0.4, 0.6]]]])
  labels = np.array([[[0, 1]]])
  # Class 0: I = 0.8, P = 1.2, G = 1. Class 1: I = 0.6, P = 0.8, G = 1.
  dice = 1 - (1.6 / 2.2 + 1.2 / 1.8) / 2
  np.testing.assert_allclose(L.soft_dice_loss(np.log(p), labels, smooth=0.0), [dice], rtol=1e-6)
  dice_smooth = 1 - (2.6 / 3.2 + 2.2 / 2.8) / 2
  np.testing.assert_allclose(L.soft_dice_loss(np.log(p), labels), [dice_smooth], rtol=1e-6)
  jaccard = 1 - (0.8 / 1.4 + 0.6 / 1.2) / 2
  got = L.soft_jaccard_loss(np.log(p), labels, smooth=0.0)
  np.testing.assert_allclose(got, [jaccard], rtol=1e-6)


def test_soft_dice_perfect_and_absent_classes():
  labels = np.array([[[0, 2], [2, 2]]])  # class 1 absent
  confident = 30.0 * np.eye(3)[labels]
  np.testing.assert_allclose(L.soft_dice_loss(confident, labels), [0.0], atol=1e-6)
  np.testing.assert_allclose(L.soft_jaccard_loss(confident, labels), [0.0], atol=1e-6)
  # Putting probability on the absent class costs.
  hedged = confident.copy()
  hedged[..., 1] = 30.0
  assert float(L.soft_dice_loss(hedged, labels)[0]) > 0.3


def test_js_divergence_closed_form():
  p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
  q = np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])
  # Row 0: m = (.25, .5, .25): each KL is 0.5 log 2 -> JS = 0.5 log 2.
  np.testing.assert_allclose(L.js_divergence(p, q), [0.5 * LOG2, LOG2, 0.0], atol=1e-6)
  rng = np.random.default_rng(13)
  a, b = probs(rng, (50, 4)), probs(rng, (50, 4))
  js = np.asarray(L.js_divergence(a, b))
  assert np.all(js >= -1e-7) and np.all(js <= LOG2 + 1e-6)
  np.testing.assert_allclose(js, L.js_divergence(b, a), rtol=1e-5)
  assert_finite(jax.grad(lambda p: jnp.sum(L.js_divergence(p, q)))(p))


def test_gaussian_kl_formula_and_monte_carlo(x64):
  rng = np.random.default_rng(14)
  mean = np.array([0.3, -1.0, 0.5])
  log_var = np.array([0.2, -0.5, 0.0])
  var = np.exp(log_var)
  expected = -0.5 * np.sum(1 + log_var - mean**2 - var)
  np.testing.assert_allclose(L.gaussian_kl(mean, log_var), expected)
  # KL = E_q[log q(z) - log p(z)], z ~ q.
  z = mean + np.sqrt(var) * rng.standard_normal((200_000, 3))
  log_q = -0.5 * np.sum((z - mean) ** 2 / var + log_var + np.log(2 * np.pi), -1)
  log_p = -0.5 * np.sum(z**2 + np.log(2 * np.pi), -1)
  samples = log_q - log_p
  stderr = samples.std() / np.sqrt(samples.size)
  assert abs(samples.mean() - expected) < 4 * stderr
  assert float(L.gaussian_kl(np.zeros(3), np.zeros(3))) == 0.0
  assert L.gaussian_kl(np.zeros((2, 5, 3)), np.zeros((2, 5, 3))).shape == (2, 5)


def test_penalties_closed_form_and_masks():
  params = {
    "dense": {"kernel": np.array([[1.0, -2.0]]), "bias": np.array([3.0])},
    "norm": {"scale": np.array([-0.5])},
  }

  def check(penalty_fn, mask, expected):
    got = jax.jit(lambda p: penalty_fn(p, mask))(params)
    assert float(got) == pytest.approx(expected)

  check(losses.l1_penalty, None, 6.5)
  check(losses.l2_penalty, None, 0.5 * 14.25)
  check(losses.l1_penalty, losses.exclude_biases, 3.5)
  bool_tree = {"dense": {"kernel": True, "bias": False}, "norm": {"scale": False}}
  check(losses.l2_penalty, bool_tree, 2.5)
  check(losses.l1_penalty, {"dense": True, "norm": False}, 6.0)  # A prefix.
  check(losses.l2_penalty, lambda path, leaf: jnp.ndim(leaf) > 1, 2.5)
  # Traced bools work too (jnp.where instead of a static skip).
  array_mask = {"dense": jnp.array(False), "norm": jnp.array(True)}
  assert float(jax.jit(L.l1_penalty)(params, array_mask)) == pytest.approx(0.5)
  g = jax.jit(jax.grad(lambda p: losses.l1_penalty(p, losses.exclude_biases)))(params)
  np.testing.assert_allclose(g["dense"]["kernel"], [[1.0, -1.0]])
  np.testing.assert_allclose(g["dense"]["bias"], [0.0])
  g = jax.jit(jax.grad(L.l2_penalty))(params)
  np.testing.assert_allclose(g["norm"]["scale"], [-0.5])
  # sign(0) = 0: the L1 subgradient at exactly 0 pushes nowhere.
  np.testing.assert_allclose(jax.grad(L.l1_penalty)(jnp.zeros(2)), [0.0, 0.0])


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalty_transform_adds_penalty_gradient(kind):
  params = {"kernel": jnp.array([[0.5, -2.0], [0.0, 1.5]]), "bias": jnp.array([1.0, -1.0])}
  grads = jax.tree.map(jnp.ones_like, params)
  strength = 0.1
  penalty_fn = losses.l1_penalty if kind == "l1" else losses.l2_penalty
  for mask in (None, losses.exclude_biases):
    tx = losses.penalty_transform(kind, strength, mask)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    penalty_grad = jax.grad(lambda p: penalty_fn(p, mask))(params)
    expected = jax.tree.map(lambda g, pg: g + strength * pg, grads, penalty_grad)
    jax.tree.map(np.testing.assert_allclose, updates, expected)
  # Closed form for l1 with the mask: sign(w) on the kernel, none on the bias.
  if kind == "l1":
    np.testing.assert_allclose(updates["kernel"], 1 + 0.1 * np.array([[1, -1], [0, 1]]))
    np.testing.assert_allclose(updates["bias"], [1.0, 1.0])
  # Inside a chain it equals SGD on loss + strength * penalty.
  tx = optax.chain(losses.penalty_transform(kind, strength), optax.sgd(0.5))
  updates, _ = tx.update(grads, tx.init(params), params)
  total_grad = jax.grad(
    lambda p: sum(jnp.sum(x) for x in jax.tree.leaves(p)) + strength * penalty_fn(p)
  )(params)
  jax.tree.map(lambda u, g: np.testing.assert_allclose(u, -0.5 * g, rtol=1e-6), updates, total_grad)


def test_penalty_transform_rejects_bad_kind():
  with pytest.raises(errors.ConfigError):
    losses.penalty_transform("l3", 0.1)


def test_clip_params_after_apply_updates():
  params = {"w": jnp.array([0.005, -0.02, 0.3])}
  updates = {"w": jnp.array([0.004, 0.0, -0.4])}
  clipped = losses.clip_params(optax.apply_updates(params, updates), 0.01)
  np.testing.assert_allclose(clipped["w"], [0.009, -0.01, -0.01], rtol=1e-6)


def test_contrastive_closed_form():
  a = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
  b = np.array([[3.0, 4.0], [0.3, 0.4], [3.0, 4.0], [1.0, 1.0]])
  same = np.array([1, 0, 0, 0])
  # d = 5, 0.5, 5, 0.
  expected = [25 / 2, (2.0 - 0.5) ** 2 / 2, 0.0, 4.0 / 2]
  np.testing.assert_allclose(L.contrastive(a, b, same, margin=2.0), expected, rtol=1e-6)
  # Identical dissimilar pair: d = 0, gradient finite (not NaN from sqrt).
  g = jax.grad(lambda a: jnp.sum(L.contrastive(a, b, same, 2.0)))(a)
  assert_finite(g)


@pytest.mark.parametrize("latent_shape", [(3,), (2, 2)])
def test_elbo_closed_form(latent_shape, x64):
  rng = np.random.default_rng(15)
  batch = 2
  x = normal(rng, (batch, 4, 3), 2.0)
  y = rng.uniform(0, 1, (batch, 4, 3))
  mean = normal(rng, (batch,) + latent_shape)
  log_var = normal(rng, (batch,) + latent_shape, 0.5)
  axes = tuple(range(1, mean.ndim))
  kl = -0.5 * np.sum(1 + log_var - mean**2 - np.exp(log_var), axis=axes)
  sig = 1 / (1 + np.exp(-x))
  bce = -np.sum(y * np.log(sig) + (1 - y) * np.log(1 - sig), axis=(1, 2))
  np.testing.assert_allclose(L.elbo(x, y, mean, log_var, beta=0.3), bce + 0.3 * kl, rtol=1e-10)
  gauss = np.sum(0.5 * (y - x) ** 2 + 0.5 * np.log(2 * np.pi), axis=(1, 2))
  np.testing.assert_allclose(
    L.elbo(x, y, mean, log_var, likelihood="gaussian"), gauss + kl, rtol=1e-10
  )
  with pytest.raises(ValueError):
    L.elbo(x, y, mean, log_var, likelihood="laplace")


def test_gan_losses_closed_form(x64):
  real = np.array([2.0, -1.0, 0.0])
  fake = np.array([-3.0, 0.5, 0.0])
  d = lambda x: 1 / (1 + np.exp(-x))
  np.testing.assert_allclose(
    L.gan_discriminator_loss(real, fake), -np.log(d(real)) - np.log(1 - d(fake))
  )
  np.testing.assert_allclose(L.gan_generator_loss(fake), -np.log(d(fake)))
  np.testing.assert_allclose(L.gan_generator_loss(fake, non_saturating=False), np.log(1 - d(fake)))


def test_saturating_generator_loss_has_vanishing_gradient():
  # A confident discriminator (D(G(z)) ~ 0) is exactly when G must learn.
  fake = jnp.array([-10.0, -5.0])
  sat = jax.grad(lambda x: jnp.sum(L.gan_generator_loss(x, False)))(fake)
  non_sat = jax.grad(lambda x: jnp.sum(L.gan_generator_loss(x)))(fake)
  assert np.all(np.abs(sat) < 1e-2)  # -sigmoid(x)
  assert np.all(np.abs(non_sat) > 0.99)  # -(1 - sigmoid(x))
  np.testing.assert_allclose(sat, -jax.nn.sigmoid(fake), rtol=1e-5)


def test_wgan_losses_closed_form():
  real, fake = np.array([1.0, 2.0]), np.array([0.5, -1.0])
  np.testing.assert_allclose(L.wgan_critic_loss(real, fake), [-0.5, -3.0])
  np.testing.assert_allclose(L.wgan_generator_loss(fake), [-0.5, 1.0])


def test_gradient_penalty_linear_critic():
  # f(x) = <w, x>: grad = w everywhere, so the penalty is (||w|| - 1)^2 for
  # every example whatever the interpolation.
  rng = np.random.default_rng(16)
  real, fake = normal(rng, (4, 2, 3)), normal(rng, (4, 2, 3))
  w = np.arange(1.0, 7.0) / 10.0
  expected = (np.linalg.norm(w) - 1.0) ** 2
  got = L.gradient_penalty(_linear_critic, real, fake, jax.random.key(0))
  assert got.shape == (4,)
  np.testing.assert_allclose(got, np.full(4, expected), rtol=1e-5)


def test_gradient_penalty_interpolates_per_example():
  # f(x) = ||x||^2 / 2 has grad x^ = (1 - eps) fake for real = 0 and a unit
  # fake, so the penalty is eps^2 with one eps ~ U(0, 1) per example.
  fake = np.zeros((64, 2))
  fake[:, 0] = 1.0
  critic = lambda x: 0.5 * jnp.sum(x**2, axis=-1)
  got = np.asarray(L.gradient_penalty(critic, np.zeros((64, 2)), fake, jax.random.key(1)))
  eps = np.sqrt(got)
  assert np.all((eps >= 0) & (eps <= 1))
  assert len(np.unique(np.round(eps, 6))) > 60
  assert 0.3 < eps.mean() < 0.7
  # real == fake pins x^: the penalty is (||x|| - 1)^2 exactly.
  x = np.array([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(
    L.gradient_penalty(critic, x, x, jax.random.key(2)), [16.0, 1.0], rtol=1e-6
  )

  # Differentiable w.r.t. critic parameters (the WGAN-GP critic step).
  def penalty_of(scale):
    return jnp.sum(L.gradient_penalty(lambda z: scale * critic(z), x, x, jax.random.key(2)))

  # d/ds [(5s - 1)^2 + 1] at s = 1 is 2 * 4 * 5 = 40 (0 from the zero row).
  np.testing.assert_allclose(jax.jit(jax.grad(penalty_of))(1.0), 40.0, rtol=1e-6)


def test_diffusion_noise_mse_closed_form():
  rng = np.random.default_rng(17)
  pred, noise = normal(rng, (3, 4, 5)), normal(rng, (3, 4, 5))
  np.testing.assert_allclose(
    L.diffusion_noise_mse(pred, noise), ((pred - noise) ** 2).mean(axis=(1, 2)), rtol=1e-5
  )


# -------------------------------------------------------------------- YOLO


def _yolo_hand_case():
  """One image, S = 2, B = 2, C = 2; expected loss 0.52 (worked out below)."""
  pred = np.zeros((1, 2, 2, 12))
  target = np.zeros((1, 2, 2, 7))
  target[0, 0, 0] = [0.5, 0.5, 0.25, 0.36, 1.0, 1.0, 0.0]
  # Cell (0, 0): box 0 overlaps the target (IoU ~ 0.50), box 1 misses it.
  pred[0, 0, 0] = [0.6, 0.4, 0.16, 0.49, 0.8, 0.1, 0.9, 0.04, 0.04, 0.3, 0.7, 0.2]
  pred[0, 0, 1, [4, 9]] = [0.1, 0.2]
  pred[0, 1, 1, [4, 9]] = [0.4, 0.0]
  pred[0, 1, 0, 10:] = [5.0, -3.0]  # Class scores in empty cells: ignored.
  # coord: 5 * (0.1^2 + 0.1^2 + (0.4 - 0.5)^2 + (0.7 - 0.6)^2) = 0.2
  # obj:   (0.8 - 1)^2 = 0.04;  noobj in the object cell: 0.5 * 0.3^2 = 0.045
  # class: (0.7 - 1)^2 + 0.2^2 = 0.13
  # noobj elsewhere: 0.5 * (0.1^2 + 0.2^2 + 0.4^2) = 0.105
  return pred, target, 0.2 + 0.04 + 0.045 + 0.13 + 0.105


def test_yolo_v1_hand_computed_2x2():
  pred, target, expected = _yolo_hand_case()
  got = L.yolo_v1_loss(pred, target, num_boxes=2, num_classes=2)
  assert got.shape == (1,)
  np.testing.assert_allclose(got, [expected], atol=1e-5)
  # Swap the two boxes: box 1 becomes responsible, same loss.
  swapped = pred.copy()
  swapped[0, 0, 0, :10] = np.concatenate([pred[0, 0, 0, 5:10], pred[0, 0, 0, :5]])
  np.testing.assert_allclose(
    L.yolo_v1_loss(swapped, target, num_boxes=2, num_classes=2), [expected], atol=1e-5
  )
  # Per image: a perfect second image adds a 0.
  perfect_pred = np.zeros((1, 2, 2, 12))
  perfect_pred[0, 0, 0, :5] = target[0, 0, 0, :5]
  perfect_pred[0, 0, 0, 10:] = target[0, 0, 0, 5:]
  batch = np.concatenate([pred, perfect_pred])
  np.testing.assert_allclose(
    L.yolo_v1_loss(batch, np.concatenate([target, target]), num_boxes=2, num_classes=2),
    [expected, 0.0],
    atol=1e-5,
  )


def test_yolo_v1_gradients_finite_for_degenerate_boxes():
  pred, target, _ = _yolo_hand_case()
  pred[..., [2, 3, 7, 8]] = 0.0  # Zero widths: sqrt and IoU edge.
  pred[0, 1, 1, 2] = -0.3  # Negative width from an untrained head.
  g = grad_of(lambda p: losses.yolo_v1_loss(p, target, 2, 2))(jnp.asarray(pred, jnp.float32))
  assert_finite(g)
  with pytest.raises(ValueError):
    L.yolo_v1_loss(pred, target, num_boxes=2, num_classes=3)


# -------------------------------------------------- float32 edge cases

EXTREME = jnp.array([1e4, -1e4, 0.0, 30.0, -30.0], jnp.float32)


@pytest.mark.parametrize(
  "name,fn",
  [
    ("sigmoid_bce_1", lambda x: L.sigmoid_binary_cross_entropy(x, 1.0)),
    ("sigmoid_bce_0", lambda x: L.sigmoid_binary_cross_entropy(x, 0.0)),
    ("softmax_ce", lambda x: L.softmax_cross_entropy(x, jnp.array(1))),
    ("softmax_ce_soft", lambda x: L.softmax_cross_entropy(x, jnp.full((5,), 0.2))),
    (
      "softmax_ce_smooth_1",
      lambda x: L.softmax_cross_entropy(x, jnp.array(0), label_smoothing=1.0),
    ),
    ("gan_d", lambda x: L.gan_discriminator_loss(x, x[::-1])),
    ("gan_g", L.gan_generator_loss),
    ("gan_g_sat", lambda x: L.gan_generator_loss(x, False)),
    ("elbo", lambda x: L.elbo(x[None], jnp.ones((1, 5)), jnp.zeros((1, 2)), jnp.zeros((1, 2)))),
    ("distillation", lambda x: L.distillation_loss(x, -x, jnp.array(1), 2.0, 0.5)),
    (
      "sequence_ce",
      lambda x: L.sequence_cross_entropy(
        jnp.stack([x, -x])[None], jnp.array([[0, 1]]), jnp.ones((1, 2))
      ),
    ),
  ],
)
def test_extreme_logits_finite_values_and_gradients(name, fn):
  assert_finite(jax.jit(fn)(EXTREME))
  assert_finite(grad_of(fn)(EXTREME))


def test_extreme_logits_exact_values():
  x = jnp.array([1e4, -1e4], jnp.float32)
  np.testing.assert_allclose(L.sigmoid_binary_cross_entropy(x, 1.0), [0.0, 1e4])
  np.testing.assert_allclose(L.softmax_cross_entropy(x, jnp.array(1)), 2e4)
  np.testing.assert_allclose(L.gan_discriminator_loss(x, x), [1e4, 1e4])


def test_binary_cross_entropy_at_exact_zero_and_one():
  p = jnp.array([0.0, 1.0, 0.0, 1.0], jnp.float32)
  z = jnp.array([0.0, 1.0, 1.0, 0.0], jnp.float32)
  np.testing.assert_allclose(L.binary_cross_entropy(p, z), [0.0, 0.0, 100.0, 100.0])
  assert_finite(grad_of(losses.binary_cross_entropy, (0, 1))(p, z))


def test_label_smoothing_one_ignores_labels():
  rng = np.random.default_rng(18)
  logits = normal(rng, (3, 4))
  uniform = -np_log_softmax(logits).mean(-1)
  for labels in (np.array([0, 1, 2]), np.array([3, 3, 3])):
    np.testing.assert_allclose(
      L.softmax_cross_entropy(logits, labels, label_smoothing=1.0), uniform, rtol=1e-5
    )
  np.testing.assert_allclose(
    L.softmax_cross_entropy(logits, np.array([0, 1, 2]), 0.0),
    -np_log_softmax(logits)[np.arange(3), [0, 1, 2]],
    rtol=1e-5,
  )


def test_empty_masks_give_zero_and_finite_gradients():
  logits = jnp.ones((2, 3, 4))
  targets = jnp.zeros((2, 3), jnp.int32)
  mask = jnp.zeros((2, 3))
  fn = lambda x: losses.sequence_cross_entropy(x, targets, mask)
  np.testing.assert_allclose(jax.jit(fn)(logits), [0.0, 0.0])
  np.testing.assert_allclose(grad_of(fn)(logits), 0.0)
  w = jnp.zeros(3)
  assert float(L.weighted(jnp.ones(3), w)) == 0.0


def test_divergences_with_zeros_have_finite_gradients():
  p = jnp.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
  q = jnp.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.0]])
  np.testing.assert_allclose(L.kl_divergence(p, p), [0.0, 0.0], atol=1e-7)
  for f in (L.kl_divergence, L.js_divergence):
    assert_finite(f(p, q))
    assert_finite(grad_of(f, (0, 1))(p, q))
  # q = 0 where p > 0 is a true infinity.
  assert np.isinf(L.kl_divergence(q, p)[1])


def test_gaussian_nll_zero_variance_is_finite():
  args = (jnp.zeros(2), jnp.ones(2), jnp.array([0.0, 1.0]))
  assert_finite(L.gaussian_nll(*args))
  assert_finite(grad_of(losses.gaussian_nll, (0, 1, 2))(*args))


def test_gradient_penalty_flat_critic_is_finite():
  # A constant critic has a zero gradient: penalty 1, and ||0|| must not NaN.
  critic = lambda x, s: s * jnp.zeros(x.shape[0])
  x = jnp.ones((3, 2))
  pen = L.gradient_penalty(lambda z: critic(z, 1.0), x, x, jax.random.key(0))
  np.testing.assert_allclose(pen, 1.0)
  assert_finite(
    jax.grad(
      lambda s: jnp.sum(
        L.gradient_penalty(lambda z: s * jnp.sum(z * 0.0, axis=-1), x, x, jax.random.key(0))
      )
    )(1.0)
  )
