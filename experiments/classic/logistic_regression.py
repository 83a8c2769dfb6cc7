"""Softmax (logistic) regression (docs/curriculum.md#f1): one linear layer and the
cross-entropy, with an L2 penalty (l2 / 2) ||W||^2 on the weights, trained full-batch.
On two moons its boundary is a line, which cannot follow the moons (89% test accuracy
measured). `:iris` fits the three iris species. The report puts scikit-learn's
LogisticRegression, fitted to the same split with the same penalty (C from
dlx.tasks.classic.logistic.sklearn_c), beside it.

  ./launch.sh logistic_regression
  ./launch.sh logistic_regression:iris
"""

from dlx import config as config_lib
from dlx import data
from dlx.models import mlp
from dlx.tasks import classification
from dlx.tasks.classic import logistic

_TRAIN_SIZES = {"two_moons": 600, "iris": 90}  # 60% of 1,000 and of 150


def get_config(arg=None):
  args = config_lib.parse_arg(arg, ("iris",))
  config = config_lib.base_config()
  config.data = "iris" if "iris" in args else "two_moons"
  config.l2 = 1e-3
  config.model = config_lib.model_config(num_outputs=3 if "iris" in args else 2)
  config.batch_size = _TRAIN_SIZES[config.data]  # full batch: the convex optimum, as lbfgs
  config.num_train_steps = 2000
  config.log_every_steps = 200
  config.eval_every_steps = 200
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 0.05
  config.optimizer.schedule = "cosine"
  config.best_metric = ""  # the final weights, as scikit-learn's
  if config_lib.SMOKE in args:
    config_lib.smoke(config)
  return config


def get_model(config):
  return mlp.Linear(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return data.load(config.data, seed=config.seed)


loss = classification.classification
make_optimizer = logistic.make_optimizer
final_report = logistic.final_report
TARGETS = {"report.accuracy_difference": (">=", -0.01)}
