"""Compare runs side by side: the config fields that differ, the final metrics, and the
loss curves overlaid in one figure.

  python -m dlx.tools.compare RUN [RUN ...] [--out=PATH] [--format=text|markdown]

A RUN is a workdir (config.json, metrics.jsonl, results.json) or a sweep's directory
(dlx/tools/sweep.py), which stands for its runs in the sweep's order (a run of it that
never logged a step, a failed one, is left out with a warning). Each run's column is
named by the shortest tail of its path that tells it from the others.

The table lists the config fields that differ between the runs (nested ones dotted,
`optimizer.learning_rate`; `-` where a run has no such field), then each run's final
`step` and `test` and `validation` metrics from results.json. A run without results.json
(still training, or stopped) is `unfinished` and shows the last row it logged to
metrics.jsonl instead.

The figure (`--out`, default compare.png here, or in the sweep's directory when the one
RUN is a sweep) overlays the runs' train and validation loss against step and, when all
the runs have the same main metric (config.best_metric, or accuracy where that is the
loss), the same curves of it in a second panel.
"""

import argparse
import dataclasses
import json
import os
import sys

from dlx import errors
from dlx.tools import cli
from dlx.tools import sweep
from dlx.training import metric_writers
from dlx.training import relaunch
from dlx.viz import plots

FIGURE = "compare.png"
FORMATS = ("text", "markdown")
_RUN_FILES = (relaunch.CONFIG_FILE, "metrics.jsonl")  # a workdir has one from its start


@dataclasses.dataclass
class Run:
  """One run's files, read once."""

  path: str
  name: str
  config: dict  # config.json flattened to dotted names
  rows: list  # metrics.jsonl (read_metrics)
  results: dict | None  # results.json; None while unfinished


def is_workdir(path) -> bool:
  return any(os.path.isfile(os.path.join(path, name)) for name in _RUN_FILES)


def sweep_workdirs(path) -> list[str] | None:
  """The workdirs of the sweep in `path` in the sweep's order (its results.json), then
  any it does not list yet (a sweep still running) by name; None if `path` is no sweep."""
  children = sorted(
    name for name in os.listdir(path) if is_workdir(os.path.join(path, name)) and "=" in name
  )
  try:
    with open(os.path.join(path, "results.json")) as f:
      summary = json.load(f)
  except (OSError, ValueError):
    summary = None
  if not isinstance(summary, list):
    return [os.path.join(path, name) for name in children] or None
  listed = []
  for row in summary:
    assignment = [(k, v) for k, v in row.items() if k.startswith("config.")]
    listed.append(sweep.run_name(assignment))
  order = [n for n in listed if n in children] + [n for n in children if n not in listed]
  return [os.path.join(path, name) for name in order]


def short_names(paths) -> list[str]:
  """The fewest trailing path components that tell every path apart; of a sweep's run
  names (`lr=0.1,seed=0`) only the settings that differ (`lr=0.1`)."""
  parts = [os.path.abspath(p).split(os.sep) for p in paths]
  for depth in range(1, max(map(len, parts)) + 1):
    names = ["/".join(p[-depth:]) for p in parts]
    if len(set(names)) == len(names):
      break
  else:
    return [os.path.abspath(p) for p in paths]
  if depth > 1 or len(names) < 2:
    return names
  settings = [sweep.split_values(name) for name in names]
  shared = set.intersection(*map(set, settings))
  shorter = [",".join(s for s in setting if s not in shared) for setting in settings]
  return shorter if all(shorter) and len(set(shorter)) == len(shorter) else names


def load_runs(paths) -> list[Run]:
  """The runs of workdirs and sweep directories, in order (a run named twice once).
  Raises errors.UserError for a path that is neither, a workdir without metrics, none."""
  workdirs, in_sweep = [], set()
  for path in paths:
    path = os.path.abspath(path)
    if not os.path.isdir(path):
      raise errors.UserError(f"{path}: not a directory (give a run's workdir or a sweep's)")
    if is_workdir(path):
      workdirs.append(path)
      continue
    found = sweep_workdirs(path)
    if found is None:
      raise errors.UserError(
        f"{path} is neither a run's workdir (no config.json or metrics.jsonl) "
        "nor a sweep's directory (no runs in it)"
      )
    workdirs += found
    in_sweep.update(found)
  metrics = {}
  for workdir in dict.fromkeys(workdirs):
    rows = metric_writers.read_metrics(workdir)
    if rows:
      metrics[workdir] = rows
    elif workdir in in_sweep:  # a failed run of a sweep: its table says why
      sys.stderr.write(f"dlx compare: warning: {workdir} logged no metrics; left out\n")
    else:
      raise errors.UserError(f"{workdir} holds no metrics (metrics.jsonl has no rows)")
  if not metrics:
    raise errors.UserError(f"no run with metrics in {' '.join(map(str, paths))}")
  runs = []
  for (workdir, rows), name in zip(metrics.items(), short_names(metrics)):
    config = relaunch.read_json(os.path.join(workdir, relaunch.CONFIG_FILE)) or {}
    results = relaunch.read_json(os.path.join(workdir, "results.json"))
    runs.append(Run(workdir, name, relaunch.flatten(config), rows, results))
  return runs


def _text(value) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return value if isinstance(value, str) else json.dumps(value)


def config_rows(runs) -> list[tuple[str, list[str]]]:
  """(field, one value per run) for every config field that differs; '-' where absent."""
  fields = dict.fromkeys(field for run in runs for field in run.config)
  rows = []
  for field in sorted(fields):
    values = [_text(run.config[field]) if field in run.config else "-" for run in runs]
    if len(set(values)) > 1:
      rows.append((field, values))
  return rows


def final_metrics(run) -> dict:
  """{'status', 'step', 'test/loss', ...}: results.json's test and validation metrics, or
  an unfinished run's last logged row."""
  if run.results is None:
    last = run.rows[-1]
    out = {"status": "unfinished", "step": last["step"]}
    out.update(metric_writers.row_scalars(last))
    return out
  out = {"status": "finished", "step": run.results.get("step")}
  for split in ("test", "validation"):
    for key, value in (run.results.get(split) or {}).items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        out[f"{split}/{key}"] = value
  return out


def metric_rows(runs) -> list[tuple[str, list[str]]]:
  """(name, one value per run): status, step, test/..., validation/..., then the rest."""
  finals = [final_metrics(run) for run in runs]
  splits = {"status": 0, "step": 1, "test": 2, "validation": 3}
  names = {k for final in finals for k in final}
  order = sorted(names, key=lambda k: (splits.get(k.split("/")[0], 4), k))
  return [(k, [_text(final[k]) if k in final else "-" for final in finals]) for k in order]


def format_table(runs, fmt="text") -> str:
  """The config fields that differ, then the final metrics, one column per run."""
  header = ["run"] + [run.name for run in runs]
  config, metrics = config_rows(runs), metric_rows(runs)
  if fmt == "markdown":
    cell = lambda text: text.replace("|", "\\|")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    for name, values in config + metrics:
      lines.append("| " + " | ".join(cell(v) for v in [name] + values) + " |")
    return "\n".join(lines)
  table = [header] + [[name] + values for name, values in config + metrics]
  widths = [max(len(row[i]) for row in table) for i in range(len(header))]
  line = lambda row: "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
  rule = "  ".join("-" * w for w in widths)
  # A rule under the header and one between the config fields and the metrics.
  out = [line(header), rule] + [line(r) for r in table[1 : 1 + len(config)]]
  if config:
    out.append(rule)
  return "\n".join(out + [line(r) for r in table[1 + len(config) :]])


def main_metric(runs) -> str | None:
  """The second panel's metric: the runs' common config.best_metric (accuracy where that
  is the loss or unset), if every run logged it; else None."""
  chosen = {run.config.get("best_metric") or "loss" for run in runs}
  if len(chosen) != 1:
    return None
  metric = chosen.pop()
  metric = "accuracy" if metric == "loss" else metric
  for run in runs:
    if not any(metric in row for row in run.rows if row["split"] in ("train", "validation")):
      return None
  return metric


def write_figure(runs, path):
  """The runs' loss curves (and main metric) overlaid, as a PNG at `path`."""
  plots.plot_run_comparison({run.name: run.rows for run in runs}, path, main_metric(runs))


def main(argv=None):
  parser = cli.Parser(
    prog="python -m dlx.tools.compare",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("runs", nargs="*", metavar="RUN", help="a workdir or a sweep directory")
  parser.add_argument("--out", default=None, help=f"the figure (default {FIGURE})")
  parser.add_argument("--format", default="text", choices=FORMATS)
  args = parser.parse_args(argv)
  if not args.runs:
    cli.fail("give at least one RUN: a run's workdir or a sweep's directory")
  try:
    runs = load_runs(args.runs)
  except errors.UserError as e:
    cli.fail(str(e))
  print(format_table(runs, args.format))
  out = args.out
  if out is None:
    one_sweep = len(args.runs) == 1 and not is_workdir(args.runs[0])
    out = os.path.join(args.runs[0], FIGURE) if one_sweep else FIGURE
  try:
    write_figure(runs, out)
  except OSError as e:
    cli.fail(f"the figure not written to {out}: {e.strerror or e}")
  sys.stderr.write(f"figure: {out}\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
