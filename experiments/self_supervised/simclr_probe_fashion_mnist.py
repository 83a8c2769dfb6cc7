"""Linear probe of a SimCLR encoder (docs/curriculum.md#f26) through the trainer: the
encoder of a finished experiments/self_supervised/simclr_fashion_mnist.py run (`init_from`, sub-tree
'encoder') is frozen (evaluation-mode BatchNorm, no gradient, a zero update so weight
decay leaves it too) and only a linear classifier on its 64 features trains, with labels,
on the Fashion-MNIST train split, on standardised features (BatchNorm without scale or
bias, an affine map at evaluation), for 10 epochs.

  ./launch.sh simclr_fashion_mnist --data_dir=../shared/tfds     # the pre-training, once
  ./launch.sh simclr_probe_fashion_mnist --data_dir=../shared/tfds \
      --config.init_from=runs/simclr_fashion_mnist

Expected: test accuracy about 82.7%, close to the pre-training report's full-batch probe.
"""

from dlx import config as config_lib
from dlx.tasks import classification
from dlx.tasks import self_supervised as ssl


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = ssl.probe_config(frozen=True, epochs=10.0)
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.widths": (4, 8)})
  return config


get_model = ssl.probe_model
get_dataset = ssl.get_dataset
loss = classification.classification
make_optimizer = ssl.probe_optimizer
STARTS_FROM = {"init_from": "simclr_fashion_mnist"}
TARGETS = {"test.accuracy": (">=", 0.81)}  # measured: the family README
