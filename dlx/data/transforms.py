"""Preprocessing on NumPy arrays, applied once when a dataset is loaded."""

import numpy as np


def scale_images(split, *, low=0.0, high=1.0):
  """uint8 images in [0, 255] to float32 in [low, high]."""
  x = split["inputs"].astype(np.float32) / 255.0
  return {**split, "inputs": x * (high - low) + low}


def pad_images(split, pad: int):
  """Zero-pads height and width by `pad` on each side (MNIST 28x28 -> 32x32 with pad=2)."""
  x = split["inputs"]
  return {**split, "inputs": np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))}


def resize_images(split, size: int):
  """Nearest-neighbour upsampling by an integer factor to `size` x `size`."""
  x = split["inputs"]
  factor = size // x.shape[1]
  if factor * x.shape[1] != size or x.shape[1] != x.shape[2]:
    raise ValueError(f"cannot upsample {x.shape[1:3]} to {size}x{size} by an integer factor")
  return {**split, "inputs": x.repeat(factor, axis=1).repeat(factor, axis=2)}


def binarize(split, *, seed=0):
  """Stochastic binarisation of [0, 1] images (each pixel ~ Bernoulli(intensity)), drawn
  once with a fixed seed so the dataset is the same in every run (Salakhutdinov & Murray)."""
  x = split["inputs"]
  rng = np.random.default_rng([seed, len(x)])
  return {**split, "inputs": (rng.random(x.shape) < x).astype(np.float32)}


def standardize(split, mean, std):
  return {**split, "inputs": ((split["inputs"] - mean) / std).astype(np.float32)}
