"""DQN's evaluation (docs/curriculum.md#f24): greedy episodes played in parallel in JAX,
`evaluate` (their mean return picks the best checkpoint) and `final_report` (the best
checkpoint on the test episodes, and learning_curve.png).
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import errors
from dlx.envs import registry
from dlx.training import metric_writers
from dlx.training import warm_start
from dlx.viz import plots

_EPISODE_SALT = {"validation": 11, "test": 12}


@functools.lru_cache(maxsize=8)
def _episode_runner(model, env_name: str, num_episodes: int, fast_compile: bool):
  env = registry.make_env(env_name)

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


def final_report(ctx):
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
  top = float(registry.make_env(config.env).max_steps)  # CartPole: reward 1 per step
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
