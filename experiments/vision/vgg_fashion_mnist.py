"""VGG (docs/curriculum.md#f4) on Fashion-MNIST: stacks of 3x3 convolutions and 2x2 max
pools.

  ./launch.sh vgg_fashion_mnist --data_dir=../shared/tfds
  ./launch.sh vgg_fashion_mnist:vgg16 --data_dir=../shared/tfds   # VGG-16, same width
  ./launch.sh vgg_fashion_mnist:full --data_dir=...   # VGG-16 at 224x224x3 (GPU)

Default: VGG-11 at a quarter width (16 to 128 channels) with batch norm on the 28x28
images; the last max pool is skipped (small_input), so the final map is 3x3.
`--config.model.depth` picks 11, 13, 16 or 19; `:vgg16` (1,023,994 parameters) reached
92.58% test accuracy.
"""

from dlx import config as config_lib
from dlx.models import vgg
from dlx.tasks import image_classification as ic

VGG16 = "vgg16"


def get_config(arg=None):
  args = config_lib.parse_arg(arg, (ic.FULL, VGG16))
  config = ic.base_config(image_size=28)
  ic.set_model(
    config,
    depth=11,
    width_multiplier=0.25,
    batch_norm=True,
    small_input=True,
    pooled_size=1,
    classifier_width=256,
    dropout_rate=0.5,
  )
  config.num_epochs = 8.0
  config.augment.flip = True
  if VGG16 in args:
    config.model.depth = 16  # five more 3x3 convs at the same quarter width
  if ic.FULL in args:
    ic.full_scale(config)
    config.optimizer.learning_rate = 1e-4  # the 138M-parameter net needs a gentle start
    ic.set_model(
      config,
      depth=16,
      width_multiplier=1.0,
      batch_norm=False,
      small_input=False,
      pooled_size=7,
      classifier_width=4096,
      dropout_rate=0.5,
    )
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.width_multiplier": 1 / 16, "model.classifier_width": 16})
  return config


def get_model(config):
  return ic.wrap_for_full_scale(vgg.vgg(**config_lib.model_kwargs(config)), config)


get_dataset = ic.get_dataset
get_loss = ic.get_loss
final_report = ic.final_report
OUTPUTS = ic.OUTPUTS
TARGETS = {"test.accuracy": (">=", 0.91)}
