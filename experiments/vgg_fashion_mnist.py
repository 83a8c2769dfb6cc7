"""VGG (CURRICULUM F4) on Fashion-MNIST: stacks of 3x3 convolutions and 2x2 max pools.

  ./launch.sh vgg_fashion_mnist --data_dir=../shared/tfds
  ./launch.sh vgg_fashion_mnist:full --data_dir=...   # VGG-16 at 224x224x3 (GPU)

Default: VGG-11 at a quarter width (16 to 128 channels) with batch norm on the 28x28
images; the last max pool is skipped (small_input), so the final map is 3x3. `--config.depth=16`
picks VGG-16 (11, 13, 16, 19).
"""

import ml_collections

from dlx import image_classification as ic
from dlx.models import vgg

DEPTHS = {11: vgg.VGG11, 13: vgg.VGG13, 16: vgg.VGG16, 19: vgg.VGG19}


def get_config(arg=None):
  config = ic.base_config(image_size=28)
  config.depth = 11
  config.model = ml_collections.ConfigDict(dict(
      width_multiplier=0.25, batch_norm=True, small_input=True, pooled_size=1,
      classifier_width=256, dropout_rate=0.5))
  config.num_epochs = 8.0
  config.augment.flip = True
  if arg == ic.FULL:
    ic.full_scale(config)
    config.depth = 16
    config.optimizer.learning_rate = 1e-4  # the 138M-parameter net needs a gentle start
    config.model = ml_collections.ConfigDict(dict(
        width_multiplier=1.0, batch_norm=False, small_input=False, pooled_size=7,
        classifier_width=4096, dropout_rate=0.5))
  elif arg is not None:
    raise ValueError(f"unknown config argument {arg!r}; use :{ic.FULL} or nothing")
  return config


def get_model(config):
  if config.depth not in DEPTHS:
    raise ValueError(f"--config.depth={config.depth}: choose one of {sorted(DEPTHS)}")
  model = vgg.VGG(DEPTHS[config.depth], config.num_classes, **config.model.to_dict())
  return ic.wrap_for_full_scale(model, config)


get_dataset = ic.get_dataset
get_loss = ic.get_loss
final_report = ic.final_report
