"""The experiment trackers (dlx/training/trackers.py) with the real libraries, offline: what
MetricWriter sends to W&B (an offline run, read back from its .wandb files) and to MLflow
(a file store, read back with MlflowClient) equals metrics.jsonl, each point once, across
relaunches; the config, results and figures arrive; without an API key W&B logs offline
instead of prompting; a bad logger name and a missing package are one line each."""

import collections
import json
import sys

from absl import logging as absl_logging
from mlflow.tracking import MlflowClient
from PIL import Image
import pytest
import wandb

from dlx import config as config_lib
from dlx import errors
from dlx.training import metric_writers
from dlx.training import trackers

SPLITS = ("train", "validation")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.setenv("WANDB_SILENT", "true")
  monkeypatch.setenv("WANDB_DIR", str(tmp_path))
  monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
  monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
  monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # the tracker sets it
  yield
  wandb.teardown()  # wandb's settings are read once per service: each test starts its own


def _config(loggers):
  config = config_lib.base_config()
  config.experiment = "tracked"
  config.loggers = loggers
  return config


def _metrics(step, split):
  return {"loss": 1.0 / step + len(split), "accuracy": step / 100}


def _launch(workdir, loggers, steps, restart_from=None, results=None):
  """One launch: drops the rows after `restart_from` as a resumed run does, logs both
  splits at `steps`, then the results (a finished run) or nothing (a stopped one)."""
  if restart_from is not None:
    metric_writers.keep_rows_up_to(workdir, restart_from)
  writer = metric_writers.MetricWriter(str(workdir), _config(loggers))
  for step in steps:
    for split in SPLITS:
      writer.write(step, split, _metrics(step, split))
  if results is not None:
    writer.write(steps[-1], "final_test", {"loss": results["test"]["loss"]})
    writer.write_results(results)
    figure = workdir / "loss_curve.png"
    Image.new("RGB", (32, 24), "white").save(figure)
    writer.write_images([str(figure)])
  writer.close()


def _expected(workdir):
  """{(split/name, step): value} of metrics.jsonl, checking no point is there twice."""
  rows = metric_writers.read_metrics(workdir)
  points = [
    ((f"{r['split']}/{k}", r["step"]), v)
    for r in rows
    for k, v in r.items()
    if k not in ("step", "split")
  ]
  assert len(points) == len(dict(points))
  return dict(points)


def _ids(workdir):
  return json.loads((workdir / trackers.TRACKERS_FILE).read_text())


def _wandb_points(workdir):
  """{(key, step): value} of the W&B run's history over all its offline segments, and
  how often each point was logged."""
  counts, values = collections.Counter(), {}
  for row in trackers.wandb_history(str(workdir), _ids(workdir)["wandb"]["run_id"]):
    for key, value in row.items():
      if key.split("/")[0] in (*SPLITS, "final_test"):
        counts[key, row["_step"]] += 1
        values[key, row["_step"]] = value
  return counts, values


def _wandb_records(workdir, kind):
  """The items of every `kind` record (config, summary) of the W&B run, as one dict."""
  found = {}
  for path in sorted((workdir / "wandb").glob("offline-run-*/run-*.wandb")):
    for record in trackers.wandb_records(str(path)):
      if record.WhichOneof("record_type") == kind:
        items = getattr(record, kind).update
        found.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
  return found


def _mlflow(workdir):
  saved = _ids(workdir)["mlflow"]
  client = MlflowClient(saved["tracking_uri"])
  return client, client.get_run(saved["run_id"])


def _mlflow_points(workdir):
  client, run = _mlflow(workdir)
  counts, values = collections.Counter(), {}
  for key in run.data.metrics:
    for metric in client.get_metric_history(run.info.run_id, key):
      counts[key, metric.step] += 1
      values[key, metric.step] = metric.value
  return counts, values


RESULTS = {"step": 6, "experiment": "tracked", "stopped_early": False, "test": {"loss": 0.125}}


def test_metrics_config_results_and_figures_read_back(tmp_path):
  _launch(tmp_path, "wandb,mlflow", [2, 4, 6], results=RESULTS)
  expected = _expected(tmp_path)
  assert len(expected) == 3 * 4 + 1
  assert not list(tmp_path.glob("events.out.tfevents*"))  # tensorboard was not chosen

  counts, values = _wandb_points(tmp_path)
  assert values == expected and set(counts.values()) == {1}
  config = _wandb_records(tmp_path, "config")
  assert config["experiment"] == "tracked" and config["optimizer"]["name"] == "adam"
  summary = _wandb_records(tmp_path, "summary")
  assert summary["results.test.loss"] == 0.125 and summary["results.experiment"] == "tracked"
  rows = trackers.wandb_history(str(tmp_path), _ids(tmp_path)["wandb"]["run_id"])
  (image,) = [r for r in rows if "figures/loss_curve/_type" in r]
  assert image["_step"] == 6 and image["figures/loss_curve/width"] == 32

  counts, values = _mlflow_points(tmp_path)
  results = {p: values.pop(p) for p in list(values) if p[0].startswith("results.")}
  assert values == expected and set(counts.values()) == {1}
  assert results == {("results.test.loss", 6): 0.125, ("results.step", 6): 6}
  client, run = _mlflow(tmp_path)
  assert _ids(tmp_path)["mlflow"]["tracking_uri"] == "file:" + str(tmp_path / "mlruns")
  assert client.get_experiment(run.info.experiment_id).name == "tracked"
  assert run.info.run_name == tmp_path.name and run.info.status == "FINISHED"
  assert (
    run.data.params["optimizer.name"] == "adam" and run.data.params["loggers"] == "wandb,mlflow"
  )
  assert run.data.tags["results.experiment"] == "tracked"
  assert run.data.tags["results.stopped_early"] == "false"
  artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
  assert artifacts == {"figures/loss_curve.png"}


def test_relaunches_continue_the_runs_and_send_each_point_once(tmp_path):
  # A first launch without trackers; they are turned on at a relaunch and get its rows.
  _launch(tmp_path, "tensorboard", [2, 4])
  # Stopped after step 8 with its last checkpoint at 6: the relaunch logs 8 again.
  _launch(tmp_path, "tensorboard,wandb,mlflow", [6, 8], restart_from=4)
  first = _ids(tmp_path)
  _launch(tmp_path, "wandb,mlflow", [8, 10], restart_from=6, results={**RESULTS, "step": 10})
  assert _ids(tmp_path) == first  # the same W&B and MLflow runs
  assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 2

  expected = _expected(tmp_path)
  assert {step for _, step in expected} == {2, 4, 6, 8, 10}
  for counts, values in (_wandb_points(tmp_path), _mlflow_points(tmp_path)):
    values = {p: v for p, v in values.items() if not p[0].startswith("results.")}
    assert values == expected
    assert [p for p, n in counts.items() if n > 1] == []
  client, run = _mlflow(tmp_path)
  assert run.info.status == "FINISHED"
  assert len(client.search_runs([run.info.experiment_id])) == 1


def test_long_wandb_histories_read_back_across_blocks(tmp_path):
  """.wandb files are written in 32 KiB blocks; records split over two are joined."""
  tracker = trackers.WandbTracker(str(tmp_path), "tracked", {})
  rows = {
    step: {"train/loss": step / 7, "train/note": "x" * (step * 37 % 900)} for step in range(400)
  }
  for step, row in rows.items():
    tracker.write_scalars(step, row)
  tracker.close(finished=True)
  (path,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
  assert path.stat().st_size > 4 * 32768
  history = trackers.wandb_history(str(tmp_path), tracker.ids["run_id"])
  assert {r["_step"]: {k: r[k] for k in ("train/loss", "train/note")} for r in history} == rows


def test_wandb_without_an_api_key_logs_offline_instead_of_prompting(tmp_path, monkeypatch):
  monkeypatch.delenv("WANDB_MODE")
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
  warnings = []
  monkeypatch.setattr(absl_logging, "warning", lambda msg, *args: warnings.append(msg % args))
  tracker = trackers.WandbTracker(str(tmp_path), "tracked", {})
  tracker.write_scalars(1, {"train/loss": 0.5})
  tracker.close(finished=True)
  assert len(warnings) == 1 and "no API key" in warnings[0] and "wandb sync" in warnings[0]
  assert [
    r["train/loss"] for r in trackers.wandb_history(str(tmp_path), tracker.ids["run_id"])
  ] == [0.5]


def test_a_tracker_that_cannot_start_is_left_out_with_a_warning(tmp_path, monkeypatch):
  monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://nowhere")
  warnings = []
  monkeypatch.setattr(absl_logging, "warning", lambda msg, *args: warnings.append(msg % args))
  writer = metric_writers.MetricWriter(str(tmp_path), _config("mlflow"))
  writer.write(1, "train", {"loss": 1.0})
  writer.close()
  assert (
    len(warnings) == 1 and warnings[0].startswith("mlflow: not started") and "bogus" in warnings[0]
  )
  assert metric_writers.read_metrics(tmp_path) == [{"step": 1, "split": "train", "loss": 1.0}]
  assert not (tmp_path / trackers.TRACKERS_FILE).exists()


@pytest.mark.parametrize("value", ["tensorboard,neptune", "wandb,TensorBoard", "csv"])
def test_an_unknown_logger_is_one_line_listing_the_names(value):
  config = _config(value)
  with pytest.raises(errors.ConfigError) as raised:
    config_lib.validate(config, num_devices=1)
  message = str(raised.value)
  assert "\n" not in message and message.startswith(f"--config.loggers={value!r}: unknown")
  assert "tensorboard, jsonl, wandb, mlflow" in message


def test_logger_names_are_trimmed_and_each_kept_once(tmp_path):
  assert config_lib.loggers(_config(" jsonl, wandb,jsonl ,")) == ("jsonl", "wandb")
  assert config_lib.loggers(_config("")) == ()
  writer = metric_writers.MetricWriter(str(tmp_path), _config("jsonl"))
  writer.write(1, "train", {"loss": 1.0})
  writer.close()
  assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no tensorboard, no trackers


@pytest.mark.parametrize("logger, requirement", [("wandb", "wandb"), ("mlflow", "mlflow-skinny")])
def test_a_missing_package_names_its_extra(tmp_path, monkeypatch, logger, requirement):
  monkeypatch.setitem(sys.modules, logger, None)  # Python's way to make an import fail
  with pytest.raises(ImportError) as raised:
    metric_writers.MetricWriter(str(tmp_path), _config(f"tensorboard,{logger}"))
  message = str(raised.value)
  assert message.startswith(f"--config.loggers={logger} needs {requirement}, ")
  assert message.endswith(f"pip install 'dlx[{logger}]'") and "\n" not in message
  with pytest.raises(ImportError, match=rf"pip install 'dlx\[{logger}\]'"):  # the import itself
    trackers.open_trackers([logger], str(tmp_path), "tracked")
