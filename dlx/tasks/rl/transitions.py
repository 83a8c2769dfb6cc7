"""DQN's data (docs/curriculum.md#f24): a Stream of fixed transitions of a uniformly
random policy, whose batches the train step ignores (the agent makes its own data) and
whose validation and test splits are the held-out states of Mnih et al. (2015); and
their evaluation loss, the Bellman residual with the mean max-Q beside it.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import losses
from dlx.data import core
from dlx.envs import registry
from dlx.ops import q_learning

_SPLIT_SALT = {"train": 0, "validation": 1, "test": 2}


def get_loss(config):
  """Per-transition evaluation on the stream's random-policy transitions: the Huber
  Bellman residual of the online network bootstrapping from itself (the loss sees no
  target parameters), and max_a Q(s, a), whose mean Mnih et al. track as the policy's
  value estimate. The model sees inputs (B, 2, obs_dim): each state beside its next."""
  gamma, delta = config.gamma, config.huber_delta

  def bellman_residual(outputs, batch):
    q, next_q = outputs[:, 0], outputs[:, 1]
    target = q_learning.td_targets(batch["reward"], batch["terminated"], next_q, gamma)
    q_sa = q_learning.action_values(q, batch["action"])
    return {
      "loss": losses.huber(q_sa, jax.lax.stop_gradient(target), delta),
      "q_max": jnp.max(q, axis=-1),
    }

  return bellman_residual


@functools.lru_cache(maxsize=4)
def _random_rollout(env_name: str, num_envs: int, length: int, fast_compile: bool):
  """A compiled rng -> `length` steps of `num_envs` environments under a uniformly
  random policy, as transitions (one compilation per shape, shared by the splits)."""
  env = registry.make_env(env_name)

  def rollout(rng):
    reset_rng, run_rng = jax.random.split(rng)
    obs, state = jax.vmap(env.reset)(jax.random.split(reset_rng, num_envs))

    def step(carry, rng):
      obs, state = carry
      action_rng, env_rng = jax.random.split(rng)
      action = jax.random.randint(action_rng, (num_envs,), 0, env.num_actions)
      next_obs, state, reward, terminated, _, final = jax.vmap(env.step)(
        jax.random.split(env_rng, num_envs), state, action
      )
      transition = {
        "inputs": jnp.stack([obs, final], axis=1).astype(jnp.float32),
        "action": action.astype(jnp.int32),
        "reward": reward.astype(jnp.float32),
        "terminated": terminated.astype(jnp.float32),
      }
      return (next_obs, state), transition

    _, out = jax.lax.scan(step, (obs, state), jax.random.split(run_rng, length))
    return jax.tree.map(lambda x: x.reshape((num_envs * length,) + x.shape[2:]), out)

  return jax.jit(rollout, compiler_options=config_lib.compiler_options(fast_compile))


@functools.lru_cache(maxsize=16)
def _random_transitions(
  env_name: str, size: int, seed: int, salt: int, fast_compile: bool = False
) -> dict:
  """`size` transitions of a uniformly random policy (up to 64 environments in
  parallel), fixed by (seed, salt)."""
  num_envs = min(64, size)
  rollout = _random_rollout(env_name, num_envs, -(-size // num_envs), fast_compile)
  out = jax.device_get(rollout(jax.random.fold_in(jax.random.PRNGKey(seed), salt)))
  return {k: np.asarray(v[:size]) for k, v in out.items()}


def make_stream(config) -> core.Stream:
  """Validation and test: `probe_transitions` random-policy transitions each; the train
  stream: batches cycling through another such set (which the DQN step ignores)."""
  size, name, fast = config.probe_transitions, config.env, config.fast_compile

  def batch(seed, step):
    pool = _random_transitions(name, size, seed, _SPLIT_SALT["train"], fast)
    rows = (step * config.batch_size + np.arange(config.batch_size)) % size
    return core.take(pool, rows)

  env = registry.make_env(name)
  return core.Stream(
    batch=batch,
    validation=_random_transitions(name, size, config.seed, _SPLIT_SALT["validation"], fast),
    test=_random_transitions(name, size, config.seed, _SPLIT_SALT["test"], fast),
    info={"name": name, "num_actions": int(env.num_actions)},
  )
