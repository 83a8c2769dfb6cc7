"""Environments by name (docs/curriculum.md#f24), all behind one interface of pure JAX
functions (`Env`): 'CartPole-v1' is dlx's own (dlx/envs/cartpole.py), any other name a
gymnax environment from dlx's [rl] extra, its state dataclass turned into a dict of
arrays so that a checkpoint stores it and a scan carries it with fixed dtypes.
"""

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from dlx import errors
from dlx.envs import cartpole


@dataclasses.dataclass(frozen=True)
class Env:
  """An environment as pure functions of JAX arrays, states being dicts of arrays:
  reset(rng) -> (observation, state); step(rng, state, action) -> (observation, state,
  reward, terminated, truncated, final_observation), resetting a finished episode."""

  name: str
  reset: Callable
  step: Callable
  num_actions: int
  max_steps: int  # the time limit


@functools.lru_cache(maxsize=8)
def make_env(name: str) -> Env:
  """'CartPole-v1' (dlx.envs.cartpole), or any other gymnax environment by its name."""
  if name == "CartPole-v1":
    return Env(name, cartpole.reset, cartpole.step, cartpole.NUM_ACTIONS, cartpole.MAX_STEPS)
  try:
    import gymnax  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError as e:
    raise errors.UserError(
      f"--config.env={name!r} comes from gymnax ({e.name} is not installed): "
      "pip install -e .[rl] (./launch.sh installs it)"
    ) from None
  try:
    env, params = gymnax.make(name)
  except (ValueError, KeyError) as e:
    raise errors.ConfigError(f"--config.env={name!r}: not a gymnax environment ({e})") from None
  state_class = type(jax.eval_shape(env.reset, jax.random.PRNGKey(0), params)[1])

  def reset(rng):
    observation, state = env.reset(rng, params)
    return observation, state_to_dict(state)

  def step(rng, state, action):
    observation, state, reward, terminated, truncated, info = env.step(
      rng, state_class(**state), action, params
    )
    return (
      observation,
      state_to_dict(state),
      reward,
      terminated,
      truncated,
      info["final_observation"],
    )

  return Env(name, reset, step, int(env.num_actions), int(params.max_steps_in_episode))


def strongly_typed(x):
  """`x` as a strongly typed array, so a scan carry keeps its dtype."""
  x = jnp.asarray(x)
  return jnp.asarray(x, dtype=x.dtype)


def state_to_dict(env_state) -> dict:
  """A gymnax state (a dataclass) as a dict of arrays, which a checkpoint stores and a
  scan carries with fixed dtypes."""
  return {f.name: strongly_typed(getattr(env_state, f.name)) for f in dataclasses.fields(env_state)}
