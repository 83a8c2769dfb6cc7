"""Choosing the route: --config.cpu_kernels, the fallback when the extension is absent,
and what a real run records in results.json."""

import json
import subprocess
import sys

from jax import lax
import jax.numpy as jnp
import pytest

from dlx import errors
from dlx import experiment
from dlx import train
from dlx.kernels import conv
from dlx.kernels import onednn
from dlx.kernels import route
from tests import conftest


@pytest.fixture
def hidden(monkeypatch):
  """The extension hidden (DLX_NO_ONEDNN=1), as on a machine without oneDNN."""
  monkeypatch.setenv("DLX_NO_ONEDNN", "1")
  onednn.reset_for_tests()
  yield
  monkeypatch.delenv("DLX_NO_ONEDNN")
  onednn.reset_for_tests()


def test_auto_takes_onednn_on_one_cpu_device_only(extension):
  assert route.resolve("auto", "cpu", 1) == "onednn"
  assert route.resolve("auto", "cpu", 4) == "xla"  # meshes over forced CPU devices
  assert route.resolve("auto", "gpu", 1) == "xla"
  assert route.resolve("xla", "cpu", 1) == "xla"
  assert route.resolve("onednn", "cpu", 4) == "onednn"


def test_bad_settings_are_one_line_errors(extension):
  with pytest.raises(errors.ConfigError, match="choose one of auto, onednn, xla"):
    route.resolve("mkl", "cpu", 1)
  with pytest.raises(errors.ConfigError, match="CPU only; this backend is tpu"):
    route.resolve("onednn", "tpu", 1)


def test_without_the_extension_auto_falls_back_and_onednn_says_how_to_build(hidden):
  assert route.resolve("auto", "cpu", 1) == "xla"
  with pytest.raises(errors.ConfigError) as raised:
    route.resolve("onednn", "cpu", 1)
  message = str(raised.value)
  assert "\n" not in message and "DLX_NO_ONEDNN" in message and onednn.BUILD_HINT in message
  with pytest.raises(RuntimeError, match="hidden by DLX_NO_ONEDNN"):
    with route.use("onednn"):
      pass


def test_without_the_extension_convolutions_are_xla(hidden):
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  spec = ("NHWC", "HWIO", "NHWC")
  y = conv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=spec)
  assert (y == lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=spec)).all()
  assert route.current() == "xla"


def test_a_missing_build_says_how_to_build(monkeypatch, tmp_path):
  monkeypatch.delenv("DLX_NO_ONEDNN", raising=False)  # not hidden: absent
  monkeypatch.setenv("DLX_KERNELS_DIR", str(tmp_path))
  onednn.reset_for_tests()
  try:
    assert onednn.load() is None
    assert onednn.missing().startswith("not built")
  finally:
    monkeypatch.delenv("DLX_KERNELS_DIR")
    onednn.reset_for_tests()


def test_without_the_extension_a_smoke_run_takes_xla(tmp_path, hidden):
  exp = experiment.load("lenet5_mnist")
  config = exp.config("smoke")
  assert config.cpu_kernels == "auto"
  results = train.train_and_evaluate(config, str(tmp_path), experiment=exp)
  assert results["cpu_kernels"] == "xla"
  assert json.loads((tmp_path / "results.json").read_text())["cpu_kernels"] == "xla"
  assert route.current() == "xla"


def test_the_command_line_flag_runs_onednn(tmp_path, extension):
  command = [
    sys.executable,
    "-m",
    "dlx.main",
    "--config=lenet5_mnist:smoke",
    f"--workdir={tmp_path}",
    "--config.cpu_kernels=onednn",
  ]
  done = subprocess.run(command, capture_output=True, text=True, env=conftest.subprocess_env())
  assert done.returncode == 0, done.stderr[-2000:]
  assert json.loads((tmp_path / "results.json").read_text())["cpu_kernels"] == "onednn"
  assert done.stderr.count("convolutions, matrix products, GELU, layer norm, softmax: oneDNN") == 1
