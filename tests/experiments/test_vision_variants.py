"""The named variants of the Fashion-MNIST vision experiments (docs/curriculum.md#f4,
#f6, #f8): each `NAME:VARIANT,smoke` builds the variant's structure (checked on the
smoke-width model's shapes, fast suite) and trains end to end (slow suite)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import experiment
from dlx import train
from tests import conftest


def _kernels(params):
  """Path -> shape of every 4-d (conv) kernel."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {
    "/".join(str(getattr(k, "key", k)) for k in path): leaf.shape
    for path, leaf in flat
    if leaf.ndim == 4
  }


def _vgg16(kernels, _):
  assert len(kernels) == 13  # VGG-16: 13 convs + 3 FC (VGG-11: 8 convs)


def _resnet(bottleneck):
  def check(kernels, _):
    assert len({k.split("/")[0] for k in kernels if k.startswith("stage")}) == 16  # 3+4+6+3
    convs = [kernels[f"stage1_block1/Conv_{i}/kernel"] for i in range(3 if bottleneck else 2)]
    if bottleneck:  # 1x1 reduce -> 3x3 -> 1x1 expand to 4x the width
      assert [c[0] for c in convs] == [1, 3, 1] and convs[2][-1] == 4 * convs[1][-1]
    else:  # two 3x3s
      assert [c[0] for c in convs] == [3, 3]

  return check


def _grouped(kernels, _):
  for block in range(1, 14):
    channels = kernels[f"block{block}/depthwise/kernel"][-1]
    # Two groups: each 1x1 filter sees half of the block's channels.
    assert kernels[f"block{block}/pointwise/Conv_0/kernel"][2] == channels // 2


def _dilated(_, final_map):
  # The last stride-2 block keeps stride 1: the final map doubles (2x2 -> 4x4 on 28x28).
  assert final_map == (4, 4)


VARIANTS = {
  ("vgg_fashion_mnist", "vgg16"): _vgg16,
  ("resnet_fashion_mnist", "resnet34"): _resnet(bottleneck=False),
  ("resnet_fashion_mnist", "resnet50"): _resnet(bottleneck=True),
  ("mobilenet_fashion_mnist", "grouped"): _grouped,
  ("mobilenet_fashion_mnist", "dilated"): _dilated,
}


def _build(name, variant):
  exp = experiment.load(name)
  config = exp.config(f"{variant},smoke")
  model = exp.get_model(config)
  x = jnp.zeros((1, 28, 28, 1))
  # Shapes only: no compilation, so every variant is checked in the fast suite.
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  _, state = jax.eval_shape(
    lambda v: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]), variables
  )
  return exp, config, variables, state["intermediates"]


@pytest.mark.parametrize("name,variant", list(VARIANTS))
def test_vision_variant_structure(name, variant):
  _, _, variables, intermediates = _build(name, variant)
  block13 = intermediates.get("block13")  # MobileNet's last block
  final_map = block13["__call__"][0].shape[1:3] if block13 else None
  VARIANTS[name, variant](_kernels(variables["params"]), final_map)


# About 10-15 CPU seconds each (compiling the deeper nets), over the fast suite's budget.
@pytest.mark.slow
@pytest.mark.parametrize("name,variant", list(VARIANTS))
def test_vision_variant_smoke(name, variant, tmp_path):
  exp, config, variables, _ = _build(name, variant)
  results = train.train_and_evaluate(config, str(tmp_path), experiment=exp)
  assert results["step"] == config.num_train_steps
  conftest.assert_finite(results["test"])
  size = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))
  assert results["num_parameters"] == size
