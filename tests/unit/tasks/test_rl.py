"""DQN (dlx/tasks/rl.py): TD targets and the epsilon schedule on hand-computed cases,
dlx's JAX CartPole (dlx/envs/cartpole.py) against gymnasium's and gymnax's step by step,
and exact resume of the agent's whole state (parameters, target network, replay buffer,
environment)."""

import sys

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx import experiment
from dlx import losses
from dlx import train
from dlx.models import dqn
from dlx.tasks import rl
from dlx.training import checkpoint
from tests import conftest


def test_epsilon_decays_linearly_then_stays():
  eps = lambda t: float(rl.epsilon(t, start=1.0, end=0.05, decay_steps=100))
  assert eps(0) == 1.0
  assert eps(50) == pytest.approx(0.525)
  assert eps(100) == pytest.approx(0.05) and eps(10_000) == pytest.approx(0.05)


def test_td_target_by_hand():
  rewards = jnp.array([1.0, 0.5])
  terminated = jnp.array([0.0, 1.0])
  next_q_target = jnp.array([[1.0, 3.0], [2.0, 0.0]])
  # DQN: r + 0.9 max_a Q_target(s', a); a terminal transition keeps only r.
  np.testing.assert_allclose(
    rl.td_targets(rewards, terminated, next_q_target, 0.9), [1.0 + 0.9 * 3.0, 0.5]
  )
  # Double DQN: the online net picks a* = (0, 1); the target net values it: 1.0 and 0.0.
  next_q_online = jnp.array([[5.0, 0.0], [0.0, 5.0]])
  np.testing.assert_allclose(
    rl.td_targets(rewards, terminated, next_q_target, 0.9, next_q_online), [1.0 + 0.9 * 1.0, 0.5]
  )


def test_bellman_residual_by_hand():
  config = experiment.load("dqn_cartpole").config("smoke")
  loss = rl.get_loss(config)  # gamma 0.99, Huber delta 1
  outputs = jnp.array([[[2.0, 0.5], [1.0, 4.0]]])  # Q(s) and Q(s') of one transition
  batch = {"action": jnp.array([1]), "reward": jnp.array([1.0]), "terminated": jnp.array([0.0])}
  values = loss(outputs, batch)
  residual = 0.5 - (1.0 + 0.99 * 4.0)  # |r| = 4.46 > 1: the linear branch
  np.testing.assert_allclose(values["loss"], [abs(residual) - 0.5], rtol=1e-6)
  np.testing.assert_allclose(values["loss"], losses.huber(0.5, 1.0 + 0.99 * 4.0)[None])
  np.testing.assert_allclose(values["q_max"], [2.0])


def _random_episode(env, state, seed, reference_step):
  """Steps `env` (a dlx.tasks.rl.Env) from `state` with random actions beside
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
  env = rl.make_env("CartPole-v1")
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
  env = rl.make_env("CartPole-v1")
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
  acrobot = rl.make_env("Acrobot-v1")
  obs, state = acrobot.reset(jax.random.PRNGKey(0))
  out = jax.jit(acrobot.step)(jax.random.PRNGKey(1), state, jnp.asarray(0))
  assert out[0].shape == obs.shape and isinstance(out[1], dict) and acrobot.num_actions == 3


def test_gymnax_environments_by_name_need_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "gymnax", None)  # Python's way to block an import
  rl.make_env.cache_clear()
  with pytest.raises(errors.UserError, match=r"pip install -e \.\[rl\]"):
    rl.make_env("Acrobot-v1")


def test_bad_config_is_one_line():
  config = experiment.load("dqn_cartpole").config("smoke")
  config.gamma = 1.5
  with pytest.raises(errors.ConfigError, match="gamma"):
    rl.check_config(config)


def _agent():
  """(config, init, step, batch) of the smoke config, compiled as the trainer compiles a
  smoke run (fast); the batch, which the step ignores, is zeros."""
  exp = experiment.load("dqn_cartpole")
  config = exp.config("smoke")  # 4 env steps per trainer step, learning from env step 4
  model = exp.get_model(config)
  optimizer = exp.make_optimizer(config, 6)
  batch = {"inputs": np.zeros((config.batch_size, 2, 4), np.float32)}
  init = train.create_init_fn(model, optimizer, batch["inputs"][:2], config.seed)
  options = train.compiler_options(config)
  step = jax.jit(
    exp.make_train_step(model, optimizer, config, axis_name=None, teacher=None),
    compiler_options=options,
  )
  return config, jax.jit(init, compiler_options=options), step, batch


def _run(step, state, batch, n):
  for _ in range(n):
    state, metrics = step(state, batch)
  return state, metrics


def test_killed_run_resumes_exactly(tmp_path):
  """6 steps straight equal 3 steps, a checkpoint round trip, then 3 more: the buffer,
  the environment and the target network are all in the checkpoint."""
  config, init, step, batch = _agent()
  key = jax.random.PRNGKey(config.seed)
  start = init(key)
  straight, metrics = _run(step, start, batch, 6)
  assert float(metrics["loss"]) > 0  # it learned
  assert int(straight.model_state["replay"]["size"]) == 24
  # Hard target updates every 4 environment steps: after 24 the target is the online net.
  for a, b in zip(
    jax.tree.leaves(straight.model_state["target"]["params"]), jax.tree.leaves(straight.params)
  ):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(jax.tree.leaves(straight.params)[0], jax.tree.leaves(start.params)[0])

  half, _ = _run(step, start, batch, 3)
  saver = checkpoint.Checkpointer(str(tmp_path))
  saver.save(3, half, {})
  saver.close()
  restored, _ = checkpoint.Checkpointer(str(tmp_path)).restore_latest(jax.eval_shape(init, key))
  resumed, _ = _run(step, restored, batch, 3)
  for a, b in zip(
    jax.tree.leaves(resumed.checkpointed()), jax.tree.leaves(straight.checkpointed())
  ):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow  # compiles a 500-step episode (the smoke test plays them too)
def test_greedy_returns_of_a_fixed_policy():
  """A Q-network whose last layer is 0 with bias (1, 0) always pushes left: CartPole
  then ends in 8 to 11 steps from any start state (gymnasium agrees below)."""
  model = dqn.QNetwork(hidden=(4,), num_actions=2)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))["params"]
  params = jax.tree.map(jnp.zeros_like, params)
  params["Dense_1"]["bias"] = jnp.array([1.0, 0.0])
  returns = rl.greedy_returns(
    model, params, "CartPole-v1", 16, jax.random.PRNGKey(1), fast_compile=True
  )
  reference = gymnasium.make("CartPole-v1")
  lengths = []
  for seed in range(16):
    reference.reset(seed=seed)
    n, done = 0, False
    while not done:
      _, _, terminated, truncated, _ = reference.step(0)
      n, done = n + 1, terminated or truncated
    lengths.append(n)
  assert returns.shape == (16,)
  assert min(lengths) <= returns.min() and returns.max() <= max(lengths)


@pytest.mark.slow
def test_relaunched_run_matches_an_uninterrupted_one(tmp_path):
  """Through the trainer: a run stopped after its step-3 checkpoint and relaunched to 6
  steps ends with the same state and results as a 6-step run."""
  exp = experiment.load("dqn_cartpole")

  def config(steps):
    c = exp.config("smoke")
    c.num_train_steps, c.checkpoint_every_steps = steps, 3
    return c

  straight = train.train_and_evaluate(config(6), str(tmp_path / "a"), experiment=exp)
  train.train_and_evaluate(config(3), str(tmp_path / "b"), experiment=exp)
  resumed = train.train_and_evaluate(config(6), str(tmp_path / "b"), experiment=exp)
  for split in ("test", "validation", "train"):
    assert resumed[split] == straight[split]
  a, _ = conftest.restore_checkpoint(tmp_path / "a" / "checkpoints", 6)
  b, _ = conftest.restore_checkpoint(tmp_path / "b" / "checkpoints", 6)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
