"""Connected spoken digit strings (docs/curriculum.md#f23): utterances of 2-7 digits
("three one four") from dlx's formant synthesiser (dlx/data/speech.py), for speech
recognition as sequence-to-sequence (audio -> words). Generated from a seed in NumPy.

Every split holds

  inputs       {'audio': (N, num_samples) float32 at `sample_rate` Hz, about [-1, 1],
                'target_in': (N, T) int32}  BOS, then the words (teacher forcing)
  targets      (N, T) int32    the words, then EOS, padded with 0
  target_mask  (N, T) float32  1 on the words and the EOS
  speaker      (N,) int32      the speaker within the split
  num_digits   (N,) int32      words in the utterance

with T = max_digits + 1 and token ids as dlx.data.sequences has them: 0 PAD, 1 BOS,
2 EOS, digit d is 3 + d.

An utterance is the words' phones (speech.PHONES) joined, each word at its own tempo
(WORD_TEMPO) and all faster than alone (CONNECTED_RATE: connected speech shortens
words), with a pause of GAP_MS between words (a few ms: the words run together). The
whole string is then said as one utterance by speech.synthesize_tables: one speaker's
voice, pitch declination over the utterance, coarticulation across word boundaries,
careless consonants, a microphone, a gain and noise, as for single words. A string too
long for the window is spoken faster to fit. The three splits have disjoint speakers,
each drawn from its own stream of the seed (as `speech.spoken_digits` draws them), so
validation and test measure new voices; the digit strings themselves are random (short
strings recur across splits: there are only 100 of two digits).
"""

import numpy as np

from dlx import errors
from dlx.data import core
from dlx.data import sequences
from dlx.data import speech

CONNECTED_RATE = 0.8  # words in a string take 80% of their isolated duration
WORD_TEMPO = (0.85, 1.15)  # each word's own speed factor
GAP_MS = (5.0, 120.0)  # the pause between two words
_SALT = 23  # these splits' streams differ from spoken_digits' of the same seed
_CHUNK_SAMPLES = 2048 * 6400  # samples rendered at once (speech's chunk of 0.8 s words)


def string_phones(digits, rng: np.random.Generator):
  """The phone table (speech.phone_table) of the words of `digits` said connected."""
  phones = []
  for k, digit in enumerate(digits):
    if k:
      phones.append(speech.pause(rng.uniform(*GAP_MS)))
    tempo = CONNECTED_RATE * rng.uniform(*WORD_TEMPO)
    word = speech.PHONES[speech.WORDS[digit]]
    phones.extend(dict(p, duration=p["duration"] * tempo) for p in word)
  return speech.phone_table(phones)


def _split(rng, num_examples, num_speakers, min_digits, max_digits, **synth_kwargs):
  speakers = speech.draw_speakers(rng, num_speakers)
  lengths = rng.integers(min_digits, max_digits + 1, num_examples).astype(np.int32)
  digits = [rng.integers(0, len(speech.WORDS), n) for n in lengths]
  speaker_ids = rng.integers(0, num_speakers, num_examples).astype(np.int32)
  tables = [string_phones(d, rng) for d in digits]
  chunk = max(1, _CHUNK_SAMPLES // synth_kwargs["num_samples"])
  audio = speech.synthesize_tables(tables, speaker_ids, speakers, rng, chunk=chunk, **synth_kwargs)
  tokens = [list(d + sequences.FIRST_SYMBOL_ID) for d in digits]
  arrays = sequences.encoder_decoder_split(tokens, tokens, target_length=max_digits + 1)
  split = {
    "inputs": {"audio": audio, "target_in": arrays["target_in"]},
    "targets": arrays["targets"],
    "target_mask": arrays["target_mask"],
    "speaker": speaker_ids,
    "num_digits": lengths,
  }
  voices = {k: speakers[k].round(4).tolist() for k in ("pitch", "formant_scale", "rate")}
  return split, voices


def spoken_digit_strings(
  *,
  num_train=4000,
  num_validation=300,
  num_test=1000,
  num_train_speakers=200,
  num_validation_speakers=15,
  num_test_speakers=20,
  min_digits=2,
  max_digits=7,
  sample_rate=8000,
  duration=3.0,
  snr_db=(10.0, 30.0),
  seed=0,
) -> core.Dataset:
  """Strings of `min_digits` to `max_digits` spoken digits (lengths and digits uniform),
  `duration` seconds each at `sample_rate` Hz; each split from its own stream of `seed`
  (a split does not change with the other splits' sizes) and its own speakers."""
  counts = dict(
    num_train=num_train,
    num_validation=num_validation,
    num_test=num_test,
    num_train_speakers=num_train_speakers,
    num_validation_speakers=num_validation_speakers,
    num_test_speakers=num_test_speakers,
    min_digits=min_digits,
  )
  for name, value in counts.items():
    if int(value) != value or value < 1:
      raise errors.ConfigError(f"{name}={value!r}: must be a positive integer")
  if int(max_digits) != max_digits or max_digits < min_digits:
    raise errors.ConfigError(f"max_digits={max_digits!r}: must be an integer >= min_digits")
  if not 4000 <= sample_rate <= 48000:
    raise errors.ConfigError(f"sample_rate={sample_rate}: must be in [4000, 48000] Hz")
  # About 0.35 s a word on average; a string longer than the window is said faster.
  if not 0.3 * max_digits <= duration <= 30.0:
    raise errors.ConfigError(
      f"duration={duration}: must be in [{0.3 * max_digits:.2f}, 30] seconds for "
      f"{max_digits} digits"
    )
  low, high = snr_db
  if low > high:
    raise errors.ConfigError(f"snr_db={tuple(snr_db)}: need low <= high")
  num_samples = int(round(duration * sample_rate))
  kwargs = dict(sample_rate=sample_rate, num_samples=num_samples, snr_db=(low, high))
  sizes = (num_train, num_validation, num_test)
  voices = (num_train_speakers, num_validation_speakers, num_test_speakers)
  splits, speakers = zip(
    *[
      _split(np.random.default_rng([seed, index, _SALT]), n, s, min_digits, max_digits, **kwargs)
      for index, (n, s) in enumerate(zip(map(int, sizes), map(int, voices)))
    ]
  )
  info = dict(
    name="spoken_digit_strings",
    words=speech.WORDS,
    vocab_size=sequences.FIRST_SYMBOL_ID + len(speech.WORDS),
    pad_id=sequences.PAD_ID,
    bos_id=sequences.BOS_ID,
    eos_id=sequences.EOS_ID,
    first_word_id=sequences.FIRST_SYMBOL_ID,
    max_length=max_digits + 1,
    sample_rate=sample_rate,
    num_samples=num_samples,
    speakers=dict(zip(core.SPLITS, speakers)),  # each split's voices, by speaker id
  )
  return core.Dataset(*splits, info)


def words_of(tokens, info) -> list[str]:
  """The words of one token sequence, up to its first EOS (PAD and BOS skipped)."""
  words = []
  for token in np.asarray(tokens).tolist():
    if token == info["eos_id"]:
      break
    if token >= info["first_word_id"]:
      words.append(info["words"][token - info["first_word_id"]])
  return words


LOADERS = {"spoken_digit_strings": spoken_digit_strings}
