"""Checkpointer.close after a second Ctrl-C: orbax's failure to finish a save the
interrupt cut short is logged, not raised over the interrupt; otherwise it is raised."""

import pytest

from dlx.training import checkpoint


def _failing_close(tmp_path, monkeypatch):
  ckpt = checkpoint.Checkpointer(tmp_path, best_metric="loss", asynchronous=True)
  closed = []

  def fail():
    closed.append(True)
    raise RuntimeError("cannot join thread before it is started")

  monkeypatch.setattr(ckpt.latest, "close", fail)
  return ckpt, closed


def test_an_interrupted_close_logs_the_failure_and_closes_the_rest(tmp_path, monkeypatch):
  ckpt, closed = _failing_close(tmp_path, monkeypatch)
  best_closed = []
  real_best_close = ckpt.best.close
  monkeypatch.setattr(ckpt.best, "close", lambda: best_closed.append(real_best_close()))
  ckpt.close(interrupted=True)
  assert closed == [True] and best_closed == [None]


def test_an_ordinary_close_raises_the_failure(tmp_path, monkeypatch):
  ckpt, _ = _failing_close(tmp_path, monkeypatch)
  with pytest.raises(RuntimeError, match="cannot join thread"):
    ckpt.close()
  ckpt.best.close()
