"""DCGAN-style generator and critic for WGAN-GP on 28x28x1 images in [-1, 1]."""

import flax.linen as nn
import jax
import jax.numpy as jnp


def _layer_norm():
  # Normalises each example over (H, W, C): never mixes examples.
  return nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=-1)


class Generator(nn.Module):
  """z (N, latent_dim) -> images (N, 28, 28, 1) in [-1, 1]."""

  latent_dim: int = 64
  base_features: int = 64
  normalize: bool = True  # Per-example LayerNorm after hidden layers.

  @nn.compact
  def __call__(self, z, train: bool = False):
    del train
    f = self.base_features
    h = nn.Dense(7 * 7 * 2 * f)(z).reshape((z.shape[0], 7, 7, 2 * f))
    if self.normalize:
      h = _layer_norm()(h)
    h = nn.relu(h)
    h = nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding="SAME")(h)  # 14x14
    if self.normalize:
      h = _layer_norm()(h)
    h = nn.relu(h)
    h = nn.ConvTranspose(1, (4, 4), strides=(2, 2), padding="SAME")(h)  # 28x28
    return jnp.tanh(h)


class Critic(nn.Module):
  """images (N, 28, 28, 1) -> unbounded scores (N,).

  No batch-mixing normalisation, so the gradient penalty stays per example.
  """

  base_features: int = 64
  normalize: bool = False  # Optional per-example LayerNorm.

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    f = self.base_features
    h = nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME")(x)  # 14x14
    h = nn.leaky_relu(h, 0.2)
    h = nn.Conv(2 * f, (4, 4), strides=(2, 2), padding="SAME")(h)  # 7x7
    if self.normalize:
      h = _layer_norm()(h)
    h = nn.leaky_relu(h, 0.2)
    h = h.reshape((h.shape[0], -1))
    return nn.Dense(1)(h)[:, 0]


class WGAN(nn.Module):
  """Holds both players so one `init` creates 'generator' and 'critic' params."""

  latent_dim: int = 64
  base_features: int = 64

  def setup(self):
    self.generator = Generator(self.latent_dim, self.base_features)
    self.critic = Critic(self.base_features)

  def generate(self, z):
    return self.generator(z)

  def score(self, x):
    return self.critic(x)

  def __call__(self, x, train: bool = False):
    """Scores real x and an equal number of fakes from z ~ N(0, I)."""
    del train
    z = jax.random.normal(self.make_rng("sample"), (x.shape[0], self.latent_dim), x.dtype)
    return {"real_scores": self.score(x), "fake_scores": self.score(self.generate(z))}
