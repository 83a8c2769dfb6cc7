"""Diffusion models' noise schedules, forward noising and samplers.

linear_beta_schedule    DDPM's betas (Ho et al., 2020)
cosine_schedule         abar_t = cos^2 (Nichol & Dhariwal, 2021): less noise early on,
                        which small models and 28x28 images favour
make_schedule           one of them by name (SCHEDULES)
q_sample                x_t ~ q(x_t | x_0)
ancestral_sample        DDPM's T-step ancestral sampler
ddim_sample             DDIM (Song, Meng and Ermon, 2021) on a subsequence of the T
                        steps: eta = 0 is deterministic, eta = 1 with every step is
                        ancestral sampling with the posterior variance
"""

import math
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlx import errors

SCHEDULES = ("linear", "cosine")


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
  """The constants of a (T,) beta sequence. Computed in float64 NumPy (no XLA kernels
  to compile; 1 - abar keeps its digits when abar ~ 1), stored as float32."""
  betas = np.asarray(betas, np.float64)
  log_alpha_bars = np.cumsum(np.log1p(-betas))
  alpha_bars = np.exp(log_alpha_bars)
  one_minus = -np.expm1(log_alpha_bars)
  one_minus_prev = np.concatenate([[0.0], one_minus[:-1]])
  as_f32 = lambda x: jnp.asarray(x, jnp.float32)
  return Schedule(
    betas=as_f32(betas),
    alphas=as_f32(1.0 - betas),
    alpha_bars=as_f32(alpha_bars),
    sqrt_alpha_bars=as_f32(np.sqrt(alpha_bars)),
    sqrt_one_minus_alpha_bars=as_f32(np.sqrt(one_minus)),
    posterior_variance=as_f32(betas * one_minus_prev / one_minus),
  )


def linear_beta_schedule(
  num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Schedule:
  """The DDPM linear schedule: beta_t evenly spaced from beta_start to beta_end."""
  return schedule_from_betas(np.linspace(beta_start, beta_end, num_steps))


def cosine_schedule(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
  """Nichol & Dhariwal's cosine schedule: abar(t) = f(t) / f(0) with
  f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2), so beta_t = 1 - f(t) / f(t - 1), clipped
  at max_beta (the last steps, where f -> 0). Our index i = 0..T-1 is the paper's t = i + 1."""
  if num_steps < 1:
    raise errors.ConfigError(f"cosine schedule needs num_steps >= 1, got {num_steps}")
  f = np.cos((np.arange(num_steps + 1, dtype=np.float64) / num_steps + s) / (1 + s) * math.pi / 2)
  f = f**2
  return schedule_from_betas(np.minimum(1.0 - f[1:] / f[:-1], max_beta))


def make_schedule(
  name: str, num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Schedule:
  """The schedule called `name` (SCHEDULES); beta_start/end are the linear one's."""
  if name == "linear":
    return linear_beta_schedule(num_steps, beta_start, beta_end)
  if name == "cosine":
    return cosine_schedule(num_steps)
  raise errors.ConfigError(
    f"unknown noise schedule {name!r}; choose one of: {', '.join(SCHEDULES)}"
  )


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


def ddim_timesteps(num_timesteps: int, num_steps: int) -> np.ndarray:
  """The ascending subsequence tau of 0..T-1 DDIM visits: num_steps evenly spaced
  steps ending at T - 1 (the noisiest), so the sampler starts where training noised most."""
  if not 1 <= num_steps <= num_timesteps:
    raise errors.ConfigError(
      f"DDIM needs 1 <= sample steps <= num_timesteps={num_timesteps}, got {num_steps}"
    )
  # Round down from T - 1 in equal strides: with num_steps = T every step is visited.
  stride = num_timesteps / num_steps
  return np.asarray(
    [num_timesteps - 1 - int(math.floor(i * stride)) for i in range(num_steps)][::-1], np.int32
  )


def ddim_sample(
  denoise_fn: Callable[[jax.Array, jax.Array], jax.Array],
  schedule: Schedule,
  shape: Sequence[int],
  rng: jax.Array,
  num_steps: int,
  eta: float = 0.0,
  clip: Optional[float] = None,
):
  """DDIM sampling (Song et al., 2021, eq. 12) on num_steps of the T timesteps.

  From x_t with the next (less noisy) visited step t' (abar_{t'} = 1 after the last):
    x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    sigma  = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t')
    x_t'   = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps + sigma z.
  eta = 0 is deterministic (noise -> image is a fixed map); eta = 1 with num_steps = T
  is ancestral sampling with sigma_t^2 the posterior variance beta~_t.

  Args:
    denoise_fn, schedule, shape, rng: as for `ancestral_sample`.
    num_steps: how many denoiser calls (1..T).
    eta: the noise scale, >= 0.
    clip: if given, every x0_hat is clipped to [-clip, clip] and eps recomputed from
      it (the usual practice for data in [-1, 1]), so the sample lies in that range.

  Returns:
    Samples x_0 of the given shape.
  """
  if eta < 0:
    raise errors.ConfigError(f"DDIM eta must be >= 0, got {eta}")
  shape = tuple(shape)
  taus = ddim_timesteps(schedule.betas.shape[0], num_steps)
  prev = np.concatenate([[-1], taus[:-1]]).astype(np.int32)  # -1: abar = 1 (clean data)
  init_rng, loop_rng = jax.random.split(rng)
  x = jax.random.normal(init_rng, shape, jnp.float32)

  def step(x, inputs):
    t, t_prev, key = inputs
    abar = schedule.alpha_bars[t]
    abar_prev = jnp.where(t_prev >= 0, schedule.alpha_bars[jnp.maximum(t_prev, 0)], 1.0)
    eps = denoise_fn(x, jnp.full((shape[0],), t, jnp.int32)).astype(jnp.float32)
    x0 = (x - jnp.sqrt(1.0 - abar) * eps) / jnp.sqrt(abar)
    if clip is not None:
      x0 = jnp.clip(x0, -clip, clip)
      eps = (x - jnp.sqrt(abar) * x0) / jnp.sqrt(1.0 - abar)
    var = eta**2 * (1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev)
    direction = jnp.sqrt(jnp.maximum(1.0 - abar_prev - var, 0.0))
    z = jax.random.normal(key, shape, jnp.float32)
    return jnp.sqrt(abar_prev) * x0 + direction * eps + jnp.sqrt(var) * z, None

  keys = jax.random.split(loop_rng, num_steps)
  x, _ = jax.lax.scan(step, x, (jnp.asarray(taus[::-1]), jnp.asarray(prev[::-1]), keys))
  return x
