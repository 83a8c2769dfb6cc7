"""DQN (dlx/tasks/rl/): the Bellman residual on a hand-computed case, one-line config
errors, exact resume of the agent's whole state (parameters, target network, replay
buffer, environment) and greedy episodes against gymnasium. (The TD arithmetic:
tests/unit/ops/test_q_learning.py; CartPole: tests/unit/envs/test_cartpole.py.)"""

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
from dlx.tasks.rl import agent
from dlx.tasks.rl import episodes
from dlx.tasks.rl import transitions
from dlx.training import checkpoint
from tests import conftest


def test_bellman_residual_by_hand():
  config = experiment.load("dqn_cartpole").config("smoke")
  loss = transitions.get_loss(config)  # gamma 0.99, Huber delta 1
  outputs = jnp.array([[[2.0, 0.5], [1.0, 4.0]]])  # Q(s) and Q(s') of one transition
  batch = {"action": jnp.array([1]), "reward": jnp.array([1.0]), "terminated": jnp.array([0.0])}
  values = loss(outputs, batch)
  residual = 0.5 - (1.0 + 0.99 * 4.0)  # |r| = 4.46 > 1: the linear branch
  np.testing.assert_allclose(values["loss"], [abs(residual) - 0.5], rtol=1e-6)
  np.testing.assert_allclose(values["loss"], losses.huber(0.5, 1.0 + 0.99 * 4.0)[None])
  np.testing.assert_allclose(values["q_max"], [2.0])


def test_bad_config_is_one_line():
  config = experiment.load("dqn_cartpole").config("smoke")
  config.gamma = 1.5
  with pytest.raises(errors.ConfigError, match="gamma"):
    agent.check_config(config)


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
  returns = episodes.greedy_returns(
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
