"""dlx/training/workdir_lock.py: one holder per workdir, its JSON, the one-line busy error,
takeover of a lock whose process is gone, release on every way out."""

import errno
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys

import pytest

from dlx import errors
from dlx.training import workdir_lock
from tests import conftest

# Holds the lock of argv[1] until stdin closes; says so on stdout first.
_HOLDER = """
import sys
from dlx.training import workdir_lock
with workdir_lock.hold(sys.argv[1]):
  print("held", flush=True)
  sys.stdin.read()
"""


def _start_holder(workdir):
  proc = subprocess.Popen(
    [sys.executable, "-c", _HOLDER, str(workdir)],
    cwd=conftest.REPO,
    env=conftest.subprocess_env(),
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
  )
  assert proc.stdout.readline().strip() == "held"
  return proc


def _dead_pid():
  """A pid that no process has now: a child that has exited and been reaped."""
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_the_lock_file_names_its_holder_and_goes_with_it(tmp_path):
  lock = workdir_lock.acquire(str(tmp_path))
  try:
    with open(tmp_path / "lock") as f:
      holder = json.load(f)
    assert holder["pid"] == os.getpid()
    assert holder["host"] == socket.gethostname()
    assert holder["argv"] == sys.argv
    assert holder["started"][:4].isdigit() and "T" in holder["started"]
    assert workdir_lock.read_holder(str(tmp_path)) == holder == lock.holder
  finally:
    lock.release()
  assert not (tmp_path / "lock").exists()
  lock.release()  # twice is fine


def test_a_held_lock_refuses_a_second_holder_in_one_line(tmp_path):
  with workdir_lock.hold(str(tmp_path)) as lock:
    before = (tmp_path / "lock").read_text()
    # flock belongs to an open file, so even this process cannot take it twice.
    with pytest.raises(errors.WorkdirBusyError) as raised:
      workdir_lock.acquire(str(tmp_path))
    assert lock.held
    assert (tmp_path / "lock").read_text() == before  # the holder's file is untouched
  message = str(raised.value)
  assert "\n" not in message
  assert message == (
    f"workdir {tmp_path} is in use by pid {os.getpid()} on host {socket.gethostname()} "
    f"since {lock.holder['started']} (lock file {tmp_path / 'lock'}); wait for that run "
    "to end, or pass another --workdir"
  )
  assert isinstance(raised.value, errors.UserError)
  workdir_lock.acquire(str(tmp_path)).release()  # free again once released


def test_another_process_holding_the_lock_is_named(tmp_path):
  holder = _start_holder(tmp_path)
  try:
    with pytest.raises(errors.WorkdirBusyError, match=f"in use by pid {holder.pid} on host"):
      workdir_lock.acquire(str(tmp_path))
  finally:
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0
  assert not (tmp_path / "lock").exists()  # a holder that ends removes its file
  workdir_lock.acquire(str(tmp_path)).release()


def test_a_killed_holder_leaves_a_lock_that_is_taken_over_with_a_warning(tmp_path, caplog):
  holder = _start_holder(tmp_path)
  os.kill(holder.pid, signal.SIGKILL)  # no clean-up: the file stays, the kernel frees the flock
  holder.wait(timeout=30)
  assert workdir_lock.read_holder(str(tmp_path))["pid"] == holder.pid
  with caplog.at_level(logging.WARNING):
    lock = workdir_lock.acquire(str(tmp_path))
  try:
    assert lock.holder["pid"] == os.getpid()
    assert workdir_lock.read_holder(str(tmp_path))["pid"] == os.getpid()
  finally:
    lock.release()
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any(f"of pid {holder.pid} on host {socket.gethostname()}" in w for w in warnings), warnings


def test_a_stale_lock_file_is_taken_over(tmp_path, caplog):
  stale = {"host": socket.gethostname(), "pid": _dead_pid(), "started": "2020-01-01T00:00:00"}
  (tmp_path / "lock").write_text(json.dumps(stale))
  with caplog.at_level(logging.WARNING):
    with workdir_lock.hold(str(tmp_path)) as lock:
      assert lock.holder["pid"] == os.getpid()
  assert any(
    f"of pid {stale['pid']}" in r.getMessage() and "gone" in r.getMessage() for r in caplog.records
  )
  assert not (tmp_path / "lock").exists()


def test_an_unreadable_lock_file_is_taken_over(tmp_path, caplog):
  (tmp_path / "lock").write_text("{not json")
  with caplog.at_level(logging.WARNING):
    workdir_lock.acquire(str(tmp_path)).release()
  assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_a_holder_that_has_not_written_its_json_yet_is_still_one_line(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lock, "_HOLDER_WAIT_S", 0.1)
  path = tmp_path / "lock"
  with open(path, "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, still empty
    with pytest.raises(errors.WorkdirBusyError, match="in use by another run") as raised:
      workdir_lock.acquire(str(tmp_path))
  assert "\n" not in str(raised.value)


def test_the_lock_is_released_when_the_block_raises(tmp_path):
  with pytest.raises(RuntimeError):
    with workdir_lock.hold(str(tmp_path)):
      raise RuntimeError("boom")
  assert not (tmp_path / "lock").exists()
  workdir_lock.acquire(str(tmp_path)).release()


def test_only_process_0_holds_the_lock(tmp_path):
  with workdir_lock.hold(str(tmp_path), process_index=1) as lock:
    assert lock is None
    assert not (tmp_path / "lock").exists()
    with workdir_lock.hold(str(tmp_path), process_index=0) as lock0:
      assert lock0.held


def test_a_lock_file_removed_under_a_waiting_launch_is_not_taken(tmp_path, monkeypatch):
  """A launch that opened the file just before its holder removed it, and then got the
  flock, must start over on the file the path names, not hold the unlinked one."""
  first = workdir_lock.acquire(str(tmp_path))
  late = os.open(tmp_path / "lock", os.O_RDWR)  # the late launch's open, before release
  first.release()
  opened = []

  def open_late_first(path):
    opened.append(path)
    return late if len(opened) == 1 else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

  monkeypatch.setattr(workdir_lock, "_open", open_late_first)
  second = workdir_lock.acquire(str(tmp_path))
  try:
    assert len(opened) == 2  # it started over
    with pytest.raises(OSError):
      os.fstat(late)  # and closed the unlinked file
    assert workdir_lock.read_holder(str(tmp_path))["pid"] == os.getpid()
    monkeypatch.undo()
    with pytest.raises(errors.WorkdirBusyError):
      workdir_lock.acquire(str(tmp_path))  # the file the path names is the locked one
  finally:
    second.release()


def test_a_lock_kept_by_a_child_of_a_holder_that_is_gone_says_so(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lock, "_HOLDER_WAIT_S", 0.1)
  gone = _dead_pid()
  with open(tmp_path / "lock", "w") as f:
    json.dump({"host": socket.gethostname(), "pid": gone, "started": "T0"}, f)
    f.flush()
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a forked data loader worker would
    with pytest.raises(errors.WorkdirBusyError) as raised:
      workdir_lock.acquire(str(tmp_path))
  assert f"in use by pid {gone} on host" in str(raised.value)
  assert "that process is gone; a process it started still holds the lock" in str(raised.value)


def test_a_file_system_that_cannot_lock_runs_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
  def no_locks(fd, operation):
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

  monkeypatch.setattr(workdir_lock.fcntl, "flock", no_locks)
  with caplog.at_level(logging.WARNING):
    with workdir_lock.hold(str(tmp_path)) as lock:
      assert not lock.held
  assert any("cannot lock files" in r.getMessage() for r in caplog.records)
