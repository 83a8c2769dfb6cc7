"""Heteroscedastic regression (docs/curriculum.md#b4): an MLP with two outputs, the mean
and the variance of y given x, trained by maximum likelihood with the Gaussian negative
log-likelihood on data whose noise grows from 0.05 at x = 0 to 0.5 at |x| = 3. The test
metric `coverage_90` is the share of test targets inside mu +- 1.645 sigma (90% if the
variances are right); the report splits it by region and puts one constant variance
beside it, and intervals.png draws both bands over the data.

  ./launch.sh heteroscedastic_regression
"""

from dlx import config as config_lib
from dlx.models import mlp
from dlx.tasks.classic import heteroscedastic


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.num_examples = 2000
  config.model = config_lib.model_config(hidden=(64, 64), num_outputs=2, activation="tanh")
  config.batch_size = 64
  config.num_epochs = 300.0  # the mean keeps improving after the variances settle
  config.log_every_steps = 200
  config.checkpoint_every_steps = 2000
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = "cosine"
  config.best_metric = ""  # the final weights
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.hidden": (16,)})
  return config


def get_model(config):
  return mlp.MLP(**config_lib.model_kwargs(config))


get_dataset = heteroscedastic.get_dataset
loss = heteroscedastic.loss
final_report = heteroscedastic.final_report
OUTPUTS = (heteroscedastic.PLOT,)
# The bar is 0.85-0.95: two bounds on the same number, one read from test, one from report.
TARGETS = {"test.coverage_90": (">=", 0.85), "report.test_coverage_90": ("<=", 0.95)}
