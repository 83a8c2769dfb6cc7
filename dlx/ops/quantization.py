"""Post-training int8 quantization (docs/curriculum.md#g3), written out step by step.

Symmetric quantization maps a float x to q = clip(round(x / s), -127, 127) in int8, with
one scale s = max|x| / 127 per tensor or one per output channel (the weights' last
axis); dequantization is q * s, off by at most s / 2 inside the range. A layer then
runs in integers:

    x_q = quantize(x, s_x)            the input, with a scale calibrated beforehand
    acc = x_q (*) w_q                  int8 x int8 products summed in int32 (dot / conv)
    y   = acc * (s_x * s_w) + b        back to float; the bias stays float

`quantize_model` calibrates the input scale of every flax `nn.Dense` and `nn.Conv` on
a few hundred examples (the max, or a percentile, of |input|), quantizes their kernels,
and `int8_apply` runs the model with those layers computed in integers (everything else,
activations, pooling, normalisation, stays float). The model itself is unchanged: the
layers are swapped in with `flax.linen.intercept_methods`.
"""

import dataclasses
from typing import Any

from flax import traverse_util
import flax.linen as nn
from flax.linen import linear as flax_linear
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from dlx import errors

QMAX = 127
METHODS = ("minmax", "percentile")
_LAYERS = (nn.Dense, nn.Conv)


def scale_for(x, channel_axis: int | None = None):
  """max|x| / 127 over the whole tensor, or per index of `channel_axis` (a vector).
  An all-zero tensor or channel gets scale 1 (it quantizes to zeros either way)."""
  x = jnp.asarray(x)
  if channel_axis is None:
    amax = jnp.max(jnp.abs(x))
  else:
    axes = tuple(a for a in range(x.ndim) if a != channel_axis % x.ndim)
    amax = jnp.max(jnp.abs(x), axis=axes)
  return jnp.where(amax > 0, amax / QMAX, 1.0).astype(jnp.float32)


def quantize(x, scale):
  """int8 q = clip(round(x / scale), -127, 127); `scale` broadcasts on the last axis."""
  return jnp.clip(jnp.round(jnp.asarray(x) / scale), -QMAX, QMAX).astype(jnp.int8)


def dequantize(q, scale):
  return q.astype(jnp.float32) * scale


def int8_dot(x_q, w_q):
  """(..., K) int8 times (K, N) int8, accumulated in int32: (..., N) int32."""
  return lax.dot_general(
    x_q, w_q, (((x_q.ndim - 1,), (0,)), ((), ())), preferred_element_type=jnp.int32
  )


def int8_conv(
  x_q, w_q, *, strides, padding, input_dilation=None, kernel_dilation=None, groups: int = 1
):
  """A channels-last convolution (N, spatial..., C) of int8 inputs with an int8 kernel
  (spatial..., C / groups, F), accumulated in int32."""
  spatial = "".join("HWDXYZ"[i] for i in range(x_q.ndim - 2))
  numbers = lax.conv_dimension_numbers(
    x_q.shape, w_q.shape, (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
  )
  return lax.conv_general_dilated(
    x_q,
    w_q,
    window_strides=strides,
    padding=padding,
    lhs_dilation=input_dilation,
    rhs_dilation=kernel_dilation,
    dimension_numbers=numbers,
    feature_group_count=groups,
    preferred_element_type=jnp.int32,
  )


@dataclasses.dataclass(frozen=True)
class QuantizedModel:
  """Per layer (module path 'Conv_0', ...): int8 kernel, its scale (a scalar, or one per
  output channel) and the calibrated input scale."""

  weights: dict[str, Any]
  weight_scales: dict[str, Any]
  input_scales: dict[str, Any]
  per_channel: bool
  method: str


def _path(module) -> str:
  return "/".join(module.path)


def _is_layer_call(context) -> bool:
  return context.method_name == "__call__" and isinstance(context.module, _LAYERS)


def calibrate(model, variables, inputs, *, method: str = "minmax", percentile: float = 99.99):
  """{layer path: input scale}: max |input| / 127 ('minmax') or the `percentile` of
  |input| / 127 ('percentile', which clips rare outliers) of every Dense / Conv on one
  batch of calibration `inputs`."""
  if method not in METHODS:
    raise errors.ConfigError(f"calibration method must be one of {METHODS}, got {method!r}")

  @jax.jit
  def statistics(variables, inputs):
    stats = {}

    def record(next_fun, args, kwargs, context):
      if _is_layer_call(context):
        magnitude = jnp.abs(args[0])
        stats[_path(context.module)] = (
          jnp.max(magnitude) if method == "minmax" else jnp.percentile(magnitude, percentile)
        )
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
      model.apply(variables, inputs, train=False)
    return stats

  return {
    path: float(value) / QMAX if value > 0 else 1.0
    for path, value in jax.device_get(statistics(variables, inputs)).items()
  }


def quantize_model(
  model,
  variables,
  calibration_inputs,
  *,
  per_channel: bool,
  method: str = "minmax",
  percentile: float = 99.99,
) -> QuantizedModel:
  """Calibrated input scales and int8 kernels for every Dense / Conv of `model`."""
  input_scales = calibrate(
    model, variables, calibration_inputs, method=method, percentile=percentile
  )
  params = traverse_util.flatten_dict(variables["params"], sep="/")
  weights, weight_scales = {}, {}
  for path in input_scales:
    kernel = params[f"{path}/kernel"]
    scale = scale_for(kernel, -1 if per_channel else None)
    weights[path], weight_scales[path] = quantize(kernel, scale), scale
  return QuantizedModel(weights, weight_scales, input_scales, per_channel, method)


def _tuple(value, n):
  if value is None:
    return (1,) * n
  return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _integer_layer(module, x, quantized: QuantizedModel, path: str):
  """The Dense / Conv `module` on `x`, computed in int8 with int32 accumulation."""
  x_scale, w_scale = quantized.input_scales[path], quantized.weight_scales[path]
  x_q, w_q = quantize(x, x_scale), quantized.weights[path]
  if isinstance(module, nn.Dense):
    accumulator = int8_dot(x_q, w_q)
  else:
    n = w_q.ndim - 2
    padding = flax_linear.canonicalize_padding(module.padding, n)
    if isinstance(padding, str) and padding not in ("SAME", "VALID"):
      raise NotImplementedError(f"int8 convolution with padding {padding!r}")
    accumulator = int8_conv(
      x_q,
      w_q,
      strides=_tuple(module.strides, n),
      padding=padding,
      input_dilation=_tuple(module.input_dilation, n),
      kernel_dilation=_tuple(module.kernel_dilation, n),
      groups=module.feature_group_count,
    )
  y = accumulator.astype(jnp.float32) * (x_scale * w_scale)
  if module.use_bias:
    y = y + module.variables["params"]["bias"]
  return y


def int8_apply(model, variables, quantized: QuantizedModel, inputs):
  """The model's evaluation-mode outputs with every quantized Dense / Conv computed in
  integers (jit it: the layers are swapped while tracing)."""

  def integer_layers(next_fun, args, kwargs, context):
    if _is_layer_call(context):
      path = _path(context.module)
      if path in quantized.weights:
        return _integer_layer(context.module, args[0], quantized, path)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(integer_layers):
    return model.apply(variables, inputs, train=False)


def float_bytes(variables) -> int:
  """Bytes of every parameter and model-state array as stored (float32: 4 each)."""
  return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(variables)))


def int8_bytes(variables, quantized: QuantizedModel) -> int:
  """Bytes with the quantized kernels as int8 plus their float32 scales (one per tensor
  or per channel), everything else (biases, normalisation) as stored."""
  params = traverse_util.flatten_dict(variables["params"], sep="/")
  replaced = sum(np.asarray(params[f"{p}/kernel"]).nbytes for p in quantized.weights)
  added = sum(
    np.asarray(quantized.weights[p]).nbytes + np.asarray(quantized.weight_scales[p]).nbytes
    for p in quantized.weights
  )
  return float_bytes(variables) - replaced + added
