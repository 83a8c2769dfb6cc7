"""torchvision classifiers' weights in and out of dlx's models (docs/interop.md).

  from_torchvision(arch, state_dict) -> (model, variables)
      model.apply(variables, x, train=False), x channels-last floats (N, H, W, 3), returns
      the logits torchvision's `arch` returns for the same images in NCHW
  to_torchvision(arch, variables) -> {torchvision key: np.ndarray}
      loads into torchvision's `arch` with load_state_dict(strict=True) after
      torch.from_numpy, BatchNorm's num_batches_tracked included
  ARCHITECTURES   the torchvision names dlx converts

`state_dict` maps torchvision's keys to arrays (NumPy; torch tensors are taken too), or
is the path of a `.safetensors` file (read without torch, dlx/interop/safetensors_io.py)
or of a `.pth` / `.pt` file (`torch.load(weights_only=True)`; needs torch, which dlx does
not install). Normalizing the images as torchvision's weights expect is the caller's job.
What a checkpoint fixes is read from it: the number of classes (a fine-tuned head),
GoogLeNet's auxiliary heads, ViT's image size. Older names that torchvision still loads
(DenseNet's `norm.1`, ViT's `mlp.linear_1`) are renamed first.

Every tensor is checked before any is converted: a missing or mis-shaped key is one
error naming the key and both shapes, and so is a key the architecture has no place for.
Models and weight maps: dlx/interop/torchvision_cnn.py and torchvision_vit.py; the
conversions (transposes, the NCHW flatten order): dlx/interop/torchvision_rules.py.
Parameters are float32.
"""

import math
import os
import pathlib
import re
from typing import Mapping
import zipfile

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from dlx.interop import safetensors_io
from dlx.interop import torchvision_cnn
from dlx.interop import torchvision_vit
from dlx.interop.safetensors_io import CheckpointError
from dlx.interop.safetensors_io import CheckpointNotFoundError

ARCHS = {**torchvision_cnn.ARCHS, **torchvision_vit.ARCHS}
ARCHITECTURES = tuple(ARCHS)
COLLECTIONS = ("params", "batch_stats")
# Key renames torchvision applies when it loads older checkpoints (the published
# densenet121 file still uses the first).
_LEGACY_NAMES = (
  (re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\."), r"\1\2."),
  (re.compile(r"\.mlp\.linear_1\."), ".mlp.0."),
  (re.compile(r"\.mlp\.linear_2\."), ".mlp.3."),
)
_TORCH_SUFFIXES = (".pth", ".pt")


def from_torchvision(arch: str, state_dict, *, transform_input: bool | None = None):
  """(model, {'params': ..., 'batch_stats': ...}) from torchvision weights of `arch`.

  transform_input (googlenet only): torchvision's GoogLeNet option, True by default as
  `googlenet(weights=...)` sets it for the pretrained weights; False matches a
  `googlenet()` built without weights.
  """
  spec = _arch(arch)
  tensors, source = _read(state_dict)
  options = _options(spec, {k: tuple(v.shape) for k, v in tensors.items()}, "torch", source, arch)
  if transform_input is not None:
    if arch != "googlenet":
      raise CheckpointError(f"transform_input is an option of googlenet, not of {arch}")
    options["transform_input"] = bool(transform_input)
  model, rules, dlx_shapes = _plan(spec, options, arch)
  expected = _torch_shapes(rules, dlx_shapes)
  buffers = {key for rule in rules if not rule.dlx for key in rule.torch}
  for key, shape in expected.items():
    if key in buffers:  # Not kept: older checkpoints lack it, some store it as (1,).
      if key in tensors and math.prod(tensors[key].shape) != 1:
        raise CheckpointError(f"{source}: {key} has shape {tuple(tensors[key].shape)}, not ()")
    elif key not in tensors:
      raise CheckpointError(f"{source}: no tensor {key} ({arch} needs shape {shape})")
    elif tuple(tensors[key].shape) != shape:
      raise CheckpointError(
        f"{source}: {key} has shape {tuple(tensors[key].shape)}, {arch} needs {shape}"
      )
  _refuse_unknown(
    sorted(set(tensors) - set(expected)), f"{source}: tensors {arch} has no place for"
  )
  flat = {}
  for rule in rules:
    # Popped one at a time, so a file's arrays are freed as their JAX copies appear.
    arrays = [_float32(tensors.pop(key)) for key in rule.torch if key in tensors]
    if rule.dlx:
      flat.update(zip(rule.dlx, map(_on_device, rule.to_dlx(*arrays))))
  return model, traverse_util.unflatten_dict(flat, sep="/")


def to_torchvision(arch: str, variables) -> dict[str, np.ndarray]:
  """torchvision's state dict of `arch` from dlx variables ({'params', 'batch_stats'}).

  The variables may come from from_torchvision or from training the same dlx model
  (the number of classes, GoogLeNet's aux heads and ViT's image size are read from them).
  """
  spec = _arch(arch)
  flat = _flatten(variables)
  options = _options(spec, {k: tuple(v.shape) for k, v in flat.items()}, "dlx", "variables", arch)
  _, rules, dlx_shapes = _plan(spec, options, arch)
  for path, shape in dlx_shapes.items():
    if path not in flat:
      raise CheckpointError(f"variables have no {path} ({arch} needs shape {shape})")
    if tuple(flat[path].shape) != shape:
      raise CheckpointError(f"{path} has shape {tuple(flat[path].shape)}, {arch} needs {shape}")
  _refuse_unknown(sorted(set(flat) - set(dlx_shapes)), f"variables {arch} has no place for")
  out = {}
  for rule in rules:
    arrays = [np.asarray(flat[path], np.float32) for path in rule.dlx]
    for key, value in zip(rule.torch, rule.to_torch(np, *arrays)):
      # torch.from_numpy shares the array: never hand out a view of the variables.
      shared = any(np.may_share_memory(value, array) for array in arrays)
      out[key] = np.array(value, order="C") if shared or not value.flags.c_contiguous else value
  return out


def _arch(arch: str):
  if arch not in ARCHS:
    raise CheckpointError(
      f"unknown torchvision architecture {arch!r}; dlx converts {', '.join(ARCHITECTURES)}"
    )
  return ARCHS[arch]


def _options(spec, shapes: dict, side: str, source: str, arch: str) -> dict:
  try:
    return spec.options(shapes, side)
  except CheckpointError as e:
    raise CheckpointError(f"{source}: {e} ({arch} takes its sizes from it)") from None


def _plan(spec, options: dict, arch: str):
  """The model, its rules and its variables' shapes ('params/...' -> shape), by
  initializing it on shapes only (nothing is computed)."""
  model = spec.build(options)
  side = spec.input_side(options)
  image = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
  abstract = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), image)
  shapes = {
    path: tuple(x.shape)
    for path, x in traverse_util.flatten_dict(dict(abstract), sep="/").items()
    if path.split("/")[0] in COLLECTIONS  # Not the 'intermediates' ViT sows.
  }
  rules = spec.rules(model, set(shapes))
  covered = [path for rule in rules for path in rule.dlx]
  if sorted(covered) != sorted(shapes):  # A dlx model changed under its weight map.
    missed, extra = sorted(set(shapes) - set(covered)), sorted(set(covered) - set(shapes))
    raise RuntimeError(
      f"dlx's {arch} map is out of date: unmapped {missed[:3]}, unknown {extra[:3]}"
    )
  return model, rules, shapes


def _torch_shapes(rules, dlx_shapes: dict) -> dict[str, tuple]:
  """torchvision key -> shape, in torchvision's order, by converting shapes only."""

  def convert(flat):
    out = {}
    for rule in rules:
      if rule.dlx:
        out.update(zip(rule.torch, rule.to_torch(jnp, *(flat[p] for p in rule.dlx))))
    return out

  structs = {path: jax.ShapeDtypeStruct(shape, jnp.float32) for path, shape in dlx_shapes.items()}
  converted = jax.eval_shape(convert, structs)
  return {
    key: tuple(converted[key].shape) if rule.dlx else () for rule in rules for key in rule.torch
  }


def _refuse_unknown(unknown: list, what: str):
  if unknown:
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    raise CheckpointError(f"{what}: {', '.join(unknown[:5])}{more}")


def _read(state_dict) -> tuple[dict, str]:
  """(key -> array or tensor, what to call the source in errors), legacy names renamed."""
  if isinstance(state_dict, (str, os.PathLike)):
    path = pathlib.Path(state_dict)
    if not path.is_file():
      raise CheckpointNotFoundError(f"{path}: no such file")
    if path.suffix == ".safetensors":
      tensors = safetensors_io.read(path)
    elif path.suffix in _TORCH_SUFFIXES:
      tensors = _read_torch(path)
    else:
      raise CheckpointError(f"{path}: not a .safetensors, .pth or .pt file")
    source = str(path)
  elif isinstance(state_dict, Mapping):
    tensors, source = dict(state_dict), "state_dict"  # A copy: popping frees no caller's key.
  else:
    raise CheckpointError(
      "state_dict must map torchvision's keys to arrays, or be a .safetensors or .pth path; "
      f"got {type(state_dict).__name__}"
    )
  for pattern, replacement in _LEGACY_NAMES:
    tensors = {pattern.sub(replacement, key): value for key, value in tensors.items()}
  return tensors, source


def _read_torch(path: pathlib.Path) -> dict:
  try:
    import torch  # pylint: disable=g-import-not-at-top  # Only .pth files need it.
  except ModuleNotFoundError:
    raise ImportError(
      f"{path}: reading a .pth file needs torch, which no dlx extra installs: pip install "
      "torch (or save the state dict as .safetensors, which needs only dlx[interop])"
    ) from None
  try:
    # mmap: the tensors stay in the page cache until each is converted (zip files only,
    # the format torch.save has written since PyTorch 1.6).
    loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
  except Exception as e:  # torch's errors span many lines; keep the first.
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise CheckpointError(f"{path}: torch.load(weights_only=True) failed: {first}") from None
  if not isinstance(loaded, Mapping) or not all(hasattr(v, "shape") for v in loaded.values()):
    raise CheckpointError(f"{path}: holds a {type(loaded).__name__}, not a state dict of tensors")
  return dict(loaded)


def _float32(value) -> np.ndarray:
  if hasattr(value, "detach"):  # A torch tensor: NumPy has no bfloat16 of torch's.
    value = value.detach().cpu()
    value = (value.float() if value.is_floating_point() else value).numpy()
  return np.asarray(value, np.float32)


def _on_device(array):
  """A float32 jax.Array copy of `array`, ready before returning, so the NumPy array (and
  the file's pages behind it) can be freed at once."""
  return jax.block_until_ready(jax.device_put(np.ascontiguousarray(array, np.float32)))


def _flatten(variables) -> dict:
  """'params/...' and 'batch_stats/...' -> array; other collections are ignored."""
  if not isinstance(variables, Mapping) or "params" not in variables:
    raise CheckpointError("variables must be a dict with 'params' (and 'batch_stats')")
  flat = {}
  for collection in COLLECTIONS:
    tree = variables.get(collection, {})
    flat.update(
      {
        f"{collection}/{path}": x
        for path, x in traverse_util.flatten_dict(dict(tree), sep="/").items()
      }
    )
  return flat
