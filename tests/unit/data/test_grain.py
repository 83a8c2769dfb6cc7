"""Tests for the grain pipeline, streamed (lazy) splits and the ArrayRecord converter."""

import json
import pathlib

import numpy as np
import pytest

from dlx import errors
from dlx.data import convert
from dlx.data import core
from dlx.data import grain_pipeline
from dlx.data import pipeline
from dlx.data import tfds_data
from dlx.data import transforms


def _split(n):
  rng = np.random.default_rng(0)
  return {
    "inputs": rng.integers(0, 256, size=(n, 4, 4, 1), dtype=np.uint8),
    "targets": np.arange(n, dtype=np.int32),
  }


class _RowSource:
  """A random-access source over in-memory rows (what TfdsSource is for files)."""

  def __init__(self, split):
    self.split = split

  def __len__(self):
    return core.num_examples(self.split)

  def __getitem__(self, i):
    return core.take(self.split, i)

  def __repr__(self):
    return f"_RowSource({len(self)})"


def _take(iterator, k):
  return [next(iterator) for _ in range(k)]


def _grain(split, k, **kw):
  batches = grain_pipeline.train_batches(split, 8, seed=3, **kw)
  try:
    return _take(batches, k)
  finally:
    batches.close()


def _assert_same_batches(got, want):
  assert len(got) == len(want)
  for g, w in zip(got, want):
    for key in w:
      np.testing.assert_array_equal(g[key], w[key])


# ------------------------------------------------------------------ the grain pipeline


@pytest.mark.parametrize("process_count", [1, 2])
def test_grain_gives_the_memory_pipelines_batches(process_count):
  """Over epoch boundaries, per process: a run's numbers do not depend on the pipeline."""
  split = _split(60)  # 7 steps per epoch at batch 8: 20 steps cross two boundaries
  for p in range(process_count):
    kw = dict(process_index=p, process_count=process_count)
    want = _take(pipeline.train_batches(split, 8, seed=3, **kw), 20)
    got = [batch for batch, _ in _grain(split, 20, **kw)]
    _assert_same_batches(got, want)


def test_grain_state_resumes_at_the_next_batch():
  split = _split(60)
  first = _grain(split, 20)
  batch, state = first[11]
  assert json.loads(json.dumps(state)) == state  # fits a checkpoint's JSON meta
  resumed = _grain(split, 8, start_step=12, state=state)
  _assert_same_batches([b for b, _ in resumed], [b for b, _ in first[12:]])
  assert [s for _, s in resumed] == [s for _, s in first[12:]]


def test_grain_resume_needs_the_same_workers_and_data():
  split = _split(60)
  _, state = _grain(split, 3)[-1]
  with pytest.raises(errors.ConfigError, match="--config.grain_workers=2: .* saved with 0"):
    _grain(split, 1, start_step=3, state=state, worker_count=2)
  with pytest.raises(errors.ConfigError, match="input_pipeline=grain: .* same dataset, seed"):
    grain_pipeline.train_batches(split, 8, seed=4, start_step=3, state=state).__next__()
  with pytest.raises(ValueError, match="saved state"):
    _grain(split, 1, start_step=3)


def test_grain_workers_give_the_same_batches_and_resume():
  """One worker process (the pipeline as a run with --config.grain_workers=1 reads it)."""
  split = core.LazySplit(_RowSource(_split(60))).map(transforms.scale_images)
  want = _take(pipeline.train_batches(split, 8, seed=3), 12)
  batches = pipeline.prefetch(grain_pipeline.train_batches(split, 8, seed=3, worker_count=1))
  try:
    got = _take(batches, 6)
  finally:
    batches.close()
  _assert_same_batches([b for b, _ in got], want[:6])
  assert got[-1][1]["worker_count"] == 1
  resumed = _grain(split, 6, start_step=6, state=got[-1][1], worker_count=1)
  _assert_same_batches([b for b, _ in resumed], want[6:])


def test_batch_source_repr_is_stable_and_leaves_out_the_process():
  a = grain_pipeline.BatchSource(_split(60), 8, seed=3, process_index=0, process_count=2)
  b = grain_pipeline.BatchSource(_split(60), 8, seed=3, process_index=1, process_count=2)
  assert (
    repr(a) == repr(b) == "BatchSource(60 examples in memory, batch_size=8, seed=3, 2 process(es))"
  )


# ------------------------------------------------------------------ lazy splits


def test_lazy_split_reads_rows_through_its_transforms():
  split = _split(10)
  lazy = core.LazySplit(_RowSource(split)).map(transforms.scale_images)
  assert core.num_examples(lazy) == len(lazy) == 10
  rows = core.take(lazy, np.array([7, 2]))
  np.testing.assert_array_equal(rows["targets"], [7, 2])
  np.testing.assert_allclose(rows["inputs"], split["inputs"][[7, 2]] / 255.0, rtol=1e-6)
  assert core.take(lazy, 3)["inputs"].shape == (4, 4, 1)  # one row, no leading axis
  assert core.take(lazy, slice(8, None))["targets"].tolist() == [8, 9]


def test_dataset_map_keeps_a_lazy_train_split_lazy():
  split = _split(10)
  ds = core.Dataset(core.LazySplit(_RowSource(split)), split, split, {"name": "t"})
  mapped = ds.map(lambda s: transforms.pad_images(transforms.scale_images(s), 2))
  assert isinstance(mapped.train, core.LazySplit)
  assert mapped.validation["inputs"].shape == (10, 8, 8, 1)
  assert core.take(mapped.train, slice(0, 2))["inputs"].shape == (2, 8, 8, 1)
  assert "train streamed from disk" in repr(mapped) and "(8, 8, 1)" in repr(mapped)


def test_a_whole_split_transform_cannot_stream():
  lazy = core.LazySplit(_RowSource(_split(10))).map(transforms.scale_images)
  whole_stats = lambda s: transforms.standardize(s, s["inputs"].mean(), s["inputs"].std())
  with pytest.raises(errors.ConfigError, match="input_pipeline=grain: .* not per-example"):
    lazy.map(whole_stats)
  with pytest.raises(errors.ConfigError, match="not per-example"):
    lazy.map(transforms.binarize)  # one draw for the whole split
  keep_small = lambda s: core.take(s, np.flatnonzero(s["targets"] < 1))
  with pytest.raises(errors.ConfigError, match="drops or adds rows"):
    lazy.map(keep_small)
  with pytest.raises(errors.ConfigError, match="no whole-split array 'inputs'.*core.take"):
    lazy["inputs"]  # pylint: disable=pointless-statement


def test_channel_moments_of_a_streamed_split_match_numpy():
  split = _split(50)
  lazy = core.LazySplit(_RowSource(split)).map(transforms.scale_images)
  mean, std = tfds_data.channel_moments(lazy, chunk=7)
  x = transforms.scale_images(split)["inputs"]
  np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2), dtype=np.float64), rtol=1e-9)
  np.testing.assert_allclose(std, x.std(axis=(0, 1, 2), dtype=np.float64), rtol=1e-9)


# ------------------------------------------------------------------ ArrayRecord form


@pytest.fixture(scope="module")
def mnist_array_record(tfds_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("array_record")
  assert convert.main(["mnist", f"--data_dir={tfds_dir}", f"--out_dir={out}"]) == 0
  return str(out)


def test_converted_mnist_streams_with_the_same_examples(
  mnist_array_record, tfds_dir, tmp_path, monkeypatch
):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  monkeypatch.setenv("DLX_CACHE_DIR", str(tmp_path))
  source = next((pathlib.Path(tfds_dir) / "mnist").glob("*/mnist-test.tfrecord-*"))
  raw = list(convert.tfrecords(source))
  assert len(raw) == 10000
  streamed = tfds.data_source("mnist", split="test", data_dir=mnist_array_record)
  assert len(streamed) == 10000
  features = tfds.builder("mnist", data_dir=mnist_array_record).info.features
  for i in (0, 4321, 9999):  # the same examples in the same order
    want = features.deserialize_example_np(raw[i])
    np.testing.assert_array_equal(streamed[i]["image"], want["image"])
    assert streamed[i]["label"] == want["label"]

  with tfds_data.streaming():
    ds = tfds_data.load("mnist", data_dir=mnist_array_record)
  assert isinstance(ds.train, core.LazySplit)
  assert (ds.size("train"), ds.size("validation"), ds.size("test")) == (54000, 6000, 10000)
  assert ds.info["num_classes"] == 10 and ds.info["streamed"]
  assert ds.validation["inputs"].dtype == np.uint8 and ds.test["targets"].dtype == np.int32
  first = core.take(ds.train, slice(0, 2))
  assert first["inputs"].shape == (2, 28, 28, 1) and first["targets"].dtype == np.int32
  # Two grain read threads in a fresh worker process open the files: the same batches.
  scaled = ds.train.map(transforms.scale_images)
  batches = grain_pipeline.train_batches(scaled, 32, seed=0, worker_count=1)
  try:
    got = [batch for batch, _ in _take(batches, 3)]
  finally:
    batches.close()
  _assert_same_batches(got, _take(pipeline.train_batches(scaled, 32, seed=0), 3))
  # Validation and test were read whole from the same files: the last rows of train, and test.
  np.testing.assert_array_equal(
    ds.test["inputs"][4321], features.deserialize_example_np(raw[4321])["image"]
  )


def test_convert_refuses_to_overwrite_and_names_missing_data(
  mnist_array_record, tfds_dir, tmp_path, capsys
):
  assert convert.main(["mnist", f"--data_dir={tfds_dir}", f"--out_dir={mnist_array_record}"]) == 2
  assert "exists; pass --overwrite" in capsys.readouterr().err
  assert convert.main(["mnist", f"--data_dir={tmp_path}", f"--out_dir={tmp_path}/o"]) == 2
  assert "no prepared dataset 'mnist' in --data_dir" in capsys.readouterr().err


def test_tfrecord_reader_detects_damage(tfds_dir, tmp_path):
  source = next((pathlib.Path(tfds_dir) / "mnist").glob("*/mnist-test.tfrecord-*"))
  data = bytearray(source.read_bytes()[:5000])
  (tmp_path / "cut").write_bytes(data)
  with pytest.raises(errors.UserError, match="truncated"):
    list(convert.tfrecords(tmp_path / "cut"))
  data[3] ^= 0xFF  # the first record's length
  (tmp_path / "bad").write_bytes(data)
  with pytest.raises(errors.UserError, match="corrupt"):
    list(convert.tfrecords(tmp_path / "bad"))
