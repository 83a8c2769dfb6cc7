"""dlx/tools/sweep.py's stop path with a stand-in run: a run that ignores the stop signal
is killed after the timeout, and an interrupted `run_one` (a cancelled Ray task) ends its
run before it re-raises. The real sweep, stopped by a signal, is tested in
tests/system/test_workdir_lock.py."""

import _thread
import os
import signal
import sys
import threading
import time

import pytest

from dlx.tools import sweep

# Writes its pid to argv[1] once its SIGTERM disposition is set, then sleeps.
_RUN = """
import os, signal, sys, time
if sys.argv[2] == "ignore":
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".tmp", "w") as f:
  f.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
"""


def _when_started(pid_file, action):
  def wait_then_act():
    deadline = time.time() + 60
    while not os.path.exists(pid_file) and time.time() < deadline:
      time.sleep(0.02)
    action()

  thread = threading.Thread(target=wait_then_act, daemon=True)
  thread.start()
  return thread


def _gone(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  return False


def test_a_run_that_ignores_the_stop_signal_is_killed_after_the_timeout(tmp_path):
  pid_file = str(tmp_path / "pid")
  stop = sweep.Stop(timeout_s=1.0)
  # The handler's work, as a signal to the sweep would do it.
  _when_started(pid_file, lambda: stop._handle(signal.SIGTERM, None))  # pylint: disable=protected-access
  start = time.perf_counter()
  code, _ = sweep.run_one([sys.executable, "-c", _RUN, pid_file, "ignore"], str(tmp_path), stop)
  assert code == -signal.SIGKILL
  assert 1.0 <= time.perf_counter() - start < 30
  assert stop.signum == signal.SIGTERM
  assert stop.message().startswith("dlx sweep: stopped by SIGTERM")


@pytest.fixture
def python_sigint():
  """Python's own SIGINT handler, which interrupt_main needs: a shell starts a background
  job (`./launch.sh test &`) with SIGINT ignored, and then interrupt_main does nothing."""
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  yield
  signal.signal(signal.SIGINT, previous)


def test_an_interrupted_run_one_ends_its_run(tmp_path, python_sigint):
  del python_sigint
  pid_file = str(tmp_path / "pid")
  _when_started(pid_file, _thread.interrupt_main)  # what a cancelled Ray task sees
  with pytest.raises(KeyboardInterrupt):
    sweep.run_one([sys.executable, "-c", _RUN, pid_file, "default"], str(tmp_path))
  with open(pid_file) as f:
    assert _gone(int(f.read()))
