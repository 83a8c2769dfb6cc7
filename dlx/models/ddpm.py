"""DDPM (Ho et al., 2020): epsilon-prediction training; ancestral or DDIM sampling."""

from typing import Optional, Sequence

import flax.linen as nn
import jax

from dlx.models.unet import UNet
from dlx.ops import diffusion


class DDPM(nn.Module):
  """Wraps a UNet; `__call__` returns what the epsilon-MSE loss needs."""

  num_timesteps: int = 1000
  schedule: str = "linear"  # diffusion.SCHEDULES; beta_start/end are the linear one's
  beta_start: float = 1e-4
  beta_end: float = 0.02
  channels: Sequence[int] = (8, 16, 32)  # See UNet for timings.
  time_dim: int = 128
  num_groups: int = 8
  dropout_rate: float = 0.0

  def setup(self):
    self.unet = UNet(self.channels, self.time_dim, self.num_groups, self.dropout_rate)

  def noise_schedule(self) -> diffusion.Schedule:
    return diffusion.make_schedule(
      self.schedule, self.num_timesteps, self.beta_start, self.beta_end
    )

  def denoise(self, x_t, t, train: bool = False):
    """Predicted noise eps_theta(x_t, t); t is (N,) int."""
    return self.unet(x_t, t, train)

  def __call__(self, x0, train: bool = False):
    """Noises x0 at t ~ U{0..T-1} and returns predicted and true noise."""
    t_rng, noise_rng = jax.random.split(self.make_rng("sample"))
    n = x0.shape[0]
    t = jax.random.randint(t_rng, (n,), 0, self.num_timesteps)
    noise = jax.random.normal(noise_rng, x0.shape, x0.dtype)
    x_t = diffusion.q_sample(self.noise_schedule(), x0, t, noise).astype(x0.dtype)
    return {"predicted_noise": self.denoise(x_t, t, train), "noise": noise}


def sample(
  model: DDPM,
  variables,
  rng,
  num_samples: int,
  shape: Sequence[int] = (28, 28, 1),
  clip: Optional[float] = None,
  num_steps: int = 0,
  eta: float = 0.0,
):
  """Draws num_samples images: ancestral sampling over all T steps when num_steps is 0
  or T, else DDIM over num_steps of them with noise scale eta (0: deterministic).
  With DDIM, `clip` bounds every x0 prediction; ancestral sampling clips the result.

  Jit it with everything but `variables` and `rng` static, e.g.
  `jax.jit(functools.partial(sample, model, num_samples=16))(variables, rng)`.
  """

  def denoise_fn(x, t):
    return model.apply(variables, x, t, method=DDPM.denoise)

  schedule, shape = model.noise_schedule(), (num_samples, *shape)
  if num_steps in (0, model.num_timesteps):
    return diffusion.ancestral_sample(denoise_fn, schedule, shape, rng, clip=clip)
  return diffusion.ddim_sample(denoise_fn, schedule, shape, rng, num_steps, eta=eta, clip=clip)
