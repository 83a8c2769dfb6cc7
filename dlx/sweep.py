"""Run an experiment over the cross product of config values; print a results table.

  python -m dlx.sweep NAME --grid 'config.optimizer.learning_rate=0.01,0.1' \
      --grid 'config.seed=0,1' [--workdir=DIR] [other dlx.main flags]

Each run gets its own workdir (DIR/<field>=<value>,...), so a relaunched sweep resumes
or skips finished runs. The table goes to DIR/results.md and DIR/results.json.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys

from dlx import experiment as experiment_lib


def parse_grid(specs):
  """['config.a=1,2', 'config.b=x'] -> [('config.a', ['1', '2']), ('config.b', ['x'])]."""
  grid = []
  for spec in specs:
    field, sep, values = spec.partition("=")
    field = field.strip().lstrip("-")
    if not sep or not field.startswith("config.") or not values:
      raise SystemExit(f"dlx sweep: error: --grid {spec!r} must look like 'config.FIELD=V1,V2,...'")
    grid.append((field, split_values(values)))
  return grid


def split_values(text):
  """'1,2' -> ['1', '2']; commas inside brackets stay: '(8,8),(16,16)' -> two values."""
  values, depth, current = [], 0, ""
  for ch in text:
    depth += ch in "([{"
    depth -= ch in ")]}"
    if ch == "," and depth == 0:
      values.append(current.strip())
      current = ""
    else:
      current += ch
  values.append(current.strip())
  return values


def run_name(assignment):
  return ",".join(f"{field[len('config.') :]}={value}" for field, value in assignment)


def flatten(results, prefix=""):
  out = {}
  for k, v in results.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}/"))
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
      out[f"{prefix}{k}"] = v
  return out


def table(rows, fields):
  metrics = sorted({k for _, r in rows for k in r if k.startswith("test/")})
  header = [f[len("config.") :] for f in fields] + metrics + ["status"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for assignment, results in rows:
    cells = [v for _, v in assignment]
    cells += [f"{results[m]:.4f}" if m in results else "-" for m in metrics]
    cells.append(results.get("status", "ok"))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog="dlx.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("experiment")
  parser.add_argument("--grid", action="append", default=[], required=True)
  parser.add_argument("--workdir", default=None)
  args, passthrough = parser.parse_known_args(argv)
  name, _, config_arg = args.experiment.partition(":")  # NAME[:ARG] as in dlx.main
  try:
    path = experiment_lib.resolve(name)
  except Exception as e:  # pylint: disable=broad-except
    raise SystemExit(f"dlx sweep: error: {e}") from None
  grid = parse_grid(args.grid)
  base = args.workdir or os.path.join("runs", f"sweep_{path.stem}")
  os.makedirs(base, exist_ok=True)
  fields = [field for field, _ in grid]
  rows = []
  for values in itertools.product(*[vals for _, vals in grid]):
    assignment = list(zip(fields, values))
    workdir = os.path.join(base, run_name(assignment))
    config_flag = f"--config={path}" + (f":{config_arg}" if config_arg else "")
    cmd = [sys.executable, "-m", "dlx.main", config_flag, f"--workdir={workdir}"]
    cmd += [f"--{field}={value}" for field, value in assignment] + passthrough
    print(f"== {run_name(assignment)}", flush=True)
    code = subprocess.call(cmd)
    results_file = os.path.join(workdir, "results.json")
    if code == 0 and os.path.exists(results_file):
      with open(results_file) as f:
        rows.append((assignment, flatten(json.load(f))))
    else:
      rows.append((assignment, {"status": f"failed ({code})"}))
  text = table(rows, fields)
  with open(os.path.join(base, "results.md"), "w") as f:
    f.write(text + "\n")
  with open(os.path.join(base, "results.json"), "w") as f:
    json.dump([{**dict(a), **r} for a, r in rows], f, indent=2)
  print(text)
  return 0 if all("status" not in r for _, r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
