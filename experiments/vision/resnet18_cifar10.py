"""ResNet-18 (docs/curriculum.md#f6) on CIFAR-10 from tfds: the small-image stem (3x3
stride-1 conv, no max pool) at full width, random crops (4-pixel padding) and flips,
SGD with momentum and a cosine schedule — the usual recipe, which reaches about 95% on
a GPU.

  ./launch.sh resnet18_cifar10 --data_dir=DIR   # DIR must hold prepared tfds cifar10

CIFAR-10 is not in ../shared/tfds and this machine cannot download it, so only its
`:smoke` variant (tfds' random mock data) runs here.
"""

from dlx import config as config_lib
from dlx.models import resnet
from dlx.tasks import image_classification as ic


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = ic.base_config(image_size=32, dataset="cifar10")
  ic.set_model(config, depth=18, stem="cifar", width=64)
  config.num_epochs = 30.0
  config.augment.flip = True
  config.augment.crop_padding = 4
  config.optimizer.name = "momentum"
  config.optimizer.learning_rate = 0.1
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 400
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.width": 4})
  return config


def get_model(config):
  return resnet.resnet(**config_lib.model_kwargs(config))


get_dataset = ic.get_dataset
get_loss = ic.get_loss
final_report = ic.final_report
OUTPUTS = ic.OUTPUTS
TARGETS = {"test.accuracy": (">=", 0.94)}  # not measured here (no CIFAR-10 data)
