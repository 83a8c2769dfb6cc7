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
original).

Measured (default config, seed 0, 400 steps at batch 32 from the srresnet_mnist run
above): PSNR bicubic 14.63 / SRResNet 19.34 / SRGAN 18.65 dB, SSIM 0.437 / 0.769 / 0.755,
the classifier's accuracy 70.4% / 96.2% / 97.0% (originals 99.07%), MNIST-FID 13.5 / 0.37
/ 0.19: the GAN gives up 0.7 dB for images the classifier finds closer to real digits,
the paper's trade. That classifier is the one the content loss matches features of, so
its accuracy and FID favour the SRGAN by construction; the visible change in grid.png
is small (a faint grain on strokes and background). 310 s on 2 shared CPU cores.

  ./launch.sh lenet5_mnist --data_dir=../shared/tfds       # the perceptual network
  ./launch.sh srresnet_mnist --data_dir=../shared/tfds     # the generator's start
  ./launch.sh srgan_mnist --data_dir=../shared/tfds --config.init_from=runs/srresnet_mnist \\
      --config.fid_classifier=runs/lenet5_mnist

Two runs rather than one with an MSE phase and a GAN phase: a phase switch inside the
compiled step (lax.cond on the step) runs the convolutions in its branches about 8x
slower on XLA:CPU (measured: 5.5 s against 0.67 s for one SRResNet gradient), and the
SRResNet run is an experiment (and a README row) of its own.
"""

from dlx import config as config_lib
from dlx.tasks import super_resolution


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = super_resolution.srgan_config()
  if config_lib.SMOKE in args:
    super_resolution.smoke(config)
  return config


get_model = super_resolution.srgan_model
get_dataset = super_resolution.mnist_dataset
loss = super_resolution.loss
make_optimizer = super_resolution.make_optimizers
make_train_step = super_resolution.make_srgan_step
final_report = super_resolution.srgan_report
OUTPUTS = (super_resolution.GRID,)
STARTS_FROM = {"init_from": "srresnet_mnist"}
# The SRResNet it started from, and the GAN's own images, beat bicubic by >= 2 dB.
TARGETS = {"report.srresnet_gain_db": (">=", 2.0), "report.srgan_gain_db": (">=", 2.0)}
