"""Fixed classic 3x3 image kernels (docs/curriculum.md#e4) and a per-channel filter.

The course (docs/curriculum.md#e4) names edge detection, sharpen, blur and
emboss without giving the numbers; the kernels below are the textbook ones. `apply_kernel`
computes CROSS-CORRELATION, the operation deep-learning layers call
"convolution" (docs/curriculum.md#e2):

  out(i, j) = sum_p sum_q image(i + p, j + q) kernel(p, q)

with p, q centred on the kernel. True convolution flips the kernel:
`apply_kernel(image, kernel[::-1, ::-1])`. Every kernel here except
SOBEL_X, SOBEL_Y and EMBOSS is symmetric, so the two agree for those.
"""

import jax.numpy as jnp
import numpy as np


def _constant(rows, scale=1.0):
  kernel = np.asarray(rows, np.float32) * np.float32(scale)
  kernel.setflags(write=False)
  return kernel


# Horizontal gradient: positive where intensity grows to the right.
SOBEL_X = _constant([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
# Vertical gradient: positive where intensity grows downwards.
SOBEL_Y = _constant([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
# 4-neighbour Laplacian (second derivative); 0 on constant and linear ramps.
LAPLACIAN = _constant([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
# 8-neighbour "edge detection" kernel: centre minus all neighbours.
EDGE = _constant([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
# Identity plus a 4-neighbour Laplacian edge boost; sums to 1.
SHARPEN = _constant([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
BOX_BLUR = _constant(np.ones((3, 3)), 1.0 / 9.0)
GAUSSIAN_BLUR = _constant([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 1.0 / 16.0)
# Directional relief: lights the bottom-right side of edges; sums to 1.
EMBOSS = _constant([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])

KERNELS = {
  "sobel_x": SOBEL_X,
  "sobel_y": SOBEL_Y,
  "laplacian": LAPLACIAN,
  "edge": EDGE,
  "sharpen": SHARPEN,
  "box_blur": BOX_BLUR,
  "gaussian_blur": GAUSSIAN_BLUR,
  "emboss": EMBOSS,
}

# boundary name -> jnp.pad mode. 'edge' repeats the border pixels (for a 3x3
# kernel it equals scipy.signal's boundary='symm'); 'zero' pads with zeros.
_PAD_MODES = {"edge": "edge", "zero": "constant", "reflect": "reflect", "wrap": "wrap"}


def apply_kernel(image, kernel, boundary: str = "edge") -> jnp.ndarray:
  """Cross-correlates every channel of `image` with a 2-D `kernel`, 'same' size.

  image: (H, W) or (H, W, C); kernel: (kh, kw), odd sizes. boundary: how the
  image is extended past its border ('edge', 'zero', 'reflect', 'wrap'); the
  default 'edge' keeps a constant image constant under a blur and gives 0
  edges on it. Returns float32 of the image's shape. jit-safe.
  """
  if boundary not in _PAD_MODES:
    raise ValueError(f"boundary must be one of {sorted(_PAD_MODES)}, got {boundary!r}")
  kernel = jnp.asarray(kernel, jnp.float32)
  if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
    raise ValueError(f"kernel must be 2-D with odd sizes, got shape {kernel.shape}")
  image = jnp.asarray(image, jnp.float32)
  if image.ndim not in (2, 3):
    raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
  kh, kw = kernel.shape
  height, width = image.shape[:2]
  pad = [(kh // 2, kh // 2), (kw // 2, kw // 2)] + [(0, 0)] * (image.ndim - 2)
  padded = jnp.pad(image, pad, mode=_PAD_MODES[boundary])
  out = jnp.zeros_like(image)
  for p in range(kh):
    for q in range(kw):
      out = out + kernel[p, q] * padded[p : p + height, q : q + width]
  return out


def edge_magnitude(image, boundary: str = "edge") -> jnp.ndarray:
  """Sobel gradient magnitude sqrt(Gx^2 + Gy^2), per channel, image's shape."""
  gx = apply_kernel(image, SOBEL_X, boundary)
  gy = apply_kernel(image, SOBEL_Y, boundary)
  return jnp.sqrt(gx * gx + gy * gy)
