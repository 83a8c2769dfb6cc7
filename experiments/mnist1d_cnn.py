"""A 1D CNN on MNIST-1D (Greydanus, 2020), generated offline by the mnist1d package.

The paper's CNN: three stride-2 convolutions (kernels 5, 3, 3; padding 1; 25 channels),
ReLU, a linear classifier; Adam at 1e-2, batch 100.

  ./launch.sh mnist1d_cnn
"""

from dlx import config as config_lib
from dlx import data
from dlx import tasks
from dlx.models import cnn1d


def get_config():
  config = config_lib.base_config()
  config.channels = (64, 64, 64)  # the paper used 25; 64 reaches its 94% reliably
  config.kernel_size = (5, 3, 3)
  config.batch_size = 100
  config.num_train_steps = 8000
  config.log_every_steps = 500
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 2000
  config.best_metric = "accuracy"
  config.best_mode = "max"
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-2
  config.optimizer.schedule = "cosine"
  return config


def get_model(config):
  return cnn1d.CNN1D(channels=tuple(config.channels), kernel_size=tuple(config.kernel_size),
                     num_classes=10)


def get_dataset(config, data_dir):
  del data_dir
  return data.load("mnist1d", seed=config.seed)


loss = tasks.classification
