"""GAN players on 28x28x1 images in [-1, 1] (docs/curriculum.md#f19).

  Generator, Critic, WGAN        DCGAN-shaped players without batch norm, for the WGANs
                                 (the gradient penalty is per example, so the critic may not
                                 mix examples; per-example LayerNorm is optional)
  DCGANGenerator, Discriminator, DCGAN
                                 Radford et al.'s DCGAN: batch norm in every generator layer
                                 but the output and every discriminator layer but the input,
                                 weights drawn from N(0, 0.02); the discriminator returns
                                 logits, for the minimax loss

Each pair module has `generate(z)`, `score(x)` and `latent_dim`, the interface of the
two-player steps in dlx/tasks/adversarial.py.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense


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
    h = Dense(7 * 7 * 2 * f)(z).reshape((z.shape[0], 7, 7, 2 * f))
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
    h = FlaxConv(f, (4, 4), strides=(2, 2), padding="SAME")(x)  # 14x14
    h = nn.leaky_relu(h, 0.2)
    h = FlaxConv(2 * f, (4, 4), strides=(2, 2), padding="SAME")(h)  # 7x7
    if self.normalize:
      h = _layer_norm()(h)
    h = nn.leaky_relu(h, 0.2)
    h = h.reshape((h.shape[0], -1))
    return Dense(1)(h)[:, 0]


class WGAN(nn.Module):
  """Holds both players so one `init` creates 'generator' and 'critic' params.

  critic_normalize: per-example LayerNorm in the critic (the weight-clipped WGAN's
  stand-in for the batch norm of Arjovsky et al.'s critic)."""

  latent_dim: int = 64
  base_features: int = 64
  critic_normalize: bool = False

  def setup(self):
    self.generator = Generator(self.latent_dim, self.base_features)
    self.critic = Critic(self.base_features, normalize=self.critic_normalize)

  def generate(self, z, train: bool = False):
    del train
    return self.generator(z)

  def score(self, x, train: bool = False):
    del train
    return self.critic(x)

  def __call__(self, x, train: bool = False):
    """Scores real x and an equal number of fakes from z ~ N(0, I)."""
    del train
    z = jax.random.normal(self.make_rng("sample"), (x.shape[0], self.latent_dim), x.dtype)
    return {"real_scores": self.score(x), "fake_scores": self.score(self.generate(z))}


# DCGAN's initialisation (Radford et al., 2016): every weight from N(0, 0.02).
_dcgan_init = nn.initializers.normal(0.02)


def _batch_norm(train: bool):
  # momentum 0.9 (torch's 0.1): the running statistics the samples use at evaluation
  # follow a generator that keeps changing.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9)


class DCGANGenerator(nn.Module):
  """z (N, latent_dim) -> images (N, 28, 28, 1) in [-1, 1]; batch norm + ReLU after
  every layer but the tanh output."""

  latent_dim: int = 64
  base_features: int = 32

  @nn.compact
  def __call__(self, z, train: bool = False):
    f = self.base_features
    h = Dense(7 * 7 * 2 * f, use_bias=False, kernel_init=_dcgan_init)(z)
    h = nn.relu(_batch_norm(train)(h.reshape((z.shape[0], 7, 7, 2 * f))))
    h = nn.ConvTranspose(
      f, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, kernel_init=_dcgan_init
    )(h)  # 14x14
    h = nn.relu(_batch_norm(train)(h))
    h = nn.ConvTranspose(1, (4, 4), strides=(2, 2), padding="SAME", kernel_init=_dcgan_init)(h)
    return jnp.tanh(h)  # 28x28


class Discriminator(nn.Module):
  """images (N, 28, 28, 1) -> logits (N,) of "real"; strided convolutions with leaky
  ReLU, batch norm on every layer but the input one (as in DCGAN)."""

  base_features: int = 32

  @nn.compact
  def __call__(self, x, train: bool = False):
    f = self.base_features
    h = FlaxConv(f, (4, 4), strides=(2, 2), padding="SAME", kernel_init=_dcgan_init)(x)  # 14x14
    h = nn.leaky_relu(h, 0.2)
    h = FlaxConv(
      2 * f, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, kernel_init=_dcgan_init
    )(h)  # 7x7
    h = nn.leaky_relu(_batch_norm(train)(h), 0.2)
    h = h.reshape((h.shape[0], -1))
    return Dense(1, kernel_init=_dcgan_init)(h)[:, 0]


class DCGAN(nn.Module):
  """Holds both players: 'generator' and 'discriminator' params and batch statistics.

  Real and generated images go through the discriminator as separate batches (as in
  DCGAN), so batch norm never mixes the two."""

  latent_dim: int = 64
  base_features: int = 32

  def setup(self):
    self.generator = DCGANGenerator(self.latent_dim, self.base_features)
    self.discriminator = Discriminator(self.base_features)

  def generate(self, z, train: bool = False):
    return self.generator(z, train)

  def score(self, x, train: bool = False):
    return self.discriminator(x, train)

  def __call__(self, x, train: bool = False):
    """Logits of real x and of an equal number of fakes from z ~ N(0, I)."""
    z = jax.random.normal(self.make_rng("sample"), (x.shape[0], self.latent_dim), x.dtype)
    return {
      "real_logits": self.score(x, train),
      "fake_logits": self.score(self.generate(z, train), train),
    }
