"""Tests for dlx.data: embedded datasets, tfds loading, the batch pipeline, transforms."""

import shutil
import threading
import time

import numpy as np
import pytest

from dlx import errors
import dlx.data
from dlx.data import core
from dlx.data import embedded
from dlx.data import pipeline
from dlx.data import transforms

SPLITS = ("train", "validation", "test")
# Datasets whose contents depend on `seed` (mnist1d is fixed by its generator's seed).
SEEDED = ("digits", "iris", "xor", "two_moons", "spirals", "regression")
# Inputs drawn from a continuous distribution: every row is unique with probability 1.
CONTINUOUS = ("xor", "two_moons", "spirals", "regression", "mnist1d")
# (train, validation, test) sizes, input shape (per example), target dtype.
EXPECTED = {
  "digits": ((1258, 180, 359), (8, 8, 1), np.int32),
  "iris": ((90, 30, 30), (4,), np.int32),
  "mnist1d": ((3600, 400, 1000), (40,), np.int32),
  "xor": ((200, 100, 100), (2,), np.int32),
  "two_moons": ((600, 200, 200), (2,), np.int32),
  "spirals": ((600, 200, 200), (2,), np.int32),
  "regression": ((600, 200, 200), (1,), np.float32),
}


@pytest.fixture(scope="module")
def loaded():
  """Each embedded dataset loaded once with seed 0 (mnist1d takes seconds to generate)."""
  cache = {}

  def get(name):
    if name not in cache:
      cache[name] = dlx.data.load(name, seed=0)
    return cache[name]

  return get


def _rows(split):
  """One hashable key per example (inputs and targets together)."""
  inputs = split["inputs"].reshape(len(split["inputs"]), -1)
  targets = split["targets"].reshape(len(split["targets"]), -1).astype(np.float64)
  return [tuple(row) for row in np.concatenate([inputs, targets], axis=1).tolist()]


def _assert_same_dataset(a, b):
  for s in SPLITS:
    for k in ("inputs", "targets"):
      np.testing.assert_array_equal(a.split(s)[k], b.split(s)[k])


# ------------------------------------------------------------------ embedded datasets


def test_embedded_names():
  assert set(dlx.data.EMBEDDED) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_embedded_shapes_and_dtypes(name, loaded):
  ds = loaded(name)
  sizes, input_shape, target_dtype = EXPECTED[name]
  assert isinstance(ds, core.Dataset)
  assert tuple(ds.size(s) for s in SPLITS) == sizes
  assert ds.info["name"] == name
  for s in SPLITS:
    split = ds.split(s)
    assert set(split) == {"inputs", "targets"}
    assert split["inputs"].dtype == np.float32
    assert split["inputs"].shape[1:] == input_shape
    assert split["targets"].dtype == target_dtype
    assert np.all(np.isfinite(split["inputs"]))
  if target_dtype == np.int32:
    labels = np.concatenate([ds.split(s)["targets"] for s in SPLITS])
    assert labels.min() == 0
    assert labels.max() == ds.info["num_classes"] - 1
  else:
    assert ds.train["targets"].shape[1:] == (1,)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_embedded_splits_disjoint(name, loaded):
  ds = loaded(name)
  keys = {s: set(_rows(ds.split(s))) for s in SPLITS}
  assert sum(len(k) for k in keys.values()) == sum(ds.size(s) for s in SPLITS)
  assert not keys["train"] & keys["validation"]
  assert not keys["train"] & keys["test"]
  assert not keys["validation"] & keys["test"]


@pytest.mark.parametrize("name", ["digits", "iris"])
def test_embedded_splits_partition_the_source(name, loaded):
  """digits and iris hold duplicate rows, so check the multiset instead: the three splits
  together are exactly the source data, each example used once."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  ds = loaded(name)
  if name == "digits":
    raw = datasets.load_digits()
    source = {
      "inputs": (raw.images / 16.0).astype(np.float32)[..., None],
      "targets": raw.target.astype(np.int32),
    }
  else:
    raw = datasets.load_iris()
    source = {"inputs": raw.data.astype(np.float32), "targets": raw.target.astype(np.int32)}
  together = sorted(r for s in SPLITS for r in _rows(ds.split(s)))
  assert together == sorted(_rows(source))


@pytest.mark.parametrize("name", SEEDED)
def test_embedded_deterministic_per_seed(name, loaded):
  _assert_same_dataset(loaded(name), dlx.data.load(name, seed=0))
  other = dlx.data.load(name, seed=1)
  assert not np.array_equal(loaded(name).train["inputs"], other.train["inputs"])
  assert not np.array_equal(loaded(name).test["inputs"], other.test["inputs"])


def test_mnist1d_is_fixed_by_its_generator(loaded):
  # The generator seeds itself; `seed` is documented as unused.
  _assert_same_dataset(loaded("mnist1d"), dlx.data.load("mnist1d", seed=1))


def test_regression_outliers_only_in_train(loaded):
  clean = loaded("regression")
  dirty = dlx.data.load("regression", outlier_fraction=0.1, outlier_scale=10.0, seed=0)
  for s in ("validation", "test"):
    np.testing.assert_array_equal(dirty.split(s)["inputs"], clean.split(s)["inputs"])
    np.testing.assert_array_equal(dirty.split(s)["targets"], clean.split(s)["targets"])
  np.testing.assert_array_equal(dirty.train["inputs"], clean.train["inputs"])
  diff = np.abs(dirty.train["targets"] - clean.train["targets"])[:, 0]
  hit = diff > 0
  assert hit.sum() == round(0.1 * clean.size("train"))
  assert np.all(diff[hit] >= 0.5 * 10.0 - 1e-4)
  assert np.all(diff[hit] <= 1.0 * 10.0 + 1e-4)
  # Clean splits follow the true curve within the noise.
  for s in ("validation", "test"):
    x, y = clean.split(s)["inputs"], clean.split(s)["targets"]
    assert np.max(np.abs(y - (np.sin(2 * x) + 0.5 * x))) < 6 * 0.1


def test_embedded_loaders_accept_fractions():
  ds = embedded.xor(num_examples=100, validation_fraction=0.1, test_fraction=0.3, seed=3)
  assert (ds.size("train"), ds.size("validation"), ds.size("test")) == (60, 10, 30)


# ------------------------------------------------------------------ pipeline: train


def _index_split(n):
  return {"inputs": np.arange(n, dtype=np.int64), "targets": np.arange(n, dtype=np.int64) * 10}


def _take(iterator, k):
  return [next(iterator) for _ in range(k)]


def test_steps_per_epoch_drops_partial_batch():
  assert pipeline.steps_per_epoch(_index_split(103), 10) == 10
  with pytest.raises(ValueError, match="batch_size"):
    pipeline.steps_per_epoch(_index_split(5), 10)


def test_train_batches_deterministic_and_seeded():
  split = _index_split(103)
  a = _take(pipeline.train_batches(split, 10, seed=0), 25)
  b = _take(pipeline.train_batches(split, 10, seed=0), 25)
  c = _take(pipeline.train_batches(split, 10, seed=1), 25)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])
  assert any(not np.array_equal(x["inputs"], y["inputs"]) for x, y in zip(a, c))
  for batch in a:  # keys stay aligned
    assert batch["inputs"].shape == (10,)
    np.testing.assert_array_equal(batch["targets"], batch["inputs"] * 10)


def test_train_batches_cover_each_example_once_per_epoch():
  n, bs = 103, 10
  per_epoch = pipeline.steps_per_epoch(_index_split(n), bs)
  batches = _take(pipeline.train_batches(_index_split(n), bs, seed=7), 3 * per_epoch)
  orders = []
  for epoch in range(3):
    seen = np.concatenate(
      [b["inputs"] for b in batches[epoch * per_epoch : (epoch + 1) * per_epoch]]
    )
    assert len(seen) == per_epoch * bs
    assert len(np.unique(seen)) == len(seen)  # no repeats inside an epoch
    assert seen.min() >= 0 and seen.max() < n
    orders.append(seen)
  assert not np.array_equal(orders[0], orders[1])  # reshuffled every epoch


@pytest.mark.parametrize("start_step", [1, 9, 10, 11, 23])
def test_train_batches_resume_from_start_step(start_step):
  split = _index_split(103)
  full = _take(pipeline.train_batches(split, 10, seed=3), 30)
  resumed = _take(pipeline.train_batches(split, 10, seed=3, start_step=start_step), 30 - start_step)
  for x, y in zip(full[start_step:], resumed):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])
    np.testing.assert_array_equal(x["targets"], y["targets"])


@pytest.mark.parametrize("process_count", [2, 4])
def test_train_batches_split_per_process(process_count):
  split = _index_split(96)
  whole = _take(pipeline.train_batches(split, 16, seed=5, start_step=4), 10)
  parts = [
    _take(
      pipeline.train_batches(
        split, 16, seed=5, start_step=4, process_index=p, process_count=process_count
      ),
      10,
    )
    for p in range(process_count)
  ]
  for i, batch in enumerate(whole):
    local = [parts[p][i]["inputs"] for p in range(process_count)]
    assert all(len(x) == 16 // process_count for x in local)
    np.testing.assert_array_equal(np.concatenate(local), batch["inputs"])


# ------------------------------------------------------------------ pipeline: eval


@pytest.mark.parametrize(
  "n,batch_size,num_examples",
  [(10, 4, None), (12, 4, None), (3, 8, None), (10, 4, 7), (10, 4, 100)],
)
def test_eval_batches_pad_mask_and_cover_once(n, batch_size, num_examples):
  split = _index_split(n)
  batches = list(pipeline.eval_batches(split, batch_size, num_examples=num_examples))
  want = min(n, num_examples or n)
  assert len(batches) == -(-want // batch_size)
  for b in batches:
    assert set(b) == {"inputs", "targets", "mask"}
    assert b["inputs"].shape == (batch_size,) and b["mask"].shape == (batch_size,)
    assert b["mask"].dtype == np.float32
    np.testing.assert_array_equal(b["targets"], b["inputs"] * 10)
  mask = np.concatenate([b["mask"] for b in batches])
  seen = np.concatenate([b["inputs"] for b in batches])
  np.testing.assert_array_equal(seen[mask == 1], np.arange(want))  # in order, once each
  assert mask.sum() == want
  assert np.all(mask[:want] == 1) and np.all(mask[want:] == 0)  # padding at the end only
  assert np.all(seen[mask == 0] < want)  # padded rows are copies of real ones


@pytest.mark.parametrize("process_count", [2, 4])
def test_eval_batches_split_per_process(process_count):
  split = _index_split(21)
  whole = list(pipeline.eval_batches(split, 8))
  parts = [
    list(pipeline.eval_batches(split, 8, process_index=p, process_count=process_count))
    for p in range(process_count)
  ]
  assert all(len(p) == len(whole) for p in parts)
  real = []
  for i, batch in enumerate(whole):
    inputs = np.concatenate([parts[p][i]["inputs"] for p in range(process_count)])
    mask = np.concatenate([parts[p][i]["mask"] for p in range(process_count)])
    np.testing.assert_array_equal(mask, batch["mask"])
    np.testing.assert_array_equal(inputs[mask == 1], batch["inputs"][batch["mask"] == 1])
    real.append(inputs[mask == 1])
  np.testing.assert_array_equal(np.concatenate(real), np.arange(21))


@pytest.mark.parametrize("n,batch_size", [(10, 4), (8, 4), (3, 8), (1, 1)])
def test_apply_in_chunks_one_shape_and_same_rows(n, batch_size):
  x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
  labels = np.arange(n) % 3
  shapes = set()

  def fn(variables, xs, ys):
    shapes.add(xs.shape)
    return {"sum": xs.sum(axis=1) * variables, "pair": (xs, ys)}

  out = pipeline.apply_in_chunks(fn, 2.0, x, labels, batch_size=batch_size)
  assert shapes == {(min(n, batch_size), 2)}  # every chunk the same size: one compilation
  np.testing.assert_array_equal(out["sum"], x.sum(axis=1) * 2.0)
  np.testing.assert_array_equal(out["pair"][0], x)
  np.testing.assert_array_equal(out["pair"][1], labels)


def test_apply_in_chunks_passes_none_through():
  seen = []
  out = pipeline.apply_in_chunks(
    lambda v, xs, ys: seen.append(ys) or xs + 1, None, np.zeros(5), None, batch_size=2
  )
  np.testing.assert_array_equal(out, np.ones(5))
  assert seen == [None, None, None]
  with pytest.raises(ValueError, match="at least one array"):
    pipeline.apply_in_chunks(lambda v, a: a, None, None)
  with pytest.raises(ValueError, match="0 rows"):
    pipeline.apply_in_chunks(lambda v, a: a, None, np.zeros((0, 3)))


# ------------------------------------------------------------------ pipeline: prefetch


def test_prefetch_preserves_order_and_applies_put():
  out = list(pipeline.prefetch(iter(range(50)), lambda x: x * 2, size=3))
  assert out == [2 * i for i in range(50)]
  assert list(pipeline.prefetch(iter([]))) == []


def test_prefetch_runs_put_on_a_background_thread():
  threads = []
  items = list(
    pipeline.prefetch(iter(range(3)), lambda x: threads.append(threading.get_ident()) or x)
  )
  assert items == [0, 1, 2]
  assert set(threads) and threading.get_ident() not in threads


def test_prefetch_propagates_iterator_exception():
  def source():
    yield 0
    yield 1
    raise ValueError("broken source")

  got = []
  with pytest.raises(ValueError, match="broken source"):
    for item in pipeline.prefetch(source()):
      got.append(item)
  assert got == [0, 1]


def test_prefetch_propagates_put_exception():
  def put(x):
    if x == 3:
      raise RuntimeError("transfer failed")
    return x

  got = []
  with pytest.raises(RuntimeError, match="transfer failed"):
    for item in pipeline.prefetch(iter(range(10)), put):
      got.append(item)
  assert got == [0, 1, 2]


def test_prefetch_stops_worker_when_consumer_stops():
  def endless():
    i = 0
    while True:
      yield i
      i += 1

  before = threading.active_count()
  stream = pipeline.prefetch(endless(), size=2)
  assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
  stream.close()
  deadline = time.time() + 5
  while threading.active_count() > before and time.time() < deadline:
    time.sleep(0.01)
  assert threading.active_count() <= before


# ------------------------------------------------------------------ tfds


def test_tfds_mnist_sizes_and_dtypes(tfds_dir):
  ds = dlx.data.load("mnist", data_dir=tfds_dir)
  assert (ds.size("train"), ds.size("validation"), ds.size("test")) == (54000, 6000, 10000)
  for s in SPLITS:
    split = ds.split(s)
    assert split["inputs"].dtype == np.uint8
    assert split["inputs"].shape[1:] == (28, 28, 1)
    assert split["targets"].dtype == np.int32
  assert ds.info["num_classes"] == 10
  assert set(np.unique(ds.test["targets"])) == set(range(10))
  assert ds.train["inputs"].max() == 255


@pytest.fixture(scope="module")
def tfds():
  # Import TensorFlow up front so the timed calls below measure loading, not the import.
  import tensorflow  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  import tensorflow_datasets  # pylint: disable=g-import-not-at-top

  return tensorflow_datasets


def test_tfds_mock_data_cifar10(tfds, tmp_path):
  with tfds.testing.mock_data(num_examples=8):
    ds = dlx.data.load("cifar10", data_dir=str(tmp_path))
  assert ds.size("train") + ds.size("validation") == 8
  assert ds.size("validation") == 1  # round(0.1 * 8)
  assert ds.size("test") == 8
  assert ds.train["inputs"].shape[1:] == (32, 32, 3)
  assert ds.train["inputs"].dtype == np.uint8
  assert ds.test["targets"].dtype == np.int32
  assert ds.info["source"] == "tfds"


def test_tfds_missing_data_fails_fast(tfds, tmp_path):
  del tfds
  start = time.perf_counter()
  with pytest.raises(errors.DataNotFoundError) as info:
    dlx.data.load("cifar10", data_dir=str(tmp_path))
  assert time.perf_counter() - start < 5
  message = str(info.value)
  assert "--data_dir" in message
  assert "cifar10" in message
  assert any(name in message for name in dlx.data.EMBEDDED)
  assert isinstance(info.value, errors.UserError)


def test_tfds_unknown_dataset_name(tfds, tmp_path):
  del tfds
  with pytest.raises(errors.DataNotFoundError, match="no_such_dataset"):
    dlx.data.load("no_such_dataset", data_dir=str(tmp_path))


# ------------------------------------------------------------------ transforms


def test_pad_images_28_to_32(tfds_dir):
  split = core.take(dlx.data.load("mnist", data_dir=tfds_dir).test, slice(0, 16))
  padded = transforms.pad_images(split, 2)
  x = padded["inputs"]
  assert x.shape == (16, 32, 32, 1) and x.dtype == np.uint8
  np.testing.assert_array_equal(x[:, 2:30, 2:30], split["inputs"])
  assert not x[:, :2].any() and not x[:, 30:].any()
  assert not x[:, :, :2].any() and not x[:, :, 30:].any()
  np.testing.assert_array_equal(padded["targets"], split["targets"])


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (-1.0, 1.0), (-0.5, 0.5)])
def test_scale_images_ranges(low, high):
  x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  out = transforms.scale_images({"inputs": x, "targets": np.zeros(1)}, low=low, high=high)
  y = out["inputs"]
  assert y.dtype == np.float32
  assert y.min() == pytest.approx(low) and y.max() == pytest.approx(high)
  assert y[0, 0, 0, 0] == pytest.approx(low) and y[0, -1, -1, 0] == pytest.approx(high)
  assert np.all(np.diff(y.reshape(-1)) > 0)  # monotone
  np.testing.assert_allclose(y, x / 255.0 * (high - low) + low, rtol=1e-6, atol=1e-6)


def test_resize_images_nearest_neighbour(loaded):
  split = core.take(loaded("digits").test, slice(0, 5))
  out = transforms.resize_images(split, 32)["inputs"]
  assert out.shape == (5, 32, 32, 1) and out.dtype == np.float32
  rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
  np.testing.assert_array_equal(out, split["inputs"][:, rows // 4, cols // 4])
  with pytest.raises(ValueError, match="integer factor"):
    transforms.resize_images(split, 30)


def test_binarize_fixed_by_seed():
  x = np.full((64, 8, 8, 1), 0.3, np.float32)
  x[:, 0] = 0.0
  x[:, 1] = 1.0
  split = {"inputs": x, "targets": np.zeros(64, np.int32)}
  a = transforms.binarize(split, seed=0)["inputs"]
  b = transforms.binarize(split, seed=0)["inputs"]
  c = transforms.binarize(split, seed=1)["inputs"]
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert a.dtype == np.float32 and set(np.unique(a)) == {0.0, 1.0}
  assert not a[:, 0].any() and a[:, 1].all()
  assert abs(a[:, 2:].mean() - 0.3) < 0.03


def test_dataset_map_and_split_names(loaded):
  ds = loaded("xor")
  doubled = ds.map(lambda s: {**s, "inputs": s["inputs"] * 2})
  np.testing.assert_array_equal(doubled.test["inputs"], ds.test["inputs"] * 2)
  with pytest.raises(ValueError, match="unknown split"):
    ds.split("val")


def test_a_truncated_tfrecord_is_one_error_naming_the_file(tfds_dir, tmp_path, monkeypatch):
  from dlx.data import tfds_data  # pylint: disable=g-import-not-at-top

  monkeypatch.setenv("DLX_CACHE_DIR", str(tmp_path / "cache"))
  shutil.copytree(f"{tfds_dir}/mnist", tmp_path / "data" / "mnist")
  (record,) = (tmp_path / "data" / "mnist").rglob("mnist-test.tfrecord*")
  record.write_bytes(record.read_bytes()[: record.stat().st_size // 2])
  with pytest.raises(errors.DataCorruptError) as corrupt:
    tfds_data.load_split("mnist", "test", data_dir=str(tmp_path / "data"))
  message = str(corrupt.value)
  assert "\n" not in message and str(record) in message and "prepare it again" in message
