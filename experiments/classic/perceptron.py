"""Rosenblatt's perceptron (docs/curriculum.md#f1): a linear unit with a step activation
trained by the perceptron rule w += lr (y - y_hat) x, one example at a time (a custom
step, no gradient). On iris setosa vs versicolor (linearly separable) it converges: a
whole pass without a mistake, 100% training accuracy. `:xor` gives it noisy XOR, which
no line separates: it never converges. The report gives the updates made and the epoch of
the last one. Expected: on iris it converges after 7 updates.

  ./launch.sh perceptron
  ./launch.sh perceptron:xor
"""

import numpy as np

from dlx import config as config_lib
from dlx import data
from dlx.data import core
from dlx.models import perceptron
from dlx.tasks.classic import perceptron as perceptron_task


def get_config(arg=None):
  args = config_lib.parse_arg(arg, ("xor",))
  config = config_lib.base_config()
  config.data = "xor" if "xor" in args else "iris"  # iris: setosa (0) vs versicolor (1)
  config.model = config_lib.model_config()
  config.batch_size = 1  # the online rule
  config.num_epochs = 20.0
  config.log_every_steps = 50
  config.checkpoint_every_steps = 10_000
  config.best_metric = "accuracy"
  config.best_mode = "max"
  config.optimizer.learning_rate = 0.1
  if config_lib.SMOKE in args:
    config_lib.smoke(config, batch_size=1)
  return config


def get_model(config):
  del config
  return perceptron.Perceptron()


def get_dataset(config, data_dir):
  del data_dir
  if config.data == "xor":
    return data.load("xor", seed=config.seed)
  iris = data.load("iris", seed=config.seed)
  return iris.map(lambda split: core.take(split, np.flatnonzero(split["targets"] < 2)))


def make_optimizer(config, total_steps):
  del total_steps
  return perceptron_task.update_rule(config.optimizer.learning_rate)


make_train_step = perceptron_task.make_train_step
loss = perceptron_task.loss
final_report = perceptron_task.final_report
TARGETS = {"report.train_accuracy": (">=", 1.0)}
