"""SIGTERM and Ctrl-C sent to real `python -m dlx.main` processes (dlx/training/
preemption.py): the run saves the step it was on, prints one line, exits with 128 + the
signal's number, and the relaunch resumes from that step and ends as an uninterrupted
run does; a second Ctrl-C exits at once; two processes of one distributed job, both
signalled, stop at the same step."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from dlx import experiment as experiment_lib
from tests import conftest
from tests.unit.test_train import SPLITS
from tests.unit.test_train import _train

# mlp_xor runs about 2,000 steps a second: the signal, sent once step 100 is logged,
# lands long before the checkpoint at step 3000.
RUN = {
  "num_train_steps": 6000,
  "checkpoint_every_steps": 3000,
  "log_every_steps": 100,
  "eval_every_steps": 1000,
}
STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}


def _command(workdir, config="mlp_xor", run=None):
  flags = [f"--config.{k}={v}" for k, v in (run or RUN).items()]
  return [sys.executable, "-m", "dlx.main", f"--config={config}", f"--workdir={workdir}", *flags]


def _start(cmd, log, env=None):
  with open(log, "w") as out:
    return subprocess.Popen(
      cmd, cwd=conftest.REPO, env=env or conftest.subprocess_env(), stdout=out, stderr=out
    )


def _logged_train_steps(workdir):
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return []
  steps = []
  for line in path.read_text().splitlines():
    try:
      row = json.loads(line)
    except json.JSONDecodeError:  # a line being written
      continue
    if row["split"] == "train":
      steps.append(row["step"])
  return steps


def _wait_for_a_logged_step(procs, workdir, timeout=120):
  """Polls metrics.jsonl until a train step is logged; returns the last one logged."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert all(p.poll() is None for p in procs), "a run ended before it was signalled"
    steps = _logged_train_steps(workdir)
    if steps:
      return max(steps)
    time.sleep(0.01)
  raise AssertionError(f"no train step logged within {timeout} s")


def _stopped_step(output, name):
  """The step of the one `dlx: stopped by NAME at step N; ...` line (and no traceback)."""
  assert "Traceback" not in output, output[-3000:]
  lines = [line for line in output.splitlines() if line.startswith("dlx: ")]
  assert len(lines) == 1, lines
  prefix = f"dlx: stopped by {name} at step "
  assert lines[0].startswith(prefix), lines[0]
  step, rest = lines[0][len(prefix) :].split(";", 1)
  assert rest == " checkpoint saved; relaunch the same command to resume"
  return int(step)


def _kill_all(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()
      p.wait()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The uninterrupted run, in-process, with the same configuration."""
  cfg = experiment_lib.load("mlp_xor").config()
  for key, value in RUN.items():
    setattr(cfg, key, value)
  return _train(tmp_path_factory.mktemp("straight") / "run", cfg)


# SIGINT takes the same path (the handler's unit test and test_a_second_ctrl_c_exits_at_once
# send it for real): its end-to-end twin is in the slow suite (15-minute budget).
@pytest.mark.parametrize(
  "signum",
  [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
  ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_saves_the_step_and_the_relaunch_ends_as_an_uninterrupted_run(
  tmp_path, reference, signum
):
  name = signal.Signals(signum).name
  workdir = tmp_path / "run"
  cmd = _command(workdir)
  proc = _start(cmd, tmp_path / "first.out")
  try:
    last_logged = _wait_for_a_logged_step([proc], workdir)
    os.kill(proc.pid, signum)
    sent = time.time()
    assert proc.wait(timeout=30) == STATUS[signum]
  finally:
    _kill_all([proc])
  assert time.time() - sent < 30
  step = _stopped_step((tmp_path / "first.out").read_text(), name)
  assert last_logged <= step < RUN["num_train_steps"]
  # A checkpoint of the step it stopped at, between the periodic ones.
  assert max(conftest.checkpoint_steps(workdir / "checkpoints")) == step
  assert not (workdir / "results.json").exists()
  assert max(_logged_train_steps(workdir)) <= step  # metrics.jsonl is whole and readable

  done = subprocess.run(
    cmd, cwd=conftest.REPO, env=conftest.subprocess_env(), capture_output=True, text=True
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"resuming from step {step} in" in done.stderr
  resumed = json.loads((workdir / "results.json").read_text())
  assert resumed["step"] == reference["step"] == RUN["num_train_steps"]
  for split in SPLITS:
    assert resumed[split] == reference[split], split


def test_a_sigterm_during_setup_stops_after_the_first_step(tmp_path, reference):
  """The handlers are in place from the run's setup on (data, model, restoring, the
  first compilation): a SIGTERM there is not lost, the run stops cleanly early on."""
  workdir = tmp_path / "run"
  cmd = _command(workdir)
  proc = _start(cmd, tmp_path / "first.out")
  try:
    deadline = time.time() + 120
    while not (workdir / "config.json").exists() and time.time() < deadline:
      assert proc.poll() is None, (tmp_path / "first.out").read_text()[-2000:]
      time.sleep(0.005)
    time.sleep(0.2)  # config.json comes just before the handlers; setup follows them
    steps_before = _logged_train_steps(workdir)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
  finally:
    _kill_all([proc])
  step = _stopped_step((tmp_path / "first.out").read_text(), "SIGTERM")
  assert step >= 1 and max(conftest.checkpoint_steps(workdir / "checkpoints")) == step
  if not steps_before:  # the signal came before the first logged step (the usual case)
    assert step <= RUN["log_every_steps"]
  done = subprocess.run(
    cmd, cwd=conftest.REPO, env=conftest.subprocess_env(), capture_output=True, text=True
  )
  assert done.returncode == 0 and f"resuming from step {step} in" in done.stderr
  resumed = json.loads((workdir / "results.json").read_text())
  for split in SPLITS:
    assert resumed[split] == reference[split], split


# mlp_xor with a final report that marks its start and then waits: a signal sent once
# the mark exists lands in the final evaluation.
_SLOW_REPORT = """

def final_report(ctx):
  import pathlib
  import time

  pathlib.Path(ctx.workdir, "reporting").touch()
  # Short sleeps, like a report's many small computations: a signal that the system
  # hands to another thread runs its Python handler only when the main thread wakes.
  deadline = time.time() + float(os.environ.get("DLX_TEST_REPORT_SECONDS", "0"))
  while time.time() < deadline:
    time.sleep(0.05)
  return {"reported": 1}
"""


def test_a_sigterm_during_the_final_evaluation_stops_at_once(tmp_path, reference):
  """After the last step is saved, a signal stops the run at once with one line (an
  evaluation and a report can outlast a scheduler's grace period); the relaunch trains
  nothing, evaluates, and ends as an uninterrupted run does."""
  source = (conftest.REPO / "experiments" / "classic" / "mlp_xor.py").read_text()
  experiment = tmp_path / "xor_slow_report.py"
  experiment.write_text("import os\n" + source + _SLOW_REPORT)
  workdir = tmp_path / "run"
  cmd = _command(workdir, config=str(experiment))
  proc = _start(
    cmd, tmp_path / "first.out", env=conftest.subprocess_env(DLX_TEST_REPORT_SECONDS="120")
  )
  try:
    deadline = time.time() + 120
    while not (workdir / "reporting").exists() and time.time() < deadline:
      assert proc.poll() is None, (tmp_path / "first.out").read_text()[-2000:]
      time.sleep(0.02)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
  finally:
    _kill_all([proc])
  output = (tmp_path / "first.out").read_text()
  assert "Traceback" not in output, output[-3000:]
  lines = [line for line in output.splitlines() if line.startswith("dlx: ")]
  final = RUN["num_train_steps"]
  assert lines == [
    f"dlx: stopped by SIGTERM during the final evaluation; training finished at step {final} "
    "and is saved; relaunch the same command to evaluate it"
  ], lines
  assert not (workdir / "results.json").exists()
  assert max(conftest.checkpoint_steps(workdir / "checkpoints")) == final

  done = subprocess.run(
    cmd, cwd=conftest.REPO, env=conftest.subprocess_env(), capture_output=True, text=True
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"resuming from step {final} in" in done.stderr
  resumed = json.loads((workdir / "results.json").read_text())
  assert resumed["report"] == {"reported": 1}
  for split in SPLITS:
    assert resumed[split] == reference[split], split


def test_a_second_ctrl_c_exits_at_once(tmp_path, reference):
  """Two Ctrl-C in a row: status 130 and one line, whether the second came while the
  first was being handled (KeyboardInterrupt at once: the save of the step in flight cut
  short, the usual case) or after the run had already stopped cleanly. The relaunch
  still ends as an uninterrupted run does."""
  workdir = tmp_path / "run"
  cmd = _command(workdir)
  proc = _start(cmd, tmp_path / "out")
  try:
    _wait_for_a_logged_step([proc], workdir)
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.02)  # apart, or the two would be delivered as one
    if proc.poll() is None:
      os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 130
  finally:
    _kill_all([proc])
  output = (tmp_path / "out").read_text()
  assert "Traceback" not in output, output[-3000:]
  lines = [line for line in output.splitlines() if line.startswith("dlx: ")]
  assert len(lines) == 1, lines
  assert lines[0].startswith(("dlx: interrupted; stopped at once", "dlx: stopped by SIGINT")), lines

  done = subprocess.run(
    cmd, cwd=conftest.REPO, env=conftest.subprocess_env(), capture_output=True, text=True
  )
  assert done.returncode == 0, done.stderr[-3000:]
  resumed = json.loads((workdir / "results.json").read_text())
  for split in SPLITS:
    assert resumed[split] == reference[split], split


# Through Gloo, a step takes milliseconds: a short run, its agreements at steps 1, 2, 6,
# 22, 86 (dlx/training/preemption.py), the signal sent once step 10 is logged.
DISTRIBUTED_RUN = {
  "num_train_steps": 200,
  "checkpoint_every_steps": 100,
  "log_every_steps": 10,
  "eval_every_steps": 100,
  "distributed": True,
}


def _launch_pair(workdir, port, logs):
  procs = []
  for i in (0, 1):
    cmd = _command(workdir, "mlp_xor", DISTRIBUTED_RUN) + [
      f"--coordinator_address=localhost:{port}",
      "--num_processes=2",
      f"--process_id={i}",
    ]
    env = conftest.subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs.append(_start(cmd, logs[i], env))
  return procs


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


# Both signalled (a preempted job); or process 1 alone (one VM of several taken away), which
# process 0 learns of at the next agreement (slow suite: the 15-minute budget).
@pytest.mark.parametrize(
  "signalled", [(0, 1), pytest.param((1,), marks=pytest.mark.slow)], ids=["both", "one"]
)
def test_two_processes_signalled_stop_at_the_same_step_and_resume_from_it(tmp_path, signalled):
  """The pattern of tests/system/test_distributed.py: two local processes with two CPU
  devices each, joined by jax.distributed, sent SIGTERM."""
  workdir = tmp_path / "run"
  logs = [tmp_path / f"first{i}.out" for i in (0, 1)]
  procs = _launch_pair(workdir, _free_port(), logs)
  try:
    last_logged = _wait_for_a_logged_step(procs, workdir, timeout=240)
    for i in signalled:
      os.kill(procs[i].pid, signal.SIGTERM)
    codes = [p.wait(timeout=60) for p in procs]
  finally:
    _kill_all(procs)
  outputs = [log.read_text() for log in logs]
  assert codes == [143, 143], outputs[0][-2000:] + outputs[1][-2000:]
  steps = [_stopped_step(out, "SIGTERM") for out in outputs]
  assert steps[0] == steps[1], steps
  step = steps[0]
  assert last_logged <= step < DISTRIBUTED_RUN["num_train_steps"]
  assert max(conftest.checkpoint_steps(workdir / "checkpoints")) == step

  logs = [tmp_path / f"second{i}.out" for i in (0, 1)]
  procs = _launch_pair(workdir, _free_port(), logs)
  try:
    codes = [p.wait(timeout=300) for p in procs]
  finally:
    _kill_all(procs)
  outputs = [log.read_text() for log in logs]
  assert codes == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
  for out in outputs:
    assert f"resuming from step {step} in" in out
  results = json.loads((workdir / "results.json").read_text())
  assert results["step"] == DISTRIBUTED_RUN["num_train_steps"]
