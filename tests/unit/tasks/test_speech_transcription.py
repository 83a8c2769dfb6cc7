"""Transcription scoring (dlx/tasks/speech_transcription.py): the WER and sentence error
rate of transcripts, and transcripts read back as words up to EOS. The smoke run of
experiments/sequence/speech_digit_strings.py covers decoding end to end."""

import numpy as np
import pytest

from dlx.data import speech_strings
from dlx.tasks import speech_transcription

INFO = dict(words=("zero", "one", "two"), eos_id=2, first_word_id=3)


def test_scores():
  refs = [["one", "two"], ["zero"], ["two", "two", "one"]]
  hyps = [["one", "two"], [], ["two", "one"]]
  got = speech_transcription.scores(refs, hyps)
  assert got["wer"] == pytest.approx(2 / 6)  # one deletion in each of the last two
  assert got["sentence_error_rate"] == pytest.approx(2 / 3)


def test_words_stop_at_the_first_eos():
  tokens = np.array([1, 4, 5, 3, 2, 4, 0])  # BOS one two zero EOS one PAD
  assert speech_strings.words_of(tokens, INFO) == ["one", "two", "zero"]
  assert speech_strings.words_of(np.array([2, 4]), INFO) == []
