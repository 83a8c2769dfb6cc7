"""Experiment trackers that `--config.loggers` turns on beside TensorBoard and
metrics.jsonl: Weights & Biases (`wandb`) and MLflow (`mlflow`); docs/tracking.md.

`MetricWriter` (dlx/training/metric_writers.py) opens them with its files and calls the
`Tracker` methods on process 0: the rows of metrics.jsonl as `split/name` scalars at their
step, the config, results.json's content and the run's PNG figures. A relaunch continues
the same tracker run (its id is kept in WORKDIR/trackers.json). Each tracker knows which
(key, step) points its run already holds and skips them, so the rows a killed run sent
after its last checkpoint, which the resumed run logs again, arrive once; the rows it
lacks (a kill loses what wandb had not flushed) are sent again from metrics.jsonl. Each
backend's package is imported only when it is chosen.
"""

import glob
import importlib
import json
import os
import struct
import time
import urllib.parse
import zlib

from absl import logging

from dlx import optional_deps
from dlx.training import relaunch

TRACKERS_FILE = "trackers.json"
# The trackers, by logger name, and the package each imports.
PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}


def require(loggers):
  """Raises ImportError naming the extra when a chosen tracker's package is missing."""
  for name in loggers:
    if name in PACKAGES:
      optional_deps.require(f"--config.loggers={name}", PACKAGES[name])


def open_trackers(loggers, workdir: str, experiment: str) -> list:
  """The chosen trackers' runs, new or continued; their ids go to WORKDIR/trackers.json.
  One that cannot start (its server is down, its store unusable) is left out with a
  warning: a tracker never stops training, and a relaunch sends it what it lacks."""
  path = os.path.join(workdir, TRACKERS_FILE)
  saved = relaunch.read_json(path) or {}
  opened = []
  for name in loggers:
    if name not in PACKAGES:
      continue
    try:
      tracker = _BACKENDS[name](workdir, experiment, saved.get(name) or {})
    except ImportError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("%s: not started, so not sent this run (%s: %s)", name, type(e).__name__, e)
      continue
    opened.append(tracker)
    saved[name] = tracker.ids
    relaunch.write_json_atomic(path, saved, indent=2, sort_keys=True)
  return opened


class Tracker:
  """One backend's run. `ids` is what trackers.json keeps to continue it; the points
  (key, step) in `_held`, and with W&B online every step before `_before`, are already in
  the run and are not sent again."""

  name = ""

  def __init__(self):
    self.ids = {}
    self._held = set()
    self._before = 0
    self._step = 0  # the last step written: where the figures go

  def _new(self, step: int, scalars: dict) -> dict:
    self._step = max(self._step, step)
    if step < self._before:
      return {}
    return {k: v for k, v in scalars.items() if (k, step) not in self._held}

  def write_scalars(self, step: int, scalars: dict):
    raise NotImplementedError

  def write_config(self, config: dict):
    raise NotImplementedError

  def write_results(self, results: dict):
    raise NotImplementedError

  def write_images(self, paths: list[str]):
    raise NotImplementedError

  def close(self, finished: bool):
    raise NotImplementedError


def _import(name: str):
  try:
    return importlib.import_module(name)
  except ModuleNotFoundError as e:
    raise optional_deps.missing(e, f"--config.loggers={name}") from None


def _results(results: dict) -> dict:
  """results.json's content as flat `results.a.b` keys."""
  return {f"results.{k}": v for k, v in relaunch.flatten(results).items()}


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


class WandbTracker(Tracker):
  """A W&B run: project = the experiment (or WANDB_PROJECT), name = the workdir's name,
  files in WORKDIR/wandb. Scalars go to the history at their step (the splits of one step
  share its row), results to the summary, figures to the history as `figures/NAME`."""

  name = "wandb"

  def __init__(self, workdir: str, experiment: str, saved: dict):
    super().__init__()
    wandb = _import("wandb")
    run_id = saved.get("run_id")
    if run_id:  # the points earlier offline segments hold (uploaded by `wandb sync`)
      self._held = {(key, row["_step"]) for row in wandb_history(workdir, run_id) for key in row}
    self._image = wandb.Image
    self.run = wandb.init(
      project=os.environ.get("WANDB_PROJECT") or experiment,
      name=os.path.basename(workdir),
      id=run_id,
      resume="allow",
      dir=workdir,
      mode=_wandb_mode(wandb, workdir),
      reinit="create_new",  # never finishes another run of this process
    )
    # Online, a resumed run's server holds every step before this one (0 offline).
    self._before = self.run.starting_step or 0
    self.ids = {"run_id": self.run.id}

  def write_scalars(self, step, scalars):
    new = self._new(step, scalars)
    if new:
      self.run.log(new, step=step)

  def write_config(self, config):
    self.run.config.update(config, allow_val_change=True)  # a relaunch may change fields

  def write_results(self, results):
    self.run.summary.update(_results(results))

  def write_images(self, paths):
    images = {f"figures/{_stem(p)}": self._image(p) for p in paths}
    if images:
      self.run.log(images, step=max(self._step, self._before))

  def close(self, finished):
    self.run.finish(exit_code=0 if finished else 1)
    # finish() can return before wandb-core has written the run's file, which a relaunch
    # in this process reads: wait for its exit record (moments; 30 s at most).
    path, deadline = self.run.settings.sync_file, time.time() + 30
    while path and os.path.exists(path) and time.time() < deadline:
      if any(r.WhichOneof("record_type") == "exit" for r in wandb_records(path)):
        return
      time.sleep(0.05)


def _wandb_mode(wandb, workdir: str):
  """None (wandb's own choice) unless W&B would go online with no API key: wandb.init
  would then stop at a login prompt (or fail without a terminal), so the run logs
  offline and says how to upload it later."""
  if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled") or wandb.run is not None:
    return None
  if wandb.login(prompt=False, verify=False):
    return None
  logging.warning(
    "wandb: no API key (WANDB_API_KEY or `wandb login`), so this run logs offline to "
    "%s/wandb; upload it with `wandb sync %s/wandb/offline-run-*`, or set "
    "WANDB_MODE=offline to choose offline",
    workdir,
    workdir,
  )
  return "offline"


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


# .wandb files are LevelDB logs: 32 KiB blocks of records, each with a 7-byte header
# (CRC-32 of type and data, length, type); a record too long for its block is split.
_WANDB_MAGIC = b":W&B\xe1\xbe\x00"
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def wandb_records(path: str):
  """The protobuf records (`wandb.proto.wandb_internal_pb2.Record`) of a .wandb file, in
  order, up to a torn end (a killed run's last write). wandb 0.31 ships no Python reader
  of these files, only the protobufs."""
  from wandb.proto import wandb_internal_pb2  # pylint: disable=g-import-not-at-top

  with open(path, "rb") as f:
    data = f.read()
  if not data.startswith(_WANDB_MAGIC):
    raise ValueError(f"{path} is not a .wandb file")
  position, parts = len(_WANDB_MAGIC), []
  while position + 7 <= len(data):
    left = _BLOCK - position % _BLOCK
    if left < 7:  # a block's tail too short for a header is padding
      position += left
      continue
    crc, length, kind = struct.unpack_from("<IHB", data, position)
    chunk = data[position + 7 : position + 7 + length]
    if kind == 0 or len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) != crc:
      return
    position += 7 + length
    parts = [chunk] if kind in (_FULL, _FIRST) else parts + [chunk]
    if kind in (_FULL, _LAST):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(b"".join(parts))
      yield record


def wandb_history(workdir: str, run_id: str) -> list[dict]:
  """The history rows ({key: value}, with `_step`) of W&B run `run_id`'s offline segments
  in WORKDIR/wandb (one per launch), oldest first."""
  pattern = os.path.join(glob.escape(workdir), "wandb", "offline-run-*", f"run-{run_id}.wandb")
  rows = []
  for path in sorted(glob.glob(pattern)):
    for record in wandb_records(path):
      if record.WhichOneof("record_type") == "history":
        rows.append(
          {
            item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for item in record.history.item
          }
        )
  return rows


class MlflowTracker(Tracker):
  """An MLflow run in experiment = the dlx experiment (or MLFLOW_EXPERIMENT_NAME), named
  after the workdir. The store is MLFLOW_TRACKING_URI, else the one the run started in,
  else `file:WORKDIR/mlruns`. Scalars are metrics at their step, the config params (and
  the artifact config.json), numeric results metrics at the final step and the others
  tags, figures artifacts in figures/."""

  name = "mlflow"

  def __init__(self, workdir: str, experiment: str, saved: dict):
    super().__init__()
    _import("mlflow")
    from mlflow import entities  # pylint: disable=g-import-not-at-top
    from mlflow.tracking import MlflowClient  # pylint: disable=g-import-not-at-top

    self._entities = entities
    uri = (
      os.environ.get("MLFLOW_TRACKING_URI")
      or saved.get("tracking_uri")
      or "file:" + os.path.join(os.path.abspath(workdir), "mlruns")
    )
    if urllib.parse.urlparse(uri).scheme in ("", "file"):
      # MLflow 3 refuses its file store unless this is set; no server or database needed.
      os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    self.client = MlflowClient(tracking_uri=uri)
    run = self._continued(saved.get("run_id"), uri)
    if run is None:
      run = self.client.create_run(
        self._experiment_id(os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment),
        run_name=os.path.basename(workdir),
        tags={"dlx.workdir": os.path.abspath(workdir)},
      )
    self.run_id = run.info.run_id
    self.ids = {"run_id": self.run_id, "tracking_uri": uri}
    self._params = dict(run.data.params)
    self._held = {
      (key, metric.step)
      for key in run.data.metrics
      for metric in self.client.get_metric_history(self.run_id, key)
    }

  def _continued(self, run_id, uri):
    from mlflow.exceptions import MlflowException  # pylint: disable=g-import-not-at-top

    if not run_id:
      return None
    try:
      run = self.client.get_run(run_id)
    except MlflowException:
      run = None
    if run is None or run.info.lifecycle_stage == "deleted":
      logging.warning("mlflow: run %s is not in %s; starting a new run", run_id, uri)
      return None
    self.client.update_run(run_id, status="RUNNING")
    return run

  def _experiment_id(self, name: str) -> str:
    from mlflow.exceptions import MlflowException  # pylint: disable=g-import-not-at-top

    found = self.client.get_experiment_by_name(name)
    if found is None:
      try:
        return self.client.create_experiment(name)
      except MlflowException:  # another run created it meanwhile
        found = self.client.get_experiment_by_name(name)
        if found is None:
          raise
    return found.experiment_id

  def _log(self, step=0, metrics=None, params=(), tags=()):
    now = int(time.time() * 1000)
    metrics = [
      self._entities.Metric(k, float(v), now, int(step)) for k, v in (metrics or {}).items()
    ]
    self.client.log_batch(self.run_id, metrics=metrics, params=params, tags=tags, synchronous=True)

  def write_scalars(self, step, scalars):
    new = self._new(step, scalars)
    if new:
      self._log(step, new)

  def write_config(self, config):
    # Params never change once logged; a relaunch's changed fields (config_changes.jsonl
    # records them) are in config.json, rewritten each launch.
    params = [
      self._entities.Param(k, _text(v, 6000))
      for k, v in relaunch.flatten(config).items()
      if k not in self._params
    ]
    if params:
      self._log(params=params)
    self.client.log_dict(self.run_id, config, "config.json")

  def write_results(self, results):
    flat = _results(results)
    step = results.get("step", self._step)
    numbers = {k: v for k, v in flat.items() if _is_number(v)}
    tags = [self._entities.RunTag(k, _text(v, 8000)) for k, v in flat.items() if k not in numbers]
    self._log(step, self._new(step, numbers), tags=tags)

  def write_images(self, paths):
    for path in paths:
      self.client.log_artifact(self.run_id, path, artifact_path="figures")

  def close(self, finished):
    self.client.set_terminated(self.run_id, status="FINISHED" if finished else "KILLED")


def _text(value, limit: int) -> str:
  text = value if isinstance(value, str) else json.dumps(value, default=str)
  return text[:limit]


_BACKENDS = {"wandb": WandbTracker, "mlflow": MlflowTracker}
