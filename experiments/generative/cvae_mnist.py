"""Conditional VAE (Sohn et al., 2015) on binarized MNIST (docs/curriculum.md#f18, #b8):
the VAE of vae_mnist with the label's one-hot vector fed to the encoder, q(z | x, y),
and to the decoder, p(x | z, y); the prior stays N(0, I). A 4-D latent, 20 epochs.

Reports the test negative ELBO (nats; test.nelbo = test.reconstruction + test.kl) and
writes cvae_grid.png: 10 x 10 samples, row r conditioned on digit r, column c the same
z_c in every row. With --config.fid_classifier (a finished lenet5_mnist run) the report
adds label_agreement, the fraction of 1,000 samples (100 per label) that the LeNet-5
assigns to the conditioning label, and MNIST-FID / confident fraction of 10,000 samples
(1,000 per digit) against the grey test images. The latent is narrow on purpose: the
encoder sees the digit, so a wide z carries the class too and a prior sample's z can
contradict the label. Expected: label agreement about 0.972 (experiments/generative/README.md
has the measurements, latent widths included).

  ./launch.sh lenet5_mnist --data_dir=../shared/tfds   # the classifier, once
  ./launch.sh cvae_mnist --data_dir=../shared/tfds --config.fid_classifier=runs/lenet5_mnist
"""

import os

import jax
import numpy as np

from dlx import config as config_lib
from dlx.tasks import sample_quality
from dlx.tasks import variational
from dlx.viz import plots

GRID = "cvae_grid.png"
AGREEMENT_PER_LABEL = 100


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = variational.mnist_config(latent_dim=4, hidden=(400,), epochs=20.0, num_classes=10)
  if config_lib.SMOKE in args:
    variational.smoke(config)
  return config


get_model = variational.get_model
get_dataset = variational.mnist_dataset
get_loss = variational.get_loss
visualize = variational.visualize


def final_report(ctx):
  """cvae_grid.png, the label agreement of 100 samples per digit and the sample-quality
  report (each without the classifier: a line saying how to get it)."""
  grid = variational.label_grid(ctx, jax.random.fold_in(ctx.rng, 2))
  plots.save_image_grid(grid, os.path.join(ctx.workdir, GRID), num_columns=10)
  report = {"grid": GRID, **variational.sample_report(ctx)}
  classifier = sample_quality.load_classifier(ctx)
  if classifier is not None:
    k = ctx.config.model.num_classes
    labels = np.repeat(np.arange(k), AGREEMENT_PER_LABEL)
    samples = variational.sample(ctx, len(labels), jax.random.fold_in(ctx.rng, 3), labels)
    report["label_agreement"] = sample_quality.label_agreement(classifier, samples, labels)
    report["label_agreement_samples"] = len(labels)
  return report


OUTPUTS = ("samples_{step}.png", "reconstructions_{step}.png", GRID)
# label_agreement needs --config.fid_classifier (a lenet5_mnist run).
TARGETS = {"report.label_agreement": (">=", 0.90), "test.nelbo": ("<=", 122.0)}
