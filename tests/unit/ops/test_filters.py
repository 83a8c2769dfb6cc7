"""Classic kernels (dlx/ops/filters.py): correlation semantics and known responses."""

import jax
import numpy as np
import pytest

from dlx.ops import filters


def _image(shape, seed=0):
  return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_hand_computed_cross_correlation():
  image = np.arange(9, dtype=np.float32).reshape(3, 3)
  kernel = np.arange(9, dtype=np.float32).reshape(3, 3)
  out = np.asarray(filters.apply_kernel(image, kernel, boundary="zero"))
  # Centre: sum_p sum_q image(1 + p, 1 + q) kernel(p, q), no flip.
  assert out[1, 1] == pytest.approx(float(np.sum(image * kernel)))  # 204
  # Top-left corner sees image[0:2, 0:2] through kernel[1:3, 1:3].
  assert out[0, 0] == pytest.approx(float(np.sum(image[:2, :2] * kernel[1:, 1:])))
  # A true convolution would flip the kernel and give a different centre.
  assert out[1, 1] != pytest.approx(float(np.sum(image * kernel[::-1, ::-1])))


@pytest.mark.parametrize(
  "boundary,scipy_boundary", [("zero", "fill"), ("edge", "symm"), ("wrap", "wrap")]
)
@pytest.mark.parametrize("name", sorted(filters.KERNELS))
def test_matches_scipy_correlate2d(name, boundary, scipy_boundary):
  signal = pytest.importorskip("scipy.signal")
  image = _image((7, 9))
  kernel = filters.KERNELS[name]
  expected = signal.correlate2d(image, kernel, mode="same", boundary=scipy_boundary)
  out = filters.apply_kernel(image, kernel, boundary=boundary)
  np.testing.assert_allclose(out, expected, atol=1e-5)
  # Convolution is correlation with the flipped kernel.
  convolved = signal.convolve2d(image, kernel, mode="same", boundary=scipy_boundary)
  np.testing.assert_allclose(
    filters.apply_kernel(image, kernel[::-1, ::-1], boundary=boundary), convolved, atol=1e-5
  )


def test_channels_are_filtered_independently():
  image = _image((6, 5, 3))
  out = filters.apply_kernel(image, filters.EMBOSS)
  assert out.shape == image.shape
  for c in range(3):
    np.testing.assert_allclose(
      out[..., c], filters.apply_kernel(image[..., c], filters.EMBOSS), atol=1e-6
    )


@pytest.mark.parametrize("name", ["box_blur", "gaussian_blur", "sharpen", "emboss"])
def test_unit_sum_kernels_preserve_a_constant_image(name):
  image = np.full((8, 8, 2), 0.3, np.float32)
  np.testing.assert_allclose(filters.apply_kernel(image, filters.KERNELS[name]), image, atol=1e-6)


@pytest.mark.parametrize("name", ["sobel_x", "sobel_y", "laplacian", "edge"])
def test_edges_of_a_constant_image_are_zero(name):
  image = np.full((8, 8), 0.7, np.float32)
  np.testing.assert_allclose(filters.apply_kernel(image, filters.KERNELS[name]), 0.0, atol=1e-6)
  np.testing.assert_allclose(filters.edge_magnitude(image), 0.0, atol=1e-6)


def test_sobel_on_a_vertical_step_edge():
  image = np.zeros((6, 8), np.float32)
  image[:, 4:] = 1.0  # Dark left half, bright right half.
  gx = np.asarray(filters.apply_kernel(image, filters.SOBEL_X))
  gy = np.asarray(filters.apply_kernel(image, filters.SOBEL_Y))
  # Columns 3 and 4 straddle the step: (1 + 2 + 1) * (1 - 0) = 4 in every row.
  expected = np.zeros_like(image)
  expected[:, 3:5] = 4.0
  np.testing.assert_allclose(gx, expected)
  np.testing.assert_allclose(gy, 0.0)
  np.testing.assert_allclose(filters.edge_magnitude(image), expected)
  # The transposed step is seen by sobel_y only.
  np.testing.assert_allclose(filters.apply_kernel(image.T, filters.SOBEL_Y), expected.T)


def test_jit_and_validation():
  image = _image((5, 5))
  jitted = jax.jit(filters.apply_kernel)(image, filters.SHARPEN)
  np.testing.assert_allclose(jitted, filters.apply_kernel(image, filters.SHARPEN), atol=1e-6)
  with pytest.raises(ValueError):
    filters.apply_kernel(image, np.ones((2, 2)))
  with pytest.raises(ValueError):
    filters.apply_kernel(image, filters.EDGE, boundary="nope")
  with pytest.raises(ValueError):
    filters.apply_kernel(np.zeros((1, 5, 5, 1)), filters.EDGE)
  assert not filters.EDGE.flags.writeable
