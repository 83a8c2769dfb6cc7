"""Variational autoencoder (Kingma & Welling, 2014) on binarized MNIST
(docs/curriculum.md#f18, #b8).

Bernoulli decoder (BCE from logits) + closed-form Gaussian KL; reports the test negative
ELBO in nats (test.loss = test.nelbo, with its reconstruction and kl terms); writes
samples_<step>.png, reconstructions_<step>.png and latent.png: the test posterior means
coloured by class, as their first two principal components (the latent is 20-D; the
title gives the variance share they keep; --config.model.latent_dim=2 plots a 2-D
latent directly). With --config.fid_classifier, the report scores 10,000 prior samples
(decoder means) by MNIST-FID against the grey test images (dlx/tasks/sample_quality.py).
Expected: test negative ELBO about 103.4 nats (experiments/generative/README.md has the
measurements and the pictures).

  ./launch.sh lenet5_mnist --data_dir=../shared/tfds   # the MNIST-FID classifier, once
  ./launch.sh vae_mnist --data_dir=../shared/tfds --config.fid_classifier=runs/lenet5_mnist
"""

from dlx import config as config_lib
from dlx.tasks import variational


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = variational.mnist_config(latent_dim=20, hidden=(400,), epochs=10.0)
  if config_lib.SMOKE in args:
    variational.smoke(config)
  return config


get_model = variational.get_model
get_dataset = variational.mnist_dataset
get_loss = variational.get_loss
visualize = variational.visualize


def final_report(ctx):
  """latent.png and the sample-quality report."""
  return {**variational.latent_plot(ctx), **variational.sample_report(ctx)}


OUTPUTS = ("samples_{step}.png", "reconstructions_{step}.png", variational.LATENT_PLOT)
TARGETS = {"test.loss": ("<=", 110.0)}  # negative ELBO, nats (anchor: about 104)
