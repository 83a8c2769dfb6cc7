"""MLP regression with the Huber loss on data whose train targets have 10% gross outliers
(docs/curriculum.md#b1). `:mse` gives the same run with the squared error, for
comparison: the test split is clean, so its MSE shows which loss learned the true curve.

  ./launch.sh huber_regression
  ./launch.sh huber_regression:mse
"""

import functools

from dlx import config as config_lib
from dlx import data
from dlx.models import mlp
from dlx.tasks import regression


def get_config(arg=None):
  args = config_lib.parse_arg(arg, ("mse",))
  config = config_lib.base_config()
  config.loss = "mse" if "mse" in args else "huber"
  config.delta = 1.0  # Huber's threshold between quadratic and linear
  config.model = config_lib.model_config(hidden=(64, 64), num_outputs=1, activation="tanh")
  config.outlier_fraction = 0.1
  config.outlier_scale = 10.0
  config.num_examples = 2000
  config.batch_size = 64
  config.num_epochs = 100.0
  config.log_every_steps = 200
  config.checkpoint_every_steps = 1000
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = "cosine"
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.hidden": (16,)})
  return config


def get_model(config):
  return mlp.MLP(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return data.load(
    "regression",
    num_examples=config.num_examples,
    outlier_fraction=config.outlier_fraction,
    outlier_scale=config.outlier_scale,
    seed=config.seed,
  )


def get_loss(config):
  return functools.partial(regression.regression, loss=config.loss, delta=config.delta)


# Measured 0.0273 (the squared error's fit to the same data: 0.0919).
TARGETS = {"test.mse": ("<=", 0.05)}
