"""Tests for the classic vision blocks and model families (docs/curriculum.md#e8, #f3 to #f8).

ImageNet-size parameter counts use jax.eval_shape (shapes only, nothing is
computed); forward passes use the tiny variants on 28x28x1 / 32x32x1.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from dlx.models import alexnet
from dlx.models import densenet
from dlx.models import googlenet
from dlx.models import mobilenet
from dlx.models import resnet
from dlx.models import vgg
from dlx.nn import blocks

RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def abstract_variables(model, shape):
  """Variable shapes of model.init on zeros of `shape`, without computing anything."""
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  return jax.eval_shape(functools.partial(model.init, train=False), RNGS, x)


def num_params(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def intermediate_shape(model, shape, path):
  """Output shape of the submodule at `path` (names), via eval_shape."""
  variables = abstract_variables(model, shape)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  _, state = jax.eval_shape(
    lambda v, x: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]),
    variables,
    x,
  )
  node = state["intermediates"]
  for name in path:
    node = node[name]
  return node["__call__"][0].shape


# Exact torchvision counts at 224x224x3 and 1000 classes (AlexNet: the paper's
# one-stream widths).
IMAGENET_COUNTS = [
  ("alexnet", alexnet.alexnet, 62_378_344),
  ("vgg11", vgg.vgg11, 132_863_336),
  ("vgg13", vgg.vgg13, 133_047_848),
  ("vgg16", vgg.vgg16, 138_357_544),
  ("vgg19", vgg.vgg19, 143_667_240),
  ("googlenet", functools.partial(googlenet.googlenet, aux_logits=False), 6_624_904),
  ("googlenet_aux", googlenet.googlenet, 13_004_888),
  ("resnet18", resnet.resnet18, 11_689_512),
  ("resnet34", resnet.resnet34, 21_797_672),
  ("resnet50", resnet.resnet50, 25_557_032),
  ("densenet121", densenet.densenet121, 7_978_856),
  ("mobilenet_v1", mobilenet.mobilenet_v1, 4_231_976),
]


@pytest.mark.parametrize(
  "name,constructor,expected", IMAGENET_COUNTS, ids=[c[0] for c in IMAGENET_COUNTS]
)
def test_imagenet_parameter_counts(name, constructor, expected):
  del name
  variables = abstract_variables(constructor(num_classes=1000), (1, 224, 224, 3))
  assert num_params(variables["params"]) == expected


def test_mobilenet_matches_paper_rounding():
  count = num_params(abstract_variables(mobilenet.mobilenet_v1(), (1, 224, 224, 3))["params"])
  assert abs(count - 4.2e6) <= 0.05e6


def test_densenet_cifar_parameter_count():
  model = densenet.densenet_cifar(num_classes=10)  # DenseNet-BC, L=100, k=12.
  assert num_params(abstract_variables(model, (1, 32, 32, 3))["params"]) == 769_162


def test_alexnet_final_map_is_6x6x256_at_224():
  # conv5 keeps 13x13; the last 3x3/2 pool then gives 6x6 (adaptive pool is a no-op).
  assert intermediate_shape(alexnet.alexnet(), (1, 224, 224, 3), ["conv5"]) == (1, 13, 13, 256)


def test_mobilenet_dilation_keeps_resolution_and_parameters():
  plain, dilated = mobilenet.mobilenet_v1(), mobilenet.mobilenet_v1(dilation=2)
  shape = (1, 224, 224, 3)
  assert intermediate_shape(plain, shape, ["block13"]) == (1, 7, 7, 1024)
  assert intermediate_shape(dilated, shape, ["block13"]) == (1, 14, 14, 1024)
  assert num_params(abstract_variables(plain, shape)["params"]) == num_params(
    abstract_variables(dilated, shape)["params"]
  )


def test_mobilenet_pointwise_groups_cut_parameters():
  plain = abstract_variables(mobilenet.mobilenet_v1(), (1, 224, 224, 3))["params"]
  grouped = abstract_variables(mobilenet.mobilenet_v1(pointwise_groups=2), (1, 224, 224, 3))[
    "params"
  ]
  kernel = grouped["block13"]["pointwise"]["Conv_0"]["kernel"]
  assert kernel.shape == (1, 1, 512, 1024)  # 1024 inputs in 2 groups of 512.
  assert num_params(grouped) == 2_662_184 < num_params(plain)


TINY = [
  ("alexnet", alexnet.alexnet_tiny),
  ("vgg", vgg.vgg_tiny),
  ("googlenet", googlenet.googlenet_tiny),
  ("resnet", resnet.resnet_tiny),
  ("densenet", densenet.densenet_tiny),
  ("mobilenet", mobilenet.mobilenet_tiny),
  (
    "mobilenet_groups_dilation",
    functools.partial(mobilenet.mobilenet_tiny, pointwise_groups=2, dilation=2),
  ),
]


def cheap_variables(model, shape, seed=0):
  """Random variables with init's structure, drawn with numpy.

  Compiling model.init's random initializers takes far longer on CPU than the
  forward pass itself, so tests that only need some weights use these.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name in ("scale", "var"):
      return jnp.ones(leaf.shape)
    if name in ("bias", "mean"):
      return jnp.zeros(leaf.shape)
    fan_in = math.prod(leaf.shape[:-1])
    return jnp.asarray(rng.normal(size=leaf.shape) / math.sqrt(fan_in), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, abstract_variables(model, shape))


def output_shapes(model, shape):
  """Shapes of the eval and train outputs (train: with updated batch_stats)."""
  variables = abstract_variables(model, shape)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  eval_out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  train_out, _ = jax.eval_shape(
    lambda v, x: model.apply(
      v, x, train=True, rngs={"dropout": jax.random.key(3)}, mutable=["batch_stats"]
    ),
    variables,
    x,
  )
  return eval_out, train_out


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("name,constructor", TINY, ids=[t[0] for t in TINY])
def test_tiny_output_shapes(name, constructor, size):
  eval_out, train_out = output_shapes(constructor(num_classes=10), (2, size, size, 1))
  assert eval_out.shape == (2, 10)
  if name == "googlenet":
    assert isinstance(train_out, googlenet.GoogLeNetOutputs)
    assert [o.shape for o in train_out] == [(2, 10)] * 3
  else:
    assert train_out.shape == (2, 10)


@pytest.mark.parametrize("name,constructor", TINY[:-1], ids=[t[0] for t in TINY[:-1]])
def test_tiny_forward_is_finite(name, constructor):
  del name
  model = constructor(num_classes=10)
  x = jax.random.normal(jax.random.key(2), (2, 32, 32, 1))
  logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(cheap_variables(model, x.shape), x)
  assert logits.shape == (2, 10) and np.all(np.isfinite(logits))


def test_googlenet_aux_outputs_only_in_training():
  model = googlenet.googlenet_tiny(num_classes=10)
  shape = (2, 32, 32, 1)
  params = abstract_variables(model, shape)["params"]
  assert "aux1" in params and "aux2" in params  # Created by an eval-mode init too.
  # (test_tiny_output_shapes checks eval -> logits, train -> GoogLeNetOutputs.)
  no_aux = googlenet.googlenet_tiny(num_classes=10, aux_logits=False)
  assert "aux1" not in abstract_variables(no_aux, shape)["params"]
  _, train_out = output_shapes(no_aux, shape)
  assert train_out.shape == (2, 10)


def test_batch_norm_stats_update_only_in_training():
  model = resnet.resnet_tiny(num_classes=10)
  x = 3.0 + jax.random.normal(jax.random.key(2), (2, 32, 32, 1))
  variables = cheap_variables(model, x.shape)

  @functools.partial(jax.jit, static_argnums=2)
  def new_stats(variables, x, train):
    return model.apply(variables, x, train=train, mutable=["batch_stats"])[1]

  before = jax.tree_util.tree_leaves(variables["batch_stats"])
  after_train = jax.tree_util.tree_leaves(new_stats(variables, x, True))
  after_eval = jax.tree_util.tree_leaves(new_stats(variables, x, False))
  assert all(not np.allclose(a, b) for a, b in zip(before, after_train))
  for a, b in zip(before, after_eval):
    np.testing.assert_array_equal(a, b)


def test_dropout_only_in_training():
  model = alexnet.alexnet_tiny(num_classes=10)
  x = jax.random.normal(jax.random.key(2), (2, 32, 32, 1))
  variables = cheap_variables(model, x.shape)

  @functools.partial(jax.jit, static_argnums=1)
  def run(key, train):
    return model.apply(variables, x, train=train, rngs={"dropout": key})

  keys = jax.random.split(jax.random.key(0))
  np.testing.assert_array_equal(run(keys[0], False), run(keys[1], False))
  assert not np.allclose(run(keys[0], True), run(keys[1], True))


def test_too_small_inputs_raise_clear_errors():
  shape = (1, 28, 28, 1)
  with pytest.raises(ValueError, match="small_input"):
    abstract_variables(alexnet.AlexNet(10, width_multiplier=1 / 16), shape)
  with pytest.raises(ValueError, match="small_input"):
    abstract_variables(vgg.vgg11(10, width_multiplier=1 / 16), shape)
  with pytest.raises(ValueError, match="NHWC"):
    abstract_variables(resnet.resnet_tiny(), (28, 28, 1))


def block_shapes(block, shape):
  """(params shapes, output shape) of a block in eval mode, computing nothing."""
  variables = abstract_variables(block, shape)
  out = jax.eval_shape(
    lambda v, x: block.apply(v, x), variables, jax.ShapeDtypeStruct(shape, jnp.float32)
  )
  return variables["params"], out.shape


def test_residual_blocks_shapes_and_projection():
  params, out = block_shapes(blocks.ResidualBlock(4), (1, 8, 8, 4))
  assert "projection" not in params and out == (1, 8, 8, 4)
  params, out = block_shapes(blocks.ResidualBlock(8, strides=2), (1, 8, 8, 4))
  assert params["projection"]["kernel"].shape == (1, 1, 4, 8) and out == (1, 4, 4, 8)
  params, out = block_shapes(blocks.BottleneckBlock(4, strides=2), (1, 8, 8, 4))
  assert params["Conv_1"]["kernel"].shape == (3, 3, 4, 4)  # The 3x3 carries the stride.
  assert params["projection"]["kernel"].shape == (1, 1, 4, 16) and out == (1, 4, 4, 16)


def test_inception_dense_and_transition_blocks():
  shape = (1, 8, 8, 6)
  params, out = block_shapes(blocks.InceptionBlock(2, 3, 4, 1, 2, 3), shape)
  assert out == (1, 8, 8, 2 + 4 + 2 + 3)
  assert params["branch5x5"]["Conv_0"]["kernel"].shape == (5, 5, 1, 2)
  params, out = block_shapes(blocks.DenseBlock(num_layers=3, growth_rate=4), shape)
  assert out == (1, 8, 8, 6 + 3 * 4)
  assert params["layer1"]["Conv_0"]["kernel"].shape == (1, 1, 6, 16)  # bn_size * k.
  assert params["layer3"]["Conv_0"]["kernel"].shape == (1, 1, 14, 16)  # Sees 6 + 2k maps.
  _, out = block_shapes(blocks.TransitionBlock(3), shape)
  assert out == (1, 4, 4, 3)


@pytest.mark.parametrize("in_size,out_size", [(7, 7), (14, 4), (13, 6), (3, 6), (2, 4)])
def test_adaptive_avg_pool_matches_torch(in_size, out_size):
  x = np.random.default_rng(0).normal(size=(2, in_size, in_size + 1, 3)).astype(np.float32)
  ours = blocks.adaptive_avg_pool(jnp.asarray(x), (out_size, out_size))
  theirs = torch.nn.functional.adaptive_avg_pool2d(
    torch.from_numpy(x).permute(0, 3, 1, 2), (out_size, out_size)
  ).permute(0, 2, 3, 1)
  np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size,window", [(112, 3), (56, 3), (7, 3), (14, 2), (3, 3)])
def test_ceil_mode_max_pool_matches_torch(size, window):
  x = np.random.default_rng(0).normal(size=(1, size, size, 2)).astype(np.float32)
  ours = googlenet.max_pool_ceil(jnp.asarray(x), window, 2)
  theirs = torch.nn.functional.max_pool2d(
    torch.from_numpy(x).permute(0, 3, 1, 2), window, 2, ceil_mode=True
  ).permute(0, 2, 3, 1)
  np.testing.assert_array_equal(ours, theirs.numpy())


def test_channel_shuffle_interleaves_groups():
  x = jnp.arange(6.0).reshape(1, 1, 1, 6)
  np.testing.assert_array_equal(mobilenet.channel_shuffle(x, 2)[0, 0, 0], [0, 3, 1, 4, 2, 5])
