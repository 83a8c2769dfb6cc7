"""dlx.interop's torchvision converters against torchvision itself.

For each supported architecture, a seeded random torchvision model in eval mode (its
BatchNorm running statistics taken from random images and then perturbed, its
zero-initialized tensors made nonzero, so a swapped statistic, a missing bias or a
mis-ordered flatten shows), converted with from_torchvision, gives torchvision's logits for
the same images to 1e-4 relative in float32, and to_torchvision gives its state dict back
exactly, loadable with load_state_dict(strict=True). These are also the forward-value
references of dlx's CNN blocks (ResidualBlock, BottleneckBlock, DenseBlock,
TransitionBlock, InceptionBlock) and of its ViT encoder. Small images where the
architecture allows (64x64; AlexNet 96x96 so its last map is 2x2, not 1x1; ViT 32x32).
The error cases need neither torch nor torchvision.
"""

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import interop
from dlx.interop import torchvision as tv_interop
from dlx.interop.safetensors_io import CheckpointError
from dlx.models import densenet
from dlx.models import resnet

# (test id, torchvision name, image side, torchvision kwargs, from_torchvision kwargs)
_GOOGLENET = {"aux_logits": False, "init_weights": True, "transform_input": True}
_GOOGLENET_AUX = {"aux_logits": True, "init_weights": True, "transform_input": False}
FAST = [
  ("resnet18", "resnet18", 64, {}, {}),
  ("vgg11_bn", "vgg11_bn", 64, {}, {}),
  ("alexnet", "alexnet", 96, {}, {}),
  ("googlenet", "googlenet", 64, _GOOGLENET, {}),
]
SLOW = [
  ("resnet34", "resnet34", 64, {}, {}),
  ("resnet50", "resnet50", 64, {}, {}),
  *[(name, name, 64, {}, {}) for name in ("vgg11", "vgg13", "vgg16", "vgg19")],
  *[(name, name, 64, {}, {}) for name in ("vgg13_bn", "vgg16_bn", "vgg19_bn")],
  ("densenet121", "densenet121", 64, {}, {}),
  ("googlenet_aux", "googlenet", 64, _GOOGLENET_AUX, {"transform_input": False}),
  ("vit_b_16", "vit_b_16", 32, {"image_size": 32}, {}),
]
CASES = [pytest.param(case, id=case[0]) for case in FAST] + [
  pytest.param(case, id=case[0], marks=pytest.mark.slow) for case in SLOW
]


def _torch_and_torchvision():
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  return torch, torchvision


def _reference(arch: str, side: int, kwargs: dict):
  """A seeded torchvision `arch` in eval mode with every tensor nontrivial."""
  torch, torchvision = _torch_and_torchvision()
  torch.manual_seed(0)
  model = getattr(torchvision.models, arch)(**kwargs)
  generator = torch.Generator().manual_seed(1)
  noise = lambda shape: torch.randn(shape, generator=generator)
  with torch.no_grad():
    layers = (torch.nn.Conv2d, torch.nn.Linear)
    if not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) for m in model.modules()):
      # AlexNet's and VGG's initializations shrink the activations layer by layer; He's
      # keeps their scale, so the logits depend on the image, not only on the last bias.
      for layer in (m for m in model.modules() if isinstance(m, layers)):
        torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=generator)
    for parameter in model.parameters():  # Biases, norms, ViT's class token and head.
      if parameter.ndim <= 1 or not parameter.any():
        parameter.add_(0.1 * noise(parameter.shape))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if norms:  # Statistics of random images keep activations in range through the depth.
      for norm in norms:
        norm.momentum = 1.0
      model.train()(noise((4, 3, side, side)))
      for norm in norms:
        norm.momentum = 0.1
        norm.num_batches_tracked.zero_()  # dlx does not keep it (exported as 0).
        shape = norm.running_var.shape
        norm.running_mean.add_(0.1 * noise(shape) * norm.running_var.sqrt())
        norm.running_var.mul_(0.5 + torch.rand(shape, generator=generator))
  return model.eval()


@pytest.fixture(scope="module", params=CASES)
def converted(request):
  """(case, torchvision model, dlx model, variables): built once per architecture."""
  _, arch, side, torch_kwargs, dlx_kwargs = request.param
  reference = _reference(arch, side, torch_kwargs)
  state = {key: value.numpy() for key, value in reference.state_dict().items()}
  model, variables = interop.from_torchvision(arch, state, **dlx_kwargs)
  return request.param, reference, model, variables


@pytest.mark.torch
def test_logits_match_torchvision(converted):
  torch, _ = _torch_and_torchvision()
  (_, arch, side, _, _), reference, model, variables = converted
  images = np.random.default_rng(0).standard_normal((2, side, side, 3)).astype(np.float32)
  ours = np.asarray(jax.jit(functools.partial(model.apply, train=False))(variables, images))
  with torch.no_grad():
    theirs = reference(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
  assert ours.shape == theirs.shape == (2, 1000)
  relative = np.abs(ours - theirs).max() / np.abs(theirs).max()
  assert relative < 1e-4, (arch, relative)
  # The part of the logits that depends on the image, not only on the last bias, is
  # sizable and matches (measured up to 4e-5 relative, VGG-19; a wrong map gives > 0.5).
  ours_change, theirs_change = ours[0] - ours[1], theirs[0] - theirs[1]
  assert np.abs(theirs_change).max() > 1e-2 * np.abs(theirs).max(), arch
  relative = np.abs(ours_change - theirs_change).max() / np.abs(theirs_change).max()
  assert relative < 1e-3, (arch, relative)


@pytest.mark.torch
def test_export_gives_back_the_state_dict(converted):
  torch, _ = _torch_and_torchvision()
  (_, arch, _, _, _), reference, _, variables = converted
  exported = interop.to_torchvision(arch, variables)
  original = reference.state_dict()
  assert list(exported) == list(original)  # Every key, in torchvision's order.
  different = [
    key
    for key, value in original.items()
    if exported[key].dtype != value.numpy().dtype
    or not np.array_equal(exported[key], value.numpy())
  ]
  assert not different, different
  reference.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()}, strict=True)


@pytest.mark.torch
def test_reads_pth_and_safetensors_files(tmp_path):
  torch, _ = _torch_and_torchvision()
  safetensors_torch = pytest.importorskip("safetensors.torch")
  reference = _reference("resnet18", 64, {})
  torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
  safetensors_torch.save_file(reference.state_dict(), tmp_path / "resnet18.safetensors")
  state = {key: value.numpy() for key, value in reference.state_dict().items()}
  _, expected = interop.from_torchvision("resnet18", state)
  for name in ("resnet18.pth", "resnet18.safetensors"):
    model, variables = interop.from_torchvision("resnet18", tmp_path / name)
    assert model.num_classes == 1000
    jax.tree_util.tree_map(np.testing.assert_array_equal, variables, expected)


# ------------------------------------------------------- no torch needed


def _zeros(model, side=64):
  """Variables of `model` as NumPy zeros (shapes from an abstract init)."""
  image = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
  abstract = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), image)
  return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), abstract)


@pytest.fixture(scope="module")
def resnet18_state():
  return interop.to_torchvision("resnet18", _zeros(resnet.resnet18()))


def test_unknown_architecture_lists_the_valid_ones(resnet18_state):
  with pytest.raises(CheckpointError, match="'resnet101'; dlx converts resnet18, resnet34, "):
    interop.from_torchvision("resnet101", resnet18_state)
  with pytest.raises(CheckpointError, match="vit_b_16"):
    interop.to_torchvision("resnet101", {"params": {}})
  assert tv_interop.ARCHITECTURES[:3] == ("resnet18", "resnet34", "resnet50")


def test_a_missing_key_is_named_with_its_shape(resnet18_state):
  state = dict(resnet18_state)
  del state["layer1.0.conv1.weight"]
  message = r"state_dict: no tensor layer1.0.conv1.weight \(resnet18 needs shape \(64, 64, 3, 3\)\)"
  with pytest.raises(CheckpointError, match=message):
    interop.from_torchvision("resnet18", state)


def test_a_misshaped_key_is_named_with_both_shapes(resnet18_state):
  state = dict(resnet18_state, **{"layer2.0.bn1.running_var": np.ones(64, np.float32)})
  with pytest.raises(
    CheckpointError, match=r"running_var has shape \(64,\), resnet18 needs \(128,\)"
  ):
    interop.from_torchvision("resnet18", state)


def test_unknown_keys_and_a_missing_head_are_refused(resnet18_state):
  with pytest.raises(CheckpointError, match="has no place for: extra.weight"):
    interop.from_torchvision("resnet18", dict(resnet18_state, **{"extra.weight": np.ones(2)}))
  state = {k: v for k, v in resnet18_state.items() if not k.startswith("fc.")}
  with pytest.raises(
    CheckpointError, match=r"state_dict: no fc.weight \(resnet18 takes its sizes from it\)"
  ):
    interop.from_torchvision("resnet18", state)


def test_the_head_size_comes_from_the_checkpoint():
  state = interop.to_torchvision("resnet18", _zeros(resnet.resnet18(num_classes=10)))
  assert state["fc.weight"].shape == (10, 512)
  assert state["bn1.num_batches_tracked"].shape == () and state["bn1.num_batches_tracked"] == 0
  model, variables = interop.from_torchvision("resnet18", state)
  assert model.num_classes == 10
  assert variables["params"]["classifier"]["kernel"].shape == (512, 10)


def test_to_torchvision_names_a_missing_or_misshaped_variable():
  variables = _zeros(resnet.resnet18())
  variables["params"]["stem_conv"]["kernel"] = np.zeros((3, 3, 3, 64), np.float32)
  with pytest.raises(CheckpointError, match=r"stem_conv/kernel has shape \(3, 3, 3, 64\), "):
    interop.to_torchvision("resnet18", variables)
  del variables["batch_stats"]["stem_bn"]
  with pytest.raises(CheckpointError, match="variables have no batch_stats/stem_bn/mean"):
    interop.to_torchvision("resnet18", variables)


def test_older_densenet_names_are_read():
  """The published densenet121 file names norm1 'norm.1' (torchvision renames on load)."""
  state = interop.to_torchvision("densenet121", _zeros(densenet.densenet121()))
  old = {
    k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in state.items()
  }
  assert "features.denseblock1.denselayer1.norm.1.weight" in old
  model, variables = interop.from_torchvision("densenet121", old)
  assert list(interop.to_torchvision("densenet121", variables)) == list(state)


def test_transform_input_is_googlenets_option(resnet18_state):
  with pytest.raises(CheckpointError, match="transform_input is an option of googlenet"):
    interop.from_torchvision("resnet18", resnet18_state, transform_input=True)


def test_a_pth_file_without_torch_says_what_to_install(tmp_path, monkeypatch):
  path = tmp_path / "weights.pth"
  path.write_bytes(b"not read")
  monkeypatch.setitem(sys.modules, "torch", None)
  with pytest.raises(ImportError, match="reading a .pth file needs torch"):
    interop.from_torchvision("resnet18", path)


def test_bad_sources_are_one_line(tmp_path):
  with pytest.raises(CheckpointError, match="no such file"):
    interop.from_torchvision("resnet18", tmp_path / "absent.pth")
  (tmp_path / "weights.npz").write_bytes(b"")
  with pytest.raises(CheckpointError, match="not a .safetensors, .pth or .pt file"):
    interop.from_torchvision("resnet18", tmp_path / "weights.npz")
  with pytest.raises(CheckpointError, match="got list"):
    interop.from_torchvision("resnet18", [])
