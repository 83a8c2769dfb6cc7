"""Bagging (docs/curriculum.md#d5): ten small MLPs, each trained on its own bootstrap
resample of the digits train split, and their averaged class probabilities. The report
gives each member's test accuracy, the ensemble's (and the members' majority vote), the
gain over the mean member, a bootstrap 95% interval of the ensemble's test accuracy and
the out-of-bag accuracy.

  ./launch.sh bagging_digits

Why one run trains all ten: the members are one model (dlx.models.ensemble, parameters
stacked by nn.vmap), and a member's resample is a per-example count in train['weights']
(dlx.tasks.classic.bagging.with_bootstrap_weights), so the generic step, the trainer's loop,
checkpoints and resume serve the ensemble unchanged; no custom step, no loop in a hook.
"""

from dlx import config as config_lib
from dlx import data
from dlx.models import ensemble
from dlx.models import mlp
from dlx.tasks.classic import bagging


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.model = config_lib.model_config(hidden=(32,), num_outputs=10, activation="relu")
  config.bagging = config_lib.model_config(num_members=10, confidence=0.95, ci_resamples=2000)
  config.batch_size = 32
  config.num_epochs = 30.0
  config.log_every_steps = 200
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.best_metric = "accuracy"  # of the ensemble
  config.best_mode = "max"
  if config_lib.SMOKE in args:
    overrides = {"model.hidden": (8,), "bagging.num_members": 3, "bagging.ci_resamples": 200}
    config_lib.smoke(config, **overrides)
  return config


def get_model(config):
  return ensemble.Ensemble(mlp.MLP, config.bagging.num_members, config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  digits = data.load("digits", seed=config.seed)
  return bagging.with_bootstrap_weights(digits, config.bagging.num_members, config.seed)


loss = bagging.loss
final_report = bagging.final_report
TARGETS = {"report.ensemble_gain": (">", 0.0)}
