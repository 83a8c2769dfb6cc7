"""Data augmentation as pure JAX functions of a PRNG key (docs/curriculum.md#d3).

Everything runs inside a jitted train step (dlx/training/steps.py calls the function
from `make_augment` first) and is deterministic given the key. Images are a
float batch (N, H, W, C); shapes and dtypes are preserved.

  flip / crop / noise   Goodfellow et al., Deep Learning, ch. 7.4-7.5
  mixup                 x = lam x_i + (1 - lam) x_j, y likewise,
                        lam ~ Beta(alpha, alpha) (Zhang et al., 2018)
  cutmix                a box of x_j pasted into x_i, y mixed by the box area
                        (Yun et al., 2019)
  label smoothing       t = (1 - s) t + s / C (dlx.losses.softmax_cross_entropy)

As in both papers, one lambda (and one box) is drawn per batch, and each
example is paired with example perm[i] of a random permutation of the batch.
Weight noise perturbs parameters, not data: `dlx.training.steps.add_weight_noise`
(`--config.weight_noise`).
"""

import jax
import jax.numpy as jnp

from dlx import errors

CROP_MODES = ("constant", "reflect", "edge", "symmetric")
CONFIG_KEYS = (
  "flip",
  "crop_padding",
  "crop_mode",
  "input_noise",
  "mixup_alpha",
  "cutmix_alpha",
  "num_classes",
)


def random_flip(rng, images, p: float = 0.5):
  """Mirrors each image left-right with probability p (independently)."""
  flip = jax.random.bernoulli(rng, p, (images.shape[0],))
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)


def random_crop(rng, images, padding: int = 4, mode: str = "constant"):
  """Pads H and W by `padding` on each side, then crops back to (H, W) at a
  random per-example offset in [0, 2 * padding] (a random translation).

  mode: jnp.pad mode, 'constant' (zeros) or 'reflect' ('edge', 'symmetric').
  """
  if mode not in CROP_MODES:
    raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
  if padding == 0:
    return images
  n, height, width, channels = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode=mode)
  offsets = jax.random.randint(rng, (n, 2), 0, 2 * padding + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

  return jax.vmap(crop)(padded, offsets)


def gaussian_noise(rng, images, stddev: float):
  """images + N(0, stddev^2) per pixel (no clipping)."""
  return images + stddev * jax.random.normal(rng, images.shape, images.dtype)


def _pairing(rng, batch_size, alpha):
  """A permutation of the batch (partner of each example) and lam ~ Beta."""
  perm_rng, lam_rng = jax.random.split(rng)
  perm = jax.random.permutation(perm_rng, batch_size)
  lam = jax.random.beta(lam_rng, alpha, alpha)
  return perm, lam


def _mix(images, labels, perm, lam):
  lam_x = lam.astype(images.dtype)
  lam_y = lam.astype(labels.dtype)
  return (lam_x * images + (1 - lam_x) * images[perm], lam_y * labels + (1 - lam_y) * labels[perm])


def _cut_and_paste(rng, images, labels, perm, lam):
  _, height, width, _ = images.shape
  side = jnp.sqrt(1.0 - lam)
  cut_h = jnp.floor(height * side).astype(jnp.int32)
  cut_w = jnp.floor(width * side).astype(jnp.int32)
  cy_rng, cx_rng = jax.random.split(rng)
  cy = jax.random.randint(cy_rng, (), 0, height)
  cx = jax.random.randint(cx_rng, (), 0, width)
  top = jnp.clip(cy - cut_h // 2, 0, height)
  bottom = jnp.clip(cy + cut_h - cut_h // 2, 0, height)
  left = jnp.clip(cx - cut_w // 2, 0, width)
  right = jnp.clip(cx + cut_w - cut_w // 2, 0, width)
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  box = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
  mixed = jnp.where(box[None, :, :, None], images[perm], images)
  area = ((bottom - top) * (right - left)).astype(labels.dtype) / (height * width)
  return mixed, (1 - area) * labels + area * labels[perm]


def mixup(rng, images, labels_onehot, alpha: float):
  """Returns (lam x + (1 - lam) x[perm], lam y + (1 - lam) y[perm]).

  labels_onehot: (N, K) one-hot or soft labels; lam ~ Beta(alpha, alpha).
  """
  perm, lam = _pairing(rng, images.shape[0], alpha)
  return _mix(images, labels_onehot, perm, lam)


def cutmix(rng, images, labels_onehot, alpha: float):
  """Pastes a box of x[perm] into x; labels mixed by the pasted area.

  lam ~ Beta(alpha, alpha) sets the box to about (1 - lam) of the image
  (sides sqrt(1 - lam) H and W) around a uniform centre, clipped at the
  border; the labels use the clipped box's exact area fraction a:
  y = (1 - a) y + a y[perm].
  """
  pair_rng, box_rng = jax.random.split(rng)
  perm, lam = _pairing(pair_rng, images.shape[0], alpha)
  return _cut_and_paste(box_rng, images, labels_onehot, perm, lam)


def _get(config, key, default):
  value = config.get(key, default) if config is not None else default
  return default if value is None else value


def make_augment(config):
  """A fn(rng, batch) -> batch from a config dict / ConfigDict.

  Keys (all optional; 0 / False = off):
    flip          bool, random horizontal flips (p = 0.5)
    crop_padding  int, pad-and-crop translation by up to this many pixels
    crop_mode     'constant' (default) or 'reflect' padding for the crop
    input_noise   float, stddev of Gaussian noise added to the inputs
    mixup_alpha   float, mixup with lam ~ Beta(alpha, alpha)
    cutmix_alpha  float, cutmix with lam ~ Beta(alpha, alpha)
    num_classes   int, needed by mixup / cutmix
  Flip, crop and noise apply in that order to batch['inputs'] (N, H, W, C).
  With mixup or cutmix, batch['soft_targets'] (N, num_classes) is added and
  the integer batch['targets'] kept (for accuracy); train with
  `dlx.tasks.classification.soft_classification`. With both on, each batch uses one of the two, with
  equal probability.
  """
  unknown = sorted(set(config.keys()) - set(CONFIG_KEYS)) if config is not None else []
  if unknown:
    raise errors.ConfigError(f"unknown augment keys {unknown}; known: {', '.join(CONFIG_KEYS)}")
  flip = bool(_get(config, "flip", False))
  crop_padding = int(_get(config, "crop_padding", 0))
  crop_mode = _get(config, "crop_mode", "constant")
  input_noise = float(_get(config, "input_noise", 0.0))
  mixup_alpha = float(_get(config, "mixup_alpha", 0.0))
  cutmix_alpha = float(_get(config, "cutmix_alpha", 0.0))
  num_classes = int(_get(config, "num_classes", 0))
  if crop_padding < 0 or input_noise < 0 or mixup_alpha < 0 or cutmix_alpha < 0:
    raise errors.ConfigError(
      "augment crop_padding, input_noise, mixup_alpha and cutmix_alpha must be >= 0"
    )
  if crop_mode not in CROP_MODES:
    raise errors.ConfigError(f"augment crop_mode must be one of {CROP_MODES}, got {crop_mode!r}")
  if (mixup_alpha or cutmix_alpha) and num_classes <= 0:
    raise errors.ConfigError("augment mixup_alpha / cutmix_alpha need num_classes > 0")

  def augment(rng, batch):
    flip_rng, crop_rng, noise_rng, mix_rng = jax.random.split(rng, 4)
    images = batch["inputs"]
    if flip:
      images = random_flip(flip_rng, images)
    if crop_padding:
      images = random_crop(crop_rng, images, crop_padding, crop_mode)
    if input_noise:
      images = gaussian_noise(noise_rng, images, input_noise)
    batch = {**batch, "inputs": images}
    if not (mixup_alpha or cutmix_alpha):
      return batch
    labels = jax.nn.one_hot(batch["targets"], num_classes, dtype=jnp.float32)
    if mixup_alpha and cutmix_alpha:
      # One pairing and one lam (from the chosen method's alpha) serve both.
      choose_rng, pair_rng, box_rng = jax.random.split(mix_rng, 3)
      use_mixup = jax.random.bernoulli(choose_rng)
      alpha = jnp.where(use_mixup, mixup_alpha, cutmix_alpha)
      perm, lam = _pairing(pair_rng, images.shape[0], alpha)
      mixed = _mix(images, labels, perm, lam)
      pasted = _cut_and_paste(box_rng, images, labels, perm, lam)
      images, soft = jax.tree.map(lambda a, b: jnp.where(use_mixup, a, b), mixed, pasted)
    elif mixup_alpha:
      images, soft = mixup(mix_rng, images, labels, mixup_alpha)
    else:
      images, soft = cutmix(mix_rng, images, labels, cutmix_alpha)
    return {**batch, "inputs": images, "soft_targets": soft}

  return augment
