"""Parameter and FLOP counts (dlx/tools/model_stats.py) against hand-computed values."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.tools import model_stats


def _spec(*shape):
  return jax.ShapeDtypeStruct(shape, jnp.float32)


def _only_row(model, x, **kwargs):
  rows = model_stats.layer_table(model, x, **kwargs)
  assert len(rows) == 1
  return rows[0]


@pytest.mark.parametrize(
  "size,kernel,stride,dilation,groups,padding",
  [
    (12, 3, 1, 1, 1, "SAME"),
    (12, 5, 1, 1, 1, "VALID"),
    (13, 3, 2, 1, 1, "SAME"),
    (16, 3, 1, 2, 1, "VALID"),
    (10, 3, 2, 1, 4, ((2, 2), (1, 1))),
  ],
)
def test_conv_flops_match_the_formula(size, kernel, stride, dilation, groups, padding):
  c_in, c_out = 8, 12
  conv = nn.Conv(
    c_out,
    (kernel, kernel),
    strides=stride,
    kernel_dilation=dilation,
    feature_group_count=groups,
    padding=padding,
  )
  row = _only_row(conv, _spec(1, size, size, c_in))
  h_out, w_out = row["output_shape"][1:3]
  # Output size from the usual arithmetic, to check the shape used is real.
  if padding == "SAME":
    assert h_out == -(-size // stride)
  else:
    pad = (0, 0) if padding == "VALID" else padding[0]
    span = dilation * (kernel - 1) + 1
    assert h_out == (size + sum(pad) - span) // stride + 1
  assert row["flops"] == 2 * h_out * w_out * c_out * (kernel * kernel * c_in // groups)
  assert row["params"] == kernel * kernel * (c_in // groups) * c_out + c_out
  assert row["type"] == "Conv"


def test_batch_multiplies_flops():
  conv = nn.Conv(4, (3, 3))
  one = _only_row(conv, _spec(1, 8, 8, 2))["flops"]
  assert _only_row(conv, _spec(5, 8, 8, 2))["flops"] == 5 * one


def test_dense_flops_and_params():
  row = _only_row(nn.Dense(7), _spec(1, 30))
  assert row["flops"] == 2 * 30 * 7
  assert row["params"] == 30 * 7 + 7
  assert row["output_shape"] == (1, 7)


def test_conv_transpose_counts_scattered_inputs():
  row = _only_row(nn.ConvTranspose(6, (4, 4), strides=(2, 2)), _spec(1, 5, 5, 3))
  assert row["output_shape"] == (1, 10, 10, 6)
  assert row["flops"] == 2 * 5 * 5 * (4 * 4 * 3 * 6)
  assert row["params"] == 4 * 4 * 3 * 6 + 6


class _Block(nn.Module):
  features: int

  def setup(self):
    self.conv = nn.Conv(self.features, (3, 3), use_bias=False)
    self.norm = nn.BatchNorm()

  def __call__(self, x, train):
    return nn.relu(self.norm(self.conv(x), use_running_average=not train))


class _Net(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = _Block(4, name="block1")(x, train)
    x = _Block(8, name="block2")(x, train)
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.Dropout(0.5, deterministic=not train)(x)
    x = x.reshape((x.shape[0], -1))
    scale = self.param("scale", nn.initializers.ones, (1,))
    return nn.Dense(3, name="head")(x) * scale


def test_nested_model_rows_and_totals():
  x = jnp.zeros((2, 6, 6, 1))
  rows = model_stats.layer_table(_Net(), x, train=True)
  by_path = {row["path"]: row for row in rows}
  assert list(by_path) == [
    "(root)",
    "block1/conv",
    "block1/norm",
    "block2/conv",
    "block2/norm",
    "Dropout_0",
    "head",
  ]
  assert by_path["(root)"]["params"] == 1  # Its own 'scale' only.
  assert by_path["block1/conv"]["flops"] == 2 * 2 * 6 * 6 * 4 * (9 * 1)
  assert by_path["block2/conv"]["flops"] == 2 * 2 * 6 * 6 * 8 * (9 * 4)
  assert by_path["block2/norm"]["params"] == 2 * 8
  assert by_path["block2/norm"]["flops"] == 0
  assert by_path["head"]["flops"] == 2 * 2 * (3 * 3 * 8) * 3
  assert by_path["head"]["output_shape"] == (2, 3)
  variables = _Net().init(
    {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, train=True
  )
  expected = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
  assert model_stats.count_params(variables) == expected
  assert model_stats.count_params(variables["params"]) == expected
  assert sum(row["params"] for row in rows) == expected
  assert model_stats.count_flops(_Net(), x) == sum(row["flops"] for row in rows)


def test_shared_module_is_one_row_with_summed_flops():

  class Twice(nn.Module):
    @nn.compact
    def __call__(self, x):
      dense = nn.Dense(5, name="shared")
      return dense(dense(x))

  rows = model_stats.layer_table(Twice(), _spec(1, 5))
  assert len(rows) == 1
  assert rows[0]["calls"] == 2
  assert rows[0]["flops"] == 2 * (2 * 5 * 5)
  assert rows[0]["params"] == 30


def test_attention_products_are_counted():
  attention = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)
  rows = model_stats.layer_table(attention, _spec(3, 5, 6), _spec(3, 7, 6))
  root = rows[0]
  assert root["path"] == "(root)"
  assert root["flops"] == 2 * 2 * 3 * 5 * 7 * 8  # Q K^T and A V.
  projections = {row["path"]: row["flops"] for row in rows[1:]}
  assert projections["query"] == 2 * 3 * 5 * 6 * 8
  assert projections["key"] == 2 * 3 * 7 * 6 * 8
  assert projections["out"] == 2 * 3 * 5 * 8 * 6


def test_lenet_total_matches_the_course():
  from dlx.models import lenet  # pylint: disable=g-import-not-at-top

  rows = model_stats.layer_table(lenet.LeNet5(), _spec(1, 32, 32, 1))
  assert sum(row["params"] for row in rows) == 61_706
  assert rows[0]["flops"] == 2 * 28 * 28 * 6 * 25


def test_format_table_has_aligned_total():
  rows = model_stats.layer_table(_Net(), _spec(1, 6, 6, 1))
  text = model_stats.format_table(rows)
  lines = text.splitlines()
  assert lines[0].split()[:2] == ["layer", "type"]
  total = sum(row["params"] for row in rows)
  assert lines[-1].startswith("total")
  assert f"{total:,}" in lines[-1]
  assert len({len(line) for line in lines if line.startswith("-")}) == 1
  assert "block1/conv" in text


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_reduction_example_numbers(kernel_size):
  result = model_stats.reduction_saving_example(kernel_size=kernel_size)
  # The course (docs/curriculum.md#g4): 64x64x64 = 262144 and 16x64x64 = 65536, a quarter.
  assert result["input_values"] == 262_144
  assert result["reduced_values"] == 65_536
  k2 = kernel_size * kernel_size
  direct_macs = 64 * 64 * 64 * k2 * 64
  reduced_macs = 64 * 64 * 16 * 64 + 64 * 64 * 64 * k2 * 16
  assert result["direct_flops"] == 2 * direct_macs
  assert result["reduced_flops"] == 2 * reduced_macs
  assert result["flops_ratio"] == pytest.approx(direct_macs / reduced_macs)
  assert 3.5 < result["flops_ratio"] < 4.0
  assert result["direct_params"] == k2 * 64 * 64 + 64
  assert result["reduced_params"] == 64 * 16 + 16 + k2 * 16 * 64 + 64
  assert "saving" in model_stats.format_reduction_example(result)


def test_eval_shape_computes_nothing_big():
  # A 4k x 4k dense layer on ShapeDtypeStruct inputs: no memory, just shapes.
  row = _only_row(nn.Dense(4096), _spec(8, 4096))
  assert row["flops"] == 2 * 8 * 4096 * 4096
  assert isinstance(row["flops"], int) and isinstance(row["params"], int)
  assert np.isclose(row["params"], 4096 * 4097)


def test_experiment_table_and_cli(capsys):
  table = model_stats.experiment_table("alexnet_fashion_mnist")
  assert "conv1" in table and "LocalResponseNorm" in table
  assert "696,145" in table  # the default AlexNet's parameters, on the total row
  model_stats.main(["resnet_fashion_mnist:full", "--input_shape=1,28,28,1"])
  assert "11,689,512" not in capsys.readouterr().out  # 10 classes, not 1000
  model_stats.main([])
  assert "3.6" in capsys.readouterr().out  # the 1x1-reduction saving for a 3x3


def test_bad_input_to_the_command_is_one_line():
  with pytest.raises(SystemExit, match="^dlx model_stats: error: lenet5_mnist has no config.image"):
    model_stats.main(["lenet5_mnist"])
  with pytest.raises(SystemExit, match="^dlx model_stats: error: .*unknown experiment 'nosuch'"):
    model_stats.main(["nosuch"])
