"""The supervised reference for simclr_fashion_mnist.py (docs/curriculum.md#f26):
the same encoder (3 conv-BN-ReLU stages, 16-32-64 channels, global average pool) and a
linear classifier trained end to end with labels, for the same 3 epochs at batch 128,
with random flips and 2-pixel pad-and-crop translations.

  ./launch.sh simclr_supervised_fashion_mnist --data_dir=../shared/tfds

Expected: test accuracy about 83.3%, a little above the SimCLR encoder's linear probe.
"""

import ml_collections

from dlx import config as config_lib
from dlx.tasks import classification
from dlx.tasks import self_supervised as ssl


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = ssl.probe_config(frozen=False, epochs=3.0)
  config.augment = ml_collections.ConfigDict(dict(flip=True, crop_padding=2))
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.widths": (4, 8)})
  return config


get_model = ssl.probe_model
get_dataset = ssl.get_dataset
loss = classification.classification
make_optimizer = ssl.probe_optimizer
TARGETS = {"test.accuracy": (">=", 0.82)}  # measured: the family README
