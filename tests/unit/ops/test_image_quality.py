"""PSNR and SSIM (dlx/ops/image_quality.py) against hand-computed values and
scikit-image's metrics."""

import numpy as np
import pytest
from skimage import metrics

from dlx import errors
from dlx.ops import image_quality


def _pair(shape, seed=0, noise=0.2, scale=1.0):
  rng = np.random.default_rng(seed)
  a = rng.random(shape).astype(np.float32)
  b = np.clip(a + noise * rng.standard_normal(shape), 0.0, 1.0).astype(np.float32)
  return a * scale, b * scale


def test_psnr_hand_computed():
  a = np.zeros((2, 4, 4, 1), np.float32)
  b = a.copy()
  b[0] += 0.1  # every pixel off by 0.1: MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
  b[1, :2] = 0.5  # half the pixels off by 0.5: MSE 0.125 -> 10 log10(8) = 9.0309 dB
  np.testing.assert_allclose(image_quality.psnr(a, b), [20.0, 9.030900], rtol=1e-5)
  # uint8 range: every pixel off by 16 -> 10 log10(255^2 / 256) = 24.0481 dB
  np.testing.assert_allclose(
    image_quality.psnr(a[:1], a[:1] + 16.0, data_range=255.0), [24.048404], rtol=1e-5
  )
  assert np.isinf(image_quality.psnr(a, a)).all()


def test_psnr_matches_scikit_image():
  a, b = _pair((3, 28, 28, 1))
  ours = np.asarray(image_quality.psnr(a, b))
  theirs = [metrics.peak_signal_noise_ratio(a[i], b[i], data_range=1.0) for i in range(3)]
  np.testing.assert_allclose(ours, theirs, rtol=1e-5)


@pytest.mark.parametrize("channels,data_range", [(1, 1.0), (3, 1.0), (1, 255.0)])
def test_ssim_matches_scikit_image(channels, data_range):
  a, b = _pair((3, 28, 30, channels), seed=channels, scale=data_range)
  ours = np.asarray(image_quality.ssim(a, b, data_range=data_range))
  theirs = [
    metrics.structural_similarity(
      a[i],
      b[i],
      gaussian_weights=True,
      sigma=1.5,
      use_sample_covariance=False,
      data_range=data_range,
      channel_axis=-1,
    )
    for i in range(3)
  ]
  np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_ssim_of_identical_images_is_one_and_of_a_shift_is_lower():
  a, _ = _pair((2, 16, 16, 1))
  np.testing.assert_allclose(image_quality.ssim(a, a), [1.0, 1.0], atol=1e-5)
  assert np.all(np.asarray(image_quality.ssim(a, np.roll(a, 1, axis=2))) < 0.5)


def test_leading_axes_and_single_images():
  a, b = _pair((2, 3, 12, 12, 1))
  batched = np.asarray(image_quality.ssim(a, b))
  assert batched.shape == (2, 3)
  np.testing.assert_allclose(image_quality.ssim(a[1, 2], b[1, 2]), batched[1, 2], rtol=1e-6)
  assert image_quality.psnr(a, b).shape == (2, 3)


def test_gaussian_window_is_wangs():
  taps = image_quality.gaussian_window()
  assert taps.shape == (11,)
  np.testing.assert_allclose(taps.sum(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(taps, taps[::-1])
  np.testing.assert_allclose(taps[5] / taps[4], np.exp(1 / (2 * 1.5**2)), rtol=1e-5)


@pytest.mark.parametrize(
  "call",
  [
    lambda: image_quality.psnr(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 5, 1))),
    lambda: image_quality.psnr(np.zeros((4, 4)), np.zeros((4, 4))),
    lambda: image_quality.psnr(np.zeros((1, 4, 4, 1)), np.ones((1, 4, 4, 1)), data_range=0),
    lambda: image_quality.ssim(np.zeros((1, 8, 8, 1)), np.zeros((1, 8, 8, 1))),
    lambda: image_quality.gaussian_window(10),
  ],
  ids=["shapes", "rank", "range", "window-too-big", "even-window"],
)
def test_bad_input_is_a_config_error(call):
  with pytest.raises(errors.ConfigError):
    call()
