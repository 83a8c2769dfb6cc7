"""Variational autoencoder (Kingma & Welling, 2014) on binarized MNIST
(docs/curriculum.md#f18, #b8).

Bernoulli decoder (BCE from logits) + closed-form Gaussian KL; reports the test negative
ELBO in nats; writes samples_<step>.png and reconstructions_<step>.png.

  ./launch.sh vae_mnist --data_dir=../shared/tfds
"""

import jax
import jax.numpy as jnp

from dlx import config as config_lib
from dlx import data
from dlx import losses
from dlx.models import vae


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.model = config_lib.model_config(latent_dim=20, hidden=(400,))
  config.beta = 1.0  # beta-VAE weight on the KL term
  config.batch_size = 128
  config.num_epochs = 10.0
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.hidden": (32,), "model.latent_dim": 4})
  return config


def get_model(config):
  return vae.VAE(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del config
  ds = data.load("mnist", data_dir=data_dir)
  # Binarised once with a fixed seed: the same data in every run.
  return ds.map(lambda split: data.transforms.binarize(data.transforms.scale_images(split)))


def get_loss(config):
  def loss(outputs, batch):
    logits, mean, log_variance = outputs
    x = batch["inputs"]
    reconstruction = jnp.sum(
      losses.sigmoid_binary_cross_entropy(logits, x), axis=tuple(range(1, x.ndim))
    )
    kl = losses.gaussian_kl(mean, log_variance)
    return {
      "loss": losses.elbo(logits, x, mean, log_variance, beta=config.beta),
      "reconstruction": reconstruction,
      "kl": kl,
    }

  return loss


def visualize(ctx, batch):
  config = ctx.config
  z = jax.random.normal(jax.random.PRNGKey(config.seed), (64, config.model.latent_dim))
  samples = ctx.model.apply(ctx.variables, z, method="generate")
  x = jnp.asarray(batch["inputs"][:32])
  logits, _, _ = ctx.model.apply(ctx.variables, x, rngs={"sample": ctx.rng})
  # Rows alternate: originals, then their reconstructions.
  pairs = jnp.stack(
    [x.reshape((4, 8) + x.shape[1:]), jax.nn.sigmoid(logits).reshape((4, 8) + x.shape[1:])], axis=1
  )
  return {"samples": samples, "reconstructions": pairs.reshape((-1,) + x.shape[1:])}


OUTPUTS = ("samples_{step}.png", "reconstructions_{step}.png")
TARGETS = {"test.loss": ("<=", 110.0)}  # negative ELBO, nats (anchor: about 104)
