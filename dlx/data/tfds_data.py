"""tensorflow-datasets by name, read from a prepared data dir and never downloaded.

Training jobs must not sit in download retries, so every load uses `download=False`:
data that is not in `data_dir` fails at once with a message naming `--data_dir` and the
embedded datasets that need no network.

A dataset prepared in ArrayRecord form (`python -m dlx.data.convert`) can stream: inside
`streaming()` (the trainer's `--config.input_pipeline=grain`) its train split is a
`core.LazySplit` over the files, decoded row by row, while validation and test (small) are
read whole; outside, every split is read whole as from TFRecord files (docs/curriculum.md#a6).
"""

import contextlib
import hashlib
import os
import pathlib
import threading
import types

import numpy as np

from dlx import errors
from dlx import optional_deps
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
  tag = "".join(c if c.isalnum() or c in "-_" else "_" for c in split)
  return cache_dir / f"{name}-{tag}-{key[:16]}.npz"


_mock_examples = 0  # set by `mocked`: > 0 replaces every tfds split by random examples
_stream_train = False  # set by `streaming`: ArrayRecord train splits load as a LazySplit


@contextlib.contextmanager
def streaming(enabled: bool = True):
  """Inside the block `load` streams the train split of datasets prepared in ArrayRecord
  form (random access from disk) instead of decoding it into memory."""
  global _stream_train
  previous, _stream_train = _stream_train, bool(enabled)
  try:
    yield
  finally:
    _stream_train = previous


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
  optional_deps.require("reading tfds datasets", "tensorflow", "tensorflow_datasets")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  with tfds.testing.mock_data(num_examples=_mock_examples, policy=tfds.testing.MockPolicy.USE_CODE):
    return _decode_split(name, split, None, image_key, label_key)


def load_split(
  name: str, split: str, *, data_dir=None, image_key="image", label_key="label"
) -> core.Split:
  """One tfds split as NumPy arrays: {'inputs': images, 'targets': int32 labels}. `split`
  may be a tfds slice ('train[54000:]')."""
  if _mock_examples:
    return _mock_split(name, split, image_key, label_key)
  data_dir = resolve_data_dir(data_dir)
  cache = _cache_path(name, split, data_dir)
  if cache is not None and cache.exists():
    with np.load(cache) as f:
      return {"inputs": f["inputs"], "targets": f["targets"]}
  builder = _random_access_builder(name, data_dir)
  if builder is not None:  # ArrayRecord files: no tf.data reader, read them by index
    source = TfdsSource(name, split, data_dir, image_key=image_key, label_key=label_key)
    arrays = core.take(core.LazySplit(source), slice(None))
  else:
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
  optional_deps.require("reading tfds datasets", "tensorflow", "tensorflow_datasets")
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
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    raise errors.DataCorruptError(_corrupt_message(name, split, data_dir, e)) from e
  if not chunks:
    raise errors.DataNotFoundError(f"split {split!r} of {name!r} in {data_dir} is empty")
  return {
    "inputs": np.concatenate([c[image_key] for c in chunks]),
    "targets": np.concatenate([c[label_key] for c in chunks]).astype(np.int32),
  }


def _corrupt_message(name, split, data_dir, error) -> str:
  """One line naming the split's files and how to prepare them again."""
  root = pathlib.Path(data_dir or os.path.expanduser("~/tensorflow_datasets")) / name
  part = split.split("[")[0]
  files = sorted(str(f) for f in root.rglob(f"{name}-{part}.*") if f.is_file())
  first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
  return (
    f"dataset {name!r} (split {split!r}) could not be read: a file is truncated or corrupt "
    f"({', '.join(files) or root}; TensorFlow: {first[:160]}); prepare it again: delete "
    f"{root} and copy a fresh prepared copy there (`tfds build {name}` on a machine with a "
    "network writes one)"
  )


def load(
  name: str, *, data_dir=None, validation_fraction=0.1, image_key="image", label_key="label"
) -> core.Dataset:
  """A tfds dataset with its 'train' and 'test' splits; validation is the last
  `validation_fraction` of train. Images stay uint8 (scale them in the experiment)."""
  kw = dict(data_dir=data_dir, image_key=image_key, label_key=label_key)
  if _stream_train and not _mock_examples:
    builder = _random_access_builder(name, resolve_data_dir(data_dir))
    if builder is not None:
      return _streamed(builder, name, validation_fraction, **kw)
  train = load_split(name, "train", **kw)
  test = load_split(name, "test", **kw)
  num_classes = int(max(train["targets"].max(), test["targets"].max())) + 1
  return core.split_off_validation(
    train,
    test,
    validation_fraction=validation_fraction,
    info=dict(name=name, num_classes=num_classes, source="tfds"),
  )


def _random_access_builder(name, data_dir):
  """The tfds builder of `name` when `data_dir` holds it in ArrayRecord form, else None
  (TFRecord files, or nothing prepared: the usual load reports that)."""
  if not data_dir or not (pathlib.Path(data_dir) / name).is_dir():
    return None
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception:  # pylint: disable=broad-except
    return None  # an unknown or unreadable dataset: tfds.load's own error says which
  fmt = builder.info.file_format
  return builder if fmt is not None and fmt.value == "array_record" else None


def _streamed(builder, name, validation_fraction, *, data_dir, image_key, label_key):
  """Train streams rows [0, n - n_val) from the files; validation (the last n_val rows of
  train, as in `load`) and test are read whole."""
  data_dir = resolve_data_dir(data_dir)
  keys = dict(image_key=image_key, label_key=label_key)
  n = builder.info.splits["train"].num_examples
  n_val = int(round(n * validation_fraction))
  train = core.LazySplit(TfdsSource(name, f"train[:{n - n_val}]", data_dir, **keys))
  validation = load_split(name, f"train[{n - n_val}:]", data_dir=data_dir, **keys)
  test = load_split(name, "test", data_dir=data_dir, **keys)
  num_classes = getattr(builder.info.features[label_key], "num_classes", None) or int(
    max(validation["targets"].max(), test["targets"].max()) + 1
  )
  info = dict(name=name, num_classes=int(num_classes), source="tfds", streamed=True)
  return core.Dataset(train, validation, test, info)


def channel_moments(split: core.LazySplit, key: str = "inputs", chunk: int = 4096):
  """Per-channel mean and std (float64) of `split[key]` for a streamed split, which is never
  whole in memory: one pass in chunks of rows. Cached like decoded splits when the split's
  transforms are module-level functions (their names pin them down; a lambda, closure or
  partial is not cached)."""
  source = split.source
  named = all(isinstance(f, types.FunctionType) and "<" not in f.__qualname__ for f in split.fns)
  cache = None
  if isinstance(source, TfdsSource) and named:
    names = "-".join(f"{f.__module__}.{f.__qualname__}" for f in split.fns)
    cache = _cache_path(source.name, f"{source.split}-{key}-moments-{names}", source.data_dir)
  if cache is not None and cache.exists():
    with np.load(cache) as f:
      return f["mean"], f["std"]
  total = total_sq = count = 0
  for start in range(0, len(split), chunk):
    x = core.take(split, slice(start, start + chunk))[key].astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    total = total + x.sum(axis=axes)
    total_sq = total_sq + np.square(x).sum(axis=axes)
    count += x[..., 0].size
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  if cache is not None:
    try:
      cache.parent.mkdir(parents=True, exist_ok=True)
      tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
      np.savez(tmp, mean=mean, std=std)
      os.replace(tmp, cache)
    except OSError:
      pass
  return mean, std


_OPEN_LOCK = threading.Lock()


class TfdsSource:
  """One prepared tfds split (or slice, 'train[:54000]') in ArrayRecord form as a
  random-access source: `source[i]` is example i decoded, {'inputs', 'targets' (int32)}.

  The reader opens on first use and is not pickled, so each grain worker process opens its
  own; `repr` names the data, not the reader, so a checkpoint's data position can be
  checked against the source it is restored into."""

  def __init__(self, name, split, data_dir, *, image_key="image", label_key="label"):
    self.name, self.split, self.data_dir = name, split, data_dir
    self.image_key, self.label_key = image_key, label_key
    self._reader = None

  def reader(self):
    # One opener at a time: grain reads from several threads, and two threads importing
    # tensorflow_datasets at once deadlock in its lazy imports.
    with _OPEN_LOCK:
      if self._reader is None:
        import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

        self._reader = tfds.data_source(self.name, split=self.split, data_dir=self.data_dir)
    return self._reader

  def __len__(self) -> int:
    return len(self.reader())

  def _example(self, record):
    return {
      "inputs": np.asarray(record[self.image_key]),
      "targets": np.asarray(record[self.label_key], np.int32),
    }

  def __getitem__(self, index: int):
    return self._example(self.reader()[index])

  def __getitems__(self, indices):
    return [self._example(r) for r in self.reader().__getitems__(list(indices))]

  def __getstate__(self):
    return {**self.__dict__, "_reader": None}

  def __repr__(self):
    return f"TfdsSource({self.name} {self.split})"
