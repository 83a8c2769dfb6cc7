"""NADE (dlx/models/nade.py) against a naive O(HD^2) loop, by enumeration and by sampling."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import nade

D, H = 8, 5


def _model_and_params(d=D, h=H, seed=0):
  """A NADE over d pixels with random parameters far from their (near-uniform)
  initialisation, made in NumPy (no init to compile)."""
  rng = np.random.default_rng(seed)
  shapes = {"W": (h, d), "c": (h,), "V": (d, h), "b": (d,)}
  params = {k: 1.5 * rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
  return nade.NADE(hidden=h, input_shape=(d,)), {"params": params}


def _log_prob(model, params, x):
  return jax.jit(lambda p, x: model.apply(p, x, method="log_prob"))(params, x)


def _naive_logits(params, x):
  """Each conditional computed on its own: h_d = sigmoid(c + W[:, :d] x_<d), O(HD^2)."""
  p = {k: np.asarray(v, np.float64) for k, v in params["params"].items()}
  x = np.asarray(x, np.float64)
  logits = np.zeros(x.shape)
  for n in range(x.shape[0]):
    for d in range(x.shape[1]):
      h = 1.0 / (1.0 + np.exp(-(p["c"] + p["W"][:, :d] @ x[n, :d])))
      logits[n, d] = p["b"][d] + p["V"][d] @ h
  return logits


def _all_binary(d):
  return jnp.asarray(list(itertools.product((0.0, 1.0), repeat=d)), jnp.float32)


def test_probabilities_of_all_binary_vectors_sum_to_one():
  d = 10
  model, params = _model_and_params(d=d)
  log_p = _log_prob(model, params, _all_binary(d))
  assert log_p.shape == (2**d,)
  np.testing.assert_allclose(float(jnp.sum(jnp.exp(log_p))), 1.0, rtol=1e-5)


def test_conditionals_match_a_naive_loop():
  model, params = _model_and_params()
  x = (np.random.default_rng(3).random((6, D)) < 0.5).astype(np.float32)
  logits = jax.jit(model.apply)(params, x)
  np.testing.assert_allclose(logits, _naive_logits(params, x), rtol=1e-5, atol=1e-5)


def test_hand_written_backward_pass_matches_autodiff():
  """The custom VJP's reverse scan against jax.grad of the plain recursion."""
  _, params = _model_and_params()
  p = params["params"]
  rng = np.random.default_rng(4)
  x = (rng.random((5, D)) < 0.5).astype(np.float32)
  weights = rng.standard_normal((5, D)).astype(np.float32)

  def objective(fn):
    return lambda W, c, V, b, x: jnp.sum(weights * jnp.tanh(fn(W, c, V, b, x)))

  plain = objective(lambda *args: nade._forward(*args)[0])
  args = (p["W"], p["c"], p["V"], p["b"], x)
  expected = jax.jit(jax.grad(plain, argnums=range(5)))(*args)
  got = jax.jit(jax.grad(objective(nade.conditional_logits), argnums=range(5)))(*args)
  for e, g in zip(expected, got):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_samples_are_binary_images_and_completions_keep_the_given_pixels():
  _, params = _model_and_params(d=8, h=4)
  model = nade.NADE(hidden=4, input_shape=(2, 4, 1))
  given = np.tile(np.float32([1, 0, 1, 1, 0, 0, 0, 0]), (7, 1))
  sample = jax.jit(lambda p, rng, g: model.apply(p, rng, 7, g, 4, method="sample"))
  out = sample(params, jax.random.PRNGKey(1), given)
  assert out.shape == (7, 2, 4, 1)
  assert set(np.unique(np.asarray(out))) <= {0.0, 1.0}
  np.testing.assert_array_equal(out.reshape(7, -1)[:, :4], given[:, :4])


@pytest.mark.slow  # 40,000 ancestral samples
def test_sample_frequencies_match_the_likelihood():
  """Ancestral samples of a 3-pixel NADE land on each of the 8 images as often as
  exp(log p) says (40,000 samples: a standard error below 0.0025)."""
  model, params = _model_and_params(d=3, h=4, seed=7)
  sample = jax.jit(lambda p, rng: model.apply(p, rng, 40_000, method="sample"))
  samples = np.asarray(sample(params, jax.random.PRNGKey(8)))
  codes = samples @ np.array([4, 2, 1])
  frequencies = np.bincount(codes.astype(int), minlength=8) / len(codes)
  expected = np.exp(np.asarray(_log_prob(model, params, _all_binary(3))))
  np.testing.assert_allclose(frequencies, expected, atol=0.01)
