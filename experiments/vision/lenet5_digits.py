"""LeNet-5 (docs/curriculum.md#f2) on scikit-learn's 8x8 digits, upsampled to 32x32.

The default experiment of ./launch.sh: embedded data, no network, under a minute on CPU.
"""

from dlx import config as config_lib
from dlx import data
from dlx.models import lenet
from dlx.tasks import classification


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.model = config_lib.model_config(num_classes=10)
  config.batch_size = 64
  config.num_epochs = 30.0
  config.log_every_steps = 50
  config.checkpoint_every_steps = 200
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  if config_lib.SMOKE in args:
    config_lib.smoke(config)
  return config


def get_model(config):
  return lenet.LeNet5(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir  # embedded
  ds = data.load("digits", seed=config.seed)
  return ds.map(lambda split: data.transforms.resize_images(split, 32))


loss = classification.classification
TARGETS = {"test.accuracy": (">=", 0.95)}
