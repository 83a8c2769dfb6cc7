"""The DQN agent (docs/curriculum.md#f24): its memory (replay buffer, environment state,
target network) as QNetwork variable collections, its optimizer, one-line checks of its
config, and the train step that acts, stores and learns inside one compiled call (see
dlx/tasks/rl/__init__.py).
"""

import functools

import jax
import jax.numpy as jnp
import optax

from dlx import errors
from dlx import losses
from dlx.envs import registry
from dlx.envs import replay
from dlx.ops import q_learning
from dlx.training import optim
from dlx.training import steps


def initial_memory(config):
  """rng -> the agent's memory (QNetwork's `memory`): an empty replay buffer and the
  environment after a reset, with the running episode return."""

  def make(rng):
    observation, env_state = registry.make_env(config.env).reset(rng)
    observation = registry.strongly_typed(observation).astype(jnp.float32)
    example = {
      "observation": observation,
      "action": jnp.zeros((), jnp.int32),
      "reward": jnp.zeros((), jnp.float32),
      "next_observation": observation,
      "terminated": jnp.zeros((), jnp.float32),
    }
    return {
      "replay": replay.init(example, config.buffer_size),
      "env": {
        "state": jax.tree.map(registry.strongly_typed, env_state),
        "observation": observation,
        "episode_return": jnp.zeros((), jnp.float32),
        "last_return": jnp.zeros((), jnp.float32),  # the latest finished episode's
        "episodes": jnp.zeros((), jnp.int32),
      },
    }

  return make


def make_optimizer(config, total_steps):
  """The config's optimizer; a schedule runs over the run's gradient updates, which
  are `env_steps_per_step / train_every` per trainer step."""
  updates = max(1, total_steps * config.env_steps_per_step // config.train_every)
  return optim.create_optimizer(config.optimizer, updates)


def check_config(config):
  """One-line errors for DQN fields that cannot work."""

  def fail(field, message):
    raise errors.ConfigError(f"--config.{field}={config[field]!r}: {message}")

  for field in (
    "buffer_size",
    "env_steps_per_step",
    "train_every",
    "eval_episodes",
    "validation_episodes",
  ):
    if config[field] <= 0:
      fail(field, "must be positive")
  if not 0.0 <= config.gamma <= 1.0:
    fail("gamma", "must lie in [0, 1]")
  if config.target_update_every < 0:
    fail("target_update_every", "must be >= 0 (0 = Polyak averaging with tau)")
  if config.target_update_every == 0 and not 0.0 < config.tau <= 1.0:
    fail("tau", "must lie in (0, 1] when target_update_every is 0")
  if config.batch_size > config.buffer_size:
    fail("batch_size", f"exceeds --config.buffer_size={config.buffer_size}")


def make_train_step(model, optimizer, config, axis_name=None, teacher=None):
  """The protocol's `make_train_step` for DQN (see dlx/tasks/rl/__init__.py)."""
  if teacher is not None:
    raise errors.ConfigError("the DQN step reads no teacher; unset --config.teacher")
  if axis_name is not None:
    raise errors.ConfigError(
      "DQN acts in one environment: --config.parallel=pmap is not supported; use mesh"
    )
  check_config(config)
  env = registry.make_env(config.env)
  num_actions = model.num_actions
  if num_actions != env.num_actions:
    raise errors.ConfigError(
      f"--config.model.num_actions={num_actions}: {config.env} has {env.num_actions} actions"
    )
  gamma, delta, batch_size = config.gamma, config.huber_delta, config.batch_size
  k = config.env_steps_per_step
  explore = functools.partial(
    q_learning.epsilon,
    start=config.epsilon_start,
    end=config.epsilon_end,
    decay_steps=config.exploration_steps,
  )

  def q_values(params, observations):
    return model.apply({"params": params}, observations)

  def learn(params, opt_state, target, buffer, rng):
    batch = replay.sample(buffer, rng, batch_size)
    next_q_target = q_values(target, batch["next_observation"])
    next_q_online = q_values(params, batch["next_observation"]) if config.double_dqn else None
    y = q_learning.td_targets(
      batch["reward"], batch["terminated"], next_q_target, gamma, next_q_online
    )
    y = jax.lax.stop_gradient(y)

    def objective(params):
      q_sa = q_learning.action_values(q_values(params, batch["observation"]), batch["action"])
      return jnp.mean(losses.huber(q_sa, y, delta)), jnp.mean(q_sa)

    (loss, q_mean), grads = jax.value_and_grad(objective, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, q_mean

  def skip(params, opt_state, target, buffer, rng):
    del target, buffer, rng
    return params, opt_state, jnp.zeros(()), jnp.zeros(())

  def env_step(carry, inputs):
    params, opt_state, memory = carry
    t, rng = inputs
    act_rng, explore_rng, env_rng, learn_rng = jax.random.split(rng, 4)
    env_memory = memory["env"]
    observation = env_memory["observation"]
    greedy = jnp.argmax(q_values(params, observation[None])[0]).astype(jnp.int32)
    random_action = jax.random.randint(act_rng, (), 0, num_actions)
    action = jnp.where(jax.random.uniform(explore_rng) < explore(t), random_action, greedy)
    next_observation, env_state, reward, terminated, truncated, final = env.step(
      env_rng, env_memory["state"], action
    )
    buffer = replay.add(
      memory["replay"],
      {
        "observation": observation,
        "action": action,
        "reward": reward,
        "next_observation": final,
        "terminated": terminated,
      },
    )
    done = jnp.logical_or(terminated, truncated)
    episode_return = env_memory["episode_return"] + reward
    env_memory = {
      "state": jax.tree.map(lambda new, old: new.astype(old.dtype), env_state, env_memory["state"]),
      "observation": next_observation.astype(jnp.float32),
      "episode_return": jnp.where(done, 0.0, episode_return),
      "last_return": jnp.where(done, episode_return, env_memory["last_return"]),
      "episodes": env_memory["episodes"] + done.astype(jnp.int32),
    }

    count = t + 1  # environment steps taken so far
    learning = jnp.logical_and(count >= config.warmup_steps, count % config.train_every == 0)
    target = memory["target"]["params"]
    params, opt_state, loss, q_mean = jax.lax.cond(
      learning, learn, skip, params, opt_state, target, buffer, learn_rng
    )
    if config.target_update_every:
      refresh = count % config.target_update_every == 0
      target = jax.tree.map(lambda p, q: jnp.where(refresh, p, q), params, target)
    else:
      tau = jnp.where(learning, config.tau, 0.0)
      target = optax.incremental_update(params, target, tau)
    memory = {**memory, "replay": buffer, "env": env_memory, "target": {"params": target}}
    return (params, opt_state, memory), (loss, q_mean, learning)

  def train_step(state, batch):
    del batch  # the agent makes its own data
    rng = steps.step_rngs(state)["sample"]
    first = state.step * k
    ts = first + jnp.arange(k)
    carry = (state.params, state.opt_state, state.model_state)
    (params, opt_state, memory), (loss, q_mean, learning) = jax.lax.scan(
      env_step, carry, (ts, jax.random.split(rng, k))
    )
    updates = jnp.sum(learning)
    mean = lambda x: jnp.sum(x * learning) / jnp.maximum(updates, 1)
    metrics = {
      "loss": mean(loss),
      "q_mean": mean(q_mean),
      "epsilon": explore(first + k - 1),
      "episode_return": memory["env"]["last_return"],
      "episodes": memory["env"]["episodes"].astype(jnp.float32),
      "env_steps": ((state.step + 1) * k).astype(jnp.float32),
      "buffer_size": memory["replay"]["size"].astype(jnp.float32),
    }
    new_state = state.replace(
      step=state.step + 1, params=params, opt_state=opt_state, model_state=memory
    )
    return new_state, metrics

  return train_step
