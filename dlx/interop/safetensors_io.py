"""Reading and writing safetensors checkpoints as NumPy arrays (no torch at run time).

`read_checkpoint(directory)` reads the weights a Hugging Face `save_pretrained` writes:
one `model.safetensors`, or the shards that `model.safetensors.index.json` lists.
`read(path)` and `write(path, tensors)` handle one file, through the `safetensors`
package's NumPy API (`safetensors.numpy.load_file` / `save_file`), from dlx's [interop]
extra. `CheckpointError` is the one-line error for a checkpoint that does not hold what a
model needs; `CheckpointNotFoundError` for a file that is not there.
"""

import json
import os
import pathlib

import numpy as np

from dlx import optional_deps
from dlx.errors import UserError

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


class CheckpointError(UserError, ValueError):
  """A checkpoint lacks a key, holds one of the wrong shape, or has an unusable config."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
  """A checkpoint file or directory is not there."""


def _numpy_api():
  try:
    from safetensors import numpy as st  # An optional extra: imported on first use.
  except ModuleNotFoundError as e:
    raise optional_deps.missing(e, "dlx.interop (safetensors files)") from None
  return st


def read(path) -> dict[str, np.ndarray]:
  """Every tensor of one .safetensors file, by name."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise CheckpointNotFoundError(f"{path}: no such safetensors file")
  st = _numpy_api()
  try:
    # pread reads each tensor into its own buffer; the default mmap backend also keeps
    # the file's pages resident while copying out of them: a 124M GPT-2 peaked at
    # 1.1 GiB instead of 0.8 GiB (benchmarks/interop_load.py).
    return st.load_file(str(path), backend="pread")
  except Exception as e:  # The package's errors name no file; say which one.
    raise CheckpointError(f"{path}: unreadable safetensors file ({e})") from None


def read_checkpoint(directory) -> tuple[dict[str, np.ndarray], str]:
  """The tensors of a `save_pretrained` directory and the file name(s) they came from.

  A single `model.safetensors` is read when present, else the shards that
  `model.safetensors.index.json` maps the tensors to.
  """
  directory = pathlib.Path(directory)
  single, index = directory / WEIGHTS, directory / INDEX
  if single.is_file():
    return read(single), WEIGHTS
  if index.is_file():
    weight_map = json.loads(index.read_text())["weight_map"]
    tensors = {}
    for shard in sorted(set(weight_map.values())):
      tensors.update(read(directory / shard))
    return tensors, INDEX
  raise CheckpointNotFoundError(f"{directory}: holds neither {WEIGHTS} nor {INDEX}")


def write(path, tensors: dict, metadata: dict | None = None):
  """Writes `tensors` (name -> array) to one .safetensors file, atomically.

  Arrays are made C-contiguous NumPy arrays first (safetensors stores raw row-major
  buffers); a reader never sees a half-written file, as it is renamed into place.
  """
  path = pathlib.Path(path)
  st = _numpy_api()
  # order="C" rather than np.ascontiguousarray, which turns a 0-d array into shape (1,).
  arrays = {name: np.asarray(x, order="C") for name, x in tensors.items()}
  partial = path.with_name(path.name + ".partial")
  st.save_file(arrays, str(partial), metadata=metadata)
  os.replace(partial, path)
