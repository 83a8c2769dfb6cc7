"""Audio front end (dlx/ops/audio.py): the STFT against scipy.signal.stft, mel scales
against their closed forms, the mel filterbank against hand-computed triangles."""

import math

import numpy as np
import pytest
from scipy import signal as sp_signal

from dlx import errors
from dlx.ops import audio


def _signal(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
  "frame,hop,fft,center,pad_end,window",
  [
    (200, 80, 256, True, True, "hann"),  # the speech model's front end
    (64, 16, None, False, True, "hamming"),
    (64, 48, 128, True, False, "hann"),
    (50, 50, None, False, False, "rectangular"),
  ],
)
def test_stft_matches_scipy(frame, hop, fft, center, pad_end, window):
  x = _signal((2, 1003))
  _, _, expected = sp_signal.stft(
    x,
    window={"rectangular": "boxcar"}.get(window, window),
    nperseg=frame,
    noverlap=frame - hop,
    nfft=fft,
    boundary="zeros" if center else None,
    padded=pad_end,
  )
  expected = np.swapaxes(expected, -1, -2)  # scipy is (freqs, frames)
  got = np.asarray(audio.stft(x, frame, hop, fft, window, center=center, pad_end=pad_end))
  assert got.shape == expected.shape
  assert audio.num_frames(x.shape[-1], frame, hop, center, pad_end) == got.shape[-2]
  np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


def test_unscaled_stft_is_the_plain_dft_of_each_windowed_frame():
  x = _signal(100)
  got = np.asarray(audio.stft(x, 32, 8, 64, center=False, pad_end=False, scaling=None))
  w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(32) / 32)  # periodic Hann
  frame_3 = np.fft.rfft(x[24:56] * w, 64)
  np.testing.assert_allclose(got[3], frame_3, rtol=1e-5, atol=1e-5)


def test_sine_on_a_bin_gives_half_its_amplitude():
  """'spectrum' scaling: a sine of amplitude A exactly on bin k peaks at A / 2 there."""
  n, k, amplitude = 256, 20, 3.0
  x = amplitude * np.sin(2 * np.pi * k * np.arange(4 * n) / n)
  magnitude = np.asarray(audio.spectrogram(x, n, n // 2, power=1.0, center=False))
  np.testing.assert_allclose(magnitude[:, k], amplitude / 2, rtol=1e-4)
  power = np.asarray(audio.spectrogram(x, n, n // 2, power=2.0, center=False))
  np.testing.assert_allclose(power, magnitude**2, rtol=1e-4, atol=1e-8)


def test_mel_scales_closed_forms():
  # HTK: 2595 log10(1 + f / 700), so 700 Hz is 2595 log10(2) and 2100 Hz is 2595 log10(4).
  assert float(audio.hz_to_mel(700.0, "htk")) == pytest.approx(2595 * math.log10(2), rel=1e-6)
  assert float(audio.mel_to_hz(2595 * math.log10(4), "htk")) == pytest.approx(2100.0, rel=1e-5)
  # Slaney: 3 f / 200 below 1 kHz (1000 Hz is mel 15), log-spaced above, 6400 Hz is mel 42.
  assert float(audio.hz_to_mel(600.0, "slaney")) == pytest.approx(9.0, rel=1e-6)
  assert float(audio.hz_to_mel(1000.0, "slaney")) == pytest.approx(15.0, rel=1e-6)
  assert float(audio.hz_to_mel(6400.0, "slaney")) == pytest.approx(42.0, rel=1e-5)
  assert float(audio.mel_to_hz(42.0, "slaney")) == pytest.approx(6400.0, rel=1e-5)
  for scale in audio.MEL_SCALES:
    hz = np.array([0.0, 55.0, 440.0, 999.0, 1000.0, 3000.0, 8000.0])
    back = np.asarray(audio.mel_to_hz(audio.hz_to_mel(hz, scale), scale))
    np.testing.assert_allclose(back, hz, rtol=1e-4, atol=1e-3)


def test_slaney_filterbank_hand_computed():
  """3 filters over the 9 bins 0, 100, ..., 800 Hz (fft 16 at 1600 Hz): Slaney's scale is
  linear below 1 kHz, so the 5 edges are 0, 200, 400, 600, 800 Hz and filter m rises
  from bin 2m to a peak at bin 2m + 2 and falls to 0 at bin 2m + 4."""
  got = np.asarray(audio.mel_filterbank(3, 16, 1600.0, scale="slaney"))
  expected = np.array(
    [
      [0, 0.5, 1, 0.5, 0, 0, 0, 0, 0],
      [0, 0, 0, 0.5, 1, 0.5, 0, 0, 0],
      [0, 0, 0, 0, 0, 0.5, 1, 0.5, 0],
    ]
  ).T
  np.testing.assert_allclose(got, expected, atol=1e-5)
  assert list(got.argmax(0)) == [2, 4, 6]
  # norm='slaney' scales each triangle by 2 / (its width: 400 Hz), an area of 1 in Hz.
  normed = np.asarray(audio.mel_filterbank(3, 16, 1600.0, scale="slaney", norm="slaney"))
  np.testing.assert_allclose(normed, expected * 2 / 400, atol=1e-7)
  np.testing.assert_allclose(normed.sum(0) * 100.0, 1.0, rtol=1e-5)  # bins are 100 Hz apart


def test_htk_filterbank_hand_computed():
  """One HTK filter from 0 to 2100 Hz: the mel midpoint is 700 Hz (mels 0, 2595 log10 2,
  2595 log10 4), so over bins 350 Hz apart it rises 0, 0.5, 1 and falls over 1400 Hz in
  quarters: an asymmetric triangle, as the mel warp makes it."""
  got = np.asarray(audio.mel_filterbank(1, 12, 4200.0, f_max=2100.0, scale="htk"))
  np.testing.assert_allclose(got[:, 0], [0, 0.5, 1, 0.75, 0.5, 0.25, 0], atol=1e-5)


def test_log_mel_is_log_of_mel_weighted_power():
  x = _signal((3, 1600), seed=1)
  got = np.asarray(
    audio.log_mel_spectrogram(x, 8000, 200, 80, 256, num_mels=20, f_min=50.0, floor=1e-6)
  )
  _, _, z = sp_signal.stft(x, window="hann", nperseg=200, noverlap=120, nfft=256)
  power = np.abs(np.swapaxes(z, -1, -2) * np.hanning(201)[:200].sum()) ** 2  # undo 1/sum(w)
  filters = np.asarray(audio.mel_filterbank(20, 256, 8000, f_min=50.0))
  np.testing.assert_allclose(got, np.log(power @ filters + 1e-6), rtol=1e-4, atol=1e-4)
  assert got.shape == (3, audio.num_frames(1600, 200, 80), 20)


def test_bad_arguments_are_one_line_errors():
  with pytest.raises(errors.ConfigError, match="unknown window"):
    audio.stft(np.zeros(100), 32, 8, window_name="kaiser")
  with pytest.raises(errors.ConfigError, match="fft_length"):
    audio.stft(np.zeros(100), 32, 8, fft_length=16)
  with pytest.raises(errors.ConfigError, match="f_max"):
    audio.mel_filterbank(10, 256, 8000, f_max=5000.0)
  with pytest.raises(errors.ConfigError, match="mel scale"):
    audio.hz_to_mel(100.0, "bark")
