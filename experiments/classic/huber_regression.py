"""MLP regression with the Huber loss on data whose train targets have 10% gross outliers
(docs/curriculum.md#b1). `:mse` gives the same run with the squared error and
`:clipped` with the clipped squared error min(r^2, C) (docs/curriculum.md#b5), for
comparison: the test split is clean, so its MSE shows which loss learned the true curve.

C = 4 lies between the clean points' largest squared residual at the start (the targets
stay within +-1.5, so r^2 <= 2.25 while the network outputs about 0) and the outliers'
smallest (their targets are off by 5 to 10, so r^2 >= 3.5^2 ~ 12): the outliers pass no
gradient from the first step on, while every clean point does.

  ./launch.sh huber_regression
  ./launch.sh huber_regression:mse
  ./launch.sh huber_regression:clipped
"""

import functools

from dlx import config as config_lib
from dlx import data
from dlx.models import mlp
from dlx.tasks import regression


def get_config(arg=None):
  args = config_lib.parse_arg(arg, ("mse", "clipped"))
  config = config_lib.base_config()
  config.loss = next((name for name in ("mse", "clipped") if name in args), "huber")
  config.delta = 1.0  # Huber's threshold between quadratic and linear
  config.clip = 4.0  # the clipped loss's cap C on the squared residual
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
  return functools.partial(
    regression.regression, loss=config.loss, delta=config.delta, clip=config.clip
  )


# Measured 0.0273 (the squared error's fit to the same data: 0.0919).
TARGETS = {"test.mse": ("<=", 0.05)}
