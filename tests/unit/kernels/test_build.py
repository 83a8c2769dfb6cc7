"""Building the extension from nothing, as on a fresh checkout (slow: a full compile)."""

import os
import subprocess
import sys

import pytest

from dlx.kernels import onednn
from tests import conftest

_CHECK = """
import jax, jax.numpy as jnp
from jax import lax
from dlx.kernels import conv, onednn, route
assert str(onednn.library_path()).startswith(onednn.build_dir().as_posix())
x, w = jnp.ones((2, 6, 6, 3)), jnp.ones((3, 3, 3, 4))
spec = ("NHWC", "HWIO", "NHWC")
def f(x, w):
  return conv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=spec)
with route.use("onednn"):
  assert "dlx_onednn_conv" in str(jax.make_jaxpr(f)(x, w))
  y = jax.jit(f)(x, w)
assert jnp.allclose(y, lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=spec))
print("ok")
"""


@pytest.mark.slow
def test_builds_into_an_empty_directory_and_runs(tmp_path):
  missing = onednn.source_missing()
  if missing:
    pytest.skip(f"oneDNN source absent: {missing}")
  env = conftest.subprocess_env(DLX_KERNELS_DIR=str(tmp_path / "kernels"))
  built = subprocess.run(
    [sys.executable, "-m", "dlx.kernels.onednn"], capture_output=True, text=True, env=env
  )
  assert built.returncode == 0, built.stderr
  path = built.stdout.strip()
  assert os.path.dirname(path) == str(tmp_path / "kernels") and os.path.isfile(path)
  again = subprocess.run(
    [sys.executable, "-m", "dlx.kernels.onednn"], capture_output=True, text=True, env=env
  )
  assert again.stdout.strip() == path and os.listdir(tmp_path / "kernels") == [
    os.path.basename(path)
  ]  # no rebuild, no stray files
  run = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, env=env)
  assert run.stdout.strip() == "ok", run.stderr[-2000:]
