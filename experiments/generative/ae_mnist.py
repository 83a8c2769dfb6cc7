"""Autoencoder on MNIST (docs/curriculum.md#f17): a 784-512-256-2-256-512-784 MLP whose
2-D code is plotted directly (latent.png, test digits coloured by class); Bernoulli
logits trained with BCE against the grey-level image. Reports test BCE (nats per image)
and MSE (per pixel); writes reconstructions_<step>.png (rows: originals, reconstructions).

  ./launch.sh ae_mnist --data_dir=../shared/tfds
  ./launch.sh ae_mnist --data_dir=../shared/tfds --config.model.latent_dim=32  # PCA plot
"""

from dlx import config as config_lib
from dlx.tasks import autoencoder


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = autoencoder.mnist_config(latent_dim=2, epochs=10.0)
  if config_lib.SMOKE in args:
    autoencoder.smoke(config)
  return config


get_model = autoencoder.get_model
get_dataset = autoencoder.mnist_dataset
loss = autoencoder.loss
visualize = autoencoder.visualize
final_report = autoencoder.final_report
OUTPUTS = autoencoder.OUTPUTS
# The measured default run: experiments/generative/README.md.
TARGETS = {"test.bce": ("<=", 143.0), "test.mse": ("<=", 0.041)}
