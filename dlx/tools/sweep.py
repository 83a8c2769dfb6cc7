"""Run an experiment over the cross product of config values; print a results table.

  python -m dlx.tools.sweep NAME --grid 'config.optimizer.learning_rate=0.01,0.1' \
      --grid 'config.seed=0,1' [--workdir=DIR] [--backend=local|ray] [other dlx.main flags]

Each run gets its own workdir (DIR/<field>=<value>,...). A relaunched sweep skips runs
whose results.json exists and resumes interrupted ones from their checkpoints. A run
that fails is a `failed: <its one-line error>` row, not a failed sweep. The table goes
to DIR/results.md and DIR/results.json.

Backends: `local` runs the runs one after another in this process's machine; `ray`
submits each run as a Ray task (docs/curriculum.md#a9) with `--cpus_per_run` and
`--gpus_per_run` as its resources, to a local Ray instance, or to a cluster with
`--address=HOST:PORT` (or `auto`). On a cluster every node must see the repository and
the sweep's workdir at the same paths (a shared file system). Ray is an optional extra:
`pip install -e .[ray]`.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys

from dlx import experiment as experiment_lib

BACKENDS = ("local", "ray")


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


def run_one(cmd: list[str], cwd: str) -> tuple[int, str]:
  """Runs one dlx.main command in `cwd` (the sweep's own, so relative paths in its
  flags mean the same); (exit code, the last line of its stderr: the one-line error of
  a failed run)."""
  done = subprocess.run(cmd, cwd=cwd, stdout=None, stderr=subprocess.PIPE, text=True)
  sys.stderr.write(done.stderr[-4000:])
  lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
  return done.returncode, lines[-1] if lines else ""


def _ray_runner(args):
  """`run_one` as a Ray task with the run's resources; a local Ray instance unless
  `--address` names a cluster."""
  try:
    import ray  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise SystemExit(
      "dlx sweep: error: --backend=ray needs Ray: pip install -e '.[ray]' "
      "(or ./launch.sh sweep with the local backend)"
    ) from None
  if not ray.is_initialized():
    kwargs = dict(address=args.address) if args.address else dict(num_cpus=os.cpu_count())
    ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
  task = ray.remote(num_cpus=args.cpus_per_run, num_gpus=args.gpus_per_run)(run_one)

  def submit_all(cmds, cwd):
    return ray.get([task.remote(cmd, cwd) for cmd in cmds])

  return submit_all


def _row(workdir, code, last_line):
  results_file = os.path.join(workdir, "results.json")
  if code == 0 and os.path.exists(results_file):
    with open(results_file) as f:
      return flatten(json.load(f))
  reason = last_line.removeprefix("dlx: error: ") or f"exit code {code}"
  return {"status": f"failed: {' '.join(reason.split())}".replace("|", "/")}


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog="dlx.tools.sweep",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("experiment")
  parser.add_argument("--grid", action="append", default=[], required=True)
  parser.add_argument("--workdir", default=None)
  parser.add_argument("--backend", default="local", choices=BACKENDS)
  parser.add_argument("--address", default=None, help="Ray cluster address (backend ray)")
  parser.add_argument("--cpus_per_run", type=float, default=1, help="Ray resources per run")
  parser.add_argument("--gpus_per_run", type=float, default=0, help="Ray resources per run")
  args, passthrough = parser.parse_known_args(argv)
  name, _, config_arg = args.experiment.partition(":")  # NAME[:ARG] as in dlx.main
  try:
    path = experiment_lib.resolve(name)
  except Exception as e:  # pylint: disable=broad-except
    raise SystemExit(f"dlx sweep: error: {e}") from None
  grid = parse_grid(args.grid)
  base = os.path.abspath(args.workdir or os.path.join("runs", f"sweep_{path.stem}"))
  os.makedirs(base, exist_ok=True)
  fields = [field for field, _ in grid]
  config_flag = f"--config={path}" + (f":{config_arg}" if config_arg else "")
  assignments, pending = [], {}
  for values in itertools.product(*[vals for _, vals in grid]):
    assignment = list(zip(fields, values))
    workdir = os.path.join(base, run_name(assignment))
    assignments.append((assignment, workdir))
    if os.path.exists(os.path.join(workdir, "results.json")):
      print(f"== {run_name(assignment)}: finished, skipped", flush=True)
      continue
    cmd = [sys.executable, "-m", "dlx.main", config_flag, f"--workdir={workdir}"]
    pending[workdir] = cmd + [f"--{field}={value}" for field, value in assignment] + passthrough
  if args.backend == "ray":
    submit_all = _ray_runner(args) if pending else None
    outcomes = (
      dict(zip(pending, submit_all(list(pending.values()), os.getcwd()))) if pending else {}
    )
  else:
    outcomes = {}
    for workdir, cmd in pending.items():
      print(f"== {os.path.basename(workdir)}", flush=True)
      outcomes[workdir] = run_one(cmd, os.getcwd())
  rows = [(a, _row(w, *outcomes.get(w, (0, "")))) for a, w in assignments]
  text = table(rows, fields)
  with open(os.path.join(base, "results.md"), "w") as f:
    f.write(text + "\n")
  with open(os.path.join(base, "results.json"), "w") as f:
    json.dump([{**dict(a), **r} for a, r in rows], f, indent=2)
  print(text)
  return 0 if all("status" not in r for _, r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
