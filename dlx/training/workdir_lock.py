"""One run per workdir: a lock held for the run's life.

    with workdir_lock.hold(workdir):
      ...  # everything that writes to the workdir

The lock is the file WORKDIR/lock, locked with `fcntl.flock(LOCK_EX | LOCK_NB)` on a
descriptor kept open until the run ends. It holds JSON naming the holder:

    {"host": "...", "pid": 1234, "started": "2026-05-09T07:35:25+00:00", "argv": [...]}

A second launch into the workdir fails at once with `errors.WorkdirBusyError`, one line
naming that holder. The kernel drops a flock when its process ends, however it ends (even
`kill -9`), so no lock outlives its run on one host: a lock file whose lock is free names
a run that is gone, and is taken over with a warning. A run that ends removes the file.

In a multi-process run process 0 holds the lock; `hold` does nothing on the others.

Limits: flock is only as good as the file system's support for it. On a local disk it is
exact; on NFS a flock may not be seen from another host (Linux clients emulate it with
byte-range locks, which need a working lock manager), so two hosts sharing a workdir over
NFS are not reliably kept apart; where the file system cannot lock at all, the run goes
on unlocked with a warning. A process that forks (a data loader's workers) shares the
lock with its children until they exit too.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import time
from typing import Iterator, Optional

from absl import logging
import jax

from dlx import errors

LOCK_FILE = "lock"
# A holder writes its JSON right after taking the lock; a launch that finds the lock taken
# and the file still empty (or naming a process that is gone) waits this long for it.
_HOLDER_WAIT_S = 1.0
# flock's errors where the file system cannot lock (NFS without a lock manager, FUSE).
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL)


def lock_path(workdir: str) -> str:
  return os.path.join(workdir, LOCK_FILE)


class WorkdirLock:
  """A held workdir lock; `release` (or the process's end) frees it. Not `held` where
  the file system cannot lock (a warning said so)."""

  def __init__(self, workdir: str, fd: Optional[int], holder: dict):
    self.workdir = workdir
    self.path = lock_path(workdir)
    self.holder = holder
    self._fd: Optional[int] = fd

  @property
  def held(self) -> bool:
    return self._fd is not None

  def release(self):
    """Removes the lock file, then frees the lock. Idempotent."""
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      # Removed while still locked: a launch waiting on this file finds it unlinked
      # once it gets the lock, and starts over on a fresh file (see `acquire`).
      if _same_file(fd, self.path):
        os.unlink(self.path)
    except OSError as e:
      logging.warning("could not remove the workdir lock file %s: %s", self.path, e)
    finally:
      os.close(fd)  # closing the last descriptor frees the flock


def _same_file(fd: int, path: str) -> bool:
  """Whether `path` still names the file open as `fd`."""
  try:
    on_disk = os.stat(path)
  except FileNotFoundError:
    return False
  mine = os.fstat(fd)
  return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _read(fd: int) -> Optional[dict]:
  """The holder JSON in the open lock file; None if empty or unreadable."""
  try:
    raw = os.pread(fd, 1 << 16, 0)
    holder = json.loads(raw.decode("utf-8"))
  except (OSError, ValueError):
    return None
  return holder if isinstance(holder, dict) else None


def read_holder(workdir: str) -> Optional[dict]:
  """The JSON of the workdir's lock file (held or left behind), or None."""
  try:
    fd = os.open(lock_path(workdir), os.O_RDONLY)
  except OSError:
    return None
  try:
    return _read(fd)
  finally:
    os.close(fd)


def _describe(holder: Optional[dict]) -> str:
  if not holder:
    return "another run (its lock file does not say which)"
  described = (
    f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
    f"since {holder.get('started', '?')}"
  )
  if not _current(holder):  # its forked children (data loader workers) keep the lock
    described += " (that process is gone; a process it started still holds the lock)"
  return described


def _current(holder: Optional[dict]) -> bool:
  """Whether `holder` can be the lock's holder: not a process of this host that is gone
  (the JSON of a run that is gone, which the new holder has yet to overwrite)."""
  if not holder:
    return False
  if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
    return True
  try:
    os.kill(holder["pid"], 0)
  except ProcessLookupError:
    return False
  except OSError:  # alive, another user's
    return True
  return True


def _busy(workdir: str, fd: int) -> errors.WorkdirBusyError:
  deadline = time.monotonic() + _HOLDER_WAIT_S
  holder = _read(fd)
  while not _current(holder) and time.monotonic() < deadline:
    time.sleep(0.05)  # the holder has the lock and is writing its JSON
    holder = _read(fd)
  return errors.WorkdirBusyError(
    f"workdir {workdir} is in use by {_describe(holder)} (lock file {lock_path(workdir)}); "
    "wait for that run to end, or pass another --workdir"
  )


def _holder_json() -> dict:
  return {
    "host": socket.gethostname(),
    "pid": os.getpid(),
    "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "argv": list(sys.argv),
  }


def _open(path: str) -> int:
  return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def acquire(workdir: str) -> WorkdirLock:
  """Takes the workdir's lock (the workdir must exist) or raises WorkdirBusyError naming
  its holder. A lock file left by a run that is gone is taken over with a warning."""
  workdir = os.path.abspath(workdir)
  path = lock_path(workdir)
  while True:
    fd = _open(path)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in _UNSUPPORTED:
        os.close(fd)
        logging.warning(
          "the file system of %s cannot lock files (%s): this run holds no workdir lock, "
          "so make sure no other run uses this workdir",
          workdir,
          e.strerror,
        )
        return WorkdirLock(workdir, None, {})
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        os.close(fd)
        raise
      try:
        raise _busy(workdir, fd) from None
      finally:
        os.close(fd)
    if _same_file(fd, path):
      break
    # The holder we waited on removed the file as it released it: start over, so that
    # every launch locks the file the path names.
    os.close(fd)
  try:
    left = _read(fd)
    if left is not None or os.fstat(fd).st_size:
      _warn_takeover(path, left)
    holder = _holder_json()
    data = (json.dumps(holder, indent=2) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
  except BaseException:
    os.close(fd)
    raise
  return WorkdirLock(workdir, fd, holder)


def _warn_takeover(path: str, left: Optional[dict]):
  if left is None:
    logging.warning("taking over the workdir lock %s (its contents were unreadable)", path)
    return
  here = left.get("host") == socket.gethostname()
  logging.warning(
    "taking over the workdir lock %s of pid %s on host %s (started %s): %s",
    path,
    left.get("pid", "?"),
    left.get("host", "?"),
    left.get("started", "?"),
    "that process is gone"
    if here
    else "its lock is free, so that run has ended (flock across hosts needs a local or "
    "flock-aware file system: make sure it is not running)",
  )


@contextlib.contextmanager
def hold(workdir: str, *, process_index: Optional[int] = None) -> Iterator[Optional[WorkdirLock]]:
  """Holds the workdir's lock for the `with` block, released on every way out of it.
  Only process 0 (`jax.process_index()`, or `process_index` when given) takes it; the
  other processes of a multi-process run get None."""
  index = jax.process_index() if process_index is None else process_index
  if index != 0:
    yield None
    return
  lock = acquire(workdir)
  try:
    yield lock
  finally:
    lock.release()
