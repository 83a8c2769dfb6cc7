"""Tests for dlx/ops/q_learning.py (docs/curriculum.md#f24): TD targets (DQN and Double
DQN), the Q-values of taken actions and the epsilon schedule on hand-computed cases."""

import jax.numpy as jnp
import numpy as np
import pytest

from dlx.ops import q_learning


def test_epsilon_decays_linearly_then_stays():
  eps = lambda t: float(q_learning.epsilon(t, start=1.0, end=0.05, decay_steps=100))
  assert eps(0) == 1.0
  assert eps(50) == pytest.approx(0.525)
  assert eps(100) == pytest.approx(0.05) and eps(10_000) == pytest.approx(0.05)


def test_td_target_by_hand():
  rewards = jnp.array([1.0, 0.5])
  terminated = jnp.array([0.0, 1.0])
  next_q_target = jnp.array([[1.0, 3.0], [2.0, 0.0]])
  # DQN: r + 0.9 max_a Q_target(s', a); a terminal transition keeps only r.
  np.testing.assert_allclose(
    q_learning.td_targets(rewards, terminated, next_q_target, 0.9), [1.0 + 0.9 * 3.0, 0.5]
  )
  # Double DQN: the online net picks a* = (0, 1); the target net values it: 1.0 and 0.0.
  next_q_online = jnp.array([[5.0, 0.0], [0.0, 5.0]])
  np.testing.assert_allclose(
    q_learning.td_targets(rewards, terminated, next_q_target, 0.9, next_q_online),
    [1.0 + 0.9 * 1.0, 0.5],
  )


def test_action_values_pick_each_rows_action():
  q_values = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
  np.testing.assert_array_equal(q_learning.action_values(q_values, jnp.array([2, 0])), [3.0, 4.0])
