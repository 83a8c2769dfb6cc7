"""RNADE (Uria et al., 2013) on dequantised 8x8 digits (docs/curriculum.md#f22): NADE's
autoregressive factorisation over the 64 pixels in raster order, each conditional a
mixture of K Gaussians, so the test number is an exact negative log-likelihood in nats
per image. The report fits a full-covariance Gaussian (maximum likelihood) and
scikit-learn's GaussianMixture (K and the covariance floor picked on validation) to the
same train split and scores them on the same test points; samples_<step>.png holds 64
ancestral samples. Why digits: dlx/tasks/density/rnade.py.

  ./launch.sh rnade_digits
"""

import ml_collections

from dlx import config as config_lib
from dlx.models import rnade
from dlx.tasks.density import rnade as rnade_task


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.model = config_lib.model_config(
    dim=64, hidden=100, num_components=10, activation="relu", init_scale=0.05
  )
  config.fresh_noise = True  # new dequantisation noise in every train batch
  config.gmm = ml_collections.ConfigDict(
    dict(components=(1, 2, 4, 8, 12, 16), reg_covars=(1e-4, 1e-3, 1e-2), n_init=2)
  )
  config.batch_size = 50
  config.eval_batch_size = 400
  config.num_epochs = 40.0  # ~1,000 steps; longer runs overfit the 1,258 images
  config.log_every_steps = 250
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 1000
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "cosine"
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.hidden": 8, "model.num_components": 2})
    config.gmm.components, config.gmm.reg_covars, config.gmm.n_init = (1, 2), (1e-3,), 1
  return config


def get_model(config):
  return rnade.RNADE(**config_lib.model_kwargs(config))


get_dataset = rnade_task.get_dataset
get_augment = rnade_task.get_augment
loss = rnade_task.loss
visualize = rnade_task.visualize
final_report = rnade_task.final_report
OUTPUTS = rnade_task.OUTPUTS
TARGETS = {"report.gain_over_best_baseline": (">", 0.0)}  # nats per image, test split
