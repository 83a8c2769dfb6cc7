"""Linear regression two ways (docs/curriculum.md#f1): a linear layer trained by
full-batch gradient descent on the squared error, and the closed-form least-squares
solution (normal equations, by lstsq), on y = x.w + b + noise with 8 Gaussian features.
The report gives both solutions (and the true one), their largest parameter difference,
whether it is within `tolerance`, and both test MSEs.

  ./launch.sh linear_regression
"""

from dlx import config as config_lib
from dlx.models import mlp
from dlx.tasks import regression
from dlx.tasks.classic import least_squares


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.num_features = 8
  config.noise = 0.1
  config.tolerance = 1e-3  # largest allowed |closed form - gradient descent| per parameter
  config.model = config_lib.model_config(num_outputs=1)
  config.batch_size = 600  # the whole train split (60% of 1,000): gradient descent
  config.num_train_steps = 300
  config.log_every_steps = 50
  config.eval_every_steps = 50
  config.optimizer.name = "sgd"
  # The MSE's Hessian is 2 X^T X / n, about 2 I here: 0.3 is well inside 2 / lambda_max.
  config.optimizer.learning_rate = 0.3
  if config_lib.SMOKE in args:
    config_lib.smoke(config)
  return config


def get_model(config):
  return mlp.Linear(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return least_squares.linear_data(
    num_features=config.num_features, noise=config.noise, seed=config.seed
  )


loss = regression.regression
final_report = least_squares.final_report
TARGETS = {"report.max_parameter_difference": ("<", 1e-3)}
