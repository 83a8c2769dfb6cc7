"""Denoising autoencoder (Vincent et al., 2008) on MNIST (docs/curriculum.md#f17): the
MLP of experiments/generative/ae_mnist.py with a 32-D code, trained to reconstruct the clean image
from a corrupted one. Gaussian noise (std 0.5) by default; `dae_mnist:mask` zeroes half
the pixels instead (or set --config.model.noise / --config.model.noise_level).
Evaluation feeds clean images (test BCE and MSE comparable with ae_mnist); the report
adds the BCE and MSE of reconstructing the clean test images from corrupted ones.
latent.png plots the first two principal components of the codes.

  ./launch.sh dae_mnist --data_dir=../shared/tfds
  ./launch.sh dae_mnist:mask --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.tasks import autoencoder

_MASK = "mask"


def get_config(arg=None):
  args = config_lib.parse_arg(arg, (_MASK,))
  if _MASK in args:
    noise = dict(noise="mask", noise_level=0.5)
  else:
    noise = dict(noise="gaussian", noise_level=0.5)
  config = autoencoder.mnist_config(latent_dim=32, epochs=10.0, **noise)
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
TARGETS = {
  "test.bce": ("<=", 79.0),
  "test.mse": ("<=", 0.012),
  "report.denoising_test.bce": ("<=", 87.0),
}
