"""Metric writers: console (absl logging), TensorBoard and `workdir/metrics.jsonl`."""

import json
import os
import time

from absl import logging
from clu import metric_writers
import jax
import numpy as np


class MetricWriter:
  """Writes `{split}/{name}` scalars to TensorBoard and one JSON object per call to
  metrics.jsonl: {"step": ..., "split": ..., "<name>": ...}. Only process 0 writes."""

  def __init__(self, workdir):
    self.enabled = jax.process_index() == 0
    self._tb = metric_writers.create_default_writer(
      workdir, just_logging=not self.enabled, asynchronous=False
    )
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a") if self.enabled else None

  def write(self, step: int, split: str, metrics: dict):
    scalars = {k: float(v) for k, v in metrics.items()}
    self._tb.write_scalars(step, {f"{split}/{k}": v for k, v in scalars.items()})
    if self._jsonl:
      self._jsonl.write(json.dumps({"step": int(step), "split": split, **scalars}) + "\n")
      self._jsonl.flush()

  def close(self):
    self._tb.flush()
    self._tb.close()
    if self._jsonl:
      self._jsonl.close()


def mean_of(history):
  """Mean over steps of a list of metric dicts (device scalars, fetched once)."""
  stacked = jax.device_get(history)
  return {k: float(np.mean([h[k] for h in stacked])) for k in stacked[0]}


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
