"""Variational autoencoder (Kingma & Welling, 2014) on binarized MNIST
(docs/curriculum.md#f18, #b8).

Bernoulli decoder (BCE from logits) + closed-form Gaussian KL; reports the test negative
ELBO in nats (test.loss = test.nelbo, with its reconstruction and kl terms); writes
samples_<step>.png, reconstructions_<step>.png and latent.png: the test posterior means
coloured by class, as their first two principal components (the latent is 20-D; the
title gives the variance share they keep; --config.model.latent_dim=2 plots a 2-D
latent directly). With --config.fid_classifier, the report scores 10,000 prior samples
(decoder means) by MNIST-FID against the grey test images (dlx/tasks/sample_quality.py).

Measured (default config, seed 0): test negative ELBO 103.5 nats (reconstruction 76.3 +
KL 27.2); MNIST-FID 6.95, confident fraction 0.598, class entropy 2.16 nats; the first
two principal components keep 16% of the posterior means' variance (a VAE spreads its
code over all 20 dimensions), so latent.png separates 0, 1 and 2 and overlaps the rest.
With --config.model.latent_dim=2 the plot is the latent itself (0, 1 and 6 apart, 4/9/7
and 3/5/8 overlapping) at a cost: -ELBO 156.8, MNIST-FID 20.2, class entropy 1.87.

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
