"""One run per workdir, in real processes: a second `python -m dlx.main` into a busy
workdir stops at once with one line and the first run finishes untouched; a lock left by
a process that is gone is taken over; a sweep stopped by a signal leaves no run behind.
The lock itself is tested in tests/unit/training/test_workdir_lock.py."""

import collections
import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from dlx.training import workdir_lock
from tests import conftest

try:
  import psutil  # pylint: disable=g-import-not-at-top
except ImportError:  # the /proc check below does without
  psutil = None

_RUN_FLAGS = [
  "--config.num_train_steps=3000",
  "--config.checkpoint_every_steps=100",
  "--config.eval_every_steps=1000",
  "--config.log_every_steps=100",
]


def _main_cmd(workdir, *flags):
  return [sys.executable, "-m", "dlx.main", "--config=mlp_xor", f"--workdir={workdir}", *flags]


def _start(cmd):
  return subprocess.Popen(
    cmd,
    cwd=conftest.REPO,
    env=conftest.subprocess_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _wait_for(predicate, proc, timeout=120, what="it"):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    assert proc.poll() is None, f"the process ended before {what}: {proc.communicate()[1][-3000:]}"
    time.sleep(0.02)
  raise AssertionError(f"no {what} within {timeout} s")


def _holder_pid(workdir):
  holder = workdir_lock.read_holder(str(workdir))
  return holder and holder.get("pid")


def _has_checkpoint(workdir):
  ckpts = workdir / "checkpoints"
  return ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())


def _alive(pid) -> bool:
  """Whether `pid` is a live process (a zombie, ended but not yet reaped, is not)."""
  if psutil is not None:
    try:
      return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
      return False
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except FileNotFoundError:
    return False


def _assert_one_line_error(stderr, returncode):
  assert returncode != 0
  assert "Traceback" not in stderr, stderr[-3000:]
  lines = stderr.splitlines()
  assert len(lines) == 1, stderr[-3000:]
  assert lines[0].startswith("dlx: error: "), lines[0]
  return lines[0]


def _assert_each_row_once(workdir):
  rows = conftest.read_jsonl(workdir / "metrics.jsonl")
  counts = collections.Counter((r["split"], r["step"]) for r in rows)
  twice = {k: n for k, n in counts.items() if n > 1}
  assert not twice, twice
  return counts


def _stop(proc):
  if proc.poll() is None:
    proc.kill()
  proc.communicate()


def test_a_second_launch_into_a_busy_workdir_stops_at_once(tmp_path):
  workdir = tmp_path / "run"
  cmd = _main_cmd(workdir, *_RUN_FLAGS)
  first = _start(cmd)
  try:
    _wait_for(
      lambda: _holder_pid(workdir) == first.pid and _has_checkpoint(workdir),
      first,
      what="a lock and a first checkpoint",
    )
    # Paused mid-run, still holding its lock: the second launch meets a busy workdir
    # however slowly it starts on a loaded machine.
    first.send_signal(signal.SIGSTOP)
    metrics_before = (workdir / "metrics.jsonl").read_text()
    config_before = (workdir / "config.json").read_text()
    start = time.perf_counter()
    second = subprocess.run(
      cmd,
      cwd=conftest.REPO,
      env=conftest.subprocess_env(),
      capture_output=True,
      text=True,
      timeout=120,
    )
    elapsed = time.perf_counter() - start
    first.send_signal(signal.SIGCONT)
    line = _assert_one_line_error(second.stderr, second.returncode)
    assert second.returncode == 2
    assert f"workdir {workdir} is in use by pid {first.pid} on host {socket.gethostname()}" in (
      line
    )
    assert f"(lock file {workdir / 'lock'})" in line and "another --workdir" in line
    assert elapsed < 30, f"the second launch took {elapsed:.1f} s to give up"
    # It wrote nothing the first run owns.
    assert (workdir / "metrics.jsonl").read_text() == metrics_before
    assert (workdir / "config.json").read_text() == config_before

    _, stderr = first.communicate(timeout=300)
  finally:
    if first.poll() is None:
      first.send_signal(signal.SIGCONT)
    _stop(first)
  assert first.returncode == 0, stderr[-3000:]
  with open(workdir / "results.json") as f:
    assert json.load(f)["step"] == 3000
  counts = _assert_each_row_once(workdir)
  assert {step for split, step in counts if split == "train"} == set(range(100, 3001, 100))
  assert not (workdir / "lock").exists()
  assert not list(workdir.rglob("*.orbax-checkpoint-tmp*"))


@pytest.mark.slow  # about 20 s: two full launches race from the same moment
def test_two_launches_at_once_run_once(tmp_path):
  workdir = tmp_path / "run"
  cmd = _main_cmd(workdir, *_RUN_FLAGS[1:], "--config.num_train_steps=10000")
  procs = [_start(cmd), _start(cmd)]
  try:
    outs = [p.communicate(timeout=300) for p in procs]
  finally:
    for p in procs:
      _stop(p)
  codes = sorted(p.returncode for p in procs)
  assert codes == [0, 2], [o[1][-2000:] for o in outs]
  loser = next(i for i, p in enumerate(procs) if p.returncode == 2)
  winner = procs[1 - loser]
  line = _assert_one_line_error(outs[loser][1], 2)
  assert f"in use by pid {winner.pid}" in line
  _assert_each_row_once(workdir)
  assert not (workdir / "lock").exists()


def test_a_lock_left_by_a_process_that_is_gone_is_taken_over(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  gone = subprocess.Popen([sys.executable, "-c", "pass"])
  gone.wait()  # exited and reaped: its pid names no process
  left = {
    "host": socket.gethostname(),
    "pid": gone.pid,
    "started": "2026-01-01T00:00:00+00:00",
    "argv": ["dlx.main"],
  }
  (workdir / "lock").write_text(json.dumps(left))
  done = subprocess.run(
    _main_cmd(workdir, "--config.num_train_steps=20", "--config.log_every_steps=10"),
    cwd=conftest.REPO,
    env=conftest.subprocess_env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  warning = [line for line in done.stderr.splitlines() if "taking over" in line]
  assert len(warning) == 1, done.stderr[-3000:]
  assert warning[0].startswith("warning: ")
  assert f"of pid {gone.pid} on host {socket.gethostname()}" in warning[0]
  assert (workdir / "results.json").is_file()
  assert not (workdir / "lock").exists()


@pytest.mark.parametrize(
  "backend,signum",
  [
    ("local", signal.SIGTERM),
    pytest.param("local", signal.SIGINT, marks=pytest.mark.slow),
    pytest.param("ray", signal.SIGTERM, marks=pytest.mark.slow),  # 20-30 s for Ray to start
  ],
  ids=["sigterm", "sigint", "ray"],
)
def test_a_stopped_sweep_leaves_no_run_behind(tmp_path, backend, signum):
  if backend == "ray":
    pytest.importorskip("ray", reason="Ray is the [ray] extra (installed with [test])")
  base = tmp_path / "sweep"
  sweep = _start(
    [
      sys.executable,
      "-m",
      "dlx.tools.sweep",
      "mlp_xor",
      "--grid",
      "config.seed=0,1",
      f"--workdir={base}",
      f"--backend={backend}",
      "--stop_timeout=20",
      *_RUN_FLAGS,
    ]
  )
  workdirs = [base / "seed=0", base / "seed=1"]
  try:
    _wait_for(lambda: _holder_pid(workdirs[0]), sweep, timeout=180, what="the first run's lock")
    runs = {pid for pid in map(_holder_pid, workdirs) if pid}  # Ray may start both
    assert sweep.pid not in runs and all(_alive(pid) for pid in runs)
    start = time.perf_counter()
    sweep.send_signal(signum)
    _, stderr = sweep.communicate(timeout=90)
    elapsed = time.perf_counter() - start
  finally:
    _stop(sweep)
  assert sweep.returncode == 128 + signum, stderr[-3000:]
  assert elapsed < 40, f"the sweep took {elapsed:.1f} s to stop"
  last = stderr.strip().splitlines()[-1]
  assert last.startswith(f"dlx sweep: stopped by {signal.Signals(signum).name}"), last
  assert "relaunch the same command" in last
  deadline = time.time() + 10
  while any(map(_alive, runs)) and time.time() < deadline:
    time.sleep(0.05)
  assert not any(map(_alive, runs)), f"runs {runs} of the sweep outlived it"
  assert not (base / "results.md").exists()
  if backend == "local":
    assert not workdirs[1].exists()  # no further run started
