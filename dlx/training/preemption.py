"""Stopping a run cleanly on SIGTERM or SIGINT: finish the step, save it, say so, exit.

SIGTERM is what a scheduler sends before it takes the machine away (a preempted Cloud TPU
VM or spot instance, SLURM's scancel or time limit, Kubernetes evicting a pod); SIGINT is
Ctrl-C. While the training loop runs (`dlx.train._train_loop`), `StopSignals` replaces
both signals' handlers with one that only records the first signal. After every step the
loop asks `should_stop(step)`; on a yes it saves a checkpoint of that step (unless it has
just saved one) and raises `dlx.errors.Preempted`, so no final evaluation runs.
`dlx.main` reports that as one line on stderr,

  dlx: stopped by SIGTERM at step 1234; checkpoint saved; relaunch the same command to resume

and exits with status 128 + the signal's number, the shell's convention for a process
that a signal ended: 143 for SIGTERM, 130 for SIGINT (`exit_status`). Relaunched, the run
resumes from that step and ends as an uninterrupted run does. `train_and_evaluate`, called
as a library function, raises `Preempted` to its caller.

A second Ctrl-C while the first is being handled (say, a slow checkpoint) raises
KeyboardInterrupt from the handler, at once: the step in flight is not saved, the last
saved checkpoint is kept, and `dlx.main` prints one line and exits with status 130. A
second SIGTERM is ignored: the run is already stopping.

The handlers are installed before the run's setup (`dlx.train._train_in_workdir`), so a
signal during data loading, model building, restoring or the first compilation is kept
and the run stops after its first step. When the loop ends, the last step is saved, and
`StopAtOnce` takes over for the final evaluation: a signal then stops the run at once
(an evaluation and a report can take minutes, more than a scheduler's grace period) with
one line, `stopped by SIGTERM during the final evaluation; ...`, and the same status; the
relaunch restores the last step, trains nothing and evaluates. Before
`train_and_evaluate` (interpreter start, imports, jax.distributed's start) the defaults
hold; under jax.distributed a SIGTERM that early is caught by JAX's own handler (below)
and nothing acts on it.

Several processes (jax.distributed) must stop after the same step: every step's
collectives need all of them, and orbax writes one checkpoint from all of them. JAX has a
mechanism for this, `jax.experimental.multihost_utils.reached_preemption_sync_point(step)`:
`jax.distributed.initialize` starts a preemption sync manager (config
`jax_enable_preemption_service`, on by default) whose C++ SIGTERM handler notifies the
coordination service; every process then reports its step, and the sync point is the
largest plus one. dlx does not use it, on jax 0.10.2, because
- it knows SIGTERM only, not Ctrl-C, and does not say which signal stopped the run;
- its handler is invisible to Python (`signal.getsignal` still says SIG_DFL), so it can
  be neither chained nor restored, and a process that never asks simply ignores SIGTERM;
- a notice that arrives before the loop first asks (while the run sets up or restores)
  sets a sync point that a resumed run, whose step numbers start at the checkpoint's,
  never reaches: tried with two processes, the run went on training.
Instead the processes agree themselves: at agreed steps every process contributes
(its first signal's number or 0, milliseconds since the last agreement) to one small
collective, `multihost_utils.process_allgather` (about 3 ms between two CPU processes).
If any process has a signal, all stop after that step and report the largest signal
number (SIGTERM over SIGINT). The first step after the start is an agreement step; after
each one, the interval to the next is resized from the gathered timings, which every
process holds alike, so all compute the same next step: about one agreement per
`SYNC_TARGET_S` of training (the interval at most quadruples each time). A multi-process
run so stops within about a second of training after the signal, for one tiny collective
a second; a single process checks its own flag after every step, at no cost.
"""

import signal
import threading
import time
from typing import Callable, Optional

import jax
import numpy as np

from dlx import errors

SIGNALS = (signal.SIGTERM, signal.SIGINT)
SYNC_TARGET_S = 1.0  # seconds of training between two agreements of several processes
_MAX_GROWTH = 4  # the interval between agreements at most quadruples at a time


def exit_status(signum: int) -> int:
  """128 + the signal's number: 143 for SIGTERM, 130 for SIGINT."""
  return 128 + int(signum)


def _process_allgather(row):
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return np.asarray(multihost_utils.process_allgather(row))


class StopSignals:
  """SIGTERM and SIGINT handlers for the training loop's life, and the decision to stop.

    with StopSignals() as signals:  # or signals = StopSignals().install() ... .restore()
      for step in ...:
        train(step)
        if signals.should_stop(step):
          save(step)
          raise errors.Preempted(signals.stop_signal, step)

  `received` is the first signal this process got (None before any); `stop_signal` is
  the one all processes agreed to stop for, set when `should_stop` says yes. Call
  `should_stop` after every step, on every process: with several, it is a collective at
  the agreement steps. Handlers can only be installed from the main thread; from another
  thread `install` leaves them alone (and nothing stops the run early)."""

  def __init__(
    self,
    *,
    process_count: Optional[int] = None,
    gather: Callable[[np.ndarray], np.ndarray] = _process_allgather,
    sync_target_s: float = SYNC_TARGET_S,
  ):
    self.received: Optional[int] = None
    self.stop_signal: Optional[int] = None
    self._process_count = jax.process_count() if process_count is None else process_count
    self._gather = gather
    self._target_s = sync_target_s
    self._previous = {}
    self._interval = 1
    self._next_sync: Optional[int] = None  # None: the first call agrees
    self._last_sync = time.monotonic()

  def install(self) -> "StopSignals":
    if threading.current_thread() is not threading.main_thread():
      return self
    for signum in SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def restore(self):
    """Puts back the handlers `install` replaced (SIG_DFL for one not set from Python)."""
    while self._previous:
      signum, handler = self._previous.popitem()
      signal.signal(signum, signal.SIG_DFL if handler is None else handler)

  def __enter__(self) -> "StopSignals":
    return self.install()

  def __exit__(self, *exc_info):
    self.restore()

  def _handle(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum  # the loop reads it after the step: nothing else here
    elif signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C: stop at once, without a checkpoint

  def should_stop(self, step: int) -> bool:
    """Whether to save `step` and stop; with several processes, the same on all."""
    if self._process_count == 1:
      self.stop_signal = self.received
      return self.received is not None
    if self._next_sync is not None and step < self._next_sync:
      return False
    elapsed_ms = int((time.monotonic() - self._last_sync) * 1000)
    rows = self._gather(np.array([self.received or 0, elapsed_ms], np.int32))
    rows = np.asarray(rows).reshape(-1, 2)
    if rows[:, 0].max() > 0:
      self.stop_signal = int(rows[:, 0].max())
      return True
    # Every process holds the same rows, so every process picks the same next step.
    slowest_s = max(float(rows[:, 1].max()) / 1000, 1e-3)
    resized = int(self._interval * self._target_s / slowest_s)
    self._interval = max(1, min(self._interval * _MAX_GROWTH, resized))
    self._next_sync = step + self._interval
    self._last_sync = time.monotonic()
    return False


class StopAtOnce:
  """SIGTERM and SIGINT handlers for the final evaluation, after the last step is saved:
  the first signal raises `dlx.errors.Preempted` (marked `final_evaluation`) where the
  evaluation is, so the run stops at once; nothing trained is lost.

    with StopAtOnce(final_step):
      evaluate()"""

  def __init__(self, step: int):
    self._step = int(step)
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    raise errors.Preempted(signum, self._step, final_evaluation=True)

  def __enter__(self) -> "StopAtOnce":
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    while self._previous:
      signum, handler = self._previous.popitem()
      signal.signal(signum, signal.SIG_DFL if handler is None else handler)
