"""Image-classification datasets from tfds, ready for a CNN: float32, standardised with
the train split's statistics, optionally zero-padded to a larger square."""

import numpy as np

from dlx.data import core
from dlx.data import tfds_data
from dlx.data import transforms


def load_images(
  name: str, *, data_dir=None, pad_to: int | None = None, standardize: bool = True
) -> core.Dataset:
  """e.g. load_images('fashion_mnist', data_dir='../shared/tfds', pad_to=32).

  Standardising uses the train split's per-channel mean and std (of a streamed split: one
  pass over its files, cached). Padding comes after it, so the border is 0 = the mean
  intensity."""
  ds = tfds_data.load(name, data_dir=data_dir).map(transforms.scale_images)
  if standardize:
    if isinstance(ds.train, core.LazySplit):
      mean, std = (m.astype(np.float32) for m in tfds_data.channel_moments(ds.train))
    else:
      train = ds.train["inputs"]
      mean = train.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
      std = train.std(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    ds = ds.map(lambda split: transforms.standardize(split, mean, std))
  if pad_to is not None:
    size = core.take(ds.train, slice(0, 1))["inputs"].shape[1]
    if pad_to < size or (pad_to - size) % 2:
      raise ValueError(
        f"pad_to={pad_to} must be >= the image size {size} and differ from it by an even number"
      )
    if pad_to > size:
      ds = ds.map(lambda split: transforms.pad_images(split, (pad_to - size) // 2))
  return ds
