"""Batch-size regimes (docs/curriculum.md#c4): the loss on the whole train split at every
validation, the same measure for every batch size, and batch_regimes.png, every run of a
sweep that differs only in batch size drawn against epochs and against seconds.
"""

import json
import os
import pathlib
import time

import numpy as np

from dlx.data import core
from dlx.training import metric_writers
from dlx.viz import plots

PLOT = "batch_regimes.png"
# Config fields that may differ between runs compared as batch-size regimes.
_PER_RUN_FIELDS = ("batch_size", "log_every_steps", "checkpoint_every_steps")


def _mean_loss(ctx, split) -> float:
  """The mean per-example 'loss' of the experiment's loss over a whole split."""
  loss_fn = ctx.experiment.get_loss(ctx.config)
  total = sum(float(np.sum(loss_fn(out, batch)["loss"])) for batch, out in ctx.outputs(split))
  return total / core.num_examples(split)


def evaluate(ctx, split):
  """At every validation: the loss on the whole train split (what every batch size
  minimises, measured the same way for each), the epochs done and the seconds since the
  run started (its config.json was written: start-up and compilation included; a
  resumed run restarts the clock)."""
  if split != "validation":
    return {}
  train = ctx.dataset.train
  per_epoch = core.num_examples(train) // ctx.config.batch_size
  started = os.path.getmtime(os.path.join(ctx.workdir, "config.json"))
  return {
    "train_objective": _mean_loss(ctx, train),
    "epoch": ctx.step / per_epoch,
    "elapsed_s": time.time() - started,
  }


def _read_config(run_dir):
  with open(os.path.join(run_dir, "config.json")) as f:
    return json.load(f)


def comparable_runs(workdir) -> list[str]:
  """This run and the runs beside it (a sweep's other runs) whose configs differ from its
  own only in batch size and logging, sorted by batch size."""
  workdir = pathlib.Path(workdir)

  def key(config):
    return {k: v for k, v in config.items() if k not in _PER_RUN_FIELDS}

  own = key(_read_config(workdir))
  found = []
  for run in sorted(workdir.parent.iterdir()):
    if not (run / "config.json").is_file() or not (run / "metrics.jsonl").is_file():
      continue
    config = _read_config(run)
    if key(config) == own:
      found.append((config["batch_size"], str(run)))
  return [run for _, run in sorted(found)]


def curve(run_dir):
  """(batch size, epochs, training seconds, train objective) at each validation of a run.

  Training seconds leave out start-up and compilation, which would swamp the fast
  regimes: the first epoch (which holds the compilation) is counted as long as the
  second, so t_e = elapsed_e - elapsed_1 + (elapsed_2 - elapsed_1). Every epoch keeps
  its validation, the same work for every batch size."""
  rows = metric_writers.read_metrics(run_dir, "validation")
  rows = [r for r in rows if "train_objective" in r]
  epochs, elapsed, objective = (
    [r[k] for r in rows] for k in ("epoch", "elapsed_s", "train_objective")
  )
  if len(elapsed) > 1:
    offset = 2 * elapsed[0] - elapsed[1]
    elapsed = [t - offset for t in elapsed]
  return _read_config(run_dir)["batch_size"], epochs, elapsed, objective


def _regime_label(batch_size, train_size):
  if batch_size == 1:
    return "SGD (batch 1)"
  if batch_size == train_size:
    return f"GD (full batch, {batch_size})"
  return f"mini-batch {batch_size}"


def plot_regimes(run_dirs, path, train_size, title=None):
  """One figure: the whole-train-split loss against epochs and against seconds, one line
  per run (a run's `evaluate` rows)."""
  by_epoch, by_time = {}, {}
  for run in run_dirs:
    batch_size, epochs, seconds, objective = curve(run)
    label = _regime_label(batch_size, train_size)
    by_epoch[label], by_time[label] = (epochs, objective), (seconds, objective)
  plots.plot_curve_panels(
    [
      {"curves": by_epoch, "xlabel": "epochs", "title": "per epoch (equal data)"},
      {
        "curves": by_time,
        "xlabel": "training seconds (compilation left out)",
        "xscale": "log",
        "title": "per wall-clock second",
      },
    ],
    path,
    ylabel="loss on the whole train split",
    title=title,
    yscale="log",
  )


def final_report(ctx):
  """This run's regime (updates per epoch, final train loss, seconds) and
  batch_regimes.png of this run beside every comparable finished run next to it: after a
  sweep over batch sizes, its last run draws them all."""
  train_size = core.num_examples(ctx.dataset.train)
  batch_size, _, seconds, objective = curve(ctx.workdir)
  compared = comparable_runs(ctx.workdir)
  plot_regimes(
    compared,
    os.path.join(ctx.workdir, PLOT),
    train_size,
    title=f"{ctx.config.experiment}: {train_size} training examples, "
    f"{ctx.config.optimizer.name} at lr {ctx.config.optimizer.learning_rate:g}",
  )
  return {
    "batch_size": batch_size,
    "updates_per_epoch": train_size // batch_size,
    "final_train_objective": objective[-1],
    "training_seconds": seconds[-1],
    "compared_runs": [os.path.basename(r) for r in compared],
    "plot": PLOT,
  }
