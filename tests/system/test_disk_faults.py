"""Write failures are one line: a real, small file system that fills up mid-run (tmpfs,
where this machine lets a test mount one), and a --workdir that is a file."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests import conftest
from tests.system.test_main import _assert_one_line_error
from tests.system.test_main import _run


@pytest.fixture
def small_disk(tmp_path):
  """A 4 MiB tmpfs mounted for the test, or a skip that says why (mounting needs root)."""
  mount = tmp_path / "disk"
  mount.mkdir()
  done = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
  )
  if done.returncode != 0:
    pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()[:120]})")
  try:
    yield mount
  finally:
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(directory):
  """Writes a file until the disk is full (the run may have filled it already: then even
  creating the file fails, and the disk is as wanted)."""
  try:
    with open(directory / "filler", "wb") as f:
      while True:
        f.write(b"\0" * 65536)
        f.flush()
  except OSError:
    pass


@pytest.mark.parametrize("asynchronous", [True, False], ids=["async_save", "sync_save"])
def test_a_full_disk_mid_run_is_one_line_and_the_last_checkpoint_resumes(small_disk, asynchronous):
  """With asynchronous saves (the default) the failed write happens on orbax's threads and
  surfaces at the next save: still one line, the threads' tracebacks only in log.txt."""
  workdir = small_disk / "run"
  args = [
    "--config=mlp_xor",
    f"--workdir={workdir}",
    "--config.num_train_steps=3000",
    "--config.checkpoint_every_steps=500",
    "--config.log_every_steps=100",
    f"--config.checkpoint_async={asynchronous}",
  ]
  proc = subprocess.Popen(
    [sys.executable, "-m", "dlx.main", *args],
    cwd=conftest.REPO,
    env=conftest.subprocess_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    deadline = time.time() + 120
    while not (workdir / "checkpoints" / "500").is_dir() and time.time() < deadline:
      assert proc.poll() is None, proc.communicate()[1][-2000:]
      time.sleep(0.02)
    os.kill(proc.pid, signal.SIGSTOP)  # hold it still while the disk fills
    _fill(small_disk)
    os.kill(proc.pid, signal.SIGCONT)
    _, stderr = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  assert proc.returncode == 2, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  errors = [line for line in stderr.splitlines() if line.startswith("dlx: error: ")]
  assert len(errors) == 1 and "No space left on device" in errors[0], stderr[-3000:]
  assert errors[0] == stderr.splitlines()[-1]

  (small_disk / "filler").unlink(missing_ok=True)
  done, _ = _run(*args)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "resuming from step 500" in done.stderr
  assert not list((workdir / "checkpoints").glob("*tmp*"))


def test_a_workdir_that_is_a_file_is_one_line(tmp_path):
  path = tmp_path / "not_a_dir"
  path.write_text("x")
  line = _assert_one_line_error(_run("--config=mlp_xor:smoke", f"--workdir={path}")[0])
  assert str(path) in line and "must be a directory" in line


def test_a_read_only_file_system_is_one_line(small_disk):
  subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
  line = _assert_one_line_error(
    _run("--config=mlp_xor:smoke", f"--workdir={small_disk / 'run'}")[0]
  )
  assert "Read-only file system" in line and "writable --workdir" in line
