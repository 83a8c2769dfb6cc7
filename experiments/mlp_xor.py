"""An MLP solves XOR (CURRICULUM F1); `:linear` trains a single linear layer, which cannot.

  ./launch.sh mlp_xor
  python -m dlx.main --config=experiments/mlp_xor.py:linear --workdir=runs/xor_linear
"""

from dlx import config as config_lib
from dlx import errors
from dlx import data
from dlx import tasks
from dlx.models import mlp


def get_config(model="mlp"):
  config = config_lib.base_config()
  config.model = model           # mlp | linear
  config.hidden = (8,)
  config.activation = "tanh"
  config.noise = 0.1
  config.batch_size = 32
  config.num_train_steps = 600
  config.log_every_steps = 100
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 300
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 0.03
  return config


def get_model(config):
  if config.model == "linear":
    return mlp.Linear(num_outputs=2)
  if config.model == "mlp":
    return mlp.MLP(hidden=tuple(config.hidden), num_outputs=2, activation=config.activation)
  raise errors.ConfigError(f"--config.model={config.model!r}: choose mlp or linear")


def get_dataset(config, data_dir):
  del data_dir
  return data.load("xor", noise=config.noise, seed=config.seed)


loss = tasks.classification
