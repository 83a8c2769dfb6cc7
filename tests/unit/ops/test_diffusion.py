"""Tests for dlx/ops/diffusion.py and dlx/models/ddpm.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import ddpm
from dlx.ops import diffusion


def _key(seed):
  # 'rbg' keys: threefry kernels take ~2 s each to compile on this CPU.
  return jax.random.key(seed, impl="rbg")


def _short_schedule(num_steps=50):
  # Betas scaled by 1000 / T so that abar_T is still ~0 (here ~1e-5).
  scale = 1000 / num_steps
  return diffusion.linear_beta_schedule(num_steps, 1e-4 * scale, 0.02 * scale)


def test_linear_schedule_closed_forms():
  s = diffusion.linear_beta_schedule(1000, 1e-4, 0.02)
  betas = np.linspace(1e-4, 0.02, 1000)
  abar = np.cumprod(1.0 - betas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  np.testing.assert_allclose(s.betas, betas, rtol=1e-5)
  np.testing.assert_allclose(s.alphas, 1.0 - betas, rtol=1e-6)
  np.testing.assert_allclose(s.alpha_bars, abar, rtol=1e-4)
  np.testing.assert_allclose(s.sqrt_alpha_bars, np.sqrt(abar), rtol=1e-4)
  np.testing.assert_allclose(s.sqrt_one_minus_alpha_bars, np.sqrt(1 - abar), rtol=1e-4)
  np.testing.assert_allclose(s.posterior_variance, betas * (1 - abar_prev) / (1 - abar), rtol=1e-4)
  assert s.posterior_variance[0] == 0.0
  assert float(s.alpha_bars[-1]) < 1e-4


def test_q_sample_marginals():
  s = diffusion.linear_beta_schedule()
  x0 = jnp.array([[1.0, -0.5], [2.0, 0.25], [-1.0, 0.0]])
  t = jnp.array([0, 300, 999])
  noise = jax.random.normal(_key(0), (20_000,) + x0.shape)
  xt = jax.vmap(lambda n: diffusion.q_sample(s, x0, t, n))(noise)
  abar = np.asarray(s.alpha_bars)[np.asarray(t)][:, None]
  np.testing.assert_allclose(xt.mean(0), np.sqrt(abar) * x0, atol=0.03)
  np.testing.assert_allclose(xt.var(0), np.broadcast_to(1 - abar, x0.shape), rtol=0.05, atol=1e-5)


def test_ancestral_sample_constant_data_oracle():
  # For data always equal to c the optimal eps-predictor is known exactly,
  # and the last (noise-free) step lands on c.
  s, c = _short_schedule(), 0.7

  def oracle(x, t):
    ab = s.alpha_bars[t].reshape(-1, 1, 1, 1)
    return (x - jnp.sqrt(ab) * c) / jnp.sqrt(1 - ab)

  sample_fn = jax.jit(lambda k: diffusion.ancestral_sample(oracle, s, (8, 4, 4, 1), k))
  x = sample_fn(_key(0))
  assert x.shape == (8, 4, 4, 1)
  np.testing.assert_allclose(x, c, atol=1e-3)


def test_ancestral_sample_gaussian_data_oracle():
  # x0 ~ N(mu, sd^2): x_t ~ N(sqrt(abar) mu, abar sd^2 + 1 - abar), so
  # E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar sd^2 + 1 - abar).
  s, mu, sd = _short_schedule(), 0.5, 0.3

  def oracle(x, t):
    ab = s.alpha_bars[t].reshape(-1, 1)
    return jnp.sqrt(1 - ab) * (x - jnp.sqrt(ab) * mu) / (ab * sd**2 + 1 - ab)

  x = jax.jit(lambda k: diffusion.ancestral_sample(oracle, s, (8192, 1), k))(_key(1))
  assert abs(float(x.mean()) - mu) < 0.015
  # sigma_t^2 = beta_t slightly over-disperses at T = 50 (about +6% here).
  assert abs(float(x.std()) - sd) < 0.03


def test_ancestral_sample_clip():
  s = _short_schedule()
  x = diffusion.ancestral_sample(lambda x, t: jnp.zeros_like(x), s, (64, 3), _key(0), clip=0.5)
  assert float(jnp.max(jnp.abs(x))) <= 0.5


def _small_ddpm():
  # Two levels keep XLA compile time down; widths do not matter here.
  return ddpm.DDPM(num_timesteps=10, channels=(8, 8), time_dim=16, num_groups=4)


@pytest.fixture(scope="module")
def ddpm_variables():
  rngs = {"params": _key(0), "sample": _key(1)}
  return jax.jit(_small_ddpm().init)(rngs, jnp.zeros((1, 28, 28, 1)))


def test_ddpm_call_shapes(ddpm_variables):
  model = _small_ddpm()
  x0 = jnp.zeros((3, 28, 28, 1))
  assert set(ddpm_variables["params"]) == {"unet"}
  out = jax.jit(model.apply)(ddpm_variables, x0, rngs={"sample": _key(2)})
  assert out["predicted_noise"].shape == out["noise"].shape == x0.shape
  eps = model.apply(ddpm_variables, x0, jnp.array([0, 5, 9]), method=ddpm.DDPM.denoise)
  assert eps.shape == x0.shape


def test_ddpm_sample_shapes(ddpm_variables):
  model = _small_ddpm()
  sample_fn = jax.jit(functools.partial(ddpm.sample, model, num_samples=2, clip=1.0))
  x = sample_fn(ddpm_variables, _key(3))
  assert x.shape == (2, 28, 28, 1)
  assert bool(jnp.all(jnp.isfinite(x))) and float(jnp.max(jnp.abs(x))) <= 1.0
