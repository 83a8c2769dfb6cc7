"""The circular replay buffer (dlx/envs/replay.py) on hand-made transitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.envs import replay


def _transition(i):
  return {"obs": jnp.full((2,), float(i)), "action": jnp.asarray(i, jnp.int32)}


def test_init_is_empty_with_a_leading_capacity_axis():
  buffer = replay.init(_transition(0), 3)
  assert buffer["data"]["obs"].shape == (3, 2) and buffer["data"]["action"].dtype == jnp.int32
  assert int(buffer["size"]) == 0 and int(buffer["position"]) == 0
  assert replay.capacity(buffer) == 3
  with pytest.raises(ValueError, match="positive"):
    replay.init(_transition(0), 0)


def test_add_fills_in_order_then_overwrites_the_oldest():
  buffer = replay.init(_transition(0), 3)
  for i in (1, 2):
    buffer = replay.add(buffer, _transition(i))
  assert int(buffer["size"]) == 2 and int(buffer["position"]) == 2
  np.testing.assert_array_equal(buffer["data"]["action"], [1, 2, 0])
  for i in (3, 4, 5):  # 3 fills the last slot; 4 and 5 replace 1 and 2
    buffer = replay.add(buffer, _transition(i))
  assert int(buffer["size"]) == 3 and int(buffer["position"]) == 2
  np.testing.assert_array_equal(buffer["data"]["action"], [4, 5, 3])
  np.testing.assert_array_equal(buffer["data"]["obs"][:, 0], [4.0, 5.0, 3.0])


def test_add_compiles_and_casts_to_the_stored_dtype():
  buffer = jax.jit(replay.add)(replay.init(_transition(0), 2), {"obs": np.ones(2), "action": 1.0})
  assert buffer["data"]["action"].dtype == jnp.int32 and int(buffer["data"]["action"][0]) == 1


def test_sample_draws_only_filled_slots_uniformly():
  buffer = replay.init(_transition(0), 8)
  for i in (1, 2, 3):
    buffer = replay.add(buffer, _transition(i))
  batch = replay.sample(buffer, jax.random.PRNGKey(0), 3000)
  actions = np.asarray(batch["action"])
  assert set(actions) == {1, 2, 3}  # never an empty slot (action 0)
  np.testing.assert_allclose(np.bincount(actions)[1:] / 3000, 1 / 3, atol=0.04)
  # Each row is one whole transition: its fields come from the same slot.
  np.testing.assert_array_equal(np.asarray(batch["obs"])[:, 0], actions.astype(np.float32))
