"""A 1D CNN on MNIST-1D (Greydanus, 2020), generated offline by the mnist1d package.

The paper's CNN: three stride-2 convolutions (kernels 5, 3, 3; padding 1; 25 channels),
ReLU, a linear classifier; Adam at 1e-2, batch 100 (docs/curriculum.md#e2, #d7).

  ./launch.sh mnist1d_cnn
"""

from dlx import config as config_lib
from dlx import data
from dlx.models import cnn1d
from dlx.tasks import classification


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  # The paper used 25 channels; 64 reaches its 94% reliably.
  config.model = config_lib.model_config(
    channels=(64, 64, 64), kernel_size=(5, 3, 3), num_classes=10
  )
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
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.channels": (8, 8, 8)})
  return config


def get_model(config):
  return cnn1d.CNN1D(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return data.load("mnist1d", seed=config.seed)


loss = classification.classification
TARGETS = {"test.accuracy": (">=", 0.94)}
