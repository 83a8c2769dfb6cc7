"""Post-training int8 quantization (docs/curriculum.md#g3) of a trained run with
dlx.ops.quantization (experiments/compression/quantize_lenet5_mnist.py,
quantize_vgg_fashion_mnist.py): an evaluation-only run whose report scores each scheme.
"""

import functools

import jax
import numpy as np

from dlx import config as config_lib
from dlx.data import core
from dlx.ops import quantization as quantization_ops
from dlx.tasks.compression import common

QUANTIZATION_SCHEMES = {  # report name: (per_channel, calibration method)
  "int8_per_tensor": (False, "minmax"),
  "int8_per_channel": (True, "minmax"),
  "int8_per_channel_percentile": (True, "percentile"),
}


def quantization_config(config):
  """An evaluation-only run (no training steps) of a trained run's model, plus
  config.quantization: calibration examples (the first of the train split) and the
  percentile of the percentile calibration. A smoke run has no trained run to read, so
  it keeps its few training steps from scratch."""
  if not config.smoke:
    config.num_train_steps = 0
  config.quantization = config_lib.model_config(calibration_examples=500, percentile=99.99)
  return config


def final_report(ctx):
  """Float vs int8 test accuracy for each scheme (per-tensor or per-channel weight
  scales, min/max or percentile activation calibration), and the model's size in bytes
  as float32 and with int8 kernels (per-channel scales)."""
  q_config = ctx.config.quantization
  # core.take also reads the first rows of a train split streamed from disk.
  first = core.take(ctx.dataset.train, slice(0, q_config.calibration_examples))
  calibration = np.asarray(first["inputs"])
  report = {"float_accuracy": common.test_accuracy(ctx, ctx.variables)}
  for name, (per_channel, method) in QUANTIZATION_SCHEMES.items():
    quantized = quantization_ops.quantize_model(
      ctx.model,
      ctx.variables,
      calibration,
      per_channel=per_channel,
      method=method,
      percentile=q_config.percentile,
    )
    apply = jax.jit(functools.partial(quantization_ops.int8_apply, ctx.model, quantized=quantized))
    report[f"{name}_accuracy"] = common.test_accuracy(ctx, ctx.variables, apply)
    report[f"{name}_drop"] = report["float_accuracy"] - report[f"{name}_accuracy"]
    if name == "int8_per_channel":
      report["int8_bytes"] = quantization_ops.int8_bytes(ctx.variables, quantized)
      report["quantized_layers"] = sorted(quantized.weights)
  report["float_bytes"] = quantization_ops.float_bytes(ctx.variables)
  report["size_ratio"] = report["float_bytes"] / report["int8_bytes"]
  report["calibration_examples"] = len(calibration)
  return report
