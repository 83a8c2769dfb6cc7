"""Spoken-word loss (dlx/tasks/speech.py): error_rate is 1 - accuracy per utterance."""

import jax
import numpy as np

from dlx.tasks import speech


def test_error_rate_is_one_minus_accuracy():
  logits = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, -1.0]], np.float32)
  batch = {"targets": np.array([0, 2, 1])}
  out = jax.jit(speech.word_classification)(logits, batch)
  np.testing.assert_array_equal(out["accuracy"], [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(out["error_rate"], [0.0, 1.0, 1.0])
  # Cross-entropy of the first row: log(1 + 2 e^-2).
  np.testing.assert_allclose(out["loss"][0], np.log(1 + 2 * np.exp(-2.0)), rtol=1e-5)
