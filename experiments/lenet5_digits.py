"""LeNet-5 (CURRICULUM F2) on scikit-learn's 8x8 digits, upsampled to 32x32.

The default experiment of ./launch.sh: embedded data, no network, about a minute on CPU.
"""

from dlx import config as config_lib
from dlx import data
from dlx import tasks
from dlx.models import lenet


def get_config():
  config = config_lib.base_config()
  config.batch_size = 64
  config.num_epochs = 30.0
  config.log_every_steps = 50
  config.checkpoint_every_steps = 200
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  return config


def get_model(config):
  del config
  return lenet.LeNet5(num_classes=10)


def get_dataset(config, data_dir):
  del data_dir  # embedded
  ds = data.load("digits", seed=config.seed)
  return ds.map(lambda split: data.transforms.resize_images(split, 32))


loss = tasks.classification
