"""The teacher of Hinton et al.'s MNIST distillation (docs/curriculum.md#g1): an MLP
784-1200-1200-10 with ReLU, dropout 0.5 on the hidden layers and inputs jittered by up to
two pixels (random translations). The paper trained it far longer, on all 60,000
images and with 20% input dropout too; here it trains 50 epochs on 54,000 (the rest is
validation) to fit a 2-core CPU.

  ./launch.sh mlp_teacher_mnist --data_dir=../shared/tfds
  ./launch.sh distill_mnist --data_dir=../shared/tfds --config.teacher=runs/mlp_teacher_mnist
"""

import ml_collections

from dlx import config as config_lib
from dlx.tasks import classification
from dlx.tasks.compression import common


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = common.mnist_config(epochs=50.0, hidden=(1200, 1200), dropout_rate=0.5)
  config.augment = ml_collections.ConfigDict(dict(crop_padding=2))  # the jitter
  if config_lib.SMOKE in args:
    common.smoke_mlp(config)
  return config


get_model = common.mlp_model
get_dataset = common.mnist_dataset
loss = classification.classification
TARGETS = {"test.accuracy": (">=", 0.985)}
