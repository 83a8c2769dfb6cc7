"""k-fold cross-validation of any experiment (docs/curriculum.md#d5); print and write the
mean and standard deviation of every validation metric.

  python -m dlx.tools.crossval NAME[:ARG] --folds 5 [--stratified] [--workdir=DIR] \
      [--data_dir=DIR] [--config.FIELD=VALUE ...]

Run i trains on the experiment's train split without fold i and validates on fold i
(dlx.ops.resampling.kfold_indices, seeded by config.seed; --stratified keeps each class's
share in every fold); the test split is untouched and the experiment's own validation
split is not used. Each run gets its own workdir (DIR/fold_<i>, default DIR =
runs/crossval_NAME[_ARG]), so a relaunch resumes; the summary goes to DIR/crossval.json and
DIR/crossval.md. The spread is the sample standard deviation over folds (ddof 1).
"""

import argparse
import dataclasses
import json
import logging as std_logging
import os
import sys

from absl import logging
import numpy as np

from dlx import errors
from dlx import experiment as experiment_lib
from dlx import main as main_lib
from dlx.data import core
from dlx.ops import resampling
from dlx.tools import cli


def fold_dataset(
  dataset, fold: int, folds: int, seed: int, stratified: bool = False, batch_size: int = 0
):
  """`dataset` with validation = fold `fold` of its train split and train = the rest
  (which must hold at least one batch of `batch_size`)."""
  if not isinstance(dataset, core.Dataset):
    raise errors.ConfigError(
      f"cross-validation splits a Dataset's train split; this experiment's data is a "
      f"{type(dataset).__name__}, which has none"
    )
  train = dataset.train
  labels = None
  if stratified:
    labels = np.asarray(train["targets"])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
      raise errors.ConfigError(
        f"--stratified needs integer class targets of shape (N,), got {labels.dtype} {labels.shape}"
      )
  splits = resampling.kfold_indices(core.num_examples(train), folds, seed, labels)
  train_idx, val_idx = splits[fold]
  if len(train_idx) < batch_size:
    raise errors.ConfigError(
      f"--config.batch_size={batch_size}: fold {fold}'s train part has only {len(train_idx)} "
      f"examples (a full-batch experiment needs --config.batch_size={len(train_idx)} or less)"
    )
  info = {**dataset.info, "fold": fold, "folds": folds}
  return core.Dataset(core.take(train, train_idx), core.take(train, val_idx), dataset.test, info)


def with_fold(experiment, fold: int, folds: int, stratified: bool):
  """The experiment whose get_dataset returns fold `fold`'s split (seeded by config.seed)."""

  def get_dataset(config, data_dir):
    dataset = experiment.get_dataset(config, data_dir)
    return fold_dataset(dataset, fold, folds, config.seed, stratified, config.batch_size)

  return dataclasses.replace(experiment, get_dataset=get_dataset)


def summarize(fold_results, splits=("validation", "test")):
  """{split: {metric: {mean, std, folds}}} over the folds' results.json contents."""
  summary = {}
  for split in splits:
    metrics = sorted(set.intersection(*(set(r[split]) for r in fold_results)))
    summary[split] = {}
    for metric in metrics:
      values = np.array([r[split][metric] for r in fold_results], np.float64)
      summary[split][metric] = {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "folds": values.tolist(),
      }
  return summary


def table(summary, split="validation"):
  lines = [f"| {split} metric | mean | std | folds |", "|---|---|---|---|"]
  for metric, s in summary[split].items():
    folds = ", ".join(f"{v:.4f}" for v in s["folds"])
    lines.append(f"| {metric} | {s['mean']:.4f} | {s['std']:.4f} | {folds} |")
  return "\n".join(lines)


def _log_to_file(workdir):
  """The fold's full log in WORKDIR/log.txt, as dlx.main writes it (orbax's file-by-file
  records left out); the console keeps one line per fold."""
  os.makedirs(workdir, exist_ok=True)
  handler = std_logging.FileHandler(os.path.join(workdir, "log.txt"))
  handler.setFormatter(logging.PythonFormatter())
  handler.addFilter(lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname)
  std_logging.getLogger().addHandler(handler)
  return handler


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog="dlx.tools.crossval",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("experiment", help="NAME[:ARG], as for dlx.main")
  parser.add_argument("--folds", type=int, default=5)
  parser.add_argument("--stratified", action="store_true")
  parser.add_argument("--workdir", default=None)
  args, passthrough = parser.parse_known_args(argv)
  name = args.experiment.partition(":")[0]
  if args.folds < 2:
    cli.fail(f"--folds={args.folds}: need at least 2")
  try:
    experiment = experiment_lib.load(name)
  except errors.UserError as e:
    cli.fail(str(e))
  arg = args.experiment.partition(":")[2]
  default = f"crossval_{experiment.name}" + (f"_{arg.replace(',', '_')}" if arg else "")
  base = args.workdir or os.path.join("runs", default)
  # dlx.main's own flag parsing: the same config overrides and one-line errors.
  rest = main_lib.parse_flags(
    ["dlx.tools.crossval", f"--config={args.experiment}", f"--workdir={base}"] + passthrough
  )
  if len(rest) > 1:
    cli.fail(f"unexpected arguments {' '.join(rest[1:])!r}; flags look like --name=value")
  # The console as dlx.main shows it: compact progress lines, library noise left out.
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  main_lib._quiet_library_logs()  # pylint: disable=protected-access
  logging.get_absl_handler().setFormatter(main_lib._ConsoleFormatter())  # pylint: disable=protected-access
  from dlx import train  # pylint: disable=g-import-not-at-top

  base_config = main_lib.FLAGS.config
  fold_results = []
  for fold in range(args.folds):
    config = base_config.copy_and_resolve_references()
    with config.unlocked():
      config.experiment = config.experiment or experiment.name
    workdir = os.path.join(base, f"fold_{fold}")
    handler = _log_to_file(workdir)
    try:
      results = train.train_and_evaluate(
        config,
        workdir,
        data_dir=main_lib.FLAGS.data_dir,
        experiment=with_fold(experiment, fold, args.folds, args.stratified),
      )
    except errors.UserError as e:
      cli.fail(str(e))
    finally:
      std_logging.getLogger().removeHandler(handler)
      handler.close()
    fold_results.append(results)
    scores = "  ".join(f"{k}={v:.4f}" for k, v in sorted(results["validation"].items()))
    logging.info("fold %d/%d (%s): validation %s", fold + 1, args.folds, workdir, scores)
  summary = {
    "experiment": args.experiment,
    "folds": args.folds,
    "stratified": args.stratified,
    "seed": base_config.seed,
    **summarize(fold_results),
  }
  with open(os.path.join(base, "crossval.json"), "w") as f:
    json.dump(summary, f, indent=2)
  text = table(summary)
  with open(os.path.join(base, "crossval.md"), "w") as f:
    f.write(text + "\n")
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
