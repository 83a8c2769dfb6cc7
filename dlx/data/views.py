"""Two random views of each image, for contrastive self-supervised learning
(docs/curriculum.md#f26; Chen et al., 2020, "A Simple Framework for Contrastive Learning
of Visual Representations", section 3 and appendix A).

Each view is, independently per image: a random resized crop (a box of a random area
fraction and aspect ratio, resized back to H x W with bilinear weights), a left-right
flip (p = 0.5), brightness and contrast jitter (with probability `jitter_p`), and
optional Gaussian noise. Pure JAX functions of a PRNG key, so they run inside a compiled
step; shapes and dtypes are preserved (the resize is two small matmuls per image, in the
images' dtype).
"""

import functools

import jax
import jax.numpy as jnp

from dlx import errors
from dlx.data import augment

CONFIG_KEYS = (
  "min_scale",
  "max_scale",
  "min_ratio",
  "max_ratio",
  "flip",
  "brightness",
  "contrast",
  "jitter_p",
  "noise",
)


def _interpolation_matrix(start, length, size, dtype):
  """(size, size) bilinear weights: row i samples the source at
  start + (i + 0.5) * length / size - 0.5, clamped to the image."""
  position = start + (jnp.arange(size) + 0.5) * (length / size) - 0.5
  position = jnp.clip(position, 0.0, size - 1.0)
  source = jnp.arange(size)
  return jnp.maximum(0.0, 1.0 - jnp.abs(position[:, None] - source[None, :])).astype(dtype)


def crop_and_resize(images, boxes):
  """Each image's box (top, left, height, width) in pixels, resized to the full H x W
  with bilinear interpolation. boxes: (N, 4) float."""
  _, height, width, _ = images.shape

  def weights(box):
    rows = _interpolation_matrix(box[0], box[2], height, images.dtype)
    cols = _interpolation_matrix(box[1], box[3], width, images.dtype)
    return rows, cols

  rows, cols = jax.vmap(weights)(boxes)
  return jnp.einsum("nij,njkc,nlk->nilc", rows, images, cols)


def random_boxes(rng, n, height, width, scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3)):
  """(N, 4) boxes (top, left, height, width): area fraction ~ U(scale), aspect ratio
  width / height log-uniform in `ratio`, clipped to the image, at a uniform position."""
  area_rng, ratio_rng, top_rng, left_rng = jax.random.split(rng, 4)
  area = jax.random.uniform(area_rng, (n,), minval=scale[0], maxval=scale[1])
  log_ratio = jax.random.uniform(
    ratio_rng, (n,), minval=jnp.log(ratio[0]), maxval=jnp.log(ratio[1])
  )
  aspect = jnp.exp(log_ratio)
  box_h = jnp.minimum(jnp.sqrt(area / aspect) * height, height)
  box_w = jnp.minimum(jnp.sqrt(area * aspect) * width, width)
  top = jax.random.uniform(top_rng, (n,)) * (height - box_h)
  left = jax.random.uniform(left_rng, (n,)) * (width - box_w)
  return jnp.stack([top, left, box_h, box_w], axis=1)


def random_resized_crop(rng, images, scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3)):
  """A random box per image (see `random_boxes`) resized back to the image size."""
  n, height, width, _ = images.shape
  return crop_and_resize(images, random_boxes(rng, n, height, width, scale, ratio))


def color_jitter(rng, images, brightness: float, contrast: float, p: float = 0.8):
  """With probability p per image: x -> (x - m) c + m + b, with m the image's mean,
  c ~ U(1 - contrast, 1 + contrast) and b ~ U(-brightness, brightness) (in the
  images' units: standardised data shift by b standard deviations)."""
  n = images.shape[0]
  apply_rng, c_rng, b_rng = jax.random.split(rng, 3)
  c = jax.random.uniform(c_rng, (n,), minval=1 - contrast, maxval=1 + contrast)
  b = jax.random.uniform(b_rng, (n,), minval=-brightness, maxval=brightness)
  use = jax.random.bernoulli(apply_rng, p, (n,))
  c, b = jnp.where(use, c, 1.0), jnp.where(use, b, 0.0)
  c, b = (v.astype(images.dtype)[:, None, None, None] for v in (c, b))
  mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
  return (images - mean) * c + mean + b


def random_view(rng, images, *, scale, ratio, flip, brightness, contrast, jitter_p, noise):
  crop_rng, flip_rng, jitter_rng, noise_rng = jax.random.split(rng, 4)
  images = random_resized_crop(crop_rng, images, scale, ratio)
  if flip:
    images = augment.random_flip(flip_rng, images)
  if brightness or contrast:
    images = color_jitter(jitter_rng, images, brightness, contrast, jitter_p)
  if noise:
    images = augment.gaussian_noise(noise_rng, images, noise)
  return images


def _get(config, key, default):
  value = config.get(key, default) if config is not None else default
  return default if value is None else value


def make_views(config=None):
  """fn(rng, images) -> (view_1, view_2), two independent random views of each image,
  from a config dict / ConfigDict (all keys optional):

    min_scale, max_scale   area fraction of the crop box (default 0.3, 1.0)
    min_ratio, max_ratio   its aspect ratio (default 3/4, 4/3)
    flip                   left-right flips (default True)
    brightness, contrast   jitter strengths (default 0.4, 0.4), applied with
    jitter_p               probability (default 0.8)
    noise                  stddev of added Gaussian noise (default 0)
  """
  unknown = sorted(set(config.keys()) - set(CONFIG_KEYS)) if config is not None else []
  if unknown:
    raise errors.ConfigError(f"unknown views keys {unknown}; known: {', '.join(CONFIG_KEYS)}")
  scale = (float(_get(config, "min_scale", 0.3)), float(_get(config, "max_scale", 1.0)))
  ratio = (float(_get(config, "min_ratio", 3 / 4)), float(_get(config, "max_ratio", 4 / 3)))
  if not 0 < scale[0] <= scale[1] <= 1:
    raise errors.ConfigError(f"views need 0 < min_scale <= max_scale <= 1, got {scale}")
  if not 0 < ratio[0] <= ratio[1]:
    raise errors.ConfigError(f"views need 0 < min_ratio <= max_ratio, got {ratio}")
  options = dict(
    scale=scale,
    ratio=ratio,
    flip=bool(_get(config, "flip", True)),
    brightness=float(_get(config, "brightness", 0.4)),
    contrast=float(_get(config, "contrast", 0.4)),
    jitter_p=float(_get(config, "jitter_p", 0.8)),
    noise=float(_get(config, "noise", 0.0)),
  )
  if min(options["brightness"], options["contrast"], options["noise"]) < 0:
    raise errors.ConfigError("views brightness, contrast and noise must be >= 0")
  if not 0 <= options["jitter_p"] <= 1:
    raise errors.ConfigError(f"views jitter_p must be in [0, 1], got {options['jitter_p']}")
  if options["contrast"] > 1:
    raise errors.ConfigError(f"views contrast must be <= 1, got {options['contrast']}")
  view = functools.partial(random_view, **options)

  def two_views(rng, images):
    first, second = jax.random.split(rng)
    return view(first, images), view(second, images)

  return two_views
