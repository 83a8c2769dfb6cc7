"""int8 post-training quantization of a trained LeNet-5 (docs/curriculum.md#g3): no
training; the run evaluates the float model of experiments/vision/lenet5_mnist.py and, in its
report, the same model with both convolutions and the three dense layers computed in
integers (int8 inputs and kernels, int32 accumulation) under three schemes: per-tensor
or per-output-channel weight scales, activations calibrated on 500 training images by
their max or their 99.99th percentile.

  ./launch.sh lenet5_mnist --data_dir=../shared/tfds               # the float run, once
  ./launch.sh quantize_lenet5_mnist --data_dir=../shared/tfds --config.init_from=runs/lenet5_mnist
"""

from dlx import config as config_lib
from dlx import experiment as experiment_lib
from dlx.tasks import classification
from dlx.tasks.compression import quantization

_FLOAT = experiment_lib.load("lenet5_mnist")  # the model and data of the run it reads


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = _FLOAT.get_config(config_lib.SMOKE if config_lib.SMOKE in args else None)
  return quantization.quantization_config(config)


get_model = _FLOAT.get_model
get_dataset = _FLOAT.get_dataset
loss = classification.classification
final_report = quantization.final_report
STARTS_FROM = {"init_from": "lenet5_mnist"}
TARGETS = {"report.int8_per_channel_drop": ("<", 0.005)}  # under half a point
