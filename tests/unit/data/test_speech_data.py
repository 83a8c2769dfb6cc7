"""Spoken digits (dlx/data/speech.py): shapes, determinism, disjoint speakers, and the
synthesiser's filters against scipy."""

import numpy as np
import pytest
from scipy import ndimage
from scipy import signal as sp_signal

from dlx import data
from dlx import errors
from dlx.data import speech

SMALL = dict(num_train=20, num_validation=10, num_test=10, duration=0.6)


@pytest.fixture(scope="module")
def small():
  return data.load("spoken_digits", seed=3, **SMALL)


def test_shapes_and_balanced_words(small):
  assert small.info["class_names"] == speech.WORDS and small.info["sample_rate"] == 8000
  for split, n in (("train", 20), ("validation", 10), ("test", 10)):
    arrays = small.split(split)
    assert arrays["inputs"].shape == (n, 4800) and arrays["inputs"].dtype == np.float32
    assert arrays["targets"].dtype == np.int32
    assert np.all(np.isfinite(arrays["inputs"]))
    assert np.bincount(arrays["targets"], minlength=10).tolist() == [n // 10] * 10
  assert 0.005 < float(np.std(small.train["inputs"])) < 0.5


def _say(labels, seed, num_samples=1600, snr_db=(10.0, 30.0)):
  speakers = speech.draw_speakers(np.random.default_rng(0), 2)
  ids = np.arange(len(labels)) % 2
  rng = np.random.default_rng(seed)
  return speech.synthesize(
    np.array(labels), ids, speakers, rng, num_samples=num_samples, snr_db=snr_db
  )


def test_same_seed_same_audio_other_seed_other_audio():
  np.testing.assert_array_equal(_say([5, 9], seed=1), _say([5, 9], seed=1))
  assert not np.allclose(_say([5, 9], seed=1), _say([5, 9], seed=2))


def test_a_split_does_not_depend_on_the_other_splits_sizes(small):
  """Each split has its own stream of the seed: a bigger train split leaves validation
  and test as they were (and the same seed makes the same audio)."""
  bigger = data.load("spoken_digits", seed=3, **{**SMALL, "num_train": 30})
  for split in ("validation", "test"):
    np.testing.assert_array_equal(bigger.split(split)["inputs"], small.split(split)["inputs"])
  assert bigger.size("train") == 30


def test_splits_have_their_own_speakers(small):
  voices = small.info["speakers"]
  assert len(voices["train"]["pitch"]) == 60 and len(voices["test"]["pitch"]) == 20
  train = set(voices["train"]["pitch"])
  assert not train & set(voices["validation"]["pitch"])
  assert not train & set(voices["test"]["pitch"])
  assert small.train["speaker"].max() < 60 and small.test["speaker"].max() < 20


def test_the_word_sits_above_the_noise():
  """At a high SNR the loudest 50 ms are far louder than the quietest (silence)."""
  clean = _say(list(range(10)), seed=0, num_samples=6400, snr_db=(40.0, 40.0))
  energy = np.mean(clean.reshape(10, -1, 400) ** 2, axis=-1)
  assert np.all(energy.max(1) > 100 * energy.min(1))


def test_time_varying_filter_with_fixed_coefficients_is_lfilter():
  x = np.random.default_rng(0).standard_normal((300, 3)).astype(np.float32)
  a, b, c = speech._resonator(np.array([[500.0, 1500.0, 3000.0]]), np.full((1, 3), 100.0), 8000)
  got = speech._filter(x, a, b, c, block=300)
  for k in range(3):
    expected = sp_signal.lfilter([a[0, k]], [1.0, -b[0, k], -c[0, k]], x[:, k])
    np.testing.assert_allclose(got[:, k], expected, rtol=1e-4, atol=1e-4)


def test_smoothing_is_scipy_uniform_filter():
  x = np.random.default_rng(0).standard_normal((3, 50, 4))
  for size in (2, 5):
    expected = ndimage.uniform_filter1d(x, size, axis=1, mode="nearest")
    np.testing.assert_allclose(speech._smooth(x, size), expected, atol=1e-12)


def test_resonator_gains():
  """Formant resonators pass 0 Hz with gain 1 (Klatt's cascade); noise resonators have
  gain 1 at their centre frequency."""
  for unit_peak, at in ((False, 0.0), (True, 1200.0)):
    a, b, c = speech._resonator(np.array(1200.0), np.array(300.0), 8000, unit_peak=unit_peak)
    _, response = sp_signal.freqz([a], [1.0, -b, -c], worN=[at], fs=8000)
    assert abs(response[0]) == pytest.approx(1.0, rel=1e-6)


def test_bad_arguments_are_one_line_errors():
  with pytest.raises(errors.ConfigError, match="num_test"):
    speech.spoken_digits(num_test=0)
  with pytest.raises(errors.ConfigError, match="duration"):
    speech.spoken_digits(duration=0.2)
  with pytest.raises(errors.ConfigError, match="snr_db"):
    speech.spoken_digits(snr_db=(20.0, 10.0))
