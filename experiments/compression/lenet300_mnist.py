"""LeNet-300-100 (docs/curriculum.md#f1, #g2): the dense MLP 784-300-100-10 with ReLU
that Han et al. (2015) prune 12x. This is the dense run that
experiments/compression/prune_lenet300_mnist.py starts from.

  ./launch.sh lenet300_mnist --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.tasks import classification
from dlx.tasks.compression import common


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = common.mnist_config(epochs=30.0, hidden=(300, 100), dropout_rate=0.0)
  config.optimizer.name = "adamw"
  config.optimizer.weight_decay = 0.05
  if config_lib.SMOKE in args:
    common.smoke_mlp(config)
  return config


get_model = common.mlp_model
get_dataset = common.mnist_dataset
loss = classification.classification
TARGETS = {"test.accuracy": (">=", 0.98)}  # Han et al.'s dense run: 98.36%
