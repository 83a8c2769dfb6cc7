"""A replay buffer as plain JAX arrays (docs/curriculum.md#f24): a circular buffer that
lives inside the train state, so it is compiled into the step and checkpointed with it.

    buffer = replay.init(example_transition, capacity=50_000)
    buffer = replay.add(buffer, transition)          # overwrites the oldest when full
    batch = replay.sample(buffer, rng, batch_size)   # uniform, with replacement

A buffer is a dict: `data` (the transition tree, each leaf with a leading `capacity`
axis), `position` (the slot the next transition goes to) and `size` (how many slots hold
a transition). Every function is pure; the caller keeps the returned buffer.
"""

import jax
import jax.numpy as jnp


def init(example, capacity: int) -> dict:
  """An empty buffer for transitions shaped like `example` (a tree of arrays, one
  transition, no leading axis)."""
  if capacity <= 0:
    raise ValueError(f"replay capacity must be positive, got {capacity}")
  data = jax.tree.map(
    lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example
  )
  return {"data": data, "position": jnp.zeros((), jnp.int32), "size": jnp.zeros((), jnp.int32)}


def capacity(buffer) -> int:
  return jax.tree.leaves(buffer["data"])[0].shape[0]


def add(buffer, transition) -> dict:
  """`buffer` with `transition` written at `position` (the oldest slot once full)."""
  position = buffer["position"]
  data = jax.tree.map(
    lambda store, x: jax.lax.dynamic_update_index_in_dim(
      store, jnp.asarray(x, store.dtype), position, 0
    ),
    buffer["data"],
    transition,
  )
  n = capacity(buffer)
  return {
    "data": data,
    "position": (position + 1) % n,
    "size": jnp.minimum(buffer["size"] + 1, n),
  }


def sample(buffer, rng, batch_size: int) -> dict:
  """`batch_size` stored transitions drawn uniformly with replacement (the buffer must
  hold at least one)."""
  index = jax.random.randint(rng, (batch_size,), 0, jnp.maximum(buffer["size"], 1))
  return jax.tree.map(lambda store: jnp.take(store, index, axis=0), buffer["data"])
