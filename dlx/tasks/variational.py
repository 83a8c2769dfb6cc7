"""The VAE family on binarized MNIST (docs/curriculum.md#f18, #b8): what
experiments/generative/vae_mnist.py, cvae_mnist.py and beta_vae_mnist.py share.

  mnist_config     the MLP VAE's config, Adam 1e-3, beta, the sample-quality fields
  mnist_dataset    MNIST binarised once with a fixed seed; a conditional model's inputs
                   are {'image', 'label'}; the grey test images are the reference that
                   samples are scored against (sample_quality.with_reference)
  get_loss         'loss' = reconstruction + beta * KL (what training minimises) and
                   'nelbo' = reconstruction + KL, the negative ELBO (nats), whatever beta
  visualize        samples_<step>.png, reconstructions_<step>.png
  sample           decoder means sigmoid(logits) of z ~ N(0, I) (and given labels)
  latent_plot      latent.png: the test posterior means by class (PCA when wider than 2)
  label_grid       a conditional model's digits x columns grid, one z per column
  traversal_latents, traversal_grid
                   rows that move one latent dimension from -3 to 3, the others at a test
                   image's posterior mean
  sample_report    MNIST-FID and the confident fraction of config.fid_samples samples

Samples are the decoder's Bernoulli means, not binary draws: what VAE papers show, and
grey like the test images they are compared with.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import data
from dlx import errors
from dlx import losses
from dlx.data import pipeline
from dlx.models import vae
from dlx.tasks import autoencoder
from dlx.tasks import sample_quality

LATENT_PLOT = "latent.png"
TRAVERSAL_LIMIT = 3.0


def mnist_config(*, latent_dim=20, hidden=(400,), epochs=10.0, beta=1.0, num_classes=0):
  """A 784-hidden-latent MLP VAE (conditional when num_classes > 0) on binarized MNIST."""
  config = config_lib.base_config()
  model = {"latent_dim": latent_dim, "hidden": hidden}
  if num_classes:
    model["num_classes"] = num_classes
  config.model = config_lib.model_config(**model)
  config.beta = beta  # weight of the KL term in the training loss (beta-VAE)
  config.batch_size = 128
  config.num_epochs = epochs
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  return sample_quality.add_config(config)


def smoke(config, **overrides):
  """The `:smoke` variant: one hidden layer 32 wide, 4 latent dimensions."""
  return config_lib.smoke(config, **{"model.hidden": (32,), "model.latent_dim": 4, **overrides})


def _conditional(config) -> bool:
  return config.model.get("num_classes", 0) > 0


def mnist_dataset(config, data_dir):
  """Binarized MNIST (drawn once with a fixed seed: the same data in every run); the
  grey test images are recorded as the sample-quality reference."""
  ds = data.load("mnist", data_dir=data_dir).map(data.transforms.scale_images)
  ds = sample_quality.with_reference(ds, ds.test["inputs"])
  ds = ds.map(data.transforms.binarize)
  if _conditional(config):
    ds = ds.map(lambda s: {**s, "inputs": {"image": s["inputs"], "label": s["targets"]}})
  return ds


def images_of(inputs):
  """The image batch of a model input (a conditional model's is {'image', 'label'})."""
  return inputs["image"] if isinstance(inputs, dict) else inputs


def get_model(config):
  """The VAE of `config.model` (conditional when model.num_classes > 0)."""
  return vae.VAE(**config_lib.model_kwargs(config))


def get_loss(config):
  if config.beta < 0:
    raise errors.ConfigError(f"--config.beta={config.beta}: must be >= 0")

  def loss(outputs, batch):
    logits, mean, log_variance = outputs
    x = images_of(batch["inputs"])
    reconstruction = jnp.sum(
      losses.sigmoid_binary_cross_entropy(logits, x), axis=tuple(range(1, x.ndim))
    )
    kl = losses.gaussian_kl(mean, log_variance)
    return {
      "loss": reconstruction + config.beta * kl,
      "nelbo": reconstruction + kl,
      "reconstruction": reconstruction,
      "kl": kl,
    }

  return loss


def _generate_fn(ctx):
  return jax.jit(
    lambda variables, z, labels: ctx.model.apply(variables, z, labels, method="generate")
  )


def generate(ctx, z, labels=None, batch_size=1000):
  """Decoder means for latents z (N, latent_dim) (and labels (N,)), in batches."""
  fn = _generate_fn(ctx)
  return pipeline.apply_in_chunks(fn, ctx.variables, z, labels, batch_size=batch_size)


def sample(ctx, n, rng, labels=None):
  """n decoder means of z ~ N(0, I); a conditional model gets `labels` (default: each
  digit equally often, in order 0, 1, ..., 9, 0, ...)."""
  z = jax.random.normal(rng, (n, ctx.config.model.latent_dim))
  if _conditional(ctx.config) and labels is None:
    labels = np.arange(n) % ctx.config.model.num_classes
  return generate(ctx, np.asarray(z), labels)


def encode(ctx, inputs):
  """Posterior means (N, latent_dim) of a batch of model inputs."""
  return encode_split(ctx, {"inputs": inputs})[0]


def encode_split(ctx, split):
  """(posterior means, log-variances), each (N, latent_dim), of a split's inputs, in
  batches of config.eval_batch_size."""
  inputs = split["inputs"]
  labels = inputs["label"] if isinstance(inputs, dict) else None
  images = images_of(inputs)
  fn = jax.jit(lambda variables, x, y: ctx.model.apply(variables, x, y, method="encode"))
  return pipeline.apply_in_chunks(
    fn, ctx.variables, images, labels, batch_size=ctx.config.eval_batch_size
  )


def visualize(ctx, batch):
  """64 samples (a conditional model: row r shows digit r of the eight rows) and rows of
  originals above their reconstructions."""
  config = ctx.config
  rng = jax.random.PRNGKey(config.seed)
  labels = (np.arange(64) // 8) % config.model.num_classes if _conditional(config) else None
  samples = sample(ctx, 64, rng, labels)
  inputs = jax.tree.map(lambda a: jnp.asarray(a[:32]), batch["inputs"])
  x = images_of(inputs)
  logits, _, _ = ctx.model.apply(ctx.variables, inputs, rngs={"sample": ctx.rng})
  pairs = jnp.stack(
    [x.reshape((4, 8) + x.shape[1:]), jax.nn.sigmoid(logits).reshape((4, 8) + x.shape[1:])], axis=1
  )
  return {"samples": samples, "reconstructions": pairs.reshape((-1,) + x.shape[1:])}


def _latent_2d(codes):
  """(2-D points, share of the variance they keep): the codes themselves when 2-D, else
  their first two principal coordinates (NumPy's SVD: no compilation for one plot)."""
  if codes.shape[1] <= 2:
    return codes, 1.0
  centred = codes - codes.mean(0)
  _, singular, vt = np.linalg.svd(centred, full_matrices=False)
  return centred @ vt[:2].T, float(np.sum(singular[:2] ** 2) / np.sum(singular**2))


def latent_plot(ctx) -> dict:
  """latent.png: the test images' posterior means coloured by class, drawn directly when
  the latent is 2-D, else their first two principal components (the title says which)."""
  test = ctx.examples("test")
  codes, labels = encode_split(ctx, test)[0], np.asarray(test["targets"])
  points, share = _latent_2d(codes)
  width = codes.shape[1]
  title = (
    f"test posterior means ({width}-D)"
    if width <= 2
    else f"test posterior means: PCA of {width}-D ({share:.0%} of the variance)"
  )
  autoencoder.plot_latent(points, labels, os.path.join(ctx.workdir, LATENT_PLOT), title)
  report = {"latent_plot": LATENT_PLOT, "latent_dim": width}
  if width > 2:
    report["latent_pca_variance_2"] = share
  return report


def label_grid(ctx, rng, columns=10):
  """(num_classes * columns, 28, 28, 1) samples: row r is digit r, column c uses the
  same z_c in every row (so a column shows one 'style' across the digits)."""
  k = ctx.config.model.num_classes
  z = np.asarray(jax.random.normal(rng, (columns, ctx.config.model.latent_dim)))
  return generate(ctx, np.tile(z, (k, 1)), np.repeat(np.arange(k), columns))


def traversal_latents(base, num_steps=11, limit=TRAVERSAL_LIMIT):
  """(D * num_steps, D) latents: row d of the grid is `base` (D,) with dimension d set to
  each of num_steps values evenly spaced over [-limit, limit]."""
  base = np.asarray(base, np.float32)
  if base.ndim != 1:
    raise errors.ConfigError(f"the traversal base must be one (D,) latent, got {base.shape}")
  d = base.shape[0]
  z = np.tile(base, (d, num_steps, 1))
  values = np.linspace(-limit, limit, num_steps, dtype=np.float32)
  z[np.arange(d), :, np.arange(d)] = values
  return z.reshape((d * num_steps, d))


def traversal_grid(ctx, base, num_steps=11, labels=None):
  """Decoder means of `traversal_latents(base)`: (D * num_steps, 28, 28, 1)."""
  z = traversal_latents(base, num_steps)
  return generate(ctx, z, None if labels is None else np.full(len(z), labels))


def sample_report(ctx) -> dict:
  """sample_quality.report of config.fid_samples prior samples (each digit equally
  often for a conditional model), drawn with a key of their own."""
  rng = jax.random.fold_in(ctx.rng, 1)
  return sample_quality.report(ctx, lambda n: sample(ctx, n, rng))
