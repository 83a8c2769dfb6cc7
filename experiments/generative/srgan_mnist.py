"""SRGAN (Ledig et al., 2017; docs/curriculum.md#f20): 4x super-resolution of MNIST by a
generator trained against a discriminator, started from a finished srresnet_mnist run.

Inputs are 7x7 area-downsampled digits, targets the 28x28 originals (as in
experiments/generative/srresnet_mnist.py). The generator (that run's SRResNet) and a conv
discriminator alternate one update each per step, the discriminator with the
non-saturating GAN loss; the generator's loss is SRGAN's perceptual loss, with the
frozen LeNet-5 of a lenet5_mnist run in VGG's place (the squared distance of its 84
penultimate features), + 1e-3 x adversarial. The report scores bicubic, the SRResNet and
the SRGAN on the 10,000 test images: PSNR, SSIM, the classifier's accuracy on them and
their MNIST-FID; grid.png shows 8 test digits (low-res | bicubic | SRResNet | SRGAN |
original). Expected: test PSNR about 18.65 dB, a little below the SRResNet's, for images
the classifier finds closer to real digits (experiments/generative/README.md has the
measurements).

  ./launch.sh lenet5_mnist --data_dir=../shared/tfds       # the perceptual network
  ./launch.sh srresnet_mnist --data_dir=../shared/tfds     # the generator's start
  ./launch.sh srgan_mnist --data_dir=../shared/tfds --config.init_from=runs/srresnet_mnist \\
      --config.fid_classifier=runs/lenet5_mnist

Two runs rather than one with an MSE phase and a GAN phase: a phase switch inside the
compiled step (lax.cond on the step) runs the convolutions in its branches several times
slower on XLA:CPU, and the SRResNet run is an experiment (and a README row) of its own.
"""

from dlx import config as config_lib
from dlx.tasks.super_resolution import common
from dlx.tasks.super_resolution import srgan


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = srgan.base_config()
  if config_lib.SMOKE in args:
    common.smoke(config)
  return config


get_model = srgan.get_model
get_dataset = common.mnist_dataset
loss = common.loss
make_optimizer = srgan.make_optimizers
make_train_step = srgan.make_train_step
final_report = srgan.final_report
OUTPUTS = (common.GRID,)
STARTS_FROM = {"init_from": "srresnet_mnist"}
# The SRResNet it started from, and the GAN's own images, beat bicubic by >= 2 dB.
TARGETS = {"report.srresnet_gain_db": (">=", 2.0), "report.srgan_gain_db": (">=", 2.0)}
