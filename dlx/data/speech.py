"""Spoken digits made by a formant synthesiser (docs/curriculum.md#f23): "zero" to "nine",
generated from a seed in NumPy, with no speech engine and no download.

Every split holds

  inputs   (N, num_samples) float32  the waveform at `sample_rate` (8 kHz), about [-1, 1]
  targets  (N,) int32                the digit (index into WORDS)
  speaker  (N,) int32                the speaker within the split

How a word is made (a cascade/parallel formant synthesiser in the manner of Klatt 1980):
each word is a short sequence of phones (PHONES). Vowels and sonorants (r, w, n) are a
glottal pulse train (impulses at the pitch period through a two-pole low-pass, the
glottal tilt, and a first difference, the lip radiation) plus breath noise, filtered by
three formant resonators in cascade; diphthongs (the "ay" of five and nine, the "ey" of
eight, the "ow" of zero) glide from one formant target to another. Fricatives (s, z, f,
v, th) are white noise through one resonator at the place's frequency, voiced ones with
a weak voiced murmur as well; stops (t, k) are a silent closure, a short noise burst and
aspiration (breath noise through the next vowel's formants). Formant tracks are
smoothed across phones (coarticulation). The resonators' coefficients change every 5 ms,
and the recursion runs over samples vectorised across all the utterances of a chunk:
the default 4500 utterances take about 6 s of CPU.

Variation: each speaker has a pitch (80-260 Hz, log-uniform), a vocal-tract scale of
the formants (0.85-1.2, higher for higher voices), an accent (each formant shifted by up
to 10%), a speaking rate, a glottal tilt and a breathiness; each utterance adds pitch,
rate and per-phone duration and formant jitter, a falling pitch contour, careless
consonants (weakened, strengthened, or dropped with DROP_PROBABILITY), a random onset,
a microphone's spectral tilt, a random gain, and noise between white and red at a
random SNR (`snr_db`, over the word). The three splits have disjoint speakers, drawn from separate
streams of the seed (train from one, validation and test from others), so validation
and test measure generalisation to new voices. The words share sounds on purpose:
"five" and "nine" the same diphthong, "one" and "nine" the nasal, "six" and "seven" the
initial s, "two" and "eight" the t, "three", "four" and "zero" the r.
"""

import numpy as np

from dlx import errors
from dlx.data import core

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BLOCK_SECONDS = 0.005  # parameters change every 5 ms
_VOWEL_BANDWIDTHS = (60.0, 90.0, 150.0)
_NASAL_BANDWIDTHS = (100.0, 200.0, 300.0)
_GLOTTAL_GAIN = 100.0  # sets vowels some 10-20 dB above the fricatives
DROP_PROBABILITY = 0.1  # a consonant left out
_CHUNK = 2048  # utterances rendered together (memory ~ 10 arrays of chunk x samples)


def _phone(duration_ms, **fields):
  spec = dict(
    duration=duration_ms,
    formants=None,  # (F1, F2, F3) at the start, Hz (None: take the neighbours')
    glide_to=None,  # (F1, F2, F3) at the end (diphthongs, glides)
    bandwidths=_VOWEL_BANDWIDTHS,
    voicing=0.0,  # glottal pulse amplitude
    aspiration=0.0,  # breath noise through the formants
    frication=0.0,  # noise through the frication resonator
    noise_band=(2500.0, 2500.0),  # frication resonator (centre, bandwidth), Hz
  )
  spec.update(fields)
  return spec


def _vowel(formants, duration_ms, glide_to=None, voicing=1.0):
  return _phone(duration_ms, formants=formants, glide_to=glide_to, voicing=voicing)


def _nasal(duration_ms):
  return _phone(
    duration_ms, formants=(250.0, 1450.0, 2500.0), bandwidths=_NASAL_BANDWIDTHS, voicing=0.35
  )


def _fricative(centre, bandwidth, level, duration_ms, voicing=0.0):
  formants = (280.0, 1400.0, 2400.0) if voicing else None
  return _phone(
    duration_ms,
    formants=formants,
    voicing=voicing,
    frication=level,
    noise_band=(centre, bandwidth),
  )


def _closure(duration_ms):
  return _phone(duration_ms)


def pause(duration_ms):
  """A silent phone: the gap between connected words (dlx/data/speech_strings.py)."""
  return _closure(duration_ms)


def _burst(centre, bandwidth, level, duration_ms):
  return _phone(duration_ms, frication=level, noise_band=(centre, bandwidth))


def _breath(duration_ms, level):
  return _phone(duration_ms, aspiration=level)


# Formant targets (adult male, Hz) after Peterson & Barney 1952 and Hillenbrand et al. 1995.
_IH, _EH, _AH = (390.0, 1990.0, 2550.0), (530.0, 1840.0, 2480.0), (640.0, 1190.0, 2390.0)
_AO, _UW, _IY = (570.0, 840.0, 2410.0), (300.0, 870.0, 2240.0), (270.0, 2290.0, 3010.0)
_AA, _SCHWA, _R = (730.0, 1090.0, 2440.0), (500.0, 1500.0, 2500.0), (420.0, 1300.0, 1600.0)
_W, _OW, _UH = (300.0, 650.0, 2200.0), (500.0, 900.0, 2400.0), (450.0, 1030.0, 2380.0)
_EY, _AY_END = (480.0, 1950.0, 2600.0), (400.0, 1950.0, 2600.0)


def _s(duration_ms):
  return _fricative(3400.0, 900.0, 0.5, duration_ms)


def _f(duration_ms):
  return _fricative(2000.0, 3000.0, 0.15, duration_ms)


def _v(duration_ms):
  return _fricative(2000.0, 3000.0, 0.08, duration_ms, voicing=0.4)


PHONES = {
  "zero": (
    _fricative(3400.0, 900.0, 0.35, 90, voicing=0.3),
    _vowel(_IH, 70),
    _vowel(_R, 70, voicing=0.8),
    _vowel(_OW, 180, glide_to=_UH),
  ),
  "one": (_vowel(_W, 70, glide_to=_AH, voicing=0.7), _vowel(_AH, 150), _nasal(120)),
  "two": (_closure(40), _burst(3200.0, 1200.0, 0.5, 15), _breath(50, 0.3), _vowel(_UW, 250)),
  "three": (
    _fricative(2600.0, 2800.0, 0.1, 110),
    _vowel(_R, 60, voicing=0.8),
    _vowel(_IY, 220),
  ),
  "four": (_f(120), _vowel(_AO, 170), _vowel(_R, 110, voicing=0.8)),
  "five": (_f(110), _vowel(_AA, 260, glide_to=_AY_END), _v(90)),
  "six": (
    _s(140),
    _vowel(_IH, 110),
    _closure(60),
    _burst(1800.0, 600.0, 0.4, 20),
    _breath(15, 0.2),
    _s(150),
  ),
  "seven": (_s(120), _vowel(_EH, 120), _v(60), _vowel(_SCHWA, 70), _nasal(110)),
  "eight": (
    _vowel(_EY, 260, glide_to=_IH),
    _closure(50),
    _burst(3200.0, 1200.0, 0.4, 20),
  ),
  "nine": (_nasal(80), _vowel(_AA, 260, glide_to=_AY_END), _nasal(120)),
}


def draw_speakers(rng: np.random.Generator, num_speakers: int) -> dict:
  """Per-speaker voice parameters, each an array of `num_speakers`."""
  pitch = np.exp(rng.uniform(np.log(80.0), np.log(260.0), num_speakers))
  # Higher voices tend to have shorter vocal tracts (children, women): higher formants.
  pitch_position = np.log(pitch / 80.0) / np.log(260.0 / 80.0)
  scale = 0.85 + 0.25 * pitch_position + rng.uniform(-0.05, 0.1, num_speakers)
  return dict(
    pitch=pitch,
    formant_scale=np.clip(scale, 0.85, 1.2),
    rate=rng.uniform(0.8, 1.25, num_speakers),  # > 1: slower
    tilt=rng.uniform(0.88, 0.97, num_speakers),  # glottal low-pass pole
    breathiness=rng.uniform(0.01, 0.08, num_speakers),
    accent=rng.uniform(0.9, 1.1, (num_speakers, 3)),  # each formant's own shift
  )


def phone_table(phones):
  """A sequence of phones (PHONES' entries; dlx/data/speech_strings.py joins words) as
  arrays: (P, 3) formant starts and ends (silent and voiceless phones take the next
  voiced phone's start, since the articulators move there early, else the previous one's
  end), (P, 3) bandwidths, (P, 6) voicing, aspiration, frication, noise centre, noise
  bandwidth, duration in ms."""
  starts = [p["formants"] for p in phones]
  ends = [p["glide_to"] or p["formants"] for p in phones]
  for i in range(len(phones)):
    if starts[i] is None:
      later = next((s for s in starts[i + 1 :] if s is not None), None)
      earlier = next((e for e in reversed(ends[:i]) if e is not None), None)
      starts[i] = ends[i] = later or earlier
  scalars = [
    (p["voicing"], p["aspiration"], p["frication"], *p["noise_band"], p["duration"]) for p in phones
  ]
  bandwidths = [p["bandwidths"] for p in phones]
  return tuple(np.array(a, np.float64) for a in (starts, ends, bandwidths, scalars))


_TABLES = {word: phone_table(PHONES[word]) for word in WORDS}


def _utterance_tracks(table, speaker, rng, num_blocks, block_seconds):
  """Block-rate parameters of one utterance of `table`'s phones (see `phone_table`):
  (num_blocks, 12) columns F1-F3, B1-B3, voicing, aspiration, frication, noise centre,
  noise bandwidth, pitch; and the (num_blocks,) 0/1 mask of the speech."""
  starts, ends, bandwidths, scalars = table
  num_phones = len(starts)
  rate = speaker["rate"] * rng.uniform(0.9, 1.1)
  blocks = scalars[:, 5] * 1e-3 * rate * rng.uniform(0.8, 1.2, num_phones) / block_seconds
  margin = max(1, num_blocks // 25)
  if blocks.sum() > num_blocks - 2 * margin:  # too slow for the window: speed up
    blocks *= (num_blocks - 2 * margin) / blocks.sum()
  blocks = np.maximum(1, np.round(blocks)).astype(int)
  length = int(blocks.sum())
  onset = int(rng.integers(margin, max(margin, num_blocks - margin - length) + 1))
  # Which phone each block of the word belongs to, and how far through it (0 to 1).
  phone = np.repeat(np.arange(num_phones), blocks)
  first = np.cumsum(blocks) - blocks
  along = (np.arange(length) - first[phone]) / np.maximum(blocks[phone] - 1, 1)
  jitter = 1.0 + 0.06 * rng.standard_normal((num_phones, 3))
  formants = (starts[phone] + (ends - starts)[phone] * along[:, None]) * jitter[phone]
  # Consonants are said carelessly: weakened, strengthened, or (1 in 10) dropped.
  consonant = scalars[:, 0] < 0.9
  care = np.where(consonant, rng.uniform(0.4, 1.3, num_phones), rng.uniform(0.8, 1.2, num_phones))
  care[consonant & (rng.random(num_phones) < DROP_PROBABILITY)] = 0.0
  levels = scalars[:, :3] * care[:, None]
  tracks = np.empty((num_blocks, 12))
  word = slice(onset, onset + length)
  tracks[:, 0:3] = starts[0]
  tracks[onset + length :, 0:3] = ends[-1]
  tracks[word, 0:3] = formants
  tracks[:, 3:6] = _VOWEL_BANDWIDTHS
  tracks[word, 3:6] = bandwidths[phone]
  tracks[:, 6:9] = 0.0
  tracks[word, 6:9] = levels[phone]
  tracks[:, 9:11] = 2500.0
  tracks[word, 9:11] = scalars[phone, 3:5]
  tracks[:, [0, 1, 2, 9]] *= speaker["formant_scale"]
  tracks[:, 0:3] *= speaker["accent"]
  tracks[:, 7] += speaker["breathiness"] * tracks[:, 6]  # breath noise while voicing
  contour = np.linspace(1.08, 0.88, num_blocks)  # declination: the pitch falls
  tracks[:, 11] = speaker["pitch"] * rng.uniform(0.9, 1.1) * contour
  mask = np.zeros(num_blocks, bool)
  mask[word] = True
  return tracks, mask


def _resonator(frequency, bandwidth, sample_rate, unit_peak=False):
  """Coefficients (a, b, c) of y[n] = a x[n] + b y[n-1] + c y[n-2] (Klatt 1980): unit
  gain at 0 Hz, or at `frequency` with unit_peak (the noise filters)."""
  period = 1.0 / sample_rate
  c = -np.exp(-2.0 * np.pi * bandwidth * period)
  b = 2.0 * np.exp(-np.pi * bandwidth * period) * np.cos(2.0 * np.pi * frequency * period)
  if not unit_peak:
    return 1.0 - b - c, b, c
  w = 2.0 * np.pi * frequency * period
  return np.abs(1.0 - b * np.exp(-1j * w) - c * np.exp(-2j * w)), b, c


def _filter(x, a, b, c, block):
  """y[t] = a x[t] + b y[t-1] + c y[t-2] down the time axis of x (T, W), with
  coefficients (K, W) that hold for `block` samples each; float32."""
  num_samples = x.shape[0]
  a, b, c = (np.asarray(v, np.float32) for v in (a, b, c))
  drive = np.repeat(a, block, axis=0)[:num_samples] * x
  y = np.zeros((num_samples + 2, x.shape[1]), np.float32)  # y[t + 2] is output t
  scratch = np.empty(x.shape[1], np.float32)
  for t in range(num_samples):
    k = t // block
    out = y[t + 2]
    np.multiply(b[k], y[t + 1], out=out)
    np.multiply(c[k], y[t], out=scratch)
    out += scratch
    out += drive[t]
  return y[2:]


def _smooth(x, size):
  """Moving average of `size` blocks along axis 1, edges repeated (scipy's
  uniform_filter1d with mode='nearest')."""
  pad = [(0, 0)] * x.ndim
  pad[1] = (size // 2, (size - 1) // 2)
  padded = np.pad(x, pad, mode="edge")
  return sum(padded[:, k : k + x.shape[1]] for k in range(size)) / size


def _render(tracks, tilt, rng, sample_rate, num_samples, block):
  """(B, num_samples) waveforms from block-rate tracks (B, K, 12) (see _utterance_tracks)."""
  batch = tracks.shape[0]
  tracks[..., 0:6] = _smooth(tracks[..., 0:6], 5)  # coarticulation over ~25 ms
  tracks[..., 6:9] = _smooth(tracks[..., 6:9], 2)  # no clicks at phone edges
  tracks[..., 0:3] = np.clip(tracks[..., 0:3], 100.0, 0.45 * sample_rate)
  tracks[..., 9] = np.clip(tracks[..., 9], 100.0, 0.45 * sample_rate)
  tracks = np.ascontiguousarray(np.swapaxes(tracks, 0, 1))  # time-major (K, B, 12)
  per_sample = lambda x: np.repeat(x.astype(np.float32), block, axis=0)[:num_samples]
  # Glottal source: an impulse at each pitch period, differenced, low-passed (tilt).
  # The pitch holds within a block, so the phase (in periods) grows linearly there and
  # pulse n falls on the first sample whose phase reaches n (at most 2 per block).
  step = tracks[..., 11] / sample_rate  # (K, B) periods per sample
  start = np.cumsum(step * block, axis=0) - step * block + rng.uniform(0.0, 1.0, batch)
  # Each pulse goes in differenced (+1 then -1): the lip radiation.
  radiated = np.zeros((tracks.shape[0] * block + 1, batch), np.float32)
  columns = np.broadcast_to(np.arange(batch), step.shape)
  for m in range(int(np.ceil(step.max() * block)) + 1):
    offset = np.ceil((np.ceil(start) + m - start) / step).astype(int)
    hit = offset < block
    sample = np.arange(tracks.shape[0])[:, None] * block + offset
    radiated[sample[hit], columns[hit]] += 1.0
    radiated[sample[hit] + 1, columns[hit]] -= 1.0
  radiated = radiated[:num_samples] * ((1.0 - tilt) ** 2 * _GLOTTAL_GAIN).astype(np.float32)
  # The glottal tilt: two poles at `tilt`.
  pole = np.broadcast_to(tilt, (1, batch))
  glottal = _filter(radiated, np.ones_like(pole), 2.0 * pole, -pole * pole, num_samples)
  noise = rng.standard_normal((2, num_samples, batch), dtype=np.float32)
  voiced = glottal * per_sample(tracks[..., 6]) + 0.3 * noise[0] * per_sample(tracks[..., 7])
  frication = noise[1] * per_sample(tracks[..., 8])
  # The first formant and the frication filter in one pass (side by side), then F2, F3.
  f1 = _resonator(tracks[..., 0], tracks[..., 3], sample_rate)
  fricative = _resonator(tracks[..., 9], tracks[..., 10], sample_rate, unit_peak=True)
  first = _filter(
    np.concatenate([voiced, frication], axis=1),
    *(np.concatenate(pair, axis=1) for pair in zip(f1, fricative)),
    block,
  )
  voiced, frication = first[:, :batch], first[:, batch:]
  for k in (1, 2):
    voiced = _filter(voiced, *_resonator(tracks[..., k], tracks[..., 3 + k], sample_rate), block)
  return (voiced + frication).T


def _channel(waves, tilt):
  """A microphone's spectral tilt: y[t] = x[t] - tilt x[t-1] (tilt > 0 brightens)."""
  out = waves.copy()
  out[:, 1:] -= tilt.astype(np.float32) * waves[:, :-1]
  return out


def _coloured_noise(rng, shape, redness):
  """Unit-variance noise, white mixed with red (white shaped by one pole at 0.95, in
  the frequency domain) in proportion `redness` (B, 1): red noise masks the first
  formant and the voicing."""
  white = rng.standard_normal(shape, dtype=np.float32)
  red = rng.standard_normal(shape, dtype=np.float32)
  frequency = np.fft.rfftfreq(shape[1])  # cycles per sample
  gain = 1.0 / np.abs(1.0 - 0.95 * np.exp(-2j * np.pi * frequency))
  red = np.fft.irfft(np.fft.rfft(red, axis=1) * gain, shape[1], axis=1).astype(np.float32)
  red /= red.std(axis=1, keepdims=True)
  angle = (0.5 * np.pi * redness).astype(np.float32)
  return np.cos(angle) * white + np.sin(angle) * red


def synthesize(labels, speaker_ids, speakers: dict, rng: np.random.Generator, **kwargs):
  """(N, num_samples) float32 waveforms of WORDS[labels[i]] said by speaker
  speaker_ids[i] (an index into the arrays of `speakers`, see `draw_speakers`); the
  keyword arguments (sample_rate, num_samples, snr_db) are `synthesize_tables`'."""
  tables = [_TABLES[WORDS[label]] for label in labels]
  return synthesize_tables(tables, speaker_ids, speakers, rng, **kwargs)


def synthesize_tables(
  tables,
  speaker_ids,
  speakers: dict,
  rng: np.random.Generator,
  *,
  sample_rate: int = 8000,
  num_samples: int = 6400,
  snr_db=(10.0, 30.0),
  chunk: int = _CHUNK,
) -> np.ndarray:
  """(N, num_samples) float32 waveforms of the utterances given as phone tables
  (`phone_table`), tables[i] said by speaker speaker_ids[i], `chunk` of them rendered at
  a time (memory ~ 10 arrays of chunk x num_samples float32)."""
  block = max(1, int(round(BLOCK_SECONDS * sample_rate)))
  num_blocks = -(-num_samples // block)
  waves = np.empty((len(tables), num_samples), np.float32)
  for start in range(0, len(tables), chunk):
    rows = slice(start, start + chunk)
    voices = {k: v[speaker_ids[rows]] for k, v in speakers.items()}
    made = [
      _utterance_tracks(
        table, {k: v[i] for k, v in voices.items()}, rng, num_blocks, block / sample_rate
      )
      for i, table in enumerate(tables[rows])
    ]
    tracks = np.stack([t for t, _ in made])
    word = np.repeat(np.stack([m for _, m in made]), block, axis=1)[:, :num_samples]
    clean = _render(tracks, voices["tilt"], rng, sample_rate, num_samples, block)
    level = np.sqrt(np.sum(clean**2 * word, axis=1) / np.maximum(word.sum(1), 1))
    clean /= np.maximum(level, 1e-8)[:, None]  # unit RMS over the word
    clean = _channel(clean, rng.uniform(-0.6, 0.6, (len(clean), 1)))
    snr = rng.uniform(snr_db[0], snr_db[1], (len(clean), 1))
    noise = _coloured_noise(rng, clean.shape, rng.uniform(0.0, 1.0, (len(clean), 1)))
    noisy = clean + noise * (10.0 ** (-snr / 20.0)).astype(np.float32)
    gain = 0.1 * np.exp(rng.uniform(np.log(0.25), 0.0, (len(clean), 1)))
    waves[rows] = noisy * gain.astype(np.float32)
  return waves


def _split(rng, num_examples, num_speakers, **synth_kwargs):
  speakers = draw_speakers(rng, num_speakers)
  labels = rng.permutation(np.arange(num_examples) % len(WORDS)).astype(np.int32)
  speaker_ids = rng.integers(0, num_speakers, num_examples).astype(np.int32)
  inputs = synthesize(labels, speaker_ids, speakers, rng, **synth_kwargs)
  voices = {k: speakers[k].round(4).tolist() for k in ("pitch", "formant_scale", "rate")}
  return {"inputs": inputs, "targets": labels, "speaker": speaker_ids}, voices


def spoken_digits(
  *,
  num_train=4000,
  num_validation=500,
  num_test=1000,
  num_train_speakers=60,
  num_validation_speakers=15,
  num_test_speakers=20,
  sample_rate=8000,
  duration=0.8,
  snr_db=(10.0, 30.0),
  seed=0,
) -> core.Dataset:
  """The ten digit words at `sample_rate` Hz, `duration` seconds each (the word at a
  random onset), balanced classes; each split from its own stream of `seed` (a split's
  examples do not change with the other splits' sizes) and its own speakers."""
  sizes = dict(num_train=num_train, num_validation=num_validation, num_test=num_test)
  speakers = dict(
    num_train_speakers=num_train_speakers,
    num_validation_speakers=num_validation_speakers,
    num_test_speakers=num_test_speakers,
  )
  for name, value in {**sizes, **speakers}.items():
    if int(value) != value or value < 1:
      raise errors.ConfigError(f"{name}={value!r}: must be a positive integer")
  if not 4000 <= sample_rate <= 48000:
    raise errors.ConfigError(f"sample_rate={sample_rate}: must be in [4000, 48000] Hz")
  if not 0.6 <= duration <= 5.0:
    raise errors.ConfigError(f"duration={duration}: must be in [0.6, 5] seconds (a word)")
  low, high = snr_db
  if low > high:
    raise errors.ConfigError(f"snr_db={tuple(snr_db)}: need low <= high")
  num_samples = int(round(duration * sample_rate))
  kwargs = dict(sample_rate=sample_rate, num_samples=num_samples, snr_db=(low, high))
  splits, voices = zip(
    *[
      _split(np.random.default_rng([seed, index]), int(n), int(s), **kwargs)
      for index, (n, s) in enumerate(zip(sizes.values(), speakers.values()))
    ]
  )
  info = dict(
    name="spoken_digits",
    num_classes=len(WORDS),
    class_names=WORDS,
    sample_rate=sample_rate,
    num_samples=num_samples,
    speakers=dict(zip(core.SPLITS, voices)),  # each split's voices, by speaker id
  )
  return core.Dataset(*splits, info)


LOADERS = {"spoken_digits": spoken_digits}
