"""Vision Transformer (docs/curriculum.md#f15) on MNIST: 7x7 patches of the 28x28 digits
(16 tokens) plus a class token, learned positions, a pre-norm Transformer encoder and a
classifier on the class token.

  ./launch.sh vit_mnist --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.models import vit
from dlx.tasks import image_classification as ic


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = ic.base_config(image_size=28, dataset="mnist")
  ic.set_model(
    config, patch_size=7, num_layers=4, num_heads=4, features=96, hidden=192, dropout_rate=0.1
  )
  config.num_epochs = 10.0
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 400
  config.optimizer.grad_clip_norm = 1.0
  config.augment.crop_padding = 2  # digits must not be flipped; small shifts are fine
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.num_layers": 1, "model.features": 16, "model.hidden": 16})
  return config


def get_model(config):
  return vit.ViT(**config_lib.model_kwargs(config))


get_dataset = ic.get_dataset
get_loss = ic.get_loss
TARGETS = {"test.accuracy": (">=", 0.98)}
