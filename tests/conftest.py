"""Test setup: hide accelerators from TensorFlow, keep JAX on the CPU, keep runs small."""
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_TFDS = REPO.parent / "shared" / "tfds"


@pytest.fixture(scope="session")
def tfds_dir():
  """The prepared tfds data dir (`../shared/tfds`), or skip when this checkout has none."""
  if not (SHARED_TFDS / "mnist").is_dir():
    pytest.skip(f"no prepared tfds data at {SHARED_TFDS}")
  return str(SHARED_TFDS)
