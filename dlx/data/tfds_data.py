"""tensorflow-datasets by name, read from a prepared data dir and never downloaded.

Training jobs must not sit in download retries, so every load uses `download=False`:
data that is not in `data_dir` fails at once with a message naming `--data_dir` and the
embedded datasets that need no network.
"""

import contextlib
import hashlib
import os
import pathlib

import numpy as np

from dlx import errors
from dlx.data import core

_OFFLINE_HINT = (
  "pass --data_dir=DIR pointing at a prepared tfds data dir (e.g. --data_dir=../shared/tfds, "
  "or set TFDS_DATA_DIR), or use an embedded dataset that needs no network: "
  "digits, iris, mnist1d, xor, two_moons, spirals, regression, shakespeare_char, "
  "copy, reverse, sort, reorder"
)


def _hide_accelerators_from_tensorflow(tf):
  # TensorFlow only feeds data here; it must not reserve GPU memory JAX needs.
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # already initialised
    pass


def resolve_data_dir(data_dir=None):
  return data_dir or os.environ.get("TFDS_DATA_DIR") or None


def _cache_path(name, split, data_dir):
  """Where the decoded arrays of a prepared split are cached, or None (no prepared files).

  Decoding MNIST's 70,000 PNGs takes ~15 s; the cache makes later loads instant. The key
  holds the dataset dir and its files' sizes and mtimes, so new data is never shadowed."""
  if not data_dir or not (pathlib.Path(data_dir) / name).is_dir():
    return None
  files = sorted((pathlib.Path(data_dir) / name).rglob("*"))
  stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
  key = hashlib.sha1(repr((os.path.abspath(data_dir), split, stamp)).encode()).hexdigest()
  cache_dir = pathlib.Path(os.environ.get("DLX_CACHE_DIR", pathlib.Path.home() / ".cache" / "dlx"))
  return cache_dir / f"{name}-{split.replace('/', '_')}-{key[:16]}.npz"


_mock_examples = 0  # set by `mocked`: > 0 replaces every tfds split by random examples


@contextlib.contextmanager
def mocked(num_examples: int):
  """Inside the block every tfds split is `num_examples` random examples of the
  dataset's real shapes and dtypes (tfds' own mock data: no files, no network), for
  smoke runs. num_examples = 0 leaves loading as it is."""
  global _mock_examples
  previous, _mock_examples = _mock_examples, int(num_examples)
  try:
    yield
  finally:
    _mock_examples = previous


def mock_examples() -> int:
  """The example count of the enclosing `mocked` block (0 outside one)."""
  return _mock_examples


def _mock_split(name, split, image_key, label_key):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  with tfds.testing.mock_data(num_examples=_mock_examples, policy=tfds.testing.MockPolicy.USE_CODE):
    return _decode_split(name, split, None, image_key, label_key)


def load_split(
  name: str, split: str, *, data_dir=None, image_key="image", label_key="label"
) -> core.Split:
  """One tfds split as NumPy arrays: {'inputs': images, 'targets': int32 labels}."""
  if _mock_examples:
    return _mock_split(name, split, image_key, label_key)
  data_dir = resolve_data_dir(data_dir)
  cache = _cache_path(name, split, data_dir)
  if cache is not None and cache.exists():
    with np.load(cache) as f:
      return {"inputs": f["inputs"], "targets": f["targets"]}
  arrays = _decode_split(name, split, data_dir, image_key, label_key)
  if cache is not None:
    try:
      cache.parent.mkdir(parents=True, exist_ok=True)
      tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
      np.savez(tmp, **arrays)
      os.replace(tmp, cache)  # atomic: a reader never sees half a file
    except OSError:
      pass  # a read-only home is fine: we just decode again next time
  return arrays


def _decode_split(name, split, data_dir, image_key, label_key):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  _hide_accelerators_from_tensorflow(tf)
  try:
    ds = tfds.load(name, split=split, data_dir=data_dir, download=False)
    # Large batches then one concatenate: much faster than batch_size=-1.
    chunks = list(tfds.as_numpy(ds.batch(8192)))
  except tfds.core.registered.DatasetNotFoundError as e:
    raise errors.DataNotFoundError(
      f"tfds has no dataset named {name!r}; check the name, or {_OFFLINE_HINT}"
    ) from e
  except (AssertionError, FileNotFoundError, tf.errors.NotFoundError) as e:
    where = data_dir or "the default tfds data dir (~/tensorflow_datasets)"
    raise errors.DataNotFoundError(
      f"dataset {name!r} (split {split!r}) is not prepared in {where} and this job does "
      f"not download; {_OFFLINE_HINT}"
    ) from e
  if not chunks:
    raise errors.DataNotFoundError(f"split {split!r} of {name!r} in {data_dir} is empty")
  return {
    "inputs": np.concatenate([c[image_key] for c in chunks]),
    "targets": np.concatenate([c[label_key] for c in chunks]).astype(np.int32),
  }


def load(
  name: str, *, data_dir=None, validation_fraction=0.1, image_key="image", label_key="label"
) -> core.Dataset:
  """A tfds dataset with its 'train' and 'test' splits; validation is the last
  `validation_fraction` of train. Images stay uint8 (scale them in the experiment)."""
  kw = dict(data_dir=data_dir, image_key=image_key, label_key=label_key)
  train = load_split(name, "train", **kw)
  test = load_split(name, "test", **kw)
  num_classes = int(max(train["targets"].max(), test["targets"].max())) + 1
  return core.split_off_validation(
    train,
    test,
    validation_fraction=validation_fraction,
    info=dict(name=name, num_classes=num_classes, source="tfds"),
  )
