"""A real `python -m dlx.main` run with --config.loggers=tensorboard,wandb,mlflow (W&B
offline, MLflow's default file store in the workdir), killed with SIGKILL after a
checkpoint once W&B holds rows the checkpoint does not, and relaunched: the W&B and
MLflow runs it continues hold each point of metrics.jsonl once, with its value, and the
results and the loss curve."""

import collections
import json
import os
import signal
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from dlx.training import metric_writers
from dlx.training import relaunch
from dlx.training import trackers
from tests import conftest

# mlp_xor trains about 2,000 steps a second: the kill comes after the checkpoint at step
# 3000 and before the one at 6000.
RUN = {
  "num_train_steps": 7000,
  "checkpoint_every_steps": 3000,
  "log_every_steps": 100,
  "eval_every_steps": 500,
  "loggers": "tensorboard,wandb,mlflow",
}


def _command(workdir):
  flags = [f"--config.{k}={v}" for k, v in RUN.items()]
  return [sys.executable, "-m", "dlx.main", "--config=mlp_xor", f"--workdir={workdir}", *flags]


def _env(tmp_path):
  return conftest.subprocess_env(
    WANDB_MODE="offline",
    WANDB_SILENT="true",
    WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"),
    # wandb writes its .wandb file every 15 s by default, so a kill loses the rows since;
    # more often here, so that the killed run's file holds rows the relaunch logs again.
    WANDB__TRANSACTION_LOG_FLUSH_INTERVAL="0.1",
  )


def _wandb_steps(workdir):
  saved = relaunch.read_json(workdir / trackers.TRACKERS_FILE) or {}
  if "wandb" not in saved:
    return []
  return [row["_step"] for row in trackers.wandb_history(str(workdir), saved["wandb"]["run_id"])]


def _kill_once_wandb_holds_rows_after_a_checkpoint(proc, workdir, timeout=120):
  """SIGKILLs the run once its W&B file holds a row after its newest checkpoint; returns
  the newest W&B step it held."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert proc.poll() is None, "the run ended before it was killed"
    checkpoints = workdir / "checkpoints"
    saved = conftest.checkpoint_steps(checkpoints) if checkpoints.is_dir() else []
    steps = _wandb_steps(workdir) if saved else []
    if steps and max(steps) > max(saved):
      os.kill(proc.pid, signal.SIGKILL)
      proc.wait(timeout=30)
      return max(steps)
    time.sleep(0.02)
  raise AssertionError(f"W&B held no row after a checkpoint within {timeout} s")


def _expected(workdir):
  rows = metric_writers.read_metrics(workdir)
  points = [
    ((f"{r['split']}/{k}", r["step"]), v)
    for r in rows
    for k, v in r.items()
    if k not in ("step", "split")
  ]
  assert len(points) == len(dict(points))  # metrics.jsonl has each point once
  return dict(points)


def _wandb_points(workdir, run_id, splits):
  counts, values = collections.Counter(), {}
  for row in trackers.wandb_history(str(workdir), run_id):
    for key, value in row.items():
      if key.split("/")[0] in splits:
        counts[key, row["_step"]] += 1
        values[key, row["_step"]] = value
  return counts, values


def _mlflow_points(client, run_id):
  counts, values = collections.Counter(), {}
  for key in client.get_run(run_id).data.metrics:
    if not key.startswith("results."):
      for metric in client.get_metric_history(run_id, key):
        counts[key, metric.step] += 1
        values[key, metric.step] = metric.value
  return counts, values


def test_a_killed_and_relaunched_run_reaches_each_tracker_once(tmp_path, monkeypatch):
  monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read MLflow's file store here
  workdir = tmp_path / "run"
  with open(tmp_path / "first.out", "w") as out:
    proc = subprocess.Popen(
      _command(workdir), cwd=conftest.REPO, env=_env(tmp_path), stdout=out, stderr=out
    )
  try:
    held = _kill_once_wandb_holds_rows_after_a_checkpoint(proc, workdir)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  first = json.loads((workdir / trackers.TRACKERS_FILE).read_text())

  done = subprocess.run(
    _command(workdir), cwd=conftest.REPO, env=_env(tmp_path), capture_output=True, text=True
  )
  assert done.returncode == 0, done.stderr[-3000:]
  resumed = int(done.stderr.split("resuming from step ")[1].split()[0])
  assert 0 < resumed < held  # the relaunch logged again steps W&B already held
  assert json.loads((workdir / trackers.TRACKERS_FILE).read_text()) == first

  expected = _expected(workdir)
  splits = {key.split("/")[0] for key, _ in expected}
  assert {"train", "validation", "final_test"} <= splits
  assert max(step for _, step in expected) == RUN["num_train_steps"]

  run_id = first["wandb"]["run_id"]
  assert len(list((workdir / "wandb").glob(f"offline-run-*-{run_id}*"))) == 2
  counts, values = _wandb_points(workdir, run_id, splits)
  assert values == expected
  assert [p for p, n in counts.items() if n > 1] == []
  rows = trackers.wandb_history(str(workdir), run_id)
  assert any("figures/loss_curve/_type" in row for row in rows)

  client = MlflowClient(first["mlflow"]["tracking_uri"])
  run = client.get_run(first["mlflow"]["run_id"])
  counts, values = _mlflow_points(client, run.info.run_id)
  assert values == expected
  assert [p for p, n in counts.items() if n > 1] == []
  assert run.info.status == "FINISHED" and run.info.run_name == "run"
  results = json.loads((workdir / "results.json").read_text())
  assert run.data.metrics["results.test.loss"] == results["test"]["loss"]
  assert run.data.params["loggers"] == RUN["loggers"]
  assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == [
    "figures/loss_curve.png"
  ]
  assert len(client.search_runs([run.info.experiment_id])) == 1
