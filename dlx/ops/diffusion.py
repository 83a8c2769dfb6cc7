"""DDPM noise schedule, forward noising and ancestral sampling (Ho et al., 2020)."""

from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp


class Schedule(NamedTuple):
  """Per-timestep constants, each a (T,) float32 array indexed by t = 0..T-1."""

  betas: jax.Array
  alphas: jax.Array  # 1 - beta_t
  alpha_bars: jax.Array  # prod_{s <= t} alpha_s
  sqrt_alpha_bars: jax.Array
  sqrt_one_minus_alpha_bars: jax.Array
  # Variance of q(x_{t-1} | x_t, x_0): beta_t (1 - abar_{t-1}) / (1 - abar_t),
  # with abar_{-1} = 1 (so it is 0 at t = 0).
  posterior_variance: jax.Array


def schedule_from_betas(betas) -> Schedule:
  betas = jnp.asarray(betas, jnp.float32)
  alphas = 1.0 - betas
  # Work in log space so 1 - abar keeps full precision when abar ~ 1.
  log_alpha_bars = jnp.cumsum(jnp.log1p(-betas))
  alpha_bars = jnp.exp(log_alpha_bars)
  one_minus = -jnp.expm1(log_alpha_bars)
  one_minus_prev = jnp.concatenate([jnp.zeros((1,), jnp.float32), one_minus[:-1]])
  return Schedule(
    betas=betas,
    alphas=alphas,
    alpha_bars=alpha_bars,
    sqrt_alpha_bars=jnp.sqrt(alpha_bars),
    sqrt_one_minus_alpha_bars=jnp.sqrt(one_minus),
    posterior_variance=betas * one_minus_prev / one_minus,
  )


def linear_beta_schedule(
  num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Schedule:
  """The DDPM linear schedule: beta_t evenly spaced from beta_start to beta_end."""
  return schedule_from_betas(jnp.linspace(beta_start, beta_end, num_steps, dtype=jnp.float32))


def _per_example(values, t, ndim):
  # Gathers values[t] and shapes it to broadcast against (N, ...) data.
  return values[t].reshape((-1,) + (1,) * (ndim - 1))


def q_sample(schedule: Schedule, x0, t, noise):
  """Samples x_t ~ q(x_t | x_0): sqrt(abar_t) x0 + sqrt(1 - abar_t) noise.

  Args:
    schedule: the noise schedule.
    x0: (N, ...) clean data.
    t: (N,) int timesteps in [0, T).
    noise: standard normal noise shaped like x0.
  """
  a = _per_example(schedule.sqrt_alpha_bars, t, x0.ndim)
  s = _per_example(schedule.sqrt_one_minus_alpha_bars, t, x0.ndim)
  return a * x0 + s * noise


def ancestral_sample(
  denoise_fn: Callable[[jax.Array, jax.Array], jax.Array],
  schedule: Schedule,
  shape: Sequence[int],
  rng: jax.Array,
  clip: Optional[float] = None,
):
  """DDPM ancestral sampling (Algorithm 2 of Ho et al., 2020).

  Starts from x_T ~ N(0, I) and for t = T-1, ..., 0 sets
    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) * eps(x_t, t)) / sqrt(alpha_t)
              + sigma_t z,
  with z ~ N(0, I) and z = 0 at the last step (t = 0). We use
  sigma_t^2 = beta_t (the paper's first choice, right for x_0 ~ N(0, I)).
  A lax.scan runs the loop, so the whole sampler jits.

  Args:
    denoise_fn: (x_t, t) -> predicted noise, with t an (N,) int32 vector.
    schedule: the noise schedule; T = len(schedule.betas).
    shape: sample shape, batch first.
    rng: PRNG key.
    clip: if given, the returned sample is clipped to [-clip, clip].

  Returns:
    Samples x_0 of the given shape.
  """
  shape = tuple(shape)
  num_steps = schedule.betas.shape[0]
  init_rng, loop_rng = jax.random.split(rng)
  x = jax.random.normal(init_rng, shape, jnp.float32)

  def step(x, inputs):
    t, key = inputs
    t_vec = jnp.full((shape[0],), t, jnp.int32)
    eps = denoise_fn(x, t_vec)
    coef = schedule.betas[t] / schedule.sqrt_one_minus_alpha_bars[t]
    mean = (x - coef * eps) / jnp.sqrt(schedule.alphas[t])
    z = jax.random.normal(key, shape, x.dtype)
    sigma = jnp.where(t > 0, jnp.sqrt(schedule.betas[t]), 0.0)
    return mean + sigma * z, None

  ts = jnp.arange(num_steps - 1, -1, -1, dtype=jnp.int32)
  keys = jax.random.split(loop_rng, num_steps)
  x, _ = jax.lax.scan(step, x, (ts, keys))
  if clip is not None:
    x = jnp.clip(x, -clip, clip)
  return x
