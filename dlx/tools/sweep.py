"""Run an experiment over the cross product of config values; print a results table.

  python -m dlx.tools.sweep NAME --grid 'config.optimizer.learning_rate=0.01,0.1' \
      --grid 'config.seed=0,1' [--workdir=DIR] [--backend=local|ray] [other dlx.main flags]

Each run gets its own workdir (DIR/<field>=<value>,...). A relaunched sweep launches
every run again, and each applies the workdir rule of dlx/training/relaunch.py: a
finished run with the same config reports its saved results at once, an interrupted one
resumes from its checkpoint, and one whose config now computes something else (a flag
changed outside the grid) is refused. A run that fails or is refused is a
`failed: <its one-line error>` row, never the old numbers, and not a failed sweep. The table goes
to DIR/results.md and DIR/results.json; DIR/compare.png overlays the finished runs'
loss curves (dlx/tools/compare.py, which also compares any runs afterwards).

Backends: `local` runs the runs one after another in this process's machine; `ray`
submits each run as a Ray task (docs/curriculum.md#a9) with `--cpus_per_run` and
`--gpus_per_run` as its resources, to a local Ray instance, or to a cluster with
`--address=HOST:PORT` (or `auto`). On a cluster every node must see the repository and
the sweep's workdir at the same paths (a shared file system). Ray is an optional extra:
`pip install -e .[ray]`.

Stopping: SIGTERM, SIGINT (Ctrl-C) or SIGHUP to the sweep passes the signal on to the run
under way (SIGHUP as SIGTERM), waits for it to end (`--stop_timeout` seconds, then
SIGKILL), starts no further run and exits non-zero with one line; relaunching the same
command resumes. Each local run is its own process group, so Ctrl-C reaches it once,
through the sweep. With Ray the runs under way are cancelled (`ray.cancel`), and each
task stops its run the same way. A sweep killed with SIGKILL cannot pass anything on:
its run under way goes on alone (it holds its workdir's lock, so a relaunched sweep
reports that workdir busy instead of running beside it).
"""

import argparse
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time

from dlx import experiment as experiment_lib
from dlx.training import relaunch

BACKENDS = ("local", "ray")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_TIMEOUT_S = 60.0  # the default wait for a stopped run to save its state and exit
_POLL_S = 0.2  # how often a waiting sweep looks at its stop flag


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


def table(rows, fields, figure=None):
  metrics = sorted({k for _, r in rows for k in r if k.startswith("test/")})
  # The figure's link sits in the header: results.md stays one table.
  status = f"status ([curves]({figure}))" if figure else "status"
  header = [f[len("config.") :] for f in fields] + metrics + [status]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for assignment, results in rows:
    cells = [v for _, v in assignment]
    cells += [f"{results[m]:.4f}" if m in results else "-" for m in metrics]
    cells.append(results.get("status", "ok"))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


class Stop:
  """The sweep's stop request. Installed, SIGTERM, SIGINT and SIGHUP set it and pass the
  signal on to the run under way (SIGHUP as SIGTERM: the run has no terminal of its own);
  a run that has not ended `timeout_s` after the first signal is killed."""

  def __init__(self, timeout_s: float = STOP_TIMEOUT_S):
    self.timeout_s = timeout_s
    self.signum = None  # the first stop signal received
    self._deadline = None
    self._child = None
    self._previous = {}

  def install(self):
    """Takes the stop signals (main thread only); an ignored one (nohup) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
      return
    for sig in STOP_SIGNALS:
      previous = signal.getsignal(sig)
      if previous != signal.SIG_IGN:
        self._previous[sig] = previous
        signal.signal(sig, self._handle)

  def restore(self):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)
    self._previous.clear()

  def _handle(self, signum, frame):
    del frame
    if self.signum is None:
      self.signum = signum
      self._deadline = time.monotonic() + self.timeout_s
    self._forward(signum)  # a second Ctrl-C reaches the run too

  def _forward(self, signum):
    child = self._child
    if child is not None:
      with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

  def started(self, proc):
    self._child = proc
    if self.signum is not None:  # the signal came while the run was starting
      self._forward(self.signum)

  def finished(self):
    self._child = None

  def overdue(self) -> bool:
    return self._deadline is not None and time.monotonic() > self._deadline

  def message(self) -> str:
    name = signal.Signals(self.signum).name
    return (
      f"dlx sweep: stopped by {name} (the runs under way were stopped, no further run "
      "started); relaunch the same command to resume: finished runs report their results, "
      "stopped ones resume from their checkpoints"
    )


def _wait(proc, deadline_passed) -> str:
  """Reads the run's stderr until it exits; SIGKILL once `deadline_passed()`."""
  while True:
    try:
      return proc.communicate(timeout=_POLL_S)[1]
    except subprocess.TimeoutExpired:
      if deadline_passed():
        proc.kill()


def run_one(
  cmd: list[str], cwd: str, stop: Stop | None = None, stop_timeout_s: float = STOP_TIMEOUT_S
) -> tuple[int, str]:
  """Runs one dlx.main command in `cwd` (the sweep's own, so relative paths in its
  flags mean the same); (exit code, the last line of its stderr: the one-line error of
  a failed run). With `stop` (the local backend) the run is its own process group and
  `stop` passes signals on to it. Interrupted here (a cancelled Ray task: an exception),
  it SIGTERMs the run and waits for it (`stop_timeout_s`, then SIGKILL), so that no run
  outlives its sweep."""
  proc = subprocess.Popen(
    cmd,
    cwd=cwd,
    stdout=None,
    stderr=subprocess.PIPE,
    text=True,
    process_group=0 if stop is not None else None,
  )
  try:
    if stop is not None:
      stop.started(proc)
    stderr = _wait(proc, stop.overdue if stop is not None else lambda: False)
  except BaseException:
    with contextlib.suppress(ProcessLookupError):
      proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout_s
    _wait(proc, lambda: time.monotonic() > deadline)
    raise
  finally:
    if stop is not None:
      stop.finished()
  sys.stderr.write(stderr[-4000:])
  lines = [line for line in stderr.strip().splitlines() if line.strip()]
  return proc.returncode, lines[-1] if lines else ""


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

  def submit_all(cmds, cwd, stop):
    """The runs' outcomes; None when `stop` was requested (the runs under way are
    cancelled: each task's run_one SIGTERMs its run and waits for it)."""
    refs = [task.remote(cmd, cwd, None, stop.timeout_s) for cmd in cmds]
    waiting = list(refs)
    while waiting and stop.signum is None:
      _, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=_POLL_S)
    if stop.signum is None:
      return ray.get(refs)
    for ref in waiting:
      ray.cancel(ref)
    _, left = ray.wait(waiting, num_returns=len(waiting), timeout=stop.timeout_s + 10)
    for ref in left:
      ray.cancel(ref, force=True)
    return None

  return submit_all


def _figure(base, workdirs):
  """compare.png of the finished runs (dlx/tools/compare.py), its name, or None when
  there is none; a figure that fails is a warning, never a failed sweep."""
  try:
    # Imported here: compare imports this module, and its failing import is a warning too.
    from dlx.tools import compare  # pylint: disable=g-import-not-at-top

    if workdirs:
      compare.write_figure(compare.load_runs(workdirs), os.path.join(base, compare.FIGURE))
      return compare.FIGURE
  except Exception as e:  # pylint: disable=broad-except
    sys.stderr.write(f"dlx sweep: warning: no comparison figure ({type(e).__name__}: {e})\n")
  return None


def _row(workdir, code, last_line):
  results = relaunch.read_json(os.path.join(workdir, "results.json"))
  if code == 0 and results is not None:
    return flatten(results)
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
  parser.add_argument(
    "--stop_timeout",
    type=float,
    default=STOP_TIMEOUT_S,
    help="Seconds a run stopped by SIGTERM/SIGINT to the sweep gets to exit before SIGKILL",
  )
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
    cmd = [sys.executable, "-m", "dlx.main", config_flag, f"--workdir={workdir}"]
    pending[workdir] = cmd + [f"--{field}={value}" for field, value in assignment] + passthrough
  stop = Stop(args.stop_timeout)
  outcomes = {}
  if args.backend == "ray" and pending:
    submit_all = _ray_runner(args)
    stop.install()  # after ray.init, which takes SIGTERM for itself
    try:
      done = submit_all(list(pending.values()), os.getcwd(), stop)
    finally:
      stop.restore()
    outcomes = dict(zip(pending, done)) if done is not None else {}
  elif pending:
    stop.install()
    try:
      for workdir, cmd in pending.items():
        if stop.signum is not None:
          break
        print(f"== {os.path.basename(workdir)}", flush=True)
        outcomes[workdir] = run_one(cmd, os.getcwd(), stop, stop.timeout_s)
    finally:
      stop.restore()
  if stop.signum is not None:
    sys.stderr.write(stop.message() + "\n")
    return 128 + stop.signum
  rows = [(a, _row(w, *outcomes.get(w, (0, "")))) for a, w in assignments]
  finished = [w for (_, w), (_, r) in zip(assignments, rows) if "status" not in r]
  text = table(rows, fields, _figure(base, finished))
  relaunch.write_json_atomic(os.path.join(base, "results.md"), text + "\n")
  relaunch.write_json_atomic(
    os.path.join(base, "results.json"), [{**dict(a), **r} for a, r in rows], indent=2
  )
  print(text)
  return 0 if all("status" not in r for _, r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
