"""Errors a user can fix. `dlx.main` prints them as one line and exits non-zero."""

import signal


class UserError(Exception):
  """Bad input: the message says what was wrong and how to fix it."""


class ConfigError(UserError, ValueError):
  """A config field has a bad value."""


class DataNotFoundError(UserError, FileNotFoundError):
  """A dataset is not on disk and cannot be downloaded."""


class NonFiniteLossError(UserError, FloatingPointError):
  """Training produced a NaN or infinite loss."""


class ConfigChangedError(UserError):
  """A relaunch into a workdir changed what its run computes (dlx/training/relaunch.py)."""


class CheckpointsUnreadableError(UserError):
  """A workdir holds checkpoints and none of them restores."""


class WorkdirBusyError(UserError):
  """Another run holds the workdir's lock (dlx/training/workdir_lock.py)."""


class DataCorruptError(UserError, OSError):
  """A prepared dataset file is truncated or corrupt."""


class Preempted(BaseException):
  """The run stopped on SIGTERM or SIGINT after saving a checkpoint of `step`
  (dlx/training/preemption.py). Not an error: like KeyboardInterrupt it derives from
  BaseException, so that an `except Exception` (a sweep's, a hook's) lets it through.
  `dlx.main` prints `message()` and exits with `exit_status`, 128 + the signal's number
  (143 for SIGTERM, 130 for SIGINT)."""

  def __init__(self, signum: int, step: int, final_evaluation: bool = False):
    self.signum, self.step = int(signum), int(step)
    self.final_evaluation = bool(final_evaluation)
    self.signal_name = _signal_name(self.signum)
    self.exit_status = 128 + self.signum
    super().__init__(self.message())

  def message(self) -> str:
    if self.final_evaluation:
      return (
        f"stopped by {self.signal_name} during the final evaluation; training finished at "
        f"step {self.step} and is saved; relaunch the same command to evaluate it"
      )
    return (
      f"stopped by {self.signal_name} at step {self.step}; checkpoint saved; "
      "relaunch the same command to resume"
    )

  def __reduce__(self):
    return (type(self), (self.signum, self.step, self.final_evaluation))


def _signal_name(signum: int) -> str:
  try:
    return signal.Signals(signum).name
  except ValueError:
    return f"signal {signum}"
