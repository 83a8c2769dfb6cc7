"""Q-learning's arithmetic (docs/curriculum.md#f24), as pure functions of JAX arrays: the
one-step TD targets of DQN (Mnih et al., 2015) and Double DQN (van Hasselt et al.,
2016), the Q-values of the actions taken, and the linear epsilon schedule of
epsilon-greedy exploration.
"""

import jax.numpy as jnp


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


def action_values(q_values, actions):
  """Q(s, a) of the taken actions: (B, A), (B,) -> (B,)."""
  return jnp.take_along_axis(q_values, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]
