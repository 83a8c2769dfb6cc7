"""What the detectors on digit scenes share (dlx/data/scenes.py): the base config, the
dataset (images with boxes, labels and a validity mask per slot) and the random
translation that moves every box with its pixels.

  base_config    the scenes, the translation augmentation, the batch sizes, Adam
  get_dataset    the scenes' inputs, boxes, labels and valid (the segmentation mask
                 dropped: the trainer's evaluation batches use `mask` for padding)
  random_shift   whole-pixel translation of images and boxes, no box leaving the canvas
  get_augment    that translation by up to config.max_shift pixels, or None
"""

import jax
import jax.numpy as jnp
import ml_collections

from dlx import config as config_lib
from dlx import data
from dlx import errors

NUM_CLASSES = 10


def base_config():
  """What both detectors share: the scenes, the translation augmentation, the budget."""
  config = config_lib.base_config()
  config.num_classes = NUM_CLASSES
  # dlx.data.scenes.digit_scenes' arguments (the seed is config.seed).
  config.scenes = ml_collections.ConfigDict(
    dict(num_train=10000, num_validation=500, num_test=1000, clutter=0)
  )
  # Random translation in training, by up to this many pixels per axis, never pushing
  # an object out of the canvas (so every box stays whole); 0 = off.
  config.max_shift = 0
  config.batch_size = 32
  config.eval_batch_size = 50  # divides every split: no second compiled shape
  config.train_eval_examples = 500
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  return config


def get_dataset(config, data_dir):
  ds = data.load("digit_scenes", data_dir=data_dir, seed=config.seed, **config.scenes.to_dict())
  # The trainer's evaluation batches use the key `mask` for their padding rows, so the
  # scene's segmentation mask (and the bookkeeping) is dropped.
  keep = ("inputs", "boxes", "labels", "valid")
  return ds.map(lambda split: {k: split[k] for k in keep})


# ------------------------------------------------------------------ augmentation


def random_shift(rng, batch, max_shift: int):
  """Translates each image and its boxes by whole pixels, at most `max_shift` per axis
  and never so far that a valid box leaves the canvas; uncovered pixels are 0."""
  images, boxes, valid = batch["inputs"], batch["boxes"], batch["valid"]
  n, height, width, _ = images.shape
  big = jnp.float32(1e9)
  lo_x = jnp.min(jnp.where(valid, boxes[..., 0], big), axis=1)  # room to the left
  lo_y = jnp.min(jnp.where(valid, boxes[..., 1], big), axis=1)
  hi_x = jnp.min(jnp.where(valid, width - boxes[..., 2], big), axis=1)  # to the right
  hi_y = jnp.min(jnp.where(valid, height - boxes[..., 3], big), axis=1)
  u = jax.random.uniform(rng, (2, n))
  low = -jnp.minimum(jnp.floor(jnp.stack([lo_x, lo_y])), max_shift)
  high = jnp.minimum(jnp.floor(jnp.stack([hi_x, hi_y])), max_shift)
  shift = jnp.floor(low + u * (high - low + 1)).astype(jnp.int32)  # (2, n): dx, dy
  shift = jnp.clip(shift, low.astype(jnp.int32), high.astype(jnp.int32))
  p = max_shift
  padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))

  def crop(image, dx, dy):
    return jax.lax.dynamic_slice(image, (p - dy, p - dx, 0), (height, width, image.shape[-1]))

  moved = jax.vmap(crop)(padded, shift[0], shift[1])
  offset = jnp.stack([shift[0], shift[1], shift[0], shift[1]], axis=-1).astype(boxes.dtype)
  new_boxes = jnp.where(valid[..., None], boxes + offset[:, None, :], boxes)
  return {**batch, "inputs": moved, "boxes": new_boxes}


def get_augment(config):
  """The translation augmentation (config.max_shift), or None."""
  if config.max_shift < 0:
    raise errors.ConfigError(f"--config.max_shift must be >= 0, got {config.max_shift}")
  if not config.max_shift:
    return None
  return lambda rng, batch: random_shift(rng, batch, int(config.max_shift))
