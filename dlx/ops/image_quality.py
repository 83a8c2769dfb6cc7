"""Full-reference image quality (docs/curriculum.md#f20): PSNR and SSIM, per image.

  mse_per_image   mean squared error over (H, W, C) of each image
  psnr            10 log10(data_range^2 / MSE) in dB; identical images give +inf
  ssim            Wang et al. (2004): Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03,
                  the SSIM map over the 'valid' window positions, averaged (and averaged
                  over channels); scikit-image's structural_similarity(gaussian_weights=
                  True, sigma=1.5, use_sample_covariance=False) gives the same numbers

Images are (..., H, W, C) arrays (NHWC batches, or one HxWxC image); every function
returns one value per image, shape (...). Plain jnp, so they run inside a jitted loss.
Super-resolution papers average the per-image PSNR over a test set (not the PSNR of
the set's mean MSE); `psnr(...).mean()` is that number.
"""

import jax
import jax.numpy as jnp
import numpy as np

from dlx import errors

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _pair(a, b):
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.shape != b.shape:
    raise errors.ConfigError(f"images must have the same shape, got {a.shape} and {b.shape}")
  if a.ndim < 3:
    raise errors.ConfigError(f"images must be (..., H, W, C), got shape {a.shape}")
  return a, b


def mse_per_image(a, b):
  """Mean squared error of each (H, W, C) image: (..., H, W, C) x 2 -> (...)."""
  a, b = _pair(a, b)
  return jnp.mean((a - b) ** 2, axis=(-3, -2, -1))


def psnr(a, b, data_range: float = 1.0):
  """Peak signal-to-noise ratio in dB, per image: 10 log10(data_range^2 / MSE).
  data_range is the span of the pixel values (1 for images in [0, 1], 255 for uint8)."""
  if data_range <= 0:
    raise errors.ConfigError(f"data_range must be > 0, got {data_range}")
  return _psnr(*_pair(a, b), data_range)


@jax.jit
def _psnr(a, b, data_range):
  return 10.0 * jnp.log10(data_range**2 / jnp.mean((a - b) ** 2, axis=(-3, -2, -1)))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """The normalised 1-D Gaussian taps (size,); SSIM's 2-D window is its outer product."""
  if size < 1 or size % 2 == 0:
    raise errors.ConfigError(f"window size must be a positive odd number, got {size}")
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2
  taps = np.exp(-(x**2) / (2.0 * sigma**2))
  return (taps / taps.sum()).astype(np.float32)


def _filter_valid(x, taps):
  """Separable Gaussian filter over H and W at the 'valid' positions (no padding), each
  channel on its own: (N, H, W, C) -> (N, H - k + 1, W - k + 1, C)."""
  channels = x.shape[-1]
  k = taps.shape[0]
  # Depthwise: one (k, 1) then one (1, k) kernel per channel (feature_group_count = C).
  rows = jnp.tile(taps.reshape(k, 1, 1, 1), (1, 1, 1, channels))
  cols = rows.reshape(1, k, 1, channels)
  for kernel in (rows, cols):
    x = jax.lax.conv_general_dilated(
      x,
      kernel,
      window_strides=(1, 1),
      padding="VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=channels,
      precision=jax.lax.Precision.HIGHEST,
    )
  return x


def ssim(
  a,
  b,
  data_range: float = 1.0,
  window: int = SSIM_WINDOW,
  sigma: float = SSIM_SIGMA,
  k1: float = SSIM_K1,
  k2: float = SSIM_K2,
):
  """Mean structural similarity of each image (Wang et al., 2004), in [-1, 1]:
  (..., H, W, C) x 2 -> (...).

  SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2
  + C2)), C1 = (k1 L)^2, C2 = (k2 L)^2, L = data_range, with the local means, variances
  and covariance weighted by the Gaussian window (population statistics, no N/(N-1)),
  at every position where the window fits inside the image, then averaged.
  """
  a, b = _pair(a, b)
  if data_range <= 0:
    raise errors.ConfigError(f"data_range must be > 0, got {data_range}")
  height, width = a.shape[-3:-1]
  if min(height, width) < window:
    raise errors.ConfigError(
      f"SSIM's {window}x{window} window does not fit in {height}x{width} images"
    )
  taps = gaussian_window(window, sigma)
  return _ssim(a, b, taps, (k1 * data_range) ** 2, (k2 * data_range) ** 2)


@jax.jit
def _ssim(a, b, taps, c1, c2):
  """One compiled program per image shape (eager, every jnp op would compile alone)."""
  lead = a.shape[:-3]
  a = a.reshape((-1,) + a.shape[-3:])
  b = b.reshape((-1,) + b.shape[-3:])
  mu_a, mu_b = _filter_valid(a, taps), _filter_valid(b, taps)
  var_a = _filter_valid(a * a, taps) - mu_a**2
  var_b = _filter_valid(b * b, taps) - mu_b**2
  cov = _filter_valid(a * b, taps) - mu_a * mu_b
  ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
    (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
  )
  return jnp.mean(ssim_map, axis=(-3, -2, -1)).reshape(lead)
