"""LeNet-5 (docs/curriculum.md#f2) on scikit-learn's 8x8 digits, upsampled to 32x32.

The default experiment of ./launch.sh: embedded data, no network, under a minute on CPU.

Regularisers to switch on (docs/curriculum.md#d3, off by default; measured in
experiments/vision/README.md):

  --config.augment.mixup_alpha=0.2     mixup, lam ~ Beta(0.2, 0.2)
  --config.augment.cutmix_alpha=1.0    cutmix, lam ~ Beta(1, 1)
  --config.augment.input_noise=0.1     Gaussian noise on the inputs (pixels in [0, 1])
  --config.weight_noise=0.01           Gaussian noise on the weights in each train step

`lenet5_digits:overfit` (docs/curriculum.md#c5) trains the same network on the first
100 training images for 3,000 steps at a constant learning rate, validating every 10
steps, so the validation loss turns up long before the end; add
`--config.early_stopping_patience=N` to stop once it has not improved for N evaluations.
"""

import ml_collections

from dlx import config as config_lib
from dlx import data
from dlx.data import core
from dlx.models import lenet
from dlx.tasks import classification

OVERFIT = "overfit"


def get_config(arg=None):
  args = config_lib.parse_arg(arg, (OVERFIT,))
  config = config_lib.base_config()
  config.model = config_lib.model_config(num_classes=10)
  config.batch_size = 64
  config.num_epochs = 30.0
  config.log_every_steps = 50
  config.checkpoint_every_steps = 200
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  config.train_examples = 0  # > 0: train on the first N images of the train split only
  config.weight_noise = 0.0  # stddev of the weight noise (dlx.training.steps)
  config.augment = ml_collections.ConfigDict(
    dict(
      input_noise=0.0,
      mixup_alpha=0.0,
      cutmix_alpha=0.0,
      num_classes=config.model.get_ref("num_classes"),
    )
  )
  if OVERFIT in args:
    config.train_examples = 100
    config.batch_size = 50
    config.num_epochs = -1.0
    config.num_train_steps = 3000
    config.eval_every_steps = 10
    config.log_every_steps = 100
    config.checkpoint_every_steps = 1000
    config.optimizer.schedule = "constant"
  if config_lib.SMOKE in args:
    config_lib.smoke(config)
  return config


def get_model(config):
  return lenet.LeNet5(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir  # embedded
  ds = data.load("digits", seed=config.seed)
  if config.train_examples:
    ds = core.Dataset(
      train=core.take(ds.train, slice(0, config.train_examples)),
      validation=ds.validation,
      test=ds.test,
      info=ds.info,
    )
  return ds.map(lambda split: data.transforms.resize_images(split, 32))


# Soft targets from mixup / cutmix when the batch has them, else integer targets.
loss = classification.soft_classification
TARGETS = {"test.accuracy": (">=", 0.95)}
