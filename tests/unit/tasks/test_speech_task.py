"""Spoken-digit loss (dlx/tasks/speech.py): digit_error_rate is 1 - accuracy per utterance,
and the report counts each digit's errors and the confusions."""

import types

import jax
import numpy as np

from dlx.tasks import speech


def test_digit_error_rate_is_one_minus_accuracy():
  logits = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, -1.0]], np.float32)
  batch = {"targets": np.array([0, 2, 1])}
  out = jax.jit(speech.word_classification)(logits, batch)
  assert set(out) == {"loss", "accuracy", "digit_error_rate"}
  np.testing.assert_array_equal(out["accuracy"], [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(out["digit_error_rate"], [0.0, 1.0, 1.0])
  # Cross-entropy of the first row: log(1 + 2 e^-2).
  np.testing.assert_allclose(out["loss"][0], np.log(1 + 2 * np.exp(-2.0)), rtol=1e-5)


class _LogMel:
  """Stands in for the speech model: its 'log-mel' is the waveform cut into frames."""

  hop_length, sample_rate = 4, 8

  def log_mel(self, x):
    return x.reshape(x.shape[0], -1, 2)

  def apply(self, variables, x, method):
    del variables
    return method(x)


def test_final_report_counts_errors_per_digit(tmp_path):
  words = ["zero", "one", "two"]
  targets = np.array([0, 0, 1, 1, 1, 1, 2, 2])
  predicted = np.array([0, 1, 1, 1, 1, 2, 2, 2])  # one zero as one, one one as two
  waves = np.arange(len(targets) * 8, dtype=np.float32).reshape(len(targets), 8)
  logits = np.eye(3, dtype=np.float32)[predicted]
  test = {"inputs": waves, "targets": targets}
  ctx = types.SimpleNamespace(
    dataset=types.SimpleNamespace(info={"class_names": words}, test=test),
    config={"num_spectrograms": 2},
    outputs=lambda split: [(split, logits)],
    model=_LogMel(),
    workdir=str(tmp_path),
  )
  report = speech.final_report(ctx)
  assert report["digit_error_rate"] == 2 / 8
  assert report["per_digit_error_rate"] == {"zero": 0.5, "one": 0.25, "two": 0.0}
  assert report["top_confusions"] == [["one", "two", 1], ["zero", "one", 1]]
  assert (tmp_path / speech.SPECTROGRAM_PLOT).stat().st_size > 0
