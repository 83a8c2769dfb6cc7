"""dlx's JAX CartPole (dlx/envs/cartpole.py), reached through dlx/envs/registry.py as a
training run reaches it, against gymnasium's and gymnax's step by step; other gymnax
environments through the same interface, and the one-line error without the [rl]
extra."""

import sys

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx.envs import registry


def _random_episode(env, state, seed, reference_step):
  """Steps `env` (a dlx.envs.registry.Env) from `state` with random actions beside
  `reference_step(action) -> (observation, reward, terminated, truncated)` until the
  pole falls, comparing every step; returns the number of steps."""
  actions = np.random.default_rng(seed).integers(0, 2, 200)
  step = jax.jit(env.step)
  for t, action in enumerate(actions):
    expected, reward, terminated, truncated = reference_step(int(action))
    _, state, got_reward, got_terminated, got_truncated, final = step(
      jax.random.PRNGKey(t), state, jnp.asarray(action)
    )
    np.testing.assert_allclose(final, expected, atol=1e-5)
    assert float(got_reward) == reward
    assert (bool(got_terminated), bool(got_truncated)) == (terminated, truncated)
    if terminated:
      return t + 1
  raise AssertionError("a random policy drops the pole within 200 steps")


def test_cartpole_steps_as_gymnasium_does():
  env = registry.make_env("CartPole-v1")
  reference = gymnasium.make("CartPole-v1")
  assert env.max_steps == reference.spec.max_episode_steps == 500
  assert env.num_actions == reference.action_space.n == 2
  for seed in range(3):
    reference.reset(seed=seed)
    obs, state = env.reset(jax.random.PRNGKey(seed))
    assert np.all(np.abs(obs) <= 0.05)
    reference.unwrapped.state = np.asarray(obs, np.float64)
    _random_episode(env, state, seed, lambda a: reference.step(a)[:4])


@pytest.mark.slow  # importing gymnax (all its environments) takes seconds
def test_cartpole_matches_gymnax():
  """gymnax's CartPole-v1 (the [rl] extra) from the same start state agrees too."""
  gymnax = pytest.importorskip("gymnax", reason="gymnax comes with pip install -e .[rl]")
  env = registry.make_env("CartPole-v1")
  other, params = gymnax.make("CartPole-v1")
  obs, state = env.reset(jax.random.PRNGKey(0))
  _, other_state = other.reset(jax.random.PRNGKey(0), params)
  other_state = other_state.replace(x=obs[0], x_dot=obs[1], theta=obs[2], theta_dot=obs[3])
  box = {"state": other_state}

  def reference_step(action):
    _, box["state"], reward, terminated, truncated, info = other.step(
      jax.random.PRNGKey(1), box["state"], action, params
    )
    return info["final_observation"], float(reward), bool(terminated), bool(truncated)

  _random_episode(env, state, 0, reference_step)
  # Other gymnax environments come through the same interface (dict states).
  acrobot = registry.make_env("Acrobot-v1")
  obs, state = acrobot.reset(jax.random.PRNGKey(0))
  out = jax.jit(acrobot.step)(jax.random.PRNGKey(1), state, jnp.asarray(0))
  assert out[0].shape == obs.shape and isinstance(out[1], dict) and acrobot.num_actions == 3


def test_gymnax_environments_by_name_need_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "gymnax", None)  # Python's way to block an import
  registry.make_env.cache_clear()
  with pytest.raises(errors.UserError, match=r"pip install -e \.\[rl\]"):
    registry.make_env("Acrobot-v1")
