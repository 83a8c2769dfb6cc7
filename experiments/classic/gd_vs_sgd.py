"""Batch-size regimes (docs/curriculum.md#c4): one MLP on the embedded digits trained by
plain SGD for the same number of epochs with full-batch gradient descent, batch 1 and
mini-batches of 32 and 256. Run the four as one sweep; each run logs the loss on the
whole train split once per epoch, and the last run draws all of them in
batch_regimes.png (loss against epochs and against seconds):

  ./launch.sh sweep gd_vs_sgd --grid 'config.batch_size=1,32,256,1258'
  # -> runs/sweep_gd_vs_sgd/batch_size=1258/batch_regimes.png; 1258 = the train split

The learning rate is the same for every batch size (0.1): each update then has the
same expected size, and the runs differ only in updates per epoch and gradient noise.
Scaling it with the batch (the linear rule) would give full-batch GD a step 1258 times
that of batch 1, far past its stability limit 2 / (largest Hessian eigenvalue).
"""

from dlx import config as config_lib
from dlx import data
from dlx.models import mlp
from dlx.tasks import classification
from dlx.tasks.classic import batch_regimes


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.model = config_lib.model_config(hidden=(32,), num_outputs=10, activation="relu")
  config.batch_size = 32
  config.num_epochs = 30.0
  config.eval_every_steps = 0  # once per epoch, whatever the batch size
  config.log_every_steps = 100
  config.checkpoint_every_steps = 100_000  # only at the end: saves would blur the timing
  config.best_metric = ""  # no best checkpoint either
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.1
  if config_lib.SMOKE in args:
    config_lib.smoke(config)
  return config


def get_model(config):
  return mlp.MLP(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return data.load("digits", seed=config.seed)


loss = classification.classification
evaluate = batch_regimes.evaluate
final_report = batch_regimes.final_report
OUTPUTS = (batch_regimes.PLOT,)
