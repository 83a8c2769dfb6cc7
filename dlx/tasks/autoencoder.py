"""Autoencoders on MNIST (docs/curriculum.md#f17): what experiments/generative/ae_mnist.py and
experiments/generative/dae_mnist.py share.

  loss           reconstruction BCE from logits (nats per image, the training loss) and
                 MSE of sigmoid(logits) (per pixel), against the clean image
  visualize      reconstructions_<step>.png: originals, (corrupted inputs,) reconstructions
  final_report   latent.png: the test codes coloured by class (PCA of the codes when
                 they are wider than 2); a denoising autoencoder also scores the
                 reconstruction of corrupted test images
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import data
from dlx import losses
from dlx import viz
from dlx.models import autoencoder
from dlx.ops import clustering

LATENT_PLOT = "latent.png"
OUTPUTS = ("reconstructions_{step}.png", LATENT_PLOT)


def mnist_config(*, latent_dim=2, hidden=(512, 256), epochs=10.0, noise="none", noise_level=0.0):
  """An MLP autoencoder on MNIST in [0, 1]; Adam with a cosine schedule."""
  config = config_lib.base_config()
  config.model = config_lib.model_config(
    latent_dim=latent_dim, hidden=hidden, noise=noise, noise_level=noise_level
  )
  config.batch_size = 128
  config.num_epochs = epochs
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  return config


def smoke(config):
  """The `:smoke` variant: hidden layers 16 wide, the experiment's own code width."""
  hidden = (16,) * len(config.model.hidden)
  return config_lib.smoke(config, **{"model.hidden": hidden})


def get_model(config):
  return autoencoder.Autoencoder(**config_lib.model_kwargs(config))


def mnist_dataset(config, data_dir):
  """MNIST in [0, 1], grey levels kept (not binarised): BCE against soft targets, as
  the MSE is then the image-space error one would read off the pictures."""
  del config
  return data.load("mnist", data_dir=data_dir).map(data.transforms.scale_images)


def _scores(logits, x):
  axes = tuple(range(1, x.ndim))
  return {
    "bce": jnp.sum(losses.sigmoid_binary_cross_entropy(logits, x), axis=axes),
    "mse": jnp.mean(losses.mse(jax.nn.sigmoid(logits), x), axis=axes),
  }


def loss(outputs, batch):
  """Per image: 'loss' = 'bce' (nats, summed over pixels) and 'mse' (mean per pixel)."""
  scores = _scores(outputs["logits"], batch["inputs"])
  return {"loss": scores["bce"], **scores}


def _corrupted(ctx, x, rng):
  return ctx.model.apply(ctx.variables, jnp.asarray(x), rng, method="corrupt")


def visualize(ctx, batch):
  """Rows of originals, then (for a denoising autoencoder) their corrupted versions,
  then the reconstructions of what the model was given: 4 groups of 8 columns, or 3 of 9
  (the image grid is square, so the rows line up)."""
  noisy = ctx.config.model.noise != "none"
  columns = 9 if noisy else 8
  x = jnp.asarray(batch["inputs"][: columns * columns // (3 if noisy else 2)])
  rows = [x]
  if noisy:
    x = _corrupted(ctx, x, ctx.rng)
    rows.append(jnp.clip(x, 0.0, 1.0))
  rows.append(jax.nn.sigmoid(ctx.model.apply(ctx.variables, x, train=False)["logits"]))
  groups = [r.reshape((-1, columns) + r.shape[1:]) for r in rows]
  return {"reconstructions": jnp.stack(groups, axis=1).reshape((-1,) + x.shape[1:])}


def plot_latent(points, labels, path, title):
  """Scatter of 2-D codes coloured by class (tab10, one colour per digit)."""
  plt = viz.pyplot()

  fig, ax = plt.subplots(figsize=(5.6, 4.8))
  scatter = ax.scatter(
    points[:, 0], points[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5, alpha=0.7
  )
  fig.colorbar(scatter, ax=ax, ticks=range(10), label="class")
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _latent_2d(codes):
  """(codes or their first two principal coordinates, explained-variance share of the
  two; 1 when the codes are 2-D)."""
  if codes.shape[1] <= 2:
    return codes, 1.0
  components, variance = clustering.pca(codes, 2)
  points = clustering.pca_transform(codes, components, codes.mean(0))
  ratio = clustering.explained_variance_ratio(codes, variance)
  return np.asarray(points), float(jnp.sum(ratio))


def final_report(ctx):
  """latent.png from the test split's codes; for a denoising autoencoder, BCE and MSE
  of reconstructing the clean test images from corrupted ones (noise of a fixed key)."""
  codes, labels, denoising = [], [], {"bce": [], "mse": []}
  noisy = ctx.config.model.noise != "none"
  for i, (batch, outputs) in enumerate(ctx.outputs(ctx.examples("test"))):
    codes.append(np.asarray(outputs["latent"]))
    labels.append(np.asarray(batch["targets"]))
    if noisy:
      x = _corrupted(ctx, batch["inputs"], jax.random.fold_in(ctx.rng, i))
      logits = ctx.model.apply(ctx.variables, x, train=False)["logits"]
      for k, v in _scores(logits, jnp.asarray(batch["inputs"])).items():
        denoising[k].append(np.asarray(v))
  codes, labels = np.concatenate(codes), np.concatenate(labels)
  points, share = _latent_2d(codes)
  width = codes.shape[1]
  title = f"test codes ({width}-D)" if width <= 2 else f"test codes: PCA of {width}-D ({share:.0%})"
  plot_latent(points, labels, os.path.join(ctx.workdir, LATENT_PLOT), title)
  report = {"latent_plot": LATENT_PLOT, "latent_dim": width}
  if width > 2:
    report["latent_pca_variance_2"] = share
  if noisy:
    report["denoising_test"] = {
      "noise": ctx.config.model.noise,
      "noise_level": ctx.config.model.noise_level,
      **{k: float(np.mean(np.concatenate(v))) for k, v in denoising.items()},
    }
  return report
