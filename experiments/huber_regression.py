"""MLP regression with the Huber loss on data whose train targets have 10% gross outliers
(CURRICULUM B1). `:mse` gives the same run with the squared error, for comparison: the
test split is clean, so its MSE shows which loss learned the true curve.

  ./launch.sh huber_regression
  python -m dlx.main --config=experiments/huber_regression.py:mse --workdir=runs/mse_regression
"""

import functools

from dlx import config as config_lib
from dlx import data
from dlx import tasks
from dlx.models import mlp


def get_config(loss="huber"):
  config = config_lib.base_config()
  config.loss = loss             # huber | mse
  config.delta = 1.0             # Huber's threshold between quadratic and linear
  config.hidden = (64, 64)
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
  return config


def get_model(config):
  return mlp.MLP(hidden=tuple(config.hidden), num_outputs=1, activation="tanh")


def get_dataset(config, data_dir):
  del data_dir
  return data.load("regression", num_examples=config.num_examples,
                   outlier_fraction=config.outlier_fraction,
                   outlier_scale=config.outlier_scale, seed=config.seed)


def get_loss(config):
  return functools.partial(tasks.regression, loss=config.loss, delta=config.delta)
