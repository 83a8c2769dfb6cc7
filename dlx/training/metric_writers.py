"""Metric writers: console (absl logging), TensorBoard, `workdir/metrics.jsonl` and the
experiment trackers of `--config.loggers` (dlx/training/trackers.py); and `read_metrics`,
the one reader of metrics.jsonl (loss curves, reports, sweeps use it)."""

import contextlib
import json
import os
import socket
import time

from absl import logging
import jax
import jax.numpy as jnp
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer import record_writer

from dlx import config as config_lib
from dlx.training import relaunch
from dlx.training import trackers


class EventWriter:
  """Scalars as a TensorBoard event file (`events.out.tfevents.*`), written with
  TensorBoard's own protos and record writer: no TensorFlow import, which would cost
  seconds and hundreds of MB at every start (clu's writer imports it)."""

  def __init__(self, workdir):
    name = f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}"
    self._file = open(os.path.join(workdir, name), "ab")
    self._records = record_writer.RecordWriter(self._file)
    self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def _write(self, event):
    self._records.write(event.SerializeToString())

  def write_scalars(self, step: int, scalars: dict):
    values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
    self._write(
      event_pb2.Event(
        wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=values)
      )
    )
    self._file.flush()

  def close(self):
    self._file.close()


class MetricWriter:
  """Writes one JSON object per call to metrics.jsonl, always: {"step": ..., "split":
  ..., "<name>": ...}; and `{split}/{name}` scalars to TensorBoard and the trackers that
  `config.loggers` names (default: TensorBoard only), which also get the config, the
  results and the figures. Only process 0 writes."""

  def __init__(self, workdir, config=None, experiment: str = ""):
    self.enabled = jax.process_index() == 0
    self._loggers = ("tensorboard",) if config is None else config_lib.loggers(config)
    if self.enabled:
      trackers.require(self._loggers)  # a missing package: one line now, not at the first row
    self._config = config
    self._experiment = experiment or (config is not None and config.get("experiment")) or "dlx"
    # The files and trackers are opened at the first row: a run that stops before it (a
    # checkpoint that does not restore) leaves the workdir as it was, and a resumed run
    # first drops the rows logged after the checkpoint it restarts from (keep_rows_up_to).
    self._workdir = workdir
    self._tb = None
    self._jsonl = None
    self._trackers = []
    self._finished = False

  def _open(self):
    if "tensorboard" in self._loggers:
      self._tb = EventWriter(self._workdir)
    self._jsonl = open(os.path.join(self._workdir, "metrics.jsonl"), "a")
    self._trackers = trackers.open_trackers(self._loggers, self._workdir, self._experiment)
    if self._trackers:
      if self._config is not None:
        self._send("write_config", self._config.to_dict())
      # metrics.jsonl holds every row up to the step this run starts from: a tracker gets
      # those it lacks (a killed run's unflushed rows; all, when it is new to the run).
      for row in read_metrics(self._workdir):
        self._send("write_scalars", row["step"], row_scalars(row))

  def _send(self, method: str, *args):
    for tracker in list(self._trackers):
      try:
        getattr(tracker, method)(*args)
      except Exception as e:  # pylint: disable=broad-except
        # A tracker (its server, its disk) never stops training; a relaunch sends it the
        # rows it lacks.
        logging.warning(
          "%s: %s failed, no more is sent to it (%s: %s)", tracker.name, method, type(e).__name__, e
        )
        self._trackers.remove(tracker)
        if method != "close":
          with contextlib.suppress(Exception):
            tracker.close(False)

  def write(self, step: int, split: str, metrics: dict):
    scalars = {k: float(v) for k, v in metrics.items()}
    if not self.enabled:
      return
    if self._jsonl is None:
      self._open()
    if self._tb:
      self._tb.write_scalars(step, _tagged(split, scalars))
    self._jsonl.write(json.dumps({"step": int(step), "split": split, **scalars}) + "\n")
    self._jsonl.flush()
    self._send("write_scalars", int(step), _tagged(split, scalars))

  def write_results(self, results: dict):
    """results.json's content, to the trackers; the run then closes as finished."""
    if self.enabled:
      if self._jsonl is None:
        self._open()
      self._finished = True
      self._send("write_results", results)

  def write_images(self, paths):
    """PNG files (the loss curve, sample grids), to the trackers."""
    if self.enabled and paths:
      if self._jsonl is None:
        self._open()
      self._send("write_images", list(paths))

  def close(self):
    self._send("close", self._finished)
    self._trackers = []
    if self._tb:
      self._tb.close()
    if self._jsonl:
      self._jsonl.close()


def _tagged(split: str, scalars: dict) -> dict:
  return {f"{split}/{k}": v for k, v in scalars.items()}


def row_scalars(row: dict) -> dict:
  """A metrics.jsonl row's values as `{split}/{name}` scalars, the names every writer uses."""
  return _tagged(row["split"], {k: v for k, v in row.items() if k not in ("step", "split")})


def read_metrics(workdir_or_file, split: str | None = None) -> list[dict]:
  """The rows of a run's metrics.jsonl (a workdir or the file itself), in file order,
  only `split`'s when given; [] when there is no file. A line that is not a JSON object
  (what a kill or a full disk can leave at the end) is skipped with a warning."""
  path = str(workdir_or_file)
  if os.path.isdir(path):
    path = os.path.join(path, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        row = None
      if not isinstance(row, dict) or "split" not in row or "step" not in row:
        logging.warning("%s:%d: skipping a torn or malformed line", path, number)
        continue
      if split is None or row["split"] == split:
        rows.append(row)
  return rows


def keep_rows_up_to(workdir, step: int):
  """Rewrites metrics.jsonl (atomically) with only the rows of steps <= `step`, the step a
  resumed run restarts from, torn lines dropped: the rows a killed run logged after its
  last checkpoint would otherwise appear twice."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return
  kept = [row for row in read_metrics(path) if row["step"] <= step]
  relaunch.write_json_atomic(path, "".join(json.dumps(row) + "\n" for row in kept))


@jax.jit
def _means(history):
  return jax.tree.map(lambda *steps: jnp.mean(jnp.stack(steps)), *history)


def mean_of(history):
  """Mean over steps of a list of metric dicts (device scalars): one reduction on the
  device and one fetch, where fetching each scalar cost a transfer per metric and step."""
  return {k: float(v) for k, v in jax.device_get(_means(history)).items()}


def format_metrics(metrics: dict) -> str:
  return "  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))


class Progress:
  """A compact progress line: step, steps/s, ETA, the loss and the main metric (the
  rest of the metrics go to metrics.jsonl and TensorBoard). Rates are timed between
  log points, so compile time in the first interval does not distort later ones."""

  def __init__(self, total_steps: int, start_step: int, main_metric: str = ""):
    self.total = total_steps
    self.main_metric = main_metric
    self._last_step, self._last_time = start_step, time.perf_counter()

  def line(self, step: int, metrics: dict) -> str:
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    eta = (self.total - step) / max(rate, 1e-9)
    shown = {k: metrics[k] for k in ("loss", self.main_metric) if k in metrics}
    return (
      f"step {step}/{self.total} ({100 * step / self.total:.0f}%)  "
      f"{rate:.1f} steps/s  ETA {_hms(eta)}  {format_metrics(shown)}"
    )


def _hms(seconds):
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def log(message, *args):
  logging.info(message, *args)
