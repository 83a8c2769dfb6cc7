"""The student of Hinton et al.'s MNIST distillation trained alone (docs/curriculum.md#g1):
an MLP 784-800-800-10 with ReLU and no regularisation, the same optimizer and epochs as
the teacher; experiments/compression/distill_mnist.py trains it on the teacher's soft
targets instead. Expected: about 145 test errors (98.55% accuracy).

  ./launch.sh mlp_student_mnist --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.tasks import classification
from dlx.tasks.compression import common


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = common.mnist_config(epochs=50.0, hidden=(800, 800), dropout_rate=0.0)
  if config_lib.SMOKE in args:
    common.smoke_mlp(config)
  return config


get_model = common.mlp_model
get_dataset = common.mnist_dataset
loss = classification.classification
TARGETS = {"test.accuracy": (">=", 0.98)}
