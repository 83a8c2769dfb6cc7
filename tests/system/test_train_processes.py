"""dlx.train in real processes: a run killed with SIGKILL and relaunched, several forced
CPU devices in a fresh interpreter, and what a fresh interpreter imports. The in-process
tests of the trainer are tests/unit/test_train.py, whose helpers these reuse."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dlx import config as config_lib
from dlx import experiment as experiment_lib
from dlx import train
from tests import conftest
from tests.unit.test_train import REPO
from tests.unit.test_train import SPLITS
from tests.unit.test_train import _steps
from tests.unit.test_train import _train


def _main_cmd(workdir, arg=""):
  return [
    sys.executable,
    "-m",
    "dlx.main",
    f"--config=experiments/classic/mlp_xor.py{arg}",
    f"--workdir={workdir}",
    "--config.num_train_steps=3000",
    "--config.checkpoint_every_steps=100",
    "--config.eval_every_steps=1000",
    "--config.log_every_steps=500",
  ]


def _env():
  return conftest.subprocess_env()


def _sigkill_after_first_checkpoint(cmd, env, workdir):
  """Starts `cmd` and SIGKILLs it as soon as it has saved a checkpoint (within 120 s)."""
  proc = subprocess.Popen(
    cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  try:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
      if (workdir / "checkpoints").is_dir() and _steps(workdir / "checkpoints"):
        break
      time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


# A Stream's batches are a pure function of (seed, step), so it resumes exactly too
# (slow suite: the fast suite's 15-minute budget keeps the dataset and grain variants).
@pytest.mark.parametrize(
  "arg", ["", pytest.param(":stream", marks=pytest.mark.slow)], ids=["dataset", "stream"]
)
def test_sigkill_then_relaunch_matches_uninterrupted_run(tmp_path, arg):
  workdir = tmp_path / "killed"
  cmd = _main_cmd(workdir, arg)
  _sigkill_after_first_checkpoint(cmd, _env(), workdir)
  assert not (workdir / "results.json").exists()
  saved = _steps(workdir / "checkpoints")
  assert saved and max(saved) < 3000

  done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "resuming from step" in done.stderr
  with open(workdir / "results.json") as f:
    resumed = json.load(f)
  # The rows the killed run logged after its last checkpoint are not there twice.
  keys = [(r["split"], r["step"]) for r in conftest.read_jsonl(workdir / "metrics.jsonl")]
  assert len(keys) == len(set(keys))

  # The uninterrupted reference, in-process with the same configuration.
  mod = experiment_lib.load("mlp_xor")
  cfg = mod.config(arg.lstrip(":") or None)
  cfg.num_train_steps, cfg.checkpoint_every_steps = 3000, 100
  cfg.eval_every_steps, cfg.log_every_steps = 1000, 500
  reference = _train(tmp_path / "straight", cfg)
  assert resumed["step"] == reference["step"] == 3000
  for split in SPLITS:
    assert resumed[split] == reference[split]


_PARITY_SCRIPT = """
import json, sys, tempfile
import jax
from dlx import experiment, train
mod = experiment.load("mlp_xor")
out = {"devices": jax.device_count()}
for mode in ("mesh", "pmap"):
  cfg = mod.get_config(); cfg.experiment = "mlp_xor"; cfg.parallel = mode
  cfg.num_train_steps = 20; cfg.log_every_steps = 10; cfg.eval_every_steps = 10
  r = train.train_and_evaluate(cfg, tempfile.mkdtemp(), experiment=mod)
  out[mode] = {s: r[s] for s in ("test", "validation", "train")}
print("RESULTS " + json.dumps(out))
"""


def test_mesh_pmap_and_single_device_agree(tmp_path):
  env = conftest.subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
  done = subprocess.run(
    [sys.executable, "-c", _PARITY_SCRIPT],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  (line,) = [item for item in done.stdout.splitlines() if item.startswith("RESULTS ")]
  out = json.loads(line[len("RESULTS ") :])
  assert out["devices"] == 4
  single = _train(tmp_path, num_train_steps=20, eval_every_steps=10)
  for split in SPLITS:
    for metric, value in out["mesh"][split].items():
      np.testing.assert_allclose(
        out["pmap"][split][metric], value, rtol=1e-5, err_msg=f"{split}/{metric}"
      )
      np.testing.assert_allclose(
        single[split][metric], value, rtol=1e-5, err_msg=f"{split}/{metric}"
      )


def test_the_trainer_and_every_experiment_load_without_tensorflow():
  """TensorFlow (seconds and hundreds of MB to import) loads only when a tfds dataset is
  read; TensorBoard files are written without it (dlx.training.metric_writers.EventWriter)."""
  code = (
    "import sys; from dlx import experiment, main, train; "
    "[experiment.load(n) for n in experiment.available()]; "
    "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules))"
  )
  done = subprocess.run(
    [sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def mnist_array_record(tfds_dir, tmp_path_factory):
  """../shared/tfds's MNIST in ArrayRecord form (skips without the prepared data)."""
  from dlx.data import convert  # pylint: disable=g-import-not-at-top

  out = tmp_path_factory.mktemp("mnist_array_record")
  convert.convert("mnist", tfds_dir, str(out))
  return str(out)


# mlp_student_mnist at smoke width, streamed: small batches keep the decoding short.
GRAIN_MNIST = {
  "input_pipeline": "grain",
  "model.hidden": (32, 32),
  "batch_size": 16,
  "num_train_steps": 150,
  "checkpoint_every_steps": 30,
  "eval_every_steps": 75,
  "log_every_steps": 30,
  "eval_examples": 256,
  "train_eval_examples": 256,
}


@pytest.mark.slow  # the fast suite kills and resumes the dataset pipeline (15-min budget)
def test_grain_sigkill_then_relaunch_matches_uninterrupted_run(
  mnist_array_record, tmp_path, monkeypatch
):
  """MNIST streamed from ArrayRecord files through grain: killed with SIGKILL after its
  first checkpoint (the loader reading ahead), relaunched, it ends with the numbers of an
  uninterrupted run."""
  monkeypatch.setenv("DLX_CACHE_DIR", str(tmp_path / "cache"))
  workdir = tmp_path / "killed"
  flags = [f"--config.{k}={v}".replace(" ", "") for k, v in GRAIN_MNIST.items()]
  cmd = [
    sys.executable,
    "-m",
    "dlx.main",
    "--config=experiments/compression/mlp_student_mnist.py",
    f"--data_dir={mnist_array_record}",
    f"--workdir={workdir}",
    *flags,
  ]
  env = conftest.subprocess_env(DLX_CACHE_DIR=str(tmp_path / "cache"))
  _sigkill_after_first_checkpoint(cmd, env, workdir)
  saved = _steps(workdir / "checkpoints")
  assert saved and max(saved) < GRAIN_MNIST["num_train_steps"]
  assert not (workdir / "results.json").exists()

  done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "resuming from step" in done.stderr and "train streamed from disk" in done.stderr
  resumed = json.loads((workdir / "results.json").read_text())

  mod = experiment_lib.load("mlp_student_mnist")
  cfg = config_lib.override(mod.config(), **GRAIN_MNIST)
  reference = train.train_and_evaluate(
    cfg, str(tmp_path / "straight"), data_dir=mnist_array_record, experiment=mod
  )
  assert resumed["step"] == reference["step"] == GRAIN_MNIST["num_train_steps"]
  for split in SPLITS:
    assert resumed[split] == reference[split]


# Wide enough that writing a checkpoint (about 50 MB with Adam's moments) takes long
# enough to be caught half-written.
ASYNC_FLAGS = (
  "--config.checkpoint_async=True",
  "--config.model.hidden=(2048,2048)",
  "--config.num_train_steps=60",
  "--config.checkpoint_every_steps=20",
  "--config.eval_every_steps=60",
  "--config.log_every_steps=20",
)


def test_sigkill_during_an_asynchronous_save_never_restores_a_torn_checkpoint(tmp_path):
  """Killed while orbax's thread writes a checkpoint (its *.orbax-checkpoint-tmp folder
  on disk), the run leaves no checkpoint that restores wrong: the relaunch resumes from
  a complete one and ends as an uninterrupted run does."""
  workdir = tmp_path / "killed"
  cmd = [*_main_cmd(workdir)[:5], *ASYNC_FLAGS]
  proc = subprocess.Popen(
    cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  caught = False
  try:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
      checkpoints = workdir / "checkpoints"
      if checkpoints.is_dir() and any(
        "orbax-checkpoint-tmp" in p.name for p in checkpoints.iterdir()
      ):
        os.kill(proc.pid, signal.SIGKILL)
        caught = True
        break
      time.sleep(0.002)
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  assert caught, "the run ended before a save could be caught half-written"
  assert not (workdir / "results.json").exists()

  done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert not list((workdir / "checkpoints").glob("*orbax-checkpoint-tmp*"))
  resumed = json.loads((workdir / "results.json").read_text())

  mod = experiment_lib.load("mlp_xor")
  cfg = config_lib.override(
    mod.config(),
    **{"model.hidden": (2048, 2048), "num_train_steps": 60, "checkpoint_every_steps": 20},
    eval_every_steps=60,
    log_every_steps=20,
  )
  reference = _train(tmp_path / "straight", cfg)
  for split in SPLITS:
    assert resumed[split] == reference[split]
