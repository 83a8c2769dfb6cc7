"""Tests for the vision layers in dlx.nn: activations, conv, pooling and
normalization.

Output-size formulas are checked against the shapes XLA itself gives
(jax.eval_shape of lax.conv_general_dilated / lax.conv_transpose: the real
shape rule, without compiling) and, where torch is installed, against
running the PyTorch layer. Layer values are compared with PyTorch in float32
after copying the Flax weights (HWIO -> OIHW, NHWC <-> NCHW).
"""

import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.nn import activations
from dlx.nn import blocks
from dlx.nn import conv
from dlx.nn import normalization
from dlx.nn import pooling

TOL = dict(rtol=1e-5, atol=1e-5)
TORCH_REASON = "PyTorch is the reference; install torch to compare with it"


def import_torch():
  return pytest.importorskip("torch", reason=TORCH_REASON)


def randn(*shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def to_torch(torch, x):
  """Channels-last numpy -> channels-first torch tensor."""
  x = np.asarray(x)
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def from_torch(y):
  """Channels-first torch tensor -> channels-last numpy."""
  return np.moveaxis(y.detach().numpy(), 1, -1)


def torch_conv_weight(torch, kernel):
  """Flax conv kernel (k..., I, O) -> PyTorch weight (O, I, k...)."""
  kernel = np.asarray(kernel)
  nd = kernel.ndim - 2
  return torch.from_numpy(np.ascontiguousarray(kernel.transpose((nd + 1, nd) + tuple(range(nd)))))


def shapes(module, x, *args):
  """Variable shapes from tracing init (no compilation, so fast)."""
  return jax.eval_shape(module.init, jax.random.key(0), x, *args)


def init(module, x, *args, seed=0):
  """Random variables of the right shapes: normal kernels and biases, and
  scales / running variances in [0.5, 1.5), so nothing is trivially 0 or 1."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "scale" in name or "var" in name:
      value = rng.uniform(0.5, 1.5, leaf.shape)
    else:
      value = rng.standard_normal(leaf.shape)
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes(module, x, *args))


def apply(module, variables, x, *args, **kwargs):
  """module.apply under one jit (eager Flax compiles every op separately)."""
  return jax.jit(lambda v, x: module.apply(v, x, *args, **kwargs))(variables, x)


def count(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def lax_conv_shape(size, kernel, stride, padding, dilation):
  """Spatial output shape that XLA gives for this convolution config."""
  nd = len(size)
  if not isinstance(padding, str):
    padding = conv.normalize_padding(padding, nd)
  lhs = jax.ShapeDtypeStruct((1, 1) + tuple(size), jnp.float32)
  rhs = jax.ShapeDtypeStruct((1, 1) + tuple(kernel), jnp.float32)
  out = jax.eval_shape(
    lambda a, b: jax.lax.conv_general_dilated(a, b, stride, padding, rhs_dilation=dilation),
    lhs,
    rhs,
  )
  return out.shape[2:]


# ------------------------------------------------------------- output sizes


PADDINGS_1D = [0, 1, 2, (0, 2), (3, 1), "same", "valid", "SAME"]


@pytest.mark.parametrize("padding", PADDINGS_1D)
def test_conv_output_size_1d_matches_xla(padding):
  for n, k, s, d in itertools.product([1, 2, 5, 8], [1, 2, 3], [1, 2, 3], [1, 2]):
    expected = lax_conv_shape((n,), (k,), (s,), padding, (d,))[0]
    if expected < 1:
      with pytest.raises(ValueError, match="output size"):
        conv.conv_output_size(n, k, s, padding, d)
    else:
      got = conv.conv_output_size(n, k, s, padding, d)
      assert got == expected, (n, k, s, padding, d)
      assert isinstance(got, int)


@pytest.mark.parametrize(
  "size,kernel,stride,padding,dilation",
  [
    ((7, 8), (3, 2), (2, 1), 1, (1, 2)),
    ((7, 8), 3, 2, ((1, 0), 2), 1),
    ((9, 4), (3, 3), (3, 2), "same", (2, 1)),
    ((9, 6), (4, 3), 1, "valid", (2, 2)),
    ((5, 6, 7), (3, 1, 2), (1, 2, 3), (1, 0, (2, 1)), (2, 1, 1)),
    ((5, 6, 7), 3, (2, 2, 1), "same", 1),
    ((5, 6, 7), (2, 3, 4), 2, "valid", (1, 2, 1)),
  ],
)
def test_conv_output_size_2d_3d_matches_xla(size, kernel, stride, padding, dilation):
  nd = len(size)
  per_dim = lambda v: (v,) * nd if isinstance(v, int) else v
  expected = lax_conv_shape(size, per_dim(kernel), per_dim(stride), padding, per_dim(dilation))
  assert conv.conv_output_size(size, kernel, stride, padding, dilation) == expected


def test_conv_output_size_matches_running_conv_module():
  # A real forward pass (not only the shape rule) through our Conv, 1D-3D.
  for size, kernel, stride, padding, dilation in [
    ((9,), 3, 2, 1, 2),
    ((6, 7), (3, 2), (2, 1), ((0, 1), 2), 1),
    ((4, 5, 6), (2, 3, 1), (1, 2, 2), "same", (2, 1, 1)),
  ]:
    x = jnp.ones((1,) + size + (2,))
    module = conv.Conv(3, kernel, stride, padding, dilation)
    y = apply(module, init(module, x), x)
    assert y.shape[1:-1] == conv.conv_output_size(size, kernel, stride, padding, dilation)


def test_conv_output_size_known_values():
  assert conv.conv_output_size(32, 5) == 28  # LeNet C1: i - K + 1 (docs/curriculum.md#e2).
  assert conv.conv_output_size(227, 11, 4) == 55  # AlexNet conv1.
  assert conv.conv_output_size(224, 7, 2, 3) == 112  # ResNet stem.
  assert conv.conv_output_size(55, 3, 2) == 27  # AlexNet overlapping pool.
  assert conv.conv_output_size((224, 225), 3, 2, "same") == (112, 113)


def test_conv_output_size_errors_name_the_numbers():
  with pytest.raises(ValueError, match=r"input 4, kernel 5"):
    conv.conv_output_size(4, 5)
  with pytest.raises(ValueError, match=r"dilated kernel 7"):
    conv.conv_output_size(5, 3, dilation=3)
  with pytest.raises(ValueError, match="stride"):
    conv.conv_output_size(5, 3, stride=0)
  with pytest.raises(ValueError, match="padding"):
    conv.conv_output_size(5, 3, padding="full")
  with pytest.raises(ValueError, match="one entry per spatial"):
    conv.conv_output_size((5, 5), 3, padding=(1, 1, 1))
  with pytest.raises(ValueError, match="kernel_size"):
    conv.conv_output_size((5, 5), (3, 3, 3))


def test_conv_transpose_output_size_matches_lax_conv_transpose():
  for n, k, s, d, pad in itertools.product(
    [1, 3, 4], [1, 2, 3, 5], [1, 2, 3], [1, 2], ["SAME", "VALID"]
  ):
    lhs = jax.ShapeDtypeStruct((1, n, 1), jnp.float32)
    rhs = jax.ShapeDtypeStruct((k, 1, 1), jnp.float32)
    out = jax.eval_shape(
      lambda a, b: jax.lax.conv_transpose(a, b, (s,), pad, (d,), ("NWC", "WIO", "NWC")), lhs, rhs
    )
    assert conv.conv_transpose_output_size(n, k, s, pad, 0, d) == out.shape[1]


def test_conv_transpose_output_size_pytorch_formula_and_errors():
  # (in - 1) * s - 2p + d (k - 1) + output_padding + 1.
  assert conv.conv_transpose_output_size(7, 4, 2, 1) == 14
  assert conv.conv_transpose_output_size(7, 3, 2, 1, 1) == 14
  assert conv.conv_transpose_output_size((5, 6), 3, 2, 0, 0, 2) == (13, 15)
  with pytest.raises(ValueError, match="output_padding"):
    conv.conv_transpose_output_size(7, 3, 2, 1, output_padding=2)
  with pytest.raises(ValueError, match="explicit"):
    conv.conv_transpose_output_size(7, 3, 2, "same", output_padding=1)
  with pytest.raises(ValueError, match="output size"):
    conv.conv_transpose_output_size(1, 1, 1, 1)


# ---------------------------------------------------------------- conv layers


def test_conv_params_match_flax_layout_and_int_kernel_infers_ndim():
  for shape in [(2, 9, 4), (2, 6, 7, 4), (2, 4, 5, 6, 4)]:
    x = jnp.ones(shape)
    module = conv.Conv(6, 3, padding=1, groups=2)
    variables = shapes(module, x)
    nd = len(shape) - 2
    assert jax.tree.map(lambda v: v.shape, variables) == {
      "params": {"kernel": (3,) * nd + (2, 6), "bias": (6,)}
    }
    out = jax.eval_shape(module.apply, variables, x)
    assert out.shape == shape[:-1] + (6,)
  x = jnp.ones((1, 8, 3))
  module = conv.Conv(2, 3, ndim=1)
  assert jax.eval_shape(module.apply, shapes(module, x), x).shape == (1, 8, 2)


def test_conv_rejects_groups_that_do_not_divide_channels():
  x = jnp.ones((1, 5, 5, 8))
  with pytest.raises(ValueError, match=r"groups=4.*input channels \(6\)"):
    shapes(conv.Conv(8, 3, groups=4), jnp.ones((1, 5, 5, 6)))
  with pytest.raises(ValueError, match=r"features \(6\)"):
    shapes(conv.Conv(6, 3, groups=4), x)
  with pytest.raises(ValueError, match="ndim=3"):
    shapes(conv.Conv(6, (3, 3), ndim=3), x)


@pytest.mark.torch
def test_strided_dilated_grouped_conv2d_matches_torch():
  torch = import_torch()
  x = randn(2, 11, 10, 6)
  module = conv.Conv(9, (3, 2), strides=(2, 1), padding=(1, 2), dilation=(2, 1), groups=3)
  params = init(module, x)["params"]
  y = apply(module, {"params": params}, x)
  ref = torch.nn.Conv2d(6, 9, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=3)
  with torch.no_grad():
    ref.weight.copy_(torch_conv_weight(torch, params["kernel"]))
    ref.bias.copy_(torch.tensor(np.asarray(params["bias"])))
    expected = from_torch(ref(to_torch(torch, x)))
  assert y.shape == expected.shape == (2, 5, 13, 9)
  np.testing.assert_allclose(y, expected, **TOL)


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize(
  "nd,kernel,stride,padding,dilation,torch_padding",
  [
    (1, 3, 2, 1, 2, 1),
    (1, 4, 1, "SAME", 1, "same"),
    (3, (3, 3, 2), 1, "same", 1, "same"),
    (3, (2, 3, 3), (2, 1, 2), (0, 1, 1), (1, 2, 1), (0, 1, 1)),
  ],
)
def test_conv1d_conv3d_match_torch(nd, kernel, stride, padding, dilation, torch_padding):
  torch = import_torch()
  x = randn(*((2,) + (7, 6, 5)[:nd] + (3,)))
  module = conv.Conv(4, kernel, stride, padding, dilation)
  params = init(module, x)["params"]
  y = apply(module, {"params": params}, x)
  cls = {1: torch.nn.Conv1d, 3: torch.nn.Conv3d}[nd]
  ref = cls(3, 4, kernel, stride, torch_padding, dilation)
  with torch.no_grad():
    ref.weight.copy_(torch_conv_weight(torch, params["kernel"]))
    ref.bias.copy_(torch.tensor(np.asarray(params["bias"])))
    expected = from_torch(ref(to_torch(torch, x)))
  assert y.shape == expected.shape
  np.testing.assert_allclose(y, expected, **TOL)


@pytest.mark.torch
@pytest.mark.parametrize("train", [False, True])
def test_depthwise_separable_conv_matches_torch(train):
  torch = import_torch()
  x = randn(2, 9, 8, 4)
  module = conv.DepthwiseSeparableConv(6, kernel_size=3, strides=2)
  variables = init(module, x)  # Random BN scale / shift / running stats.
  y, _ = apply(module, variables, x, train, mutable=["batch_stats"])
  p, s = variables["params"], variables["batch_stats"]
  layers = []
  for name, conv_layer in [
    ("depthwise", torch.nn.Conv2d(4, 4, 3, 2, 1, groups=4, bias=False)),
    ("pointwise", torch.nn.Conv2d(4, 6, 1, bias=False)),
  ]:
    bn = torch.nn.BatchNorm2d(conv_layer.out_channels, eps=1e-5)
    with torch.no_grad():
      conv_layer.weight.copy_(torch_conv_weight(torch, p[name]["kernel"]))
      bn.weight.copy_(torch.tensor(np.asarray(p[name + "_bn"]["scale"])))
      bn.bias.copy_(torch.tensor(np.asarray(p[name + "_bn"]["bias"])))
      bn.running_mean.copy_(torch.tensor(np.asarray(s[name + "_bn"]["mean"])))
      bn.running_var.copy_(torch.tensor(np.asarray(s[name + "_bn"]["var"])))
    layers += [conv_layer, bn, torch.nn.ReLU()]
  ref = torch.nn.Sequential(*layers).train(train)
  expected = from_torch(ref(to_torch(torch, x)))
  assert y.shape == expected.shape == (2, 5, 4, 6)
  np.testing.assert_allclose(y, expected, **TOL)


@pytest.mark.parametrize("kernel,use_bn", [(3, True), (5, True), (3, False)])
def test_depthwise_separable_parameter_count(kernel, use_bn):
  c_in, c_out = 4, 7
  x = jnp.ones((1, 8, 8, c_in))
  module = conv.DepthwiseSeparableConv(c_out, kernel, use_bn=use_bn)
  params = shapes(module, x)["params"]
  weights = kernel * kernel * c_in + c_in * c_out  # Depthwise + pointwise.
  extra = 2 * (c_in + c_out) if use_bn else c_in + c_out  # BN or biases.
  assert count(params) == weights + extra
  assert count(params["depthwise"]["kernel"]) == kernel * kernel * c_in
  assert count(params["pointwise"]["kernel"]) == c_in * c_out


def test_depthwise_separable_accepts_activation_name_and_1d():
  x = randn(2, 10, 3)
  module = conv.DepthwiseSeparableConv(5, strides=2, use_bn=False, activation="tanh")
  y = apply(module, init(module, x), x)
  assert y.shape == (2, 5, 5)
  assert np.all(np.abs(y) < 1)


def test_pointwise_conv_is_a_dense_layer_per_position():
  x = randn(2, 4, 5, 3)
  module = conv.PointwiseConv(6)
  params = init(module, x)["params"]
  assert params["kernel"].shape == (1, 1, 3, 6)
  expected = x @ np.asarray(params["kernel"][0, 0]) + np.asarray(params["bias"])
  np.testing.assert_allclose(apply(module, {"params": params}, x), expected, **TOL)


@pytest.mark.torch
@pytest.mark.parametrize(
  "kernel,stride,padding,output_padding,dilation",
  [
    (3, 2, 1, 1, 1),
    (4, 2, 1, 0, 1),
    (3, 2, 0, 0, 2),
    (3, 3, 2, 2, 1),
    (1, 2, 0, 0, 1),
    ((3, 2), (2, 1), (2, 0), (1, 0), 1),
  ],
)
def test_conv_transpose2d_matches_torch(kernel, stride, padding, output_padding, dilation):
  torch = import_torch()
  x = randn(2, 5, 6, 3)
  module = conv.ConvTranspose(4, kernel, stride, padding, output_padding, dilation, ndim=2)
  params = init(module, x)["params"]
  y = apply(module, {"params": params}, x)
  ref = torch.nn.ConvTranspose2d(3, 4, kernel, stride, padding, output_padding, dilation=dilation)
  with torch.no_grad():
    # Flax (k..., out, in) with transpose_kernel -> PyTorch (in, out, k...).
    ref.weight.copy_(torch_conv_weight(torch, params["kernel"]))
    ref.bias.copy_(torch.tensor(np.asarray(params["bias"])))
    expected = from_torch(ref(to_torch(torch, x)))
  assert y.shape == expected.shape
  assert y.shape[1:3] == conv.conv_transpose_output_size(
    (5, 6), kernel, stride, padding, output_padding, dilation
  )
  np.testing.assert_allclose(y, expected, **TOL)


def test_conv_transpose_is_the_adjoint_of_conv():
  # <conv(x), y> == <x, conv_transpose(y)> for the same kernel: the defining
  # property of a transposed convolution (docs/curriculum.md#e2: convolution "in reverse").
  x, y = randn(1, 8, 3, seed=4), randn(1, 4, 2, seed=5)
  down = conv.Conv(2, 3, strides=2, padding=1, use_bias=False)
  kernel = init(down, x)["params"]["kernel"]  # (3, C_in=3, C_out=2).
  up = conv.ConvTranspose(3, 3, strides=2, padding=1, output_padding=1, use_bias=False)
  lhs = jnp.vdot(apply(down, {"params": {"kernel": kernel}}, x), y)
  rhs = jnp.vdot(x, apply(up, {"params": {"kernel": kernel}}, y))
  np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


# ------------------------------------------------------------------- pooling


@pytest.mark.torch
@pytest.mark.parametrize(
  "window,stride,padding", [(2, None, 0), (3, 2, 0), (3, 2, 1), ((3, 2), (2, 1), (1, 0))]
)
def test_max_pool2d_matches_torch(window, stride, padding):
  torch = import_torch()
  x = randn(2, 9, 8, 3)
  y = pooling.max_pool(x, window, stride, padding)
  expected = from_torch(torch.nn.functional.max_pool2d(to_torch(torch, x), window, stride, padding))
  np.testing.assert_allclose(y, expected, **TOL)


@pytest.mark.torch
def test_overlapping_max_pool_matches_alexnet_and_torch():
  torch = import_torch()
  x = randn(1, 13, 13, 4)
  y = pooling.overlapping_max_pool(x)
  assert y.shape == (1, 6, 6, 4)  # AlexNet pool5: 13 -> 6.
  expected = from_torch(torch.nn.MaxPool2d(3, 2)(to_torch(torch, x)))
  np.testing.assert_allclose(y, expected, **TOL)


@pytest.mark.torch
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(
  "window,stride,padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 1))]
)
def test_avg_pool2d_matches_torch(window, stride, padding, count_include_pad):
  torch = import_torch()
  x = randn(2, 7, 8, 3)
  y = pooling.avg_pool(x, window, stride, padding, count_include_pad)
  expected = from_torch(
    torch.nn.functional.avg_pool2d(
      to_torch(torch, x), window, stride, padding, count_include_pad=count_include_pad
    )
  )
  np.testing.assert_allclose(y, expected, **TOL)


@pytest.mark.torch
def test_pool1d_pool3d_match_torch():
  torch = import_torch()
  f = torch.nn.functional
  x1, x3 = randn(2, 9, 3), randn(2, 5, 6, 7, 2)
  np.testing.assert_allclose(
    pooling.max_pool(x1, 3, 2, 1), from_torch(f.max_pool1d(to_torch(torch, x1), 3, 2, 1)), **TOL
  )
  np.testing.assert_allclose(
    pooling.avg_pool(x1, 2), from_torch(f.avg_pool1d(to_torch(torch, x1), 2)), **TOL
  )
  np.testing.assert_allclose(
    pooling.max_pool(x3, 2), from_torch(f.max_pool3d(to_torch(torch, x3), 2)), **TOL
  )
  np.testing.assert_allclose(
    pooling.avg_pool(x3, (3, 2, 3), (1, 2, 2), 1, False),
    from_torch(f.avg_pool3d(to_torch(torch, x3), (3, 2, 3), (1, 2, 2), 1, count_include_pad=False)),
    **TOL,
  )


def test_avg_pool_count_include_pad_by_hand():
  x = jnp.ones((1, 2, 1))  # [1, 1] padded to [0, 1, 1, 0], window 2 stride 2.
  np.testing.assert_allclose(pooling.avg_pool(x, 2, 2, 1)[0, :, 0], [0.5, 0.5])
  np.testing.assert_allclose(pooling.avg_pool(x, 2, 2, 1, False)[0, :, 0], [1.0, 1.0])


@pytest.mark.torch
def test_global_pools_match_torch_and_keep_batch_and_channels():
  torch = import_torch()
  x = randn(2, 5, 6, 3)
  xt = to_torch(torch, x)
  avg, mx = pooling.global_avg_pool(x), pooling.global_max_pool(x)
  assert avg.shape == mx.shape == (2, 3)
  np.testing.assert_allclose(avg, torch.nn.AdaptiveAvgPool2d(1)(xt)[:, :, 0, 0].numpy(), **TOL)
  np.testing.assert_allclose(mx, torch.nn.AdaptiveMaxPool2d(1)(xt)[:, :, 0, 0].numpy(), **TOL)


def test_global_pools_1d_3d_and_keepdims():
  x1, x3 = randn(2, 7, 3), randn(2, 3, 4, 5, 6)
  np.testing.assert_allclose(pooling.global_avg_pool(x1), x1.mean(1), **TOL)
  np.testing.assert_allclose(pooling.global_max_pool(x3), x3.max((1, 2, 3)))
  assert pooling.global_avg_pool(x3, keepdims=True).shape == (2, 1, 1, 1, 6)
  with pytest.raises(ValueError, match="spatial"):
    pooling.global_avg_pool(jnp.ones((2, 3)))


def test_pool_output_size_matches_conv_output_size():
  x = jnp.ones((1, 11, 10, 2))
  y = pooling.max_pool(x, (3, 2), (2, 3), ((1, 0), 1))
  assert y.shape[1:3] == conv.conv_output_size((11, 10), (3, 2), (2, 3), ((1, 0), 1))
  with pytest.raises(ValueError, match="2D window"):
    pooling.max_pool(jnp.ones((1, 4, 3)), (2, 2))


# ------------------------------------------------------------ normalization


def test_local_response_norm_hand_computed():
  # One position with channels a = [1, 2, 3], n = 3, alpha = 0.1, beta = 0.5,
  # k = 1: b_i = a_i / (1 + 0.1 * sum of squares of neighbours) ** 0.5.
  x = jnp.array([[[[1.0, 2.0, 3.0]]]])
  y = normalization.local_response_norm(x, size=3, alpha=0.1, beta=0.5, k=1.0)
  expected = [1 / np.sqrt(1 + 0.1 * 5), 2 / np.sqrt(1 + 0.1 * 14), 3 / np.sqrt(1 + 0.1 * 13)]
  np.testing.assert_allclose(y[0, 0, 0], expected, rtol=1e-6)


def test_local_response_norm_module_has_no_parameters():
  x = randn(2, 3, 3, 8)
  module = normalization.LocalResponseNorm()
  assert module.init(jax.random.key(0), x) == {}
  np.testing.assert_allclose(module.apply({}, x), normalization.local_response_norm(x), **TOL)


@pytest.mark.torch
@pytest.mark.parametrize("size", [1, 2, 4, 5])
def test_local_response_norm_matches_torch_with_alpha_times_size(size):
  torch = import_torch()
  x = 3 * randn(2, 4, 3, 7)
  alpha, beta, k = 1e-2, 0.75, 2.0
  y = normalization.local_response_norm(x, size, alpha, beta, k)
  ref = torch.nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)
  np.testing.assert_allclose(y, from_torch(ref(to_torch(torch, x))), **TOL)


# ---------------------------------------------------------------- activations


def test_activations_match_closed_forms():
  x = jnp.linspace(-5.0, 5.0, 41)
  xn = np.asarray(x, np.float64)
  np.testing.assert_allclose(activations.relu(x), np.maximum(xn, 0))
  np.testing.assert_allclose(activations.leaky_relu(x), np.where(xn >= 0, xn, 0.01 * xn), rtol=1e-6)
  np.testing.assert_allclose(
    activations.leaky_relu(x, negative_slope=0.2), np.where(xn >= 0, xn, 0.2 * xn), rtol=1e-6
  )
  np.testing.assert_allclose(activations.sigmoid(x), 1 / (1 + np.exp(-xn)), rtol=1e-6)
  np.testing.assert_allclose(activations.tanh(x), np.tanh(xn), rtol=1e-6, atol=1e-7)
  hard = np.clip(xn / 6 + 0.5, 0, 1)  # relu6(x + 3) / 6.
  np.testing.assert_allclose(activations.hard_sigmoid(x), hard, atol=1e-7)
  two_relus = (np.maximum(xn + 3, 0) - np.maximum(xn - 3, 0)) / 6
  np.testing.assert_allclose(activations.hard_sigmoid(x), two_relus, atol=1e-7)


@pytest.mark.torch
def test_hard_sigmoid_matches_torch():
  torch = import_torch()
  x = np.linspace(-5, 5, 41).astype(np.float32)
  np.testing.assert_allclose(
    activations.hard_sigmoid(x),
    torch.nn.functional.hardsigmoid(torch.from_numpy(x)).numpy(),
    atol=1e-7,
  )


def test_leaky_relu_gradient_at_negative_inputs():
  grad = jax.vmap(jax.grad(lambda v: activations.leaky_relu(v, 0.1)))
  np.testing.assert_allclose(grad(jnp.array([-3.0, -0.5, 2.0])), [0.1, 0.1, 1.0], rtol=1e-6)
  relu_grad = jax.vmap(jax.grad(activations.relu))(jnp.array([-1.0, 1.0]))
  np.testing.assert_allclose(relu_grad, [0.0, 1.0])


def test_softmax_sums_to_one_and_is_stable_for_large_logits():
  x = jnp.asarray(randn(4, 10) * 5)
  p = activations.softmax(x)
  np.testing.assert_allclose(p.sum(-1), np.ones(4), rtol=1e-6)
  large = activations.softmax(jnp.array([1000.0, 1001.0, 1002.0]))
  assert np.all(np.isfinite(large))
  np.testing.assert_allclose(large, activations.softmax(jnp.array([0.0, 1.0, 2.0])), rtol=1e-6)
  np.testing.assert_allclose(activations.softmax(x, axis=0).sum(0), np.ones(10), rtol=1e-6)


def test_get_activation_by_name():
  for name in ["relu", "leaky_relu", "sigmoid", "hard_sigmoid", "tanh", "softmax"]:
    assert activations.get(name) is getattr(activations, name)
  with pytest.raises(ValueError, match="valid names: hard_sigmoid, leaky_relu"):
    activations.get("gelu")


@pytest.mark.parametrize(
  "strides, dilation, kernel", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 2, 5), (3, 1, 3)]
)
def test_depthwise_conv2d_equals_grouped_convolution(strides, dilation, kernel):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 9, 11, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, 1, 6)), jnp.float32)
  pad = dilation * (kernel - 1) // 2
  want = jax.lax.conv_general_dilated(
    x,
    w,
    (strides, strides),
    ((pad, pad), (pad, pad)),
    rhs_dilation=(dilation, dilation),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count=6,
  )
  got = conv.depthwise_conv2d(x, w, strides, dilation)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  grad = lambda f: jax.grad(lambda w: jnp.sum(f(w) ** 2))(w)
  np.testing.assert_allclose(
    grad(lambda w: conv.depthwise_conv2d(x, w, strides, dilation)),
    grad(
      lambda w: jax.lax.conv_general_dilated(
        x,
        w,
        (strides, strides),
        ((pad, pad), (pad, pad)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=6,
      )
    ),
    rtol=1e-4,
    atol=1e-4,
  )


def test_depthwise_conv2d_rejects_a_mismatched_kernel():
  with pytest.raises(ValueError, match="expected"):
    conv.depthwise_conv2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 1, 4)))


class _Stem(nn.Module):
  kind: str
  stride: int = 1
  normalize: bool = True

  @nn.compact
  def __call__(self, x, train=False):
    return blocks.image_stem(x, train, 4, self.kind, self.stride, self.normalize)


@pytest.mark.parametrize(
  "kind, stride, normalize, shape, names",
  [
    ("imagenet", 1, True, (1, 8, 8, 4), {"stem_conv", "stem_bn"}),
    ("cifar", 1, True, (1, 32, 32, 4), {"stem_conv", "stem_bn"}),
    ("cifar", 2, False, (1, 16, 16, 4), {"stem_conv"}),
  ],
)
def test_image_stem_shapes_and_layer_names(kind, stride, normalize, shape, names):
  x = jnp.ones((1, 32, 32, 3))
  stem = _Stem(kind, stride, normalize)
  variables = stem.init(jax.random.key(0), x)
  assert set(variables["params"]) == names
  assert stem.apply(variables, x).shape == shape
  if normalize:  # ReLU after BN: nothing negative comes out
    assert float(stem.apply(variables, -x).min()) >= 0.0


def test_image_stem_rejects_an_unknown_kind():
  with pytest.raises(ValueError, match="'imagenet' or 'cifar'"):
    _Stem("mnist").init(jax.random.key(0), jnp.ones((1, 8, 8, 1)))
