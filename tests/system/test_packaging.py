"""A fresh virtualenv with only the core install (`pip install .`, from the package
registry as a user would): the library packages import and work, TensorFlow is not
there, and the trainer names the extra it needs. Slow: it installs JAX and Flax."""

import pathlib
import subprocess
import sys

import pytest

from tests import conftest

CHECK = """
import importlib.util, jax, jax.numpy as jnp
from dlx import losses, nn, models, ops
from dlx.models import mlp
assert importlib.util.find_spec("tensorflow") is None, "tensorflow came with the core"
loss = jax.jit(losses.softmax_cross_entropy)(jnp.array([[2.0, -1.0, 0.5]]), jnp.array([0]))
model = mlp.MLP(hidden=(8,), num_outputs=3)
x = jnp.ones((2, 4))
print(float(loss[0]), jax.jit(model.apply)(model.init(jax.random.key(0), x), x).shape)
try:
  import dlx.train
except ImportError as e:
  print("trainer:", e)
"""


def _size_mb(path: pathlib.Path) -> float:
  return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


@pytest.mark.slow
def test_a_core_only_virtualenv_uses_the_library_without_tensorflow(tmp_path):
  venv = tmp_path / "core"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
  python = venv / "bin" / "python"
  install = subprocess.run(
    [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(conftest.REPO)],
    capture_output=True,
    text=True,
    timeout=1800,
  )
  assert install.returncode == 0, install.stderr[-3000:]
  done = subprocess.run(
    [str(python), "-c", CHECK],
    cwd=tmp_path,
    env=conftest.subprocess_env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  first, trainer = done.stdout.strip().splitlines()
  assert first.endswith("(2, 3)")
  assert "pip install 'dlx[train]'" in trainer
  print(f"core-only virtualenv: {_size_mb(venv):.0f} MB")  # README's install sizes
