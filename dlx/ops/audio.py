"""Audio front ends (docs/curriculum.md#f23): short-time Fourier transform, power and
magnitude spectrograms, a triangular mel filterbank and the log-mel spectrogram a speech
model reads. Pure jnp functions of a waveform (..., samples), each jitted with its sizes
and names static: called alone, one compile per configuration; inside a model, inlined.

The STFT follows `scipy.signal.stft` (tested against it) with these names:

  frame_length  = nperseg            samples per frame (the window's length)
  hop_length    = nperseg - noverlap samples between frame starts
  fft_length    = nfft               each windowed frame is zero-padded to it (>= frame)
  center=True   = boundary='zeros'   frame_length // 2 zeros on both ends, so frame t
                                     is centred on sample t * hop_length
  pad_end=True  = padded=True        zeros at the end until the frames cover every sample
  scaling       'spectrum' (scipy's default) divides by sum(window), so a sine of
                amplitude A gives a peak near A / 2; None keeps the plain DFT (librosa,
                torch.stft)

Windows are periodic ('DFT-even', scipy's `get_window` default): hann
0.5 - 0.5 cos(2 pi n / N), hamming 0.54 - 0.46 cos(2 pi n / N), n = 0..N-1.
Results are time-major, (..., frames, fft_length // 2 + 1), the layout a sequence model
reads; scipy returns (..., freqs, frames).

Mel scales (Hz f, mel m):
  htk     m = 2595 log10(1 + f / 700)  (O'Shaughnessy 1987, HTK, torchaudio's default)
  slaney  linear below 1 kHz, m = 3 f / 200; above, m = 15 + 27 ln(f / 1000) / ln(6.4)
          (Slaney's Auditory Toolbox, librosa's default)
Filter m of `mel_filterbank` is a triangle over FFT-bin frequencies k * sample_rate /
fft_length that rises from 0 at the (m)th of num_mels + 2 points equally spaced in mel
between f_min and f_max to 1 at the (m+1)th and falls back to 0 at the (m+2)th;
norm='slaney' scales each triangle by 2 / (its width in Hz), so every filter has the
same area.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from dlx import errors

WINDOWS = ("hann", "hamming", "rectangular")
MEL_SCALES = ("htk", "slaney")
SCALINGS = ("spectrum", None)

_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL  # 15
_SLANEY_LOG_STEP = math.log(6.4) / 27.0  # mel steps above 1 kHz are this in ln(Hz)


def _check(condition, message):
  if not condition:
    raise errors.ConfigError(message)


def window(name: str, length: int) -> jnp.ndarray:
  """A periodic window of `length` samples: 'hann', 'hamming' or 'rectangular'."""
  _check(length >= 1, f"window length must be >= 1, got {length}")
  phase = 2.0 * jnp.pi * jnp.arange(length, dtype=jnp.float32) / length
  if name == "hann":
    return 0.5 - 0.5 * jnp.cos(phase)
  if name == "hamming":
    return 0.54 - 0.46 * jnp.cos(phase)
  if name == "rectangular":
    return jnp.ones((length,), jnp.float32)
  raise errors.ConfigError(f"unknown window {name!r}; choose one of {', '.join(WINDOWS)}")


def num_frames(
  num_samples: int, frame_length: int, hop_length: int, center=True, pad_end=True
) -> int:
  """How many frames `stft` returns for a signal of `num_samples` samples."""
  length = num_samples + (2 * (frame_length // 2) if center else 0)
  _check(length >= frame_length, f"{num_samples} samples are fewer than one frame")
  frames, extra = divmod(length - frame_length, hop_length)
  return frames + 1 + (1 if pad_end and extra else 0)


def frame(signal, frame_length: int, hop_length: int, center=True, pad_end=True):
  """(..., samples) -> (..., frames, frame_length): overlapping frames, padded with
  zeros as `stft` pads them (see the module docstring)."""
  _check(
    frame_length >= 1 and hop_length >= 1,
    f"frame_length={frame_length}, hop_length={hop_length}: must be >= 1",
  )
  signal = jnp.asarray(signal)
  count = num_frames(signal.shape[-1], frame_length, hop_length, center, pad_end)
  half = frame_length // 2 if center else 0
  total = (count - 1) * hop_length + frame_length
  pad = [(0, 0)] * (signal.ndim - 1) + [(half, max(0, total - half - signal.shape[-1]))]
  padded = jnp.pad(signal, pad)
  index = hop_length * np.arange(count)[:, None] + np.arange(frame_length)[None, :]
  return padded[..., index]


@functools.partial(
  jax.jit,
  static_argnames=(
    "frame_length",
    "hop_length",
    "fft_length",
    "window_name",
    "center",
    "pad_end",
    "scaling",
  ),
)
def stft(
  signal,
  frame_length: int,
  hop_length: int,
  fft_length: int | None = None,
  window_name="hann",
  center: bool = True,
  pad_end: bool = True,
  scaling: str | None = "spectrum",
):
  """(..., samples) real -> (..., frames, fft_length // 2 + 1) complex64 one-sided STFT,
  `scipy.signal.stft(x, window=window_name, nperseg=frame_length, noverlap=frame_length -
  hop_length, nfft=fft_length)` transposed to time-major (`window_name` one of WINDOWS)."""
  fft_length = fft_length or frame_length
  _check(
    fft_length >= frame_length,
    f"fft_length={fft_length} must be >= frame_length={frame_length}",
  )
  _check(scaling in SCALINGS, f"scaling must be one of {SCALINGS}, got {scaling!r}")
  weights = window(window_name, frame_length)
  frames = frame(jnp.asarray(signal, jnp.float32), frame_length, hop_length, center, pad_end)
  spectrum = jnp.fft.rfft(frames * weights, n=fft_length, axis=-1)
  if scaling == "spectrum":
    spectrum = spectrum / jnp.sum(weights)
  return spectrum


@functools.partial(
  jax.jit,
  static_argnames=(
    "frame_length",
    "hop_length",
    "fft_length",
    "power",
    "center",
    "pad_end",
    "scaling",
    "window_name",
  ),
)
def spectrogram(signal, frame_length, hop_length, fft_length=None, power=2.0, **stft_kwargs):
  """|STFT| ** power: power=2 is the power spectrogram, power=1 the magnitude."""
  _check(power > 0, f"power must be positive, got {power}")
  magnitude = jnp.abs(stft(signal, frame_length, hop_length, fft_length, **stft_kwargs))
  return magnitude if power == 1.0 else magnitude**power


@functools.partial(jax.jit, static_argnames=("scale",))
def hz_to_mel(hz, scale: str = "htk"):
  """Frequency in Hz -> mel (see the module docstring for the two scales)."""
  hz = jnp.asarray(hz, jnp.float32)
  if scale == "htk":
    return 2595.0 * jnp.log10(1.0 + hz / 700.0)
  if scale == "slaney":
    above = _SLANEY_BREAK_MEL + jnp.log(jnp.maximum(hz, 1e-10) / _SLANEY_BREAK_HZ) / (
      _SLANEY_LOG_STEP
    )
    return jnp.where(hz < _SLANEY_BREAK_HZ, hz / _SLANEY_HZ_PER_MEL, above)
  raise errors.ConfigError(f"unknown mel scale {scale!r}; choose one of {', '.join(MEL_SCALES)}")


@functools.partial(jax.jit, static_argnames=("scale",))
def mel_to_hz(mel, scale: str = "htk"):
  """Mel -> Hz, the inverse of `hz_to_mel`."""
  mel = jnp.asarray(mel, jnp.float32)
  if scale == "htk":
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
  if scale == "slaney":
    above = _SLANEY_BREAK_HZ * jnp.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return jnp.where(mel < _SLANEY_BREAK_MEL, mel * _SLANEY_HZ_PER_MEL, above)
  raise errors.ConfigError(f"unknown mel scale {scale!r}; choose one of {', '.join(MEL_SCALES)}")


@functools.partial(
  jax.jit, static_argnums=range(7), static_argnames=("f_min", "f_max", "scale", "norm")
)
def mel_filterbank(
  num_mels: int,
  fft_length: int,
  sample_rate: float,
  f_min: float = 0.0,
  f_max: float | None = None,
  scale: str = "htk",
  norm: str | None = None,
):
  """(fft_length // 2 + 1, num_mels) triangular filters: spectrum @ filters gives mel
  bands. f_max defaults to the Nyquist frequency; norm None (peaks of 1) or 'slaney'."""
  f_max = sample_rate / 2.0 if f_max is None else f_max
  _check(num_mels >= 1, f"num_mels must be >= 1, got {num_mels}")
  _check(
    0.0 <= f_min < f_max <= sample_rate / 2.0,
    f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, "
    f"sample_rate={sample_rate}",
  )
  _check(norm in (None, "slaney"), f"norm must be None or 'slaney', got {norm!r}")
  low, high = hz_to_mel(f_min, scale), hz_to_mel(f_max, scale)
  edges = mel_to_hz(jnp.linspace(low, high, num_mels + 2), scale)  # (num_mels + 2,)
  bins = jnp.arange(fft_length // 2 + 1, dtype=jnp.float32) * (sample_rate / fft_length)
  left, center, right = edges[:-2], edges[1:-1], edges[2:]
  rising = (bins[:, None] - left) / (center - left)
  falling = (right - bins[:, None]) / (right - center)
  filters = jnp.maximum(0.0, jnp.minimum(rising, falling))
  if norm == "slaney":
    filters = filters * (2.0 / (right - left))
  return filters


@functools.partial(
  jax.jit,
  static_argnums=range(1, 11),
  static_argnames=(
    "sample_rate",
    "frame_length",
    "hop_length",
    "fft_length",
    "num_mels",
    "f_min",
    "f_max",
    "scale",
    "floor",
    "compute_dtype",
  ),
)
def log_mel_spectrogram(
  signal,
  sample_rate: float,
  frame_length: int,
  hop_length: int,
  fft_length: int | None = None,
  num_mels: int = 40,
  f_min: float = 0.0,
  f_max: float | None = None,
  scale: str = "htk",
  floor: float = 1e-6,
  compute_dtype=None,
):
  """(..., samples) -> (..., frames, num_mels): log(power spectrogram @ mel filters +
  floor), the plain DFT (no window-sum scaling). The FFT runs in float32 (XLA has no
  bfloat16 FFT); `compute_dtype` (e.g. bfloat16) sets the dtype of the mel projection,
  which is a matmul, and of the result."""
  fft_length = fft_length or frame_length
  power = spectrogram(signal, frame_length, hop_length, fft_length, scaling=None)
  filters = mel_filterbank(num_mels, fft_length, sample_rate, f_min, f_max, scale)
  dtype = compute_dtype or jnp.float32
  mel = jnp.matmul(power.astype(dtype), filters.astype(dtype))
  return jnp.log(mel.astype(jnp.float32) + floor).astype(dtype)
