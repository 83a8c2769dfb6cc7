"""The benchmark scripts run end to end (a few steps; their numbers are not asserted)."""

import json
import subprocess
import sys

from tests import conftest


def _run(*args):
  done = subprocess.run(
    [sys.executable, *args],
    cwd=conftest.REPO,
    env=conftest.subprocess_env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  return done


def test_train_step_benchmark_runs(tmp_path):
  out = tmp_path / "results.json"
  _run(
    "benchmarks/train_step.py",
    "--repeats=2",
    "--warmup=1",
    "--batch_size=8",
    "--models=mlp",
    f"--out={out}",
  )
  results = json.loads(out.read_text())
  assert results, "no results written"


def test_cpu_kernels_benchmark_runs():
  done = _run("benchmarks/cpu_kernels.py", "--repeats=1", "--batch_size=2")
  assert "speed-up" in done.stdout


def test_int8_inference_benchmark_runs(tmp_path):
  out = tmp_path / "int8.json"
  done = _run(
    "benchmarks/int8_inference.py",
    "--repeats=1",
    "--warmup=1",
    "--batch_size=4",
    "--models=lenet5_mnist",
    f"--out={out}",
  )
  (row,) = json.loads(out.read_text())
  assert row["model"] == "lenet5_mnist" and row["int8_bytes"] < row["float_bytes"]
  assert "float / int8" in done.stdout
