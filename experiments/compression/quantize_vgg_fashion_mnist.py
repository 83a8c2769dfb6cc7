"""int8 post-training quantization of the zoo's VGG on Fashion-MNIST
(docs/curriculum.md#g3, #f4): as experiments/compression/quantize_lenet5_mnist.py, for the eight
convolutions and three dense layers of a trained experiments/vision/vgg_fashion_mnist.py run
(batch norm and pooling stay float).

  ./launch.sh vgg_fashion_mnist --data_dir=../shared/tfds          # the float run, once
  ./launch.sh quantize_vgg_fashion_mnist --data_dir=../shared/tfds \\
      --config.init_from=runs/vgg_fashion_mnist
"""

from dlx import config as config_lib
from dlx import experiment as experiment_lib
from dlx.tasks.compression import quantization

_FLOAT = experiment_lib.load("vgg_fashion_mnist")  # the model and data of the run it reads


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = _FLOAT.get_config(config_lib.SMOKE if config_lib.SMOKE in args else None)
  return quantization.quantization_config(config)


get_model = _FLOAT.get_model
get_dataset = _FLOAT.get_dataset
get_loss = _FLOAT.get_loss
final_report = quantization.final_report
STARTS_FROM = {"init_from": "vgg_fashion_mnist"}
TARGETS = {"report.int8_per_channel_drop": ("<", 0.005)}
