"""A mixture of K full-covariance Gaussians fitted by maximum likelihood with gradient
descent (Adam, full batch) on 2-D points (docs/curriculum.md#f22): mixing weights as a
softmax of logits, each precision as P P^T with P lower triangular and a positive
(exponentiated) diagonal. The report fits the same mixture by EM (from random training
points) and by scikit-learn's GaussianMixture (same K, full covariances, k-means start)
and compares the test mean log-likelihoods; density.png draws all three densities over
the training points. Expected: a test mean log-likelihood of about -1.029 nats/point on
two moons, level with scikit-learn's (experiments/classic/README.md has the measurements).

  ./launch.sh mixture_density                 # two_moons
  ./launch.sh mixture_density:spirals        # K = 24
"""

import ml_collections

from dlx import config as config_lib
from dlx.models import mixture
from dlx.tasks.density import mixture as mixture_task


def get_config(arg=None):
  args = config_lib.parse_arg(arg, choices=("spirals",))
  config = config_lib.base_config()
  config.data = ml_collections.ConfigDict(dict(name="two_moons", num_examples=5000))
  config.model = config_lib.model_config(num_components=8, dim=2, init_scale=1.0)
  config.em_steps = 300
  config.sklearn_n_init = 1
  config.batch_size = 3000  # the whole train split (60%): full-batch gradient descent
  config.num_train_steps = 3000
  config.log_every_steps = 250
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 3000
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-2
  config.optimizer.schedule = "cosine"
  if "spirals" in args:  # 1.5 turns per arm: 24 components follow the arms (8 blur them)
    config.data.name = "spirals"
    config.model.num_components = 24
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"em_steps": 5, "data.num_examples": 200})
  return config


def get_model(config):
  return mixture.GaussianMixture(**config_lib.model_kwargs(config))


get_dataset = mixture_task.get_dataset
loss = mixture_task.loss
final_report = mixture_task.final_report
OUTPUTS = (mixture_task.PLOT,)
TARGETS = {"report.gap_to_sklearn": (">=", -0.05)}  # nats per point, test split
