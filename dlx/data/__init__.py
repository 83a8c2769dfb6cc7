"""Datasets: tfds by name (read from `--data_dir`, never downloaded) and embedded ones.

    ds = dlx.data.load("mnist", data_dir="../shared/tfds")   # tfds
    ds = dlx.data.load("digits")                              # embedded, no network

Every loader returns a `Dataset` (three splits of NumPy arrays); `dlx.data.pipeline`
turns a split into device batches.
"""

from dlx.data import embedded
from dlx.data import pipeline
from dlx.data import tfds_data
from dlx.data import transforms
from dlx.data.core import Dataset

EMBEDDED = tuple(embedded.LOADERS)


def load(name: str, *, data_dir=None, seed: int = 0, **kwargs) -> Dataset:
  """An embedded dataset by name, else a tfds dataset from `data_dir`."""
  if name in embedded.LOADERS:
    return embedded.LOADERS[name](seed=seed, **kwargs)
  return tfds_data.load(name, data_dir=data_dir, **kwargs)
