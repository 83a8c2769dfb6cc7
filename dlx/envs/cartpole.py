"""CartPole-v1 in JAX (docs/curriculum.md#f24): gym's classic cart-pole (Barto, Sutton &
Anderson, 1983) with the same equations, constants and limits as gymnasium's
`CartPole-v1`: Euler steps of 0.02 s, force +-10 N, reward 1 per step, termination when
|x| > 2.4 or |theta| > 12 degrees, truncation after 500 steps.

dlx carries its own copy, though gymnax has one, because gymnax's package imports every
environment it ships (one of them imports seaborn and scipy.stats): about 1.5 s of CPU,
a fifth of a smoke test's budget. tests/unit/envs/test_cartpole.py checks this one
against gymnasium's NumPy CartPole and against gymnax's, step by step.

A state is a dict {'physics': (x, x_dot, theta, theta_dot), 'time': steps taken}; `step`
resets a finished episode at once (auto-reset) and returns the observation that ended
it as `final_observation`, so a transition's next state is never the reset one.
"""

import jax
import jax.numpy as jnp

NUM_ACTIONS = 2
OBSERVATION_SIZE = 4
MAX_STEPS = 500  # v1's time limit

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_LENGTH = 0.5  # the pole's half length
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE = 10.0
TAU = 0.02  # seconds per step
THETA_LIMIT = 12 * 2 * jnp.pi / 360
X_LIMIT = 2.4


def reset(rng):
  """(observation, state) of a new episode: every coordinate uniform in [-0.05, 0.05]."""
  physics = jax.random.uniform(rng, (4,), jnp.float32, -0.05, 0.05)
  return physics, {"physics": physics, "time": jnp.zeros((), jnp.int32)}


def dynamics(physics, action):
  """One Euler step of the cart-pole equations of motion (action 1 pushes right)."""
  x, x_dot, theta, theta_dot = physics[0], physics[1], physics[2], physics[3]
  force = jnp.where(action == 1, FORCE, -FORCE)
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  temp = (force + POLE_MASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
  theta_acc = (GRAVITY * sin - cos * temp) / (
    HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos**2 / TOTAL_MASS)
  )
  x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
  return jnp.stack(
    [x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc]
  )


def terminated(physics):
  """Whether the cart left the track or the pole fell past 12 degrees."""
  return jnp.logical_or(jnp.abs(physics[0]) > X_LIMIT, jnp.abs(physics[2]) > THETA_LIMIT)


def step(rng, state, action):
  """(observation, state, reward, terminated, truncated, final_observation) after
  `action`; a finished episode restarts from a reset drawn with `rng`."""
  physics = dynamics(state["physics"], action)
  time = state["time"] + 1
  done_by_falling = terminated(physics)
  truncated = time >= MAX_STEPS  # as gymnasium's TimeLimit: both may be true
  done = jnp.logical_or(done_by_falling, truncated)
  fresh, fresh_state = reset(rng)
  next_state = {
    "physics": jnp.where(done, fresh_state["physics"], physics),
    "time": jnp.where(done, 0, time),
  }
  observation = jnp.where(done, fresh, physics)
  return observation, next_state, jnp.ones((), jnp.float32), done_by_falling, truncated, physics
