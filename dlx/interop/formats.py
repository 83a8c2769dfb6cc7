"""The weight formats dlx reads and writes by name: the sources `--config.init_from`
starts a run from, and the formats `python -m dlx.tools.export` writes a run to.

  SOURCES   prefix -> Source: `PREFIX:SPEC` -> the variables it holds
            ({'params': ..., 'batch_stats': ...}, nested dicts of arrays)
  EXPORTS   name -> Export: (model, variables, out, about) -> the files at `out`

A new format is one entry in each table (`torchvision:ARCH:FILE` is meant to be one);
the trainer and the export tool read nothing else. Sources and exports raise one-line
`CheckpointError`s (dlx.errors.UserError) for input they cannot use.

The `safetensors` format is dlx's own flat file: one tensor per variable, named by its
path in the model's variables joined with '/' ('params/decoder/layer_0/.../kernel',
'batch_stats/...'), so any model round-trips, model state included. A file whose names
carry no collection ('decoder/layer_0/.../kernel') is read as parameters only.

The `torchvision` source is `torchvision:ARCH:FILE`, a torchvision state dict of ARCH
(.pth or .safetensors, dlx/interop/torchvision.py). The `torchvision` export writes the
state dict of the torchvision architecture whose variables the run's model has, names
and shapes alike (found from the variables, so no ARCH is given): a .safetensors FILE,
or a .pth FILE (with torch installed) that `load_state_dict(strict=True)` takes.
"""

import dataclasses
import os
import pathlib
from typing import Any, Callable

from flax import traverse_util
import numpy as np

from dlx.interop import hf_clip
from dlx.interop import hf_gpt2
from dlx.interop import safetensors_io
from dlx.interop import torchvision
from dlx.interop.safetensors_io import CheckpointError
from dlx.models.clip import CLIP
from dlx.models.gpt import GPT


@dataclasses.dataclass(frozen=True)
class Source:
  """A kind of `--config.init_from` reference other than a dlx workdir."""

  usage: str  # how a reference is spelled, for the help and the errors: 'hf-gpt2:DIR'
  load: Callable[[str], dict]  # the text after 'PREFIX:' -> variables


@dataclasses.dataclass(frozen=True)
class Export:
  """A format `python -m dlx.tools.export --format=NAME` writes."""

  out: str  # what --out names: 'DIR' or 'FILE'
  # (model, variables, out path, about) -> None; `about` has the run's 'experiment',
  # 'step' and 'workdir', for formats that record where the weights came from.
  write: Callable[[Any, dict, pathlib.Path, dict], None]


def _load_hf_gpt2(spec: str) -> dict:
  _, variables = hf_gpt2.from_hf_gpt2(spec)
  return variables


def _write_hf_gpt2(model, variables, out: pathlib.Path, about: dict):
  del about  # config.json has no place for it
  if not isinstance(model, GPT):
    raise CheckpointError(
      f"--format=hf-gpt2 exports dlx's GPT (dlx.models.gpt.GPT); this run's model is "
      f"{type(model).__name__} (--format=safetensors writes any model)"
    )
  if model.output_bias:
    raise CheckpointError(
      "--format=hf-gpt2: this GPT has an output bias (output_bias=True), which GPT-2 "
      "lacks; train with --config.model.output_bias=False (gpt_shakespeare_char:gpt2), "
      "or export --format=safetensors"
    )
  if out.exists() and not out.is_dir():
    raise CheckpointError(f"--out={out} is a file; --format=hf-gpt2 writes a DIR")
  hf_gpt2.to_hf_gpt2(model, {"params": variables["params"]}, out)


def _load_hf_clip(spec: str) -> dict:
  _, variables = hf_clip.from_hf_clip(spec)
  return variables


def _write_hf_clip(model, variables, out: pathlib.Path, about: dict):
  del about  # config.json has no place for it
  if not isinstance(model, CLIP):
    raise CheckpointError(
      f"--format=hf-clip exports dlx's CLIP (dlx.models.clip.CLIP, image_tower='vit'); this "
      f"run's model is {type(model).__name__} (--format=safetensors writes any model)"
    )
  if out.exists() and not out.is_dir():
    raise CheckpointError(f"--out={out} is a file; --format=hf-clip writes a DIR")
  hf_clip.to_hf_clip(model, {"params": variables["params"]}, out)


def flat_tensors(variables: dict) -> dict[str, np.ndarray]:
  """{'params': {'Dense_0': {'kernel': x}}} -> {'params/Dense_0/kernel': x}."""
  flat = traverse_util.flatten_dict(dict(variables), sep="/")
  return {name: np.asarray(x) for name, x in flat.items()}


def read_flat(path) -> dict:
  """The variables of a flat dlx safetensors file (see the module docstring)."""
  tensors = safetensors_io.read(path)
  if not tensors:
    raise CheckpointError(f"{path}: holds no tensors")
  if not any(name.startswith("params/") for name in tensors):
    tensors = {f"params/{name}": x for name, x in tensors.items()}
  return traverse_util.unflatten_dict(tensors, sep="/")


def _write_flat(model, variables, out: pathlib.Path, about: dict):
  del model  # any model: the names are its variables' paths
  if out.is_dir():
    raise CheckpointError(f"--out={out} is a directory; --format=safetensors writes one FILE")
  out.parent.mkdir(parents=True, exist_ok=True)
  metadata = {"format": "dlx", **{f"dlx.{k}": str(v) for k, v in about.items()}}
  safetensors_io.write(out, flat_tensors(variables), metadata=metadata)


def _load_torchvision(spec: str) -> dict:
  arch, sep, path = spec.partition(":")
  if not sep or not arch or not path:
    raise CheckpointError(
      f"give torchvision:ARCH:FILE, ARCH one of {', '.join(torchvision.ARCHITECTURES)}"
    )
  try:
    _, variables = torchvision.from_torchvision(arch, path)
  except ImportError as e:  # A .pth file without torch: one line, as any bad source.
    raise CheckpointError(str(e)) from None
  return variables


def torchvision_state_dict(model, variables) -> tuple[str, dict[str, np.ndarray]]:
  """(arch, torchvision's state dict) for the architecture whose variables these are;
  a CheckpointError naming the closest misses when they are none's."""
  flat = traverse_util.flatten_dict(
    {c: variables[c] for c in torchvision.COLLECTIONS if c in variables}, sep="/"
  )
  shapes = {path: tuple(np.shape(x)) for path, x in flat.items()}
  misses = []
  for arch, spec in torchvision.ARCHS.items():
    try:
      spec.options(shapes, "dlx")  # Cheap: rules out the architectures with other heads.
    except CheckpointError:
      continue
    try:
      return arch, torchvision.to_torchvision(arch, variables)
    except CheckpointError as e:
      misses.append(f"not {arch}: {e}")
  near = f" ({'; '.join(misses[:2])})" if misses else ""
  raise CheckpointError(
    f"--format=torchvision: this run's model ({type(model).__name__}) has the variables of "
    f"none of {', '.join(torchvision.ARCHITECTURES)}{near}; train the model "
    "dlx.interop.torchvision_cnn builds (resnet18_finetune_fashion_mnist does)"
  )


def _write_torchvision(model, variables, out: pathlib.Path, about: dict):
  if out.suffix not in (".safetensors", ".pth", ".pt"):
    raise CheckpointError(
      f"--out={out}: --format=torchvision writes a .safetensors, .pth or .pt FILE"
    )
  if out.is_dir():
    raise CheckpointError(f"--out={out} is a directory; --format=torchvision writes one FILE")
  arch, state_dict = torchvision_state_dict(model, variables)
  out.parent.mkdir(parents=True, exist_ok=True)
  if out.suffix == ".safetensors":
    metadata = {"format": "pt", "dlx.arch": arch, **{f"dlx.{k}": str(v) for k, v in about.items()}}
    safetensors_io.write(out, state_dict, metadata=metadata)
    return
  try:
    import torch  # pylint: disable=g-import-not-at-top  # Only .pth files need it.
  except ModuleNotFoundError:
    raise ImportError(
      f"--out={out}: writing a .pth file needs torch, which no dlx extra installs "
      "(pip install torch), or write --out=....safetensors"
    ) from None
  partial = out.with_name(out.name + ".partial")  # Renamed into place: never half-written.
  torch.save({key: torch.from_numpy(x) for key, x in state_dict.items()}, partial)
  os.replace(partial, out)


SOURCES: dict[str, Source] = {
  "hf-clip": Source("hf-clip:DIR", _load_hf_clip),
  "hf-gpt2": Source("hf-gpt2:DIR", _load_hf_gpt2),
  "safetensors": Source("safetensors:FILE", read_flat),
  "torchvision": Source("torchvision:ARCH:FILE", _load_torchvision),
}
EXPORTS: dict[str, Export] = {
  "hf-clip": Export("DIR", _write_hf_clip),
  "hf-gpt2": Export("DIR", _write_hf_gpt2),
  "safetensors": Export("FILE", _write_flat),
  "torchvision": Export("FILE", _write_torchvision),
}
