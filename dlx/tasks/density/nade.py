"""NADE on binarised MNIST (docs/curriculum.md#f22): the data (vae_mnist's fixed
stochastic binarisation, so their test nats compare), the exact negative log-likelihood
in nats as the loss, and samples_<step>.png / completions_<step>.png (ancestral
sampling, pixel by pixel)."""

import jax.numpy as jnp

from dlx import data
from dlx.models import nade

OUTPUTS = ("samples_{step}.png", "completions_{step}.png")


def get_dataset(config, data_dir):
  """MNIST binarised once with a fixed seed (each pixel ~ Bernoulli(intensity)), the
  same data as vae_mnist, so their test nats compare."""
  del config
  ds = data.load("mnist", data_dir=data_dir)
  return ds.map(lambda split: data.transforms.binarize(data.transforms.scale_images(split)))


def loss(logits, batch):
  """Per-image negative log-likelihood -log p(x) in nats (also reported as 'nll')."""
  x = batch["inputs"]
  nll = -nade.bernoulli_log_prob(logits, x.reshape((x.shape[0], -1)))
  return {"loss": nll, "nll": nll}


def visualize(ctx, batch):
  """64 samples, and completions: rows alternate 8 test images and NADE's completions of
  their bottom half given the top half (the first 14 rows of pixels). One sampling pass
  draws both (a per-row count of given pixels)."""
  x = jnp.asarray(batch["inputs"][:32])
  flat = x.reshape((x.shape[0], -1))
  given = jnp.concatenate([jnp.zeros((64, flat.shape[1]), flat.dtype), flat])
  num_given = jnp.concatenate([jnp.zeros(64, jnp.int32), jnp.full(32, flat.shape[1] // 2)])
  drawn = ctx.model.apply(ctx.variables, ctx.rng, 96, given, num_given, method="sample")
  samples, completed = drawn[:64], drawn[64:]
  pairs = jnp.stack([x.reshape((4, 8) + x.shape[1:]), completed.reshape((4, 8) + x.shape[1:])], 1)
  return {"samples": samples, "completions": pairs.reshape((-1,) + x.shape[1:])}
