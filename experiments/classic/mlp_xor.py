"""An MLP solves XOR (docs/curriculum.md#f1); `:linear` trains a single linear layer,
which cannot; `:stream` draws fresh training points at every step (a `Stream`).

  ./launch.sh mlp_xor
  ./launch.sh mlp_xor:linear
  ./launch.sh mlp_xor:stream
"""

import numpy as np

from dlx import config as config_lib
from dlx import data
from dlx import errors
from dlx.data import embedded
from dlx.models import mlp
from dlx.tasks import classification

ARCHITECTURES = {"mlp": mlp.MLP, "linear": mlp.Linear}


def get_config(arg=None):
  args = config_lib.parse_arg(arg, ("linear", "stream"))
  config = config_lib.base_config()
  config.architecture = "mlp"  # mlp | linear
  config.model = config_lib.model_config(hidden=(8,), num_outputs=2, activation="tanh")
  config.noise = 0.1
  config.stream = "stream" in args  # new training points every step, none reused
  config.batch_size = 32
  config.num_train_steps = 600
  config.log_every_steps = 100
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 300
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 0.03
  if "linear" in args:
    config.architecture = "linear"
    config.model = config_lib.model_config(num_outputs=2)
  if config_lib.SMOKE in args:
    config_lib.smoke(config)
  return config


def get_model(config):
  if config.architecture not in ARCHITECTURES:
    raise errors.ConfigError(
      f"--config.architecture={config.architecture!r}: choose {' or '.join(ARCHITECTURES)}"
    )
  return ARCHITECTURES[config.architecture](**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  dataset = data.load("xor", noise=config.noise, seed=config.seed)
  if not config.stream:
    return dataset

  def batch(seed, step):
    # Its own generator per (seed, step): the fixed splits use `seed` alone.
    rng = np.random.default_rng([seed, step, 1])
    inputs, targets = embedded.xor_points(rng, config.batch_size, config.noise)
    return {"inputs": inputs, "targets": targets}

  return data.Stream(
    batch, dataset.validation, dataset.test, info={**dataset.info, "name": "xor (stream)"}
  )


loss = classification.classification
TARGETS = {"test.accuracy": (">=", 0.97)}
