"""Test setup and shared helpers: hide accelerators from TensorFlow, keep JAX on the CPU,
keep runs small."""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import math  # pylint: disable=wrong-import-position
import pathlib  # pylint: disable=wrong-import-position

import orbax.checkpoint as ocp  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_TFDS = REPO.parent / "shared" / "tfds"


@pytest.fixture(scope="session")
def tfds_dir():
  """The prepared tfds data dir (`../shared/tfds`), or skip when this checkout has none."""
  if not (SHARED_TFDS / "mnist").is_dir():
    pytest.skip(f"no prepared tfds data at {SHARED_TFDS}")
  return str(SHARED_TFDS)


@pytest.fixture
def data_dir(request):
  """The prepared tfds dir when this checkout has one, else None (embedded data)."""
  try:
    return request.getfixturevalue("tfds_dir")
  except pytest.skip.Exception:
    return None


def subprocess_env(**extra):
  """The environment for a dlx subprocess: CPU only, no forced device count."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
  env.pop("XLA_FLAGS", None)
  env.update(extra)
  return env


def read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def checkpoint_steps(directory):
  return sorted(int(p.name) for p in pathlib.Path(directory).iterdir() if p.name.isdigit())


def restore_checkpoint(directory, step):
  """(state, meta) of one saved step of a run's checkpoint directory, as plain nested
  dicts of NumPy arrays."""
  with ocp.CheckpointManager(os.path.abspath(directory), item_names=("state", "meta")) as m:
    restored = m.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
    )
  return restored.state, dict(restored.meta)


def assert_finite(metrics):
  assert metrics, "no metrics"
  for key, value in metrics.items():
    assert math.isfinite(value), f"{key} = {value}"


def assert_png(path, min_side=28):
  """`path` is a PNG whose every pixel decodes, with sides in [min_side, 4096]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path)
  assert path.is_file(), (
    f"{path.name} missing; the workdir has {sorted(p.name for p in path.parent.iterdir())}"
  )
  with Image.open(path) as img:
    assert img.format == "PNG"
    width, height = img.size
    img.load()  # decodes every pixel: a truncated file fails here
  assert min_side <= width <= 4096 and min_side <= height <= 4096, img.size
