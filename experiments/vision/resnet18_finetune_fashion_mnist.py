"""Fine-tuning torchvision's ResNet-18 on Fashion-MNIST: the backbone from a torchvision
state dict (ImageNet weights, or a dlx run exported with --format=torchvision), a new
10-class head.

  # from torchvision's ImageNet file (none can be downloaded here: bring it on disk)
  ./launch.sh resnet18_finetune_fashion_mnist --data_dir=../shared/tfds \
      --config.init_from=torchvision:resnet18:/path/resnet18-f37072fd.pth
  # the same fine-tune from scratch: leave init_from out (the default)
  ./launch.sh resnet18_finetune_fashion_mnist --data_dir=../shared/tfds
  # a backbone without ImageNet: the same model on MNIST (same budget), exported
  ./launch.sh resnet18_finetune_fashion_mnist:pretrain_mnist --data_dir=../shared/tfds
  python -m dlx.tools.export runs/resnet18_finetune_fashion_mnist_pretrain_mnist \
      --format=torchvision --out=resnet18_mnist.pth

Measured (experiments/vision/README.md): 80.1% test accuracy from the MNIST backbone,
80.6% from scratch, at this budget.

The model is exactly what dlx.interop.from_torchvision builds for 'resnet18' (dlx's
ResNet-18, ImageNet stem, width 64), so its parameters have the names and shapes of a
torchvision file. The 28x28 grey images (standardised with the train split's
statistics, which puts them near the range ImageNet's normalisation gives) are resized
to `config.upscale_to` and repeated to 3 channels on the device, by a wrapper that adds
no parameters and no name scope. `init_from_keys` takes every sub-tree but the
`classifier` (torchvision's `fc`), so a 1000-class ImageNet head is left behind.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx import config as config_lib
from dlx.interop import torchvision_cnn
from dlx.tasks import image_classification as ic

PRETRAIN = "pretrain_mnist"
ARCH = "resnet18"


class _Upscaled(nn.Module):
  """Resizes NHWC images to size x size, repeats one channel to 3, runs `model`; the
  model's variables stay at the top level (shared scope), as from_torchvision names them."""

  model: nn.Module
  size: int

  def setup(self):
    nn.share_scope(self, self.model)

  def __call__(self, x, train: bool = False):
    if x.shape[1:3] != (self.size, self.size):
      x = jax.image.resize(x, (x.shape[0], self.size, self.size, x.shape[3]), "bilinear")
    if x.shape[3] == 1:
      x = jnp.repeat(x, 3, axis=3)
    return self.model(x, train=train)


def _backbone_keys() -> str:
  """Every top-level sub-tree of the model but the head: 'stem_conv,stem_bn,stage1_block1,...'."""
  model = torchvision_cnn.ARCHS[ARCH].build({"num_classes": 1})
  blocks = [f"stage{s + 1}_block{i + 1}" for s, n in enumerate(model.stage_sizes) for i in range(n)]
  return ",".join(["stem_conv", "stem_bn", *blocks])


def get_config(arg=None):
  args = config_lib.parse_arg(arg, (PRETRAIN,))
  pretrain = PRETRAIN in args
  config = ic.base_config(image_size=28, dataset="mnist" if pretrain else "fashion_mnist")
  config.upscale_to = 64
  ic.set_model(config)  # num_classes only: the rest is torchvision's
  # A CPU budget: a step of batch 32 at 64x64 took about 2.5 s on the shared 2-core
  # machine, so 100 steps (3,200 images) and 1,000-image evaluations fit in 8 minutes.
  config.num_train_steps = 100
  config.batch_size = 32
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 50
  config.eval_examples = 1000
  config.train_eval_examples = 500
  # Fine-tuning: a lower peak than training from scratch, a short warmup so the new head
  # settles before large updates reach the backbone, and little weight decay.
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 10
  config.optimizer.weight_decay = 1e-4
  if not pretrain:
    config.init_from_keys = _backbone_keys()
  if config_lib.SMOKE in args:
    # The full-width model (its shapes are torchvision's) on 32x32 inputs.
    config_lib.smoke(config, upscale_to=32)
  return config


def get_model(config):
  model = torchvision_cnn.ARCHS[ARCH].build(config_lib.model_kwargs(config))
  return _Upscaled(model, config.upscale_to)


get_dataset = ic.get_dataset
get_loss = ic.get_loss
final_report = ic.final_report
OUTPUTS = ic.OUTPUTS
