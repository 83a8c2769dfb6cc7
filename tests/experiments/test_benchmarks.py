"""The benchmark scripts run end to end (a few steps; their numbers are not asserted)."""

import json
import math
import subprocess
import sys

import pytest

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


def test_train_loop_benchmark_runs(tmp_path):
  out = tmp_path / "loop.json"
  done = _run(
    "benchmarks/train_loop.py",
    "--only=mlp_xor",
    "--steps=30",
    "--log_every=10",
    "--repeats=3",
    "--rounds=2",
    f"--json={out}",
  )
  (row,) = json.loads(out.read_text())["rows"]
  assert row["experiment"] == "mlp_xor" and row["intervals"] == 2  # the first is dropped
  assert row["rounds"] == 2
  assert row["step_ms"] > 0 and row["loop_ms"] > 0
  assert "| mlp_xor |" in done.stdout


def test_checkpoint_stall_benchmark_runs(tmp_path):
  out = tmp_path / "stall.json"
  _run("benchmarks/checkpoint_stall.py", "--params_millions=0.2", "--steps=3", f"--json={out}")
  rows = json.loads(out.read_text())
  assert [r["mode"] for r in rows] == ["sync", "async"]
  for row in rows:
    assert row["save_call_s"] > 0 and row["written_s"] > 0 and row["step_alone_ms"] > 0


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


def test_input_pipeline_benchmark_runs(tfds_dir, tmp_path):
  out = tmp_path / "input.json"
  args = [
    f"--data_dir={tfds_dir}",
    f"--array_record_dir={tmp_path / 'array_record'}",
    "--examples=256",
    "--batch_size=8",
    "--steps=2",
    "--warmup=1",
    "--workers=0",
    f"--out={out}",
  ]
  done = subprocess.run(
    [sys.executable, "benchmarks/input_pipeline.py", *args],
    cwd=conftest.REPO,
    env=conftest.subprocess_env(DLX_CACHE_DIR=str(tmp_path / "cache")),  # not ~/.cache
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  rows = {row["pipeline"]: row for row in json.loads(out.read_text())}
  assert set(rows) == {"memory", "grain/memory", "grain/stream, 0 workers", "grain/examples"}
  assert all(row["examples_per_s"] > 0 for row in rows.values())
  assert rows["memory"]["fed_step_ms"] > 0 and "examples/s" in done.stdout


SIDE_BY_SIDE = ("lenet5", "mlp", "resnet18", "transformer_block", "gpt_nanogpt_cpu")
SIDE_BY_SIDE_KEYS = {"benchmark", "dlx_ms", "reference", "reference_ms", "ratio"}


@pytest.mark.slow  # 30 s; kept out of the fast suite's 15-minute budget
@pytest.mark.torch
def test_side_by_side_benchmark_runs(tmp_path):
  pytest.importorskip("torch")
  out = tmp_path / "side_by_side.json"
  # One torch thread: under the parallel test suite two threads only fight for the cores.
  done = _run("benchmarks/side_by_side.py", "--tiny", "--threads=1", f"--json={out}")
  rows = json.loads(out.read_text())
  assert [row["benchmark"] for row in rows] == list(SIDE_BY_SIDE)
  for row in rows:
    assert SIDE_BY_SIDE_KEYS <= set(row), sorted(SIDE_BY_SIDE_KEYS - set(row))
    assert row["dlx_ms"] > 0 and row["reference_ms"] > 0, row
    assert row["ratio"] == pytest.approx(row["reference_ms"] / row["dlx_ms"])
    assert row["reference"].startswith("pytorch")
    assert row["dlx_params"] == row["reference_params"], row["benchmark"]
  assert "| benchmark | dlx ms | reference | reference ms | ratio |" in done.stdout


@pytest.mark.slow  # a subprocess per flag set; the fast suite's budget is 15 minutes
def test_xla_cpu_flags_benchmark_reports_each_set(tmp_path):
  pytest.importorskip("torch")
  out = tmp_path / "flags.json"
  _run(
    "benchmarks/xla_cpu_flags.py",
    "--only=mlp",
    "--repeats=2",
    "--tiny",
    "--flags",
    "default=",
    "bogus=--xla_cpu_no_such_flag=true",
    f"--json={out}",
  )
  rows = {row["flags"]: row for row in json.loads(out.read_text())}
  assert rows["default"]["benchmark"] == "mlp" and rows["default"]["dlx_ms"] > 0
  assert "failed" in rows["bogus"]  # an unknown flag is reported, not skipped


@pytest.mark.slow  # 30 s; kept out of the fast suite's 15-minute budget
def test_gpu_script_dry_run(tmp_path):
  done = subprocess.run(
    ["bash", "benchmarks/gpu.sh", "--dry_run", f"--out={tmp_path}"],
    cwd=conftest.REPO,
    env=conftest.subprocess_env(PYTHON=sys.executable),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  assert "DRY RUN" in done.stdout and "jax " in done.stdout
  gpt = json.loads((tmp_path / "gpt_small.json").read_text())
  assert gpt["tokens_per_s"] > 0 and gpt["mfu"] is not None and gpt["precision"]
  rows = json.loads((tmp_path / "side_by_side.json").read_text())
  assert [row["benchmark"] for row in rows] == ["lenet5", "resnet18"]


@pytest.mark.slow  # compile-bound (15-20 s); its parts have fast tests
def test_sharded_step_benchmark_runs(tmp_path):
  out = tmp_path / "sharded.json"
  _run(
    "benchmarks/sharded_step.py",
    "--meshes",
    "2,1,1",
    "1,2,1",
    "--cpu_devices=2",
    "--layers=1",
    "--features=64",
    "--heads=2",
    "--context=16",
    "--batch_size=4",
    "--repeats=2",
    "--warmup=1",
    f"--json={out}",
  )
  rows = json.loads(out.read_text())
  assert [r["mesh"] for r in rows] == ["2,1,1", "1,2,1"]
  assert rows[1]["param_bytes_per_device"] < rows[0]["param_bytes_per_device"]


@pytest.mark.slow  # compile-bound (15-20 s); its parts have fast tests
def test_local_attention_benchmark_runs(tmp_path):
  out = tmp_path / "local_attention.json"
  _run("benchmarks/local_attention.py", "--tiny", f"--json={out}")
  rows = json.loads(out.read_text())
  assert [(r["context"], r["window"]) for r in rows] == [(32, None), (32, 8), (48, None), (48, 8)]
  for row in rows:
    assert row["median_ms"] > 0 and math.isfinite(row["validation_loss"])
  assert rows[1]["speedup"] > 0 and "validation_loss_gap" in rows[3]
