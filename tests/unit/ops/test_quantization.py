"""int8 post-training quantization (dlx/ops/quantization.py): error bounds, exact
integer arithmetic, calibration, integer inference and sizes."""

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx.ops import quantization as q


def _rng(seed=0):
  return np.random.default_rng(seed)


@pytest.mark.parametrize("channel_axis", [None, -1])
def test_quantize_dequantize_error_is_at_most_half_a_step(channel_axis):
  x = _rng().normal(size=(64, 8)).astype(np.float32) * np.linspace(0.1, 10, 8)
  scale = q.scale_for(x, channel_axis)
  assert scale.shape == (() if channel_axis is None else (8,))
  values = q.quantize(x, scale)
  assert values.dtype == jnp.int8 and np.abs(np.asarray(values)).max() == 127
  error = np.abs(np.asarray(q.dequantize(values, scale)) - x)
  assert np.all(error <= np.asarray(scale) / 2 + 1e-6)


def test_per_channel_scales_fit_each_channel():
  w = _rng().normal(size=(16, 4)).astype(np.float32) * np.array([0.01, 0.1, 1.0, 10.0])
  per_tensor = np.abs(np.asarray(q.dequantize(q.quantize(w, q.scale_for(w)), q.scale_for(w))) - w)
  scales = q.scale_for(w, -1)
  per_channel = np.abs(np.asarray(q.dequantize(q.quantize(w, scales), scales)) - w)
  np.testing.assert_allclose(np.asarray(scales), np.abs(w).max(0) / 127, rtol=1e-6)
  assert per_channel[:, 0].max() < per_tensor[:, 0].max() / 100  # the small channel
  assert q.scale_for(np.zeros(3)) == 1.0


def test_int8_dot_is_exact_integer_arithmetic():
  x = _rng(1).integers(-127, 128, size=(5, 300)).astype(np.int8)
  w = _rng(2).integers(-127, 128, size=(300, 7)).astype(np.int8)
  got = q.int8_dot(jnp.asarray(x), jnp.asarray(w))
  assert got.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(got), x.astype(np.int64) @ w.astype(np.int64))
  # Rescaled, it is the float matmul of the dequantized operands.
  sx, sw = 0.02, np.linspace(0.01, 0.05, 7)
  rescaled = np.asarray(got, np.float64) * sx * sw
  dequantized = (x.astype(np.float64) * sx) @ (w.astype(np.float64) * sw)
  np.testing.assert_allclose(rescaled, dequantized, rtol=1e-12)


def test_int8_conv_is_exact_integer_arithmetic():
  x = _rng(3).integers(-127, 128, size=(2, 9, 9, 3)).astype(np.int8)
  w = _rng(4).integers(-127, 128, size=(3, 3, 3, 4)).astype(np.int8)
  got = q.int8_conv(jnp.asarray(x), jnp.asarray(w), strides=(2, 1), padding="SAME")
  assert got.dtype == jnp.int32
  reference = lax.conv_general_dilated(
    x.astype(np.float64),
    w.astype(np.float64),
    (2, 1),
    "SAME",
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )
  np.testing.assert_array_equal(np.asarray(got), np.asarray(reference).astype(np.int64))


class _Net(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = nn.relu(nn.Conv(8, (3, 3), padding=1)(x))
    x = nn.relu(nn.Conv(8, (3, 3), strides=2, padding="VALID")(x))
    return nn.Dense(10)(x.reshape((x.shape[0], -1)))


@pytest.fixture(scope="module")
def net():
  model = _Net()
  x = jnp.asarray(_rng(5).normal(size=(64, 12, 12, 1)), jnp.float32)
  return model, model.init(jax.random.PRNGKey(0), x), x


def test_calibration_takes_the_max_or_a_percentile_of_each_layers_input(net):
  model, variables, x = net
  scales = q.calibrate(model, variables, x)
  assert set(scales) == {"Conv_0", "Conv_1", "Dense_0"}
  assert scales["Conv_0"] == pytest.approx(float(np.abs(x).max()) / 127)
  clipped = q.calibrate(model, variables, x, method="percentile", percentile=90.0)
  assert clipped["Conv_0"] == pytest.approx(float(np.percentile(np.abs(x), 90)) / 127, rel=1e-5)
  assert all(clipped[k] < scales[k] for k in scales)
  with pytest.raises(errors.ConfigError, match="minmax"):
    q.calibrate(model, variables, x, method="kl")


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_inference_matches_float_and_runs_in_integers(net, per_channel):
  model, variables, x = net
  quantized = q.quantize_model(model, variables, x, per_channel=per_channel)
  apply = jax.jit(lambda v, inputs: q.int8_apply(model, v, quantized, inputs))
  got, want = np.asarray(apply(variables, x)), np.asarray(model.apply(variables, x))
  assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
  assert not np.array_equal(got, want)  # it really is the quantized computation
  jaxpr = str(jax.make_jaxpr(lambda inputs: q.int8_apply(model, variables, quantized, inputs))(x))
  assert jaxpr.count("preferred_element_type=int32") == 3  # two convs and the dense layer


def test_one_layer_by_hand(net):
  """Dense_0 of int8_apply equals the three steps written out in NumPy."""
  model, variables, x = net
  quantized = q.quantize_model(model, variables, x, per_channel=True)
  params = variables["params"]["Dense_0"]
  features = np.asarray(
    model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])[1][
      "intermediates"
    ]["Conv_1"]["__call__"][0]
  )
  inputs = np.maximum(features, 0).reshape(len(x), -1)
  sx, sw = quantized.input_scales["Dense_0"], np.asarray(quantized.weight_scales["Dense_0"])
  xq = np.clip(np.round(inputs / sx), -127, 127).astype(np.int64)
  wq = np.asarray(quantized.weights["Dense_0"]).astype(np.int64)
  expected = (xq @ wq) * sx * sw + np.asarray(params["bias"])
  got = q._integer_layer(  # pylint: disable=protected-access
    nn.Dense(10).bind({"params": params}), jnp.asarray(inputs), quantized, "Dense_0"
  )
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_sizes(net):
  model, variables, x = net
  quantized = q.quantize_model(model, variables, x, per_channel=True)
  kernels = 3 * 3 * 1 * 8 + 3 * 3 * 8 * 8 + 200 * 10
  biases = 8 + 8 + 10
  assert q.float_bytes(variables) == 4 * (kernels + biases)
  assert q.int8_bytes(variables, quantized) == kernels + 4 * (8 + 8 + 10) + 4 * biases
