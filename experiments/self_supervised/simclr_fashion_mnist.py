"""SimCLR (Chen et al., 2020; docs/curriculum.md#f26) on Fashion-MNIST without labels: two
random views of each image (resized crop of 30-100% of the area, flip, brightness and
contrast jitter; views_<step>.png) through a small CNN encoder (3 conv-BN-ReLU stages,
16-32-64 channels, global average pool) and a 2-layer projection MLP, trained with NT-Xent
(T = 0.2, 254 negatives per view at batch 128) for 3 epochs. The final report freezes the
encoder (the 64 features before the projection) and fits a linear probe on the train split
and a 20-NN (cosine) vote, both scored on the test split, beside the same encoder at its
random initialisation.

  ./launch.sh simclr_fashion_mnist --data_dir=../shared/tfds
  ./launch.sh simclr_probe_fashion_mnist --data_dir=../shared/tfds \
      --config.init_from=runs/simclr_fashion_mnist      # the linear head via the trainer
  ./launch.sh simclr_supervised_fashion_mnist --data_dir=../shared/tfds  # with labels

Expected: linear probe about 83.0% test accuracy, a few points above the random-init
encoder's (experiments/self_supervised/README.md has the measurements).
"""

from dlx import config as config_lib
from dlx.tasks import self_supervised as ssl


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = ssl.fashion_mnist_config(epochs=3.0)
  if config_lib.SMOKE in args:
    ssl.smoke(config)
  return config


get_model = ssl.get_model
get_dataset = ssl.get_dataset
get_loss = ssl.get_loss
visualize = ssl.visualize
final_report = ssl.final_report
OUTPUTS = (ssl.VIEWS_IMAGE + "_{step}.png",)
TARGETS = {
  "report.linear_probe_accuracy": (">=", 0.82),  # measured: the family README
  "report.probe_gain_over_random_init": (">=", 0.02),  # measured: the family README
}
