"""Variational autoencoder with MLP encoder and decoder (Kingma & Welling, 2014)."""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class VAE(nn.Module):
  """MLP VAE with a diagonal Gaussian posterior and Bernoulli decoder logits."""

  latent_dim: int = 20
  hidden: Sequence[int] = (400,)
  output_shape: Sequence[int] = (28, 28, 1)

  def setup(self):
    self.encoder_layers = [nn.Dense(w) for w in self.hidden]
    self.mean_layer = nn.Dense(self.latent_dim)
    self.log_variance_layer = nn.Dense(self.latent_dim)
    # Decoder mirrors the encoder.
    self.decoder_layers = [nn.Dense(w) for w in reversed(self.hidden)]
    self.output_layer = nn.Dense(math.prod(self.output_shape))

  def encode(self, x):
    """Returns (mean, log_variance) of q(z | x), each (N, latent_dim)."""
    h = x.reshape((x.shape[0], -1))
    for layer in self.encoder_layers:
      h = nn.relu(layer(h))
    return self.mean_layer(h), self.log_variance_layer(h)

  def decode(self, z):
    """Returns Bernoulli logits of shape (N, *output_shape)."""
    h = z
    for layer in self.decoder_layers:
      h = nn.relu(layer(h))
    return self.output_layer(h).reshape((z.shape[0], *self.output_shape))

  def generate(self, z):
    """Returns pixel probabilities sigmoid(decode(z))."""
    return nn.sigmoid(self.decode(z))

  def __call__(self, x, train: bool = False):
    """Returns (logits, mean, log_variance); z uses the 'sample' rng."""
    del train  # Sampling z is part of the objective, so it happens always.
    mean, log_variance = self.encode(x)
    eps = jax.random.normal(self.make_rng("sample"), mean.shape, mean.dtype)
    # Reparameterisation: z is a differentiable function of (mean, logvar).
    z = mean + jnp.exp(0.5 * log_variance) * eps
    self.sow("intermediates", "z", z)  # Inspectable with mutable=['intermediates'].
    return self.decode(z), mean, log_variance
