"""dlx.training.preemption in-process: handlers installed and restored, the first signal
recorded, a second Ctrl-C raising at once, several processes agreeing on the step; and
the trainer, as a library, raising `Preempted` after saving the step. Signals are raised
only while the module's handlers are installed (`signal.raise_signal` runs them in this
thread, at once). The real processes, signalled from outside, are in
tests/system/test_preemption.py."""

import json
import pickle
import signal
import threading

import numpy as np
import pytest

from dlx import errors
from dlx.training import metric_writers
from dlx.training import preemption
from tests.unit.test_train import _steps
from tests.unit.test_train import _train


@pytest.fixture(autouse=True)
def _main_thread_only():
  """Signal handlers live in the main thread: elsewhere a raised signal would not reach
  them (and SIGTERM would end the test process)."""
  if threading.current_thread() is not threading.main_thread():
    pytest.skip("signal handlers can be installed from the main thread only")


def _handlers():
  return {s: signal.getsignal(s) for s in preemption.SIGNALS}


def test_handlers_are_installed_for_the_block_and_restored_after():
  before = _handlers()
  with preemption.StopSignals(process_count=1) as signals:
    assert all(h == signals._handle for h in _handlers().values())  # pylint: disable=protected-access
  assert _handlers() == before
  signals = preemption.StopSignals(process_count=1).install()
  signals.restore()
  signals.restore()  # a second restore changes nothing
  assert _handlers() == before


def test_handlers_are_restored_when_the_block_raises():
  before = _handlers()
  with pytest.raises(RuntimeError), preemption.StopSignals(process_count=1):
    raise RuntimeError("boom")
  assert _handlers() == before


@pytest.mark.parametrize("signum", preemption.SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_the_first_signal_is_only_recorded(signum):
  with preemption.StopSignals(process_count=1) as signals:
    assert not signals.should_stop(1)
    signal.raise_signal(signum)  # our handler runs: nothing stops, nothing raises
    assert signals.received == signum
    assert signals.should_stop(2)
    assert signals.stop_signal == signum


def test_a_second_sigint_raises_keyboard_interrupt_at_once():
  with preemption.StopSignals(process_count=1) as signals:
    signal.raise_signal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
      signal.raise_signal(signal.SIGINT)
    assert signals.received == signal.SIGINT


def test_after_a_sigterm_a_sigterm_is_ignored_and_a_sigint_raises():
  with preemption.StopSignals(process_count=1) as signals:
    signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGTERM)
    assert signals.received == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
      signal.raise_signal(signal.SIGINT)


def test_outside_the_main_thread_handlers_are_left_alone():
  before, seen = _handlers(), []

  def body():
    with preemption.StopSignals(process_count=1):
      seen.append(_handlers())

  thread = threading.Thread(target=body)
  thread.start()
  thread.join()
  assert seen == [before] and _handlers() == before


class _FakeJob:
  """The gathered rows of a two-process job: this process's row, then the other's, whose
  milliseconds since the last agreement are `other_ms()`."""

  def __init__(self, other_signal=0, other_ms=lambda: 0):
    self.other_signal, self.other_ms = other_signal, other_ms
    self.calls = []

  def __call__(self, row):
    assert row.dtype == np.int32 and row.shape == (2,)
    self.calls.append(row.copy())
    return np.stack([row, np.array([self.other_signal, self.other_ms()], np.int32)])


def _agreement_steps(signals, job, steps):
  out = []
  for step in steps:
    before = len(job.calls)
    assert not signals.should_stop(step)
    if len(job.calls) > before:
      out.append(step)
  return out


def test_fast_steps_space_the_agreements_out_fourfold_each_time():
  job = _FakeJob()
  signals = preemption.StopSignals(process_count=2, gather=job, sync_target_s=1.0)
  # The first step agrees; then under 1 ms a step: the interval quadruples each time.
  assert _agreement_steps(signals, job, range(1, 400)) == [1, 5, 21, 85, 341]


def test_the_slowest_process_sets_the_interval_to_about_the_target():
  signals = None
  # The other process takes 250 ms a step: agreements settle at 4 steps, about 1 s.
  job = _FakeJob(other_ms=lambda: 250 * signals._interval)  # pylint: disable=protected-access
  signals = preemption.StopSignals(process_count=2, gather=job, sync_target_s=1.0)
  assert _agreement_steps(signals, job, range(1, 20)) == [1, 5, 9, 13, 17]
  job.other_ms = lambda: 5000  # a step that took 5 s (a long validation): every step
  assert _agreement_steps(signals, job, range(21, 24)) == [21, 22, 23]


def test_a_signal_on_another_process_stops_this_one_at_the_next_agreement():
  job = _FakeJob()
  signals = preemption.StopSignals(process_count=2, gather=job)
  assert [signals.should_stop(s) for s in (1, 2, 3)] == [False, False, False]
  job.other_signal = signal.SIGTERM  # the other process got SIGTERM during step 3
  assert [signals.should_stop(s) for s in range(4, 8)] == [False, True, True, True]
  assert signals.stop_signal == signal.SIGTERM and signals.received is None


def test_the_largest_signal_number_wins_sigterm_over_sigint():
  job = _FakeJob(other_signal=signal.SIGINT)
  with preemption.StopSignals(process_count=2, gather=job) as signals:
    signal.raise_signal(signal.SIGTERM)
    assert signals.should_stop(1)
  assert signals.stop_signal == signal.SIGTERM
  assert job.calls[0][0] == signal.SIGTERM


def test_preempted_says_what_happened_and_is_no_ordinary_exception():
  e = errors.Preempted(signal.SIGTERM, 1234)
  assert (
    str(e)
    == e.message()
    == ("stopped by SIGTERM at step 1234; checkpoint saved; relaunch the same command to resume")
  )
  assert (e.signal_name, e.step, e.exit_status) == ("SIGTERM", 1234, 143)
  assert errors.Preempted(signal.SIGINT, 5).exit_status == 130
  assert preemption.exit_status(signal.SIGINT) == 130
  assert not isinstance(e, Exception)  # `except Exception` lets it through
  assert not isinstance(e, errors.UserError)


@pytest.mark.parametrize("signum", preemption.SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_during_the_final_evaluation_a_signal_stops_at_once(signum):
  before = _handlers()
  with pytest.raises(errors.Preempted) as stopped, preemption.StopAtOnce(600):
    signal.raise_signal(signum)
    raise AssertionError("the handler raises: nothing after the signal runs")
  assert _handlers() == before
  e = stopped.value
  assert (e.signum, e.step, e.final_evaluation, e.exit_status) == (signum, 600, True, 128 + signum)
  name = signal.Signals(signum).name
  assert e.message() == (
    f"stopped by {name} during the final evaluation; training finished at step 600 and "
    "is saved; relaunch the same command to evaluate it"
  )
  copied = pickle.loads(pickle.dumps(e))  # a sweep's Ray task carries it back
  assert (copied.step, copied.final_evaluation) == (600, True)


def test_the_trainer_saves_the_step_and_raises_preempted(tmp_path, monkeypatch):
  """A SIGTERM while the loop writes its first train row (step 10): the loop finishes
  step 10, saves it, raises `Preempted` and skips the final evaluation; relaunched, it
  resumes from step 10 and ends with an uninterrupted run's numbers."""
  write = metric_writers.MetricWriter.write

  def write_then_signal(self, step, split, metrics):
    write(self, step, split, metrics)
    if split == "train" and step == 10:
      signal.raise_signal(signal.SIGTERM)

  before = _handlers()
  monkeypatch.setattr(metric_writers.MetricWriter, "write", write_then_signal)
  with pytest.raises(errors.Preempted) as caught:
    _train(tmp_path / "run")
  monkeypatch.undo()
  assert (caught.value.signal_name, caught.value.step) == ("SIGTERM", 10)
  assert _handlers() == before
  assert _steps(tmp_path / "run" / "checkpoints") == [10]
  assert not (tmp_path / "run" / "results.json").exists()
  rows = [
    json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
  ]
  assert [(r["step"], r["split"]) for r in rows] == [(10, "train")]

  resumed = _train(tmp_path / "run")
  reference = _train(tmp_path / "straight")
  for split in ("test", "validation", "train"):
    assert resumed[split] == reference[split]
