"""beta-VAE (Higgins et al., 2017) on binarized MNIST (docs/curriculum.md#f18, #b8): the
VAE of vae_mnist with 10 latent dimensions, trained on reconstruction + beta * KL with
beta = 4 (--config.beta), which pushes the posterior toward the factorised prior.

test.loss is the beta-weighted objective; test.nelbo = test.reconstruction + test.kl is
the negative ELBO (nats). Writes traversal.png: row d moves latent dimension d from -3
to 3 (11 steps) with the others at the first test image's posterior mean; rows are
ordered by the dimension's mean KL on the test set (report.kl_per_dim, in that order;
dimensions with KL near 0 are unused and their rows do not change). With
--config.fid_classifier the report adds MNIST-FID of 10,000 prior samples.
Expected: test negative ELBO about 123.4 nats (experiments/generative/README.md has the
measurements and what traversal.png shows).

  ./launch.sh beta_vae_mnist --data_dir=../shared/tfds --config.fid_classifier=runs/lenet5_mnist
"""

import os

import numpy as np

from dlx import config as config_lib
from dlx import losses
from dlx.tasks import variational
from dlx.viz import plots

TRAVERSAL = "traversal.png"
TRAVERSAL_STEPS = 11


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = variational.mnist_config(latent_dim=10, hidden=(400,), epochs=10.0, beta=4.0)
  if config_lib.SMOKE in args:
    variational.smoke(config)
  return config


get_model = variational.get_model
get_dataset = variational.mnist_dataset
get_loss = variational.get_loss
visualize = variational.visualize


def _kl_per_dim(ctx):
  """Mean KL (nats) of each latent dimension's posterior over the test split."""
  mean, log_variance = variational.encode_split(ctx, ctx.examples("test"))
  # gaussian_kl sums over its last axis: a trailing axis of 1 keeps each dimension apart.
  return np.mean(np.asarray(losses.gaussian_kl(mean[..., None], log_variance[..., None])), 0)


def final_report(ctx):
  """traversal.png (rows by decreasing KL), the per-dimension KL and the sample-quality
  report."""
  kl = _kl_per_dim(ctx)
  order = np.argsort(-kl)
  first = variational.images_of(ctx.examples("test")["inputs"])[:1]
  base = variational.encode(ctx, first)[0]
  grid = variational.traversal_grid(ctx, base, TRAVERSAL_STEPS)
  rows = grid.reshape((len(base), TRAVERSAL_STEPS) + grid.shape[1:])[order]
  plots.save_image_grid(
    rows.reshape(grid.shape), os.path.join(ctx.workdir, TRAVERSAL), num_columns=TRAVERSAL_STEPS
  )
  return {
    "traversal": TRAVERSAL,
    "traversal_rows": [int(d) for d in order],
    "kl_per_dim": [float(kl[d]) for d in order],
    "active_dims": int(np.sum(kl > 0.1)),  # nats; unused dimensions sit near 0
    **variational.sample_report(ctx),
  }


OUTPUTS = ("samples_{step}.png", "reconstructions_{step}.png", TRAVERSAL)
TARGETS = {"test.nelbo": ("<=", 130.0)}  # measured: the family README
