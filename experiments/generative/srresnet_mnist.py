"""SRResNet (Ledig et al., 2017; docs/curriculum.md#f20): 4x super-resolution of MNIST
with pixel MSE, the run experiments/generative/srgan_mnist.py starts from.

The low-resolution inputs are the 28x28 digits area-downsampled to 7x7 (the mean of each
4x4 block); the baseline is bicubic upsampling (jax.image.resize, equal to PIL's
BICUBIC). The SRResNet: 32 channels, 8 residual blocks, two x2 pixel-shuffle stages, no
batch norm. The report scores both on the 10,000 test images (PSNR, SSIM); grid.png
shows 8 test digits (low-res | bicubic | SRResNet | original).
Expected: test PSNR about 4.71 dB above bicubic's (bar +2 dB).

  ./launch.sh srresnet_mnist --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.tasks.super_resolution import common
from dlx.tasks.super_resolution import srresnet


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = srresnet.base_config()
  if config_lib.SMOKE in args:
    common.smoke(config)
  return config


get_model = srresnet.get_model
get_dataset = common.mnist_dataset
loss = common.loss
final_report = srresnet.final_report
OUTPUTS = (common.GRID,)
TARGETS = {"report.srresnet_gain_db": (">=", 2.0)}
