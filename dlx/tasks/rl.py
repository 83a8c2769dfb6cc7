"""Reinforcement learning (docs/curriculum.md#f24): DQN (Mnih et al., 2015) with Double
DQN (van Hasselt et al., 2016) as an option, acting in an environment written in JAX, so
the environment steps inside the compiled train step: CartPole-v1 (dlx/envs/cartpole.py),
or any gymnax environment by name.

How DQN fills the experiment protocol:

* the agent (`dlx.models.dqn.QNetwork`) carries its target parameters, its replay buffer
  (`dlx.envs.replay`) and the environment's state as variable collections, so they live
  in the train state's `model_state` and every checkpoint holds them: a killed run
  resumes exactly where it stopped;
* `make_dqn_step` is the train step: `env_steps_per_step` times, act epsilon-greedily,
  step the environment (auto-reset), store the transition, and once past `warmup_steps`
  take one TD step on a replay minibatch (Huber loss) and update the target network
  (a hard copy every `target_update_every` environment steps, or Polyak averaging with
  `tau` when that is 0); all randomness comes from the step's key;
* the data is a `Stream` of fixed transitions of a uniformly random policy (the held-out
  states of Mnih et al.): the agent makes its own training data, so the step ignores the
  stream's batches, and validation/test report the Bellman residual (`bellman_residual`)
  and the mean max-Q on those states;
* `evaluate` plays greedy episodes (vmapped, in JAX) and reports `mean_return`, which
  picks the best checkpoint (`best_metric`), since DQN's returns oscillate;
  `final_report` scores the best checkpoint on 100 test episodes and draws the
  learning curve.

Why dlx has its own CartPole when gymnax has one (and works with this JAX): importing
gymnax imports every environment it ships, one of which pulls in seaborn and scipy.stats,
about 1.5 s of CPU, a fifth of the 8 s a smoke test may take. dlx's copy is checked
step by step against gymnasium's and gymnax's (tests/unit/tasks/test_rl.py). Other gymnax
environments come from dlx's [rl] extra; without it such a run stops with one line
naming the extra.
"""

import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx import config as config_lib
from dlx import errors
from dlx import losses
from dlx.data import core
from dlx.envs import cartpole
from dlx.envs import replay
from dlx.training import metric_writers
from dlx.training import optim
from dlx.training import steps
from dlx.training import warm_start
from dlx.viz import plots

_SPLIT_SALT = {"train": 0, "validation": 1, "test": 2}
_EPISODE_SALT = {"validation": 11, "test": 12}


# ----------------------------------------------------------------- the environment


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


def _strong(x):
  """`x` as a strongly typed array, so a scan carry keeps its dtype."""
  x = jnp.asarray(x)
  return jnp.asarray(x, dtype=x.dtype)


def state_to_dict(env_state) -> dict:
  """A gymnax state (a dataclass) as a dict of arrays, which a checkpoint stores and a
  scan carries with fixed dtypes."""
  return {f.name: _strong(getattr(env_state, f.name)) for f in dataclasses.fields(env_state)}


def initial_memory(config):
  """rng -> the agent's memory (QNetwork's `memory`): an empty replay buffer and the
  environment after a reset, with the running episode return."""

  def make(rng):
    observation, env_state = make_env(config.env).reset(rng)
    observation = _strong(observation).astype(jnp.float32)
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
        "state": jax.tree.map(_strong, env_state),
        "observation": observation,
        "episode_return": jnp.zeros((), jnp.float32),
        "last_return": jnp.zeros((), jnp.float32),  # the latest finished episode's
        "episodes": jnp.zeros((), jnp.int32),
      },
    }

  return make


# ------------------------------------------------------------------ the pure pieces


def epsilon(t, start: float, end: float, decay_steps: int):
  """The exploration rate at environment step `t`: linear from `start` to `end` over
  `decay_steps` steps, then `end`."""
  fraction = jnp.clip(jnp.asarray(t, jnp.float32) / max(decay_steps, 1), 0.0, 1.0)
  return start + fraction * (end - start)


def td_targets(rewards, terminated, next_q_target, gamma: float, next_q_online=None):
  """One-step TD targets r + gamma (1 - terminated) Q'(s', a*).

  DQN: a* = argmax Q_target(s'), so Q'(s', a*) = max_a Q_target(s', a). Double DQN (give
  `next_q_online`): a* = argmax Q_online(s'), valued by the target network, which removes
  max's overestimation bias. Shapes: (B,), (B,), (B, A) [, (B, A)] -> (B,).
  A time-limit truncation is not a termination: it bootstraps."""
  if next_q_online is None:
    next_value = jnp.max(next_q_target, axis=-1)
  else:
    best = jnp.argmax(next_q_online, axis=-1)
    next_value = jnp.take_along_axis(next_q_target, best[..., None], axis=-1)[..., 0]
  return rewards + gamma * (1.0 - terminated) * next_value


def chosen(q_values, actions):
  """Q(s, a) of the taken actions: (B, A), (B,) -> (B,)."""
  return jnp.take_along_axis(q_values, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]


def get_loss(config):
  """Per-transition evaluation on the stream's random-policy transitions: the Huber
  Bellman residual of the online network bootstrapping from itself (the loss sees no
  target parameters), and max_a Q(s, a), whose mean Mnih et al. track as the policy's
  value estimate. The model sees inputs (B, 2, obs_dim): each state beside its next."""
  gamma, delta = config.gamma, config.huber_delta

  def bellman_residual(outputs, batch):
    q, next_q = outputs[:, 0], outputs[:, 1]
    target = td_targets(batch["reward"], batch["terminated"], next_q, gamma)
    q_sa = chosen(q, batch["action"])
    return {
      "loss": losses.huber(q_sa, jax.lax.stop_gradient(target), delta),
      "q_max": jnp.max(q, axis=-1),
    }

  return bellman_residual


# ----------------------------------------------------------------------- the data


@functools.lru_cache(maxsize=4)
def _random_rollout(env_name: str, num_envs: int, length: int, fast_compile: bool):
  """A compiled rng -> `length` steps of `num_envs` environments under a uniformly
  random policy, as transitions (one compilation per shape, shared by the splits)."""
  env = make_env(env_name)

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

  env = make_env(name)
  return core.Stream(
    batch=batch,
    validation=_random_transitions(name, size, config.seed, _SPLIT_SALT["validation"], fast),
    test=_random_transitions(name, size, config.seed, _SPLIT_SALT["test"], fast),
    info={"name": name, "num_actions": int(env.num_actions)},
  )


# ----------------------------------------------------------------- the train step


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


def make_dqn_step(model, optimizer, config, axis_name=None, teacher=None):
  """The protocol's `make_train_step` for DQN (see the module docstring)."""
  if teacher is not None:
    raise errors.ConfigError("the DQN step reads no teacher; unset --config.teacher")
  if axis_name is not None:
    raise errors.ConfigError(
      "DQN acts in one environment: --config.parallel=pmap is not supported; use mesh"
    )
  check_config(config)
  env = make_env(config.env)
  num_actions = model.num_actions
  if num_actions != env.num_actions:
    raise errors.ConfigError(
      f"--config.model.num_actions={num_actions}: {config.env} has {env.num_actions} actions"
    )
  gamma, delta, batch_size = config.gamma, config.huber_delta, config.batch_size
  k = config.env_steps_per_step
  explore = functools.partial(
    epsilon,
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
    y = td_targets(batch["reward"], batch["terminated"], next_q_target, gamma, next_q_online)
    y = jax.lax.stop_gradient(y)

    def objective(params):
      q_sa = chosen(q_values(params, batch["observation"]), batch["action"])
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


# ---------------------------------------------------------------------- evaluation


@functools.lru_cache(maxsize=8)
def _episode_runner(model, env_name: str, num_episodes: int, fast_compile: bool):
  env = make_env(env_name)

  def run(params, rng):
    reset_rng, run_rng = jax.random.split(rng)
    obs, state = jax.vmap(env.reset)(jax.random.split(reset_rng, num_episodes))

    def step(carry, rng):
      obs, state, total, alive = carry
      action = jnp.argmax(model.apply({"params": params}, obs), axis=-1)
      obs, state, reward, terminated, truncated, _ = jax.vmap(env.step)(
        jax.random.split(rng, num_episodes), state, action
      )
      total = total + jnp.where(alive, reward, 0.0)
      alive = jnp.logical_and(alive, jnp.logical_not(jnp.logical_or(terminated, truncated)))
      return (obs, state, total, alive), None

    init = (obs, state, jnp.zeros((num_episodes,)), jnp.ones((num_episodes,), bool))
    (_, _, total, _), _ = jax.lax.scan(step, init, jax.random.split(run_rng, env.max_steps))
    return total

  return jax.jit(run, compiler_options=config_lib.compiler_options(fast_compile))


def greedy_returns(
  model, params, env_name: str, num_episodes: int, rng, fast_compile: bool = False
) -> np.ndarray:
  """The undiscounted returns of `num_episodes` greedy episodes (argmax Q), each from
  its own reset, played in parallel to the time limit."""
  run = _episode_runner(model, env_name, num_episodes, fast_compile)
  # Host copies: parameters placed on the trainer's mesh and restored ones then share
  # one compilation.
  return np.asarray(run(jax.device_get(params), rng))


def _episode_key(config, split: str):
  # Fixed per split (not per step), so every validation scores the same start states.
  return jax.random.fold_in(jax.random.PRNGKey(config.seed), _EPISODE_SALT[split])


def evaluate(ctx, split):
  """Greedy episodes' `mean_return` (and the worst one): `validation_episodes` for
  validation, which picks the best checkpoint (more episodes make a lucky pick rarer),
  `eval_episodes` from other start states for test; the train split has no episodes of
  its own (its returns are in the train metrics)."""
  if split not in _EPISODE_SALT:
    return {}
  config = ctx.config
  episodes = config.validation_episodes if split == "validation" else config.eval_episodes
  returns = greedy_returns(
    ctx.model,
    ctx.variables["params"],
    config.env,
    episodes,
    _episode_key(config, split),
    config.fast_compile,
  )
  return {"mean_return": float(np.mean(returns)), "min_return": float(np.min(returns))}


def _best_params(ctx):
  """(params, step) of the run's best checkpoint, or the final ones if it kept none."""
  if not ctx.config.best_metric:
    return ctx.variables["params"], ctx.step
  try:
    state, step = warm_start.restore_state(f"{ctx.workdir}:best", "best_metric")
  except errors.ConfigError:
    return ctx.variables["params"], ctx.step
  return jax.tree.map(jnp.asarray, state["params"]), step


def _read_curves(workdir, k):
  train, validation = [], []
  for row in metric_writers.read_metrics(workdir):
    if row["split"] == "train" and "episode_return" in row:
      train.append((row["step"] * k, row["episode_return"]))
    elif row["split"] == "validation" and "mean_return" in row:
      validation.append((row["step"] * k, row["mean_return"]))
  return train, validation


def report(ctx):
  """The best checkpoint's mean return over `eval_episodes` greedy test episodes (the
  experiment's target), the final parameters' beside it, the environment steps taken,
  and the first validation at the maximum return; draws learning_curve.png."""
  config = ctx.config
  k = config.env_steps_per_step
  params, best_step = _best_params(ctx)
  play = functools.partial(
    greedy_returns,
    ctx.model,
    env_name=config.env,
    num_episodes=config.eval_episodes,
    rng=_episode_key(config, "test"),
    fast_compile=config.fast_compile,
  )
  best, final = play(params), play(ctx.variables["params"])
  train, validation = _read_curves(ctx.workdir, k)
  top = float(make_env(config.env).max_steps)  # CartPole: reward 1 per step
  solved = [steps_ for steps_, value in validation if value >= top]
  curves = {}
  if train:
    curves["train (epsilon-greedy, last episode)"] = tuple(zip(*train))
  if validation:
    curves[f"validation (greedy, mean of {config.validation_episodes})"] = tuple(zip(*validation))
  if curves:
    plots.plot_curve_panels(
      [{"curves": curves, "xlabel": "environment steps"}],
      os.path.join(ctx.workdir, "learning_curve.png"),
      ylabel="episode return",
      title=f"DQN on {config.env}" + (" (Double DQN)" if config.double_dqn else ""),
    )
  return {
    "mean_return": float(np.mean(best)),
    "min_return": float(np.min(best)),
    "best_step": int(best_step),
    "best_env_steps": int(best_step) * k,
    "final_mean_return": float(np.mean(final)),
    "env_steps": int(ctx.step) * k,
    "first_max_return_env_steps": solved[0] if solved else None,
    "episodes": int(ctx.variables["env"]["episodes"]),
  }
