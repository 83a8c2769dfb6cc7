"""Variational autoencoder with MLP encoder and decoder (Kingma & Welling, 2014), and
its conditional form (CVAE; Sohn et al., 2015) when `num_classes` > 0."""

from collections.abc import Mapping
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx import errors
from dlx.nn.dense import Dense


class VAE(nn.Module):
  """MLP VAE with a diagonal Gaussian posterior and Bernoulli decoder logits.

  num_classes > 0 makes it a conditional VAE: the label's one-hot vector is concatenated
  to the flattened image on the way into the encoder, q(z | x, y), and to z on the way
  into the decoder, p(x | z, y); the prior stays N(0, I). Its inputs are then
  {'image': (N, ...), 'label': (N,) ints}, and decode/generate take the labels too.
  """

  latent_dim: int = 20
  hidden: Sequence[int] = (400,)
  output_shape: Sequence[int] = (28, 28, 1)
  num_classes: int = 0  # > 0: conditional on a label in [0, num_classes)

  def setup(self):
    self.encoder_layers = [Dense(w) for w in self.hidden]
    self.mean_layer = Dense(self.latent_dim)
    self.log_variance_layer = Dense(self.latent_dim)
    # Decoder mirrors the encoder.
    self.decoder_layers = [Dense(w) for w in reversed(self.hidden)]
    self.output_layer = Dense(math.prod(self.output_shape))

  def _condition(self, h, labels):
    """h with the labels' one-hot vectors appended (conditional models only)."""
    if not self.num_classes:
      if labels is not None:
        raise errors.ConfigError("labels given to an unconditional VAE (num_classes=0)")
      return h
    if labels is None:
      raise errors.ConfigError(f"a conditional VAE (num_classes={self.num_classes}) needs labels")
    labels = jnp.asarray(labels)
    if labels.shape != h.shape[:1]:
      raise errors.ConfigError(f"labels must be ({h.shape[0]},), got shape {labels.shape}")
    return jnp.concatenate([h, jax.nn.one_hot(labels, self.num_classes, dtype=h.dtype)], axis=-1)

  def encode(self, x, labels=None):
    """Returns (mean, log_variance) of q(z | x[, labels]), each (N, latent_dim)."""
    h = self._condition(x.reshape((x.shape[0], -1)), labels)
    for layer in self.encoder_layers:
      h = nn.relu(layer(h))
    return self.mean_layer(h), self.log_variance_layer(h)

  def decode(self, z, labels=None):
    """Returns Bernoulli logits of shape (N, *output_shape)."""
    h = self._condition(z, labels)
    for layer in self.decoder_layers:
      h = nn.relu(layer(h))
    return self.output_layer(h).reshape((z.shape[0], *self.output_shape))

  def generate(self, z, labels=None):
    """Returns pixel probabilities sigmoid(decode(z[, labels]))."""
    return nn.sigmoid(self.decode(z, labels))

  def __call__(self, x, train: bool = False):
    """Returns (logits, mean, log_variance); z uses the 'sample' rng. x is the image
    batch, or {'image', 'label'} for a conditional VAE."""
    del train  # Sampling z is part of the objective, so it happens always.
    x, labels = (x["image"], x["label"]) if isinstance(x, Mapping) else (x, None)
    mean, log_variance = self.encode(x, labels)
    eps = jax.random.normal(self.make_rng("sample"), mean.shape, mean.dtype)
    # Reparameterisation: z is a differentiable function of (mean, logvar).
    z = mean + jnp.exp(0.5 * log_variance) * eps
    self.sow("intermediates", "z", z)  # Inspectable with mutable=['intermediates'].
    return self.decode(z, labels), mean, log_variance
