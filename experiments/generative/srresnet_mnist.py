"""SRResNet (Ledig et al., 2017; docs/curriculum.md#f20): 4x super-resolution of MNIST
with pixel MSE, the run experiments/generative/srgan_mnist.py starts from.

The low-resolution inputs are the 28x28 digits area-downsampled to 7x7 (the mean of each
4x4 block); the baseline is bicubic upsampling (jax.image.resize, equal to PIL's
BICUBIC). The SRResNet: 32 channels, 4 residual blocks, two x2 pixel-shuffle stages, no
batch norm. The report scores both on the 10,000 test images (PSNR, SSIM); grid.png
shows 8 test digits (low-res | bicubic | SRResNet | original).

Measured (default config, seed 0, 800 steps at batch 32): test PSNR 19.34 dB against
bicubic's 14.63 (+4.71 dB; bar +2 dB), SSIM 0.769 against 0.437; 316 s on 2 shared CPU
cores. The SRResNet's digits have sharp strokes where bicubic's are blurred blobs.

  ./launch.sh srresnet_mnist --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.tasks import super_resolution


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = super_resolution.srresnet_config()
  if config_lib.SMOKE in args:
    super_resolution.smoke(config)
  return config


get_model = super_resolution.srresnet_model
get_dataset = super_resolution.mnist_dataset
loss = super_resolution.loss
final_report = super_resolution.srresnet_report
OUTPUTS = (super_resolution.GRID,)
TARGETS = {"report.srresnet_gain_db": (">=", 2.0)}
