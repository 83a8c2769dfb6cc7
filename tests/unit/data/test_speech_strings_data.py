"""Spoken digit strings (dlx/data/speech_strings.py): layout, determinism, disjoint
speakers, and that a string's words are all there to hear."""

import numpy as np
import pytest

from dlx import errors
from dlx.data import sequences
from dlx.data import speech
from dlx.data import speech_strings

SMALL = dict(num_train=12, num_validation=6, num_test=6, max_digits=4, duration=1.6)


@pytest.fixture(scope="module")
def small():
  return speech_strings.spoken_digit_strings(seed=3, **SMALL)


def test_layout(small):
  info = small.info
  assert info["vocab_size"] == 13 and info["max_length"] == 5 and info["num_samples"] == 12800
  for split, n in (("train", 12), ("validation", 6), ("test", 6)):
    arrays = small.split(split)
    audio = arrays["inputs"]["audio"]
    assert audio.shape == (n, 12800) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and 0.005 < float(np.std(audio)) < 0.5
    targets, target_in, mask = (
      arrays["targets"],
      arrays["inputs"]["target_in"],
      arrays["target_mask"],
    )
    assert targets.shape == target_in.shape == mask.shape == (n, 5)
    lengths = arrays["num_digits"]
    assert np.all((2 <= lengths) & (lengths <= 4))
    np.testing.assert_array_equal(mask.sum(1), lengths + 1)  # the words and EOS
    rows = np.arange(n)
    assert np.all(targets[rows, lengths] == sequences.EOS_ID)
    assert np.all(target_in[:, 0] == sequences.BOS_ID)
    # Teacher forcing: target_in is the targets shifted right by one.
    np.testing.assert_array_equal(target_in[:, 1:] * mask[:, 1:], targets[:, :-1] * mask[:, 1:])
    words = [speech_strings.words_of(t, info) for t in targets]
    assert [len(w) for w in words] == lengths.tolist()
    assert all(w in speech.WORDS for ws in words for w in ws)


def test_same_seed_same_audio_other_seed_other_audio(small):
  again = speech_strings.spoken_digit_strings(seed=3, **SMALL)
  np.testing.assert_array_equal(again.train["inputs"]["audio"], small.train["inputs"]["audio"])
  np.testing.assert_array_equal(again.test["targets"], small.test["targets"])
  other = speech_strings.spoken_digit_strings(seed=4, **SMALL)
  assert not np.allclose(other.train["inputs"]["audio"], small.train["inputs"]["audio"])


def test_a_split_does_not_depend_on_the_other_splits_sizes(small):
  bigger = speech_strings.spoken_digit_strings(seed=3, **{**SMALL, "num_train": 14})
  for split in ("validation", "test"):
    np.testing.assert_array_equal(
      bigger.split(split)["inputs"]["audio"], small.split(split)["inputs"]["audio"]
    )


def test_splits_have_their_own_speakers(small):
  voices = small.info["speakers"]
  assert len(voices["train"]["pitch"]) == 200 and len(voices["test"]["pitch"]) == 20
  train = set(voices["train"]["pitch"])
  assert not train & set(voices["validation"]["pitch"])
  assert not train & set(voices["test"]["pitch"])
  assert small.train["speaker"].max() < 200 and small.test["speaker"].max() < 20


def test_more_words_take_longer():
  """The speech (loud 20 ms windows, at a high SNR) of a 6-digit string lasts longer
  than that of a 2-digit one said by the same speaker."""
  speakers = speech.draw_speakers(np.random.default_rng(0), 1)
  rng = np.random.default_rng(1)
  tables = [speech_strings.string_phones(d, rng) for d in ([1, 2], [1, 2, 3, 4, 5, 6])]
  waves = speech.synthesize_tables(
    tables, np.zeros(2, np.int32), speakers, rng, num_samples=24000, snr_db=(40.0, 40.0)
  )
  energy = np.mean(waves.reshape(2, -1, 160) ** 2, axis=-1)
  loud = energy > 1e-3 * energy.max(1, keepdims=True)
  spans = [np.ptp(np.flatnonzero(row)) for row in loud]
  assert spans[1] > 2 * spans[0]


def test_bad_arguments_are_one_line_errors():
  with pytest.raises(errors.ConfigError, match="max_digits"):
    speech_strings.spoken_digit_strings(min_digits=3, max_digits=2)
  with pytest.raises(errors.ConfigError, match="duration"):
    speech_strings.spoken_digit_strings(max_digits=7, duration=1.0)
  with pytest.raises(errors.ConfigError, match="num_train"):
    speech_strings.spoken_digit_strings(num_train=0)
