"""Tests for the cosine schedule and DDIM (dlx/ops/diffusion.py), DDPM's sampler choice
(dlx/models/ddpm.py) and the weights' EMA in the optimizer state (dlx/training/optim.py)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dlx import errors
from dlx.ops import diffusion
from dlx.training import optim


def _key(seed):
  # 'rbg' keys: threefry kernels take ~2 s each to compile on this CPU.
  return jax.random.key(seed, impl="rbg")


def test_cosine_schedule_alpha_bars_by_hand():
  T, s = 1000, 0.008
  f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
  sched = diffusion.cosine_schedule(T)
  for i in (0, 1, 99, 499, 899):  # index i is the paper's t = i + 1
    t = i + 1
    want = math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 / f0
    assert float(sched.alpha_bars[i]) == pytest.approx(want, rel=2e-4, abs=1e-7)
  # abar(T/2) = cos^2((0.5 + s) / (1 + s) pi / 2) / f0 ~ 0.4937 by hand.
  assert float(sched.alpha_bars[499]) == pytest.approx(0.4937, abs=1e-3)
  betas = np.asarray(sched.betas)
  assert betas.max() == pytest.approx(0.999) and betas.min() > 0
  assert float(sched.alpha_bars[-1]) < 1e-6  # the clipped last step ends in pure noise


def test_make_schedule_names():
  np.testing.assert_allclose(
    diffusion.make_schedule("linear", 20, 1e-3, 0.2).betas, np.linspace(1e-3, 0.2, 20), rtol=1e-6
  )
  with pytest.raises(errors.ConfigError, match="unknown noise schedule 'cos'"):
    diffusion.make_schedule("cos", 10)


def test_ddim_timesteps():
  np.testing.assert_array_equal(diffusion.ddim_timesteps(10, 10), np.arange(10))
  np.testing.assert_array_equal(diffusion.ddim_timesteps(10, 3), [3, 6, 9])
  np.testing.assert_array_equal(diffusion.ddim_timesteps(1000, 4), [249, 499, 749, 999])
  with pytest.raises(errors.ConfigError, match="sample steps"):
    diffusion.ddim_timesteps(10, 11)


MU, SD = 0.5, 0.3


def _gaussian_oracle(sched):
  # x0 ~ N(mu, sd^2): x_t ~ N(sqrt(abar) mu, abar sd^2 + 1 - abar), so
  # E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar sd^2 + 1 - abar).
  def oracle(x, t):
    ab = sched.alpha_bars[t].reshape(-1, 1)
    return jnp.sqrt(1 - ab) * (x - jnp.sqrt(ab) * MU) / (ab * SD**2 + 1 - ab)

  return oracle


def _sampler(sched, num_steps, eta=0.0, n=8192):
  """A jitted key -> DDIM samples of the Gaussian data with the exact predictor."""
  return jax.jit(
    lambda k: diffusion.ddim_sample(
      _gaussian_oracle(sched), sched, (n, 1), k, num_steps=num_steps, eta=eta
    )
  )


def test_ddim_deterministic_maps_noise_to_the_data_gaussian():
  # In 50 of 1000 steps the deterministic sampler under-disperses a little (measured:
  # std 0.289 cosine, 0.276 linear; 0.302 and 0.302 in all 1000): DDIM's known
  # discretisation bias with few steps.
  draw = _sampler(diffusion.cosine_schedule(1000), 50)
  x = draw(_key(0))
  assert abs(float(x.mean()) - MU) < 0.01 and SD - 0.02 < float(x.std()) < SD
  # eta = 0: only x_T is random (the key's first half), so a key gives one sample.
  np.testing.assert_array_equal(x, draw(_key(0)))


def test_ddim_all_steps_eta1_matches_ancestral_statistics():
  sched = diffusion.linear_beta_schedule(1000)
  ddim = _sampler(sched, 1000, eta=1.0)(_key(1))
  ancestral = jax.jit(
    lambda k: diffusion.ancestral_sample(_gaussian_oracle(sched), sched, (8192, 1), k)
  )(_key(2))
  assert abs(float(ddim.mean()) - float(ancestral.mean())) < 0.01
  assert abs(float(ddim.std()) - float(ancestral.std())) < 0.01
  assert abs(float(ddim.mean()) - MU) < 0.01 and abs(float(ddim.std()) - SD) < 0.01


def test_ddim_one_step_by_hand_and_clip():
  # One step from t = T-1 to clean data returns x0_hat = (x - sqrt(1 - abar) eps) /
  # sqrt(abar), clipped; x_T is the normal draw of the key's first half. About a third
  # of the values lie inside the clip range, so both the formula and the clip are seen.
  sched = diffusion.linear_beta_schedule(4, 0.1, 0.4)
  ab, k = float(sched.alpha_bars[-1]), _key(3)

  @jax.jit  # one compilation for both
  def draw(k):
    x_T = jax.random.normal(jax.random.split(k)[0], (8, 4), jnp.float32)
    eps = lambda x, t: 0.5 * x
    return x_T, diffusion.ddim_sample(eps, sched, (8, 4), k, num_steps=1, clip=0.5)

  x_T, x = draw(k)
  x0_hat = (1 - 0.5 * math.sqrt(1 - ab)) / math.sqrt(ab) * np.asarray(x_T)
  assert 0 < np.sum(np.abs(x0_hat) < 0.5) < x0_hat.size
  np.testing.assert_allclose(x, np.clip(x0_hat, -0.5, 0.5), rtol=1e-5, atol=1e-6)
  with pytest.raises(errors.ConfigError, match="eta"):
    diffusion.ddim_sample(lambda x, t: x, sched, (1, 1), k, num_steps=1, eta=-1.0)


def _optimizer_config(**fields):
  config = optim.default_config()
  config.update(ml_collections.ConfigDict(fields))
  return config


def test_ema_of_params_hand_computed_sequence():
  # sgd lr 1 on g = 1: W = 1, 0, -1, -2 after updates 1..3; decays d_n =
  # min(0.5, (1 + n) / (10 + n)) = 0.1, 2/11, 0.25 for n = 0, 1, 2.
  tx = optim.create_optimizer(_optimizer_config(name="sgd", learning_rate=1.0, ema_decay=0.5), 3)
  params = {"w": jnp.array([1.0])}
  state = tx.init(params)
  np.testing.assert_allclose(optim.ema_params(state)["w"], [1.0])
  ema = 1.0
  for n in range(3):
    updates, state = tx.update({"w": jnp.array([1.0])}, state, params)
    params = optax.apply_updates(params, updates)
    d = min(0.5, (1 + n) / (10 + n))
    ema = d * ema + (1 - d) * float(params["w"][0])
    np.testing.assert_allclose(optim.ema_params(state)["w"], [ema], rtol=1e-6)
  # By hand: E = 0.1*1 + 0.9*0 = 0.1; 2/11*0.1 + 9/11*(-1) = -0.8; 0.25*(-0.8) + 0.75*(-2).
  assert ema == pytest.approx(-1.7, abs=1e-6)
  # The updates are the plain optimizer's.
  np.testing.assert_allclose(params["w"], [-2.0])


def test_ema_off_and_checks():
  tx = optim.create_optimizer(_optimizer_config(name="sgd"), 3)
  assert optim.ema_params(tx.init({"w": jnp.zeros(2)})) is None
  with pytest.raises(errors.ConfigError, match="ema_decay"):
    optim.create_optimizer(_optimizer_config(ema_decay=1.0), 3)


def test_ema_params_found_in_a_restored_state():
  # warm_start.restore_state returns NamedTuples as dicts of their fields, tuples as lists.
  raw = [None, {"count": np.int32(2), "ema": {"w": np.ones(2)}}]
  np.testing.assert_array_equal(optim.ema_params(raw)["w"], np.ones(2))
  assert optim.ema_params({"params": {"w": np.ones(2)}}) is None
