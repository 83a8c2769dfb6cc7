"""Autoencoder and denoising autoencoder with MLP encoder and decoder
(docs/curriculum.md#f17; Vincent et al., 2008 for the denoising variant)."""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx import errors
from dlx.nn.dense import Dense

NOISES = ("none", "gaussian", "mask")


def corrupt(x, rng, noise: str, level: float):
  """x with denoising-autoencoder noise: 'gaussian' adds N(0, level^2) per pixel,
  'mask' zeroes each pixel with probability `level` (no rescaling: the decoder must fill
  the holes in, not see brighter pixels), 'none' returns x unchanged."""
  if noise == "none":
    return x
  if noise == "gaussian":
    return x + level * jax.random.normal(rng, x.shape, x.dtype)
  if noise == "mask":
    return jnp.where(jax.random.bernoulli(rng, level, x.shape), jnp.zeros_like(x), x)
  raise errors.ConfigError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")


class Autoencoder(nn.Module):
  """MLP autoencoder: x -> hidden... -> code (latent_dim, linear) -> reversed hidden... ->
  Bernoulli logits of x. With `noise` set it is a denoising autoencoder: training
  (train=True) corrupts the input with the 'dropout' rng and the loss scores the
  reconstruction against the clean input; evaluation sees clean inputs."""

  latent_dim: int = 2
  hidden: Sequence[int] = (512, 256)
  output_shape: Sequence[int] = (28, 28, 1)
  noise: str = "none"  # 'none' | 'gaussian' | 'mask'
  noise_level: float = 0.0  # Gaussian std, or the masked fraction

  def setup(self):
    if self.noise not in NOISES:
      raise errors.ConfigError(f"model.noise must be one of {', '.join(NOISES)}: {self.noise!r}")
    if self.noise == "mask" and not 0.0 <= self.noise_level < 1.0:
      raise errors.ConfigError(f"mask noise_level must be in [0, 1), got {self.noise_level}")
    if self.noise_level < 0:
      raise errors.ConfigError(f"noise_level must be >= 0, got {self.noise_level}")
    self.encoder_layers = [Dense(w) for w in self.hidden]
    self.code_layer = Dense(self.latent_dim)
    self.decoder_layers = [Dense(w) for w in reversed(self.hidden)]
    self.output_layer = Dense(math.prod(self.output_shape))

  def encode(self, x):
    """(N, latent_dim) codes of (N, ...) inputs."""
    h = x.reshape((x.shape[0], -1))
    for layer in self.encoder_layers:
      h = nn.relu(layer(h))
    return self.code_layer(h)

  def decode(self, z):
    """Bernoulli logits of shape (N, *output_shape)."""
    h = z
    for layer in self.decoder_layers:
      h = nn.relu(layer(h))
    return self.output_layer(h).reshape((z.shape[0], *self.output_shape))

  def corrupt(self, x, rng):
    """The training corruption of x, drawn from `rng` (for reports and figures)."""
    return corrupt(x, rng, self.noise, self.noise_level)

  def __call__(self, x, train: bool = False):
    """{'logits': reconstruction logits, 'latent': codes}; corrupts x when training."""
    if train and self.noise != "none":
      x = self.corrupt(x, self.make_rng("dropout"))
    z = self.encode(x)
    return {"logits": self.decode(z), "latent": z}
