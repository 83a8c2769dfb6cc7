"""Forward values of dlx's CNN blocks (docs/curriculum.md#e8) against torchvision's own
block modules, weights copied by hand.

test_torchvision.py already checks whole networks converted with dlx.interop
(resnet18 and googlenet in the fast set; resnet50 and densenet121 marked slow). These
block-level tests pin each block on its own, without the converter, so a failure names
the block: ResidualBlock vs resnet.BasicBlock, BottleneckBlock vs resnet.Bottleneck,
DenseLayer / DenseBlock / TransitionBlock vs densenet's _DenseLayer / _DenseBlock /
_Transition, InceptionBlock vs googlenet.Inception. Eval mode: batch norm uses its
running statistics, which are randomized (as are the affine parameters) so a swapped
mean/var or scale/bias shows. float32, tolerance 1e-5.
"""

import jax
import numpy as np
import pytest

from dlx.nn import blocks

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the references are torchvision modules")
tv_resnet = pytest.importorskip("torchvision.models.resnet")
tv_densenet = pytest.importorskip("torchvision.models.densenet")
tv_googlenet = pytest.importorskip("torchvision.models.googlenet")

BATCH, SIDE = 2, 8


def _randomize(module, seed=0):
  """Random conv weights, BN affine parameters and running statistics; eval mode."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, torch.nn.Conv2d):
        m.weight.copy_(
          torch.randn(m.weight.shape, generator=generator) / np.sqrt(m.weight[0].numel())
        )
      elif isinstance(m, torch.nn.BatchNorm2d):
        n = m.num_features
        m.weight.copy_(1 + 0.2 * torch.randn(n, generator=generator))
        m.bias.copy_(0.2 * torch.randn(n, generator=generator))
        m.running_mean.copy_(0.3 * torch.randn(n, generator=generator))
        m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
  return module.eval()


def _copy(torch_module, pairs):
  """dlx variables from (dlx path, torch conv or BN submodule name) pairs."""
  params, stats = {}, {}
  subs = dict(torch_module.named_modules())
  for path, name in pairs:
    m = subs[name]
    p, s = params, stats
    for part in path.split("/")[:-1]:
      p, s = p.setdefault(part, {}), s.setdefault(part, {})
    leaf = path.split("/")[-1]
    if isinstance(m, torch.nn.Conv2d):
      assert m.bias is None
      p[leaf] = {"kernel": m.weight.detach().numpy().transpose(2, 3, 1, 0)}  # OIHW -> HWIO
    else:
      p[leaf] = {"scale": m.weight.detach().numpy(), "bias": m.bias.detach().numpy()}
      s[leaf] = {"mean": m.running_mean.numpy(), "var": m.running_var.numpy()}
  return {"params": params, "batch_stats": stats}


def _compare(dlx_block, variables, torch_module, channels, torch_input=None):
  x = np.random.default_rng(0).normal(size=(BATCH, channels, SIDE, SIDE)).astype(np.float32)
  with torch.no_grad():
    t = torch.from_numpy(x)
    expected = torch_module(t if torch_input is None else torch_input(t)).numpy()
  # The dlx blocks' variables must be exactly the copied ones: same tree, same shapes.
  init = jax.eval_shape(dlx_block.init, jax.random.key(0), x.transpose(0, 2, 3, 1))
  assert jax.tree.map(np.shape, init) == jax.tree.map(np.shape, variables)
  got = dlx_block.apply(variables, x.transpose(0, 2, 3, 1))  # eager: no compile for one call
  np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), expected, atol=1e-5, rtol=1e-5)


def _projection(inplanes, outplanes, stride):
  return torch.nn.Sequential(
    torch.nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False),
    torch.nn.BatchNorm2d(outplanes),
  )


@pytest.mark.parametrize(
  "inplanes,planes,stride", [(16, 16, 1), (8, 16, 2)], ids=["identity", "projection"]
)
def test_residual_block_matches_basic_block(inplanes, planes, stride):
  downsample = None if stride == 1 and inplanes == planes else _projection(inplanes, planes, stride)
  reference = _randomize(tv_resnet.BasicBlock(inplanes, planes, stride, downsample))
  pairs = [("Conv_0", "conv1"), ("BatchNorm_0", "bn1"), ("Conv_1", "conv2"), ("BatchNorm_1", "bn2")]
  if downsample is not None:
    pairs += [("projection", "downsample.0"), ("projection_bn", "downsample.1")]
  _compare(blocks.ResidualBlock(planes, stride), _copy(reference, pairs), reference, inplanes)


@pytest.mark.parametrize(
  "inplanes,planes,stride", [(32, 8, 1), (16, 8, 2)], ids=["identity", "projection"]
)
def test_bottleneck_block_matches_bottleneck(inplanes, planes, stride):
  out = planes * tv_resnet.Bottleneck.expansion
  downsample = None if stride == 1 and inplanes == out else _projection(inplanes, out, stride)
  reference = _randomize(tv_resnet.Bottleneck(inplanes, planes, stride, downsample))
  pairs = [(f"Conv_{i}", f"conv{i + 1}") for i in range(3)]
  pairs += [(f"BatchNorm_{i}", f"bn{i + 1}") for i in range(3)]
  if downsample is not None:
    pairs += [("projection", "downsample.0"), ("projection_bn", "downsample.1")]
  _compare(blocks.BottleneckBlock(planes, stride), _copy(reference, pairs), reference, inplanes)


def _dense_layer_pairs(prefix, torch_prefix):
  names = [
    ("BatchNorm_0", "norm1"),
    ("Conv_0", "conv1"),
    ("BatchNorm_1", "norm2"),
    ("Conv_1", "conv2"),
  ]
  return [(prefix + a, torch_prefix + b) for a, b in names]


def test_dense_layer_matches_dense_layer():
  reference = _randomize(tv_densenet._DenseLayer(12, growth_rate=4, bn_size=2, drop_rate=0.0))
  variables = _copy(reference, _dense_layer_pairs("", ""))
  # torchvision's layer takes the list of earlier maps and concatenates them itself.
  _compare(blocks.DenseLayer(4, 2), variables, reference, 12, torch_input=lambda t: [t])


def test_dense_block_matches_dense_block():
  reference = _randomize(
    tv_densenet._DenseBlock(3, num_input_features=8, bn_size=2, growth_rate=4, drop_rate=0.0)
  )
  pairs = [p for i in range(3) for p in _dense_layer_pairs(f"layer{i + 1}/", f"denselayer{i + 1}.")]
  _compare(blocks.DenseBlock(3, 4, 2), _copy(reference, pairs), reference, 8)


def test_transition_block_matches_transition():
  reference = _randomize(tv_densenet._Transition(16, 8))
  variables = _copy(reference, [("BatchNorm_0", "norm"), ("Conv_0", "conv")])
  _compare(blocks.TransitionBlock(8), variables, reference, 16)


def test_inception_block_matches_inception():
  # torchvision's "5x5" branch is a 3x3 conv (kept for its weights): large_kernel=3.
  reference = _randomize(tv_googlenet.Inception(16, 4, 6, 8, 2, 4, 4))
  branches = {
    "branch1x1": "branch1",
    "branch3x3_reduce": "branch2.0",
    "branch3x3": "branch2.1",
    "branch5x5_reduce": "branch3.0",
    "branch5x5": "branch3.1",
    "pool_proj": "branch4.1",
  }
  pairs = [
    p
    for a, b in branches.items()
    for p in ((f"{a}/Conv_0", f"{b}.conv"), (f"{a}/BatchNorm_0", f"{b}.bn"))
  ]
  block = blocks.InceptionBlock(4, 6, 8, 2, 4, 4, large_kernel=3)
  _compare(block, _copy(reference, pairs), reference, 16)
