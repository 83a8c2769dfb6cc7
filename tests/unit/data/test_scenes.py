"""Tests for dlx/data/scenes.py (synthetic digit scenes) and dlx/viz/scene_figures.py."""

import numpy as np
import pytest

from dlx import errors
import dlx.data
from dlx.data import scenes
from dlx.data import tfds_data
from dlx.viz import scene_figures
from tests import conftest

KEYS = {"inputs", "boxes", "labels", "valid", "count", "mask", "digit_index"}
SMALL = dict(num_train=120, num_validation=40, num_test=40)


@pytest.fixture(scope="module")
def ds(tfds_dir):
  # Clutter on: fragments must not disturb boxes or masks.
  return dlx.data.load("digit_scenes", data_dir=tfds_dir, seed=3, clutter=2, **SMALL)


def _splits(ds):
  return [(name, ds.split(name)) for name in ("train", "validation", "test")]


def _objects(split, i):
  n = int(split["count"][i])
  return split["boxes"][i, :n].astype(int), split["labels"][i, :n]


def _iou(a, b):
  inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
  area = lambda x: (x[2] - x[0]) * (x[3] - x[1])
  return inter / (area(a) + area(b) - inter)


def test_resize_bilinear_by_hand():
  row = np.array([[0.0, 1.0]], np.float32)
  # Output pixel centres map to source x = -0.25, 0.25, 0.75, 1.25 (clamped to [0, 1]).
  np.testing.assert_allclose(scenes.resize_bilinear(row, 1, 4), [[0.0, 0.25, 0.75, 1.0]])
  np.testing.assert_allclose(scenes.resize_bilinear(np.full((5, 3), 0.5), 7, 2), 0.5)


def test_shapes_dtypes_and_counts(ds):
  assert ds.info["num_classes"] == 10 and ds.info["image_size"] == (96, 96)
  for name, split in _splits(ds):
    n = SMALL[f"num_{name}"]
    assert set(split) == KEYS
    assert split["inputs"].shape == (n, 96, 96, 1) and split["inputs"].dtype == np.float32
    assert split["boxes"].shape == (n, 5, 4) and split["boxes"].dtype == np.float32
    assert split["mask"].shape == (n, 96, 96) and split["mask"].dtype == np.int32
    for key, dtype in [("labels", np.int32), ("valid", bool), ("digit_index", np.int32)]:
      assert split[key].shape == (n, 5) and split[key].dtype == dtype, key
    assert split["count"].dtype == np.int32
    assert 0.0 <= split["inputs"].min() and split["inputs"].max() <= 1.0
    assert split["count"].min() >= 1 and split["count"].max() <= 5
    assert len(set(split["count"].tolist())) >= 3  # counts vary
    np.testing.assert_array_equal(split["valid"], np.arange(5) < split["count"][:, None])
    assert not split["boxes"][~split["valid"]].any() and not split["labels"][~split["valid"]].any()
    assert (split["digit_index"][~split["valid"]] == -1).all()
    assert set(np.unique(split["labels"][split["valid"]])) <= set(range(10))
    assert set(np.unique(split["mask"])) <= set(range(11))


def test_same_seed_same_scenes_and_another_seed_differs(tfds_dir, ds):
  again = dlx.data.load("digit_scenes", data_dir=tfds_dir, seed=3, clutter=2, **SMALL)
  for (_, a), (_, b) in zip(_splits(ds), _splits(again)):
    for key in KEYS:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  other = dlx.data.load("digit_scenes", data_dir=tfds_dir, seed=4, clutter=2, **SMALL)
  assert not np.array_equal(other.train["inputs"], ds.train["inputs"])


def test_split_digits_come_from_disjoint_sources(tfds_dir, ds):
  train = tfds_data.load_split("mnist", "train", data_dir=tfds_dir)
  test = tfds_data.load_split("mnist", "test", data_dir=tfds_dir)
  n_train, n_val = len(train["targets"]), round(0.1 * len(train["targets"]))
  used = {name: split["digit_index"][split["valid"]] for name, split in _splits(ds)}
  assert used["train"].max() < n_train - n_val  # train digits: MNIST train[:54000]
  assert used["validation"].min() >= n_train - n_val  # validation: MNIST train[54000:]
  assert used["test"].min() >= 0 and used["test"].max() < len(test["targets"])
  # The labels are the source digits' labels.
  for name, source in (("train", train), ("validation", train), ("test", test)):
    split = ds.split(name)
    np.testing.assert_array_equal(split["labels"][split["valid"]], source["targets"][used[name]])


def test_boxes_inside_and_tight_around_unoccluded_digits(ds):
  checked = 0
  for _, split in _splits(ds):
    for i in range(len(split["count"])):
      boxes, labels = _objects(split, i)
      mask = split["mask"][i]
      np.testing.assert_array_equal(split["boxes"][i, : len(boxes)], boxes)  # whole pixels
      assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 96).all()
      assert (boxes[:, 2:] > boxes[:, :2]).all()
      sides = (boxes[:, 2:] - boxes[:, :2]).max(1)
      assert (sides <= 40).all() and (sides >= 10).all()
      # Every labelled pixel lies in a box of its class, and has ink.
      covered = np.zeros_like(mask, bool)
      for (x1, y1, x2, y2), label in zip(boxes, labels):
        covered[y1:y2, x1:x2] |= mask[y1:y2, x1:x2] == label + 1
      assert (covered == (mask > 0)).all()
      assert (split["inputs"][i, ..., 0][mask > 0] > 0).all()
      for j, ((x1, y1, x2, y2), label) in enumerate(zip(boxes, labels)):
        if any(_iou(boxes[j], later) > 0 for later in boxes[j + 1 :]):
          continue  # partly covered by a later digit in the mask
        own = mask[y1:y2, x1:x2] == label + 1
        # The digit's pixels reach all four sides of its box.
        assert own[0].any() and own[-1].any() and own[:, 0].any() and own[:, -1].any()
        checked += 1
  assert checked > 300


def test_overlap_bound(tfds_dir, ds):
  def max_iou(split):
    worst = 0.0
    for i in range(len(split["count"])):
      boxes, _ = _objects(split, i)
      for j in range(len(boxes)):
        for k in range(j):
          worst = max(worst, _iou(boxes[j], boxes[k]))
    return worst

  worst = max(max_iou(split) for _, split in _splits(ds))
  assert 0.05 < worst <= 0.3  # the default bound, and some overlap does happen
  apart = dlx.data.load(
    "digit_scenes", data_dir=tfds_dir, max_iou=0.0, num_train=40, num_validation=0, num_test=0
  )
  assert max_iou(apart.train) == 0.0 and apart.train["count"].mean() > 2


def test_other_sizes_and_fashion_mnist(tfds_dir):
  ds = dlx.data.load(
    "digit_scenes",
    data_dir=tfds_dir,
    source="fashion_mnist",
    image_size=(48, 64),
    min_scale=8,
    max_scale=20,
    max_objects=3,
    num_train=20,
    num_validation=5,
    num_test=5,
  )
  assert ds.train["inputs"].shape == (20, 48, 64, 1) and ds.train["boxes"].shape == (20, 3, 4)
  assert ds.info["source"] == "fashion_mnist"
  boxes = ds.train["boxes"][ds.train["valid"]]
  assert (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 48).all()


def test_mocked_mode_needs_no_data(tmp_path):
  with tfds_data.mocked(6):
    ds = dlx.data.load("digit_scenes", data_dir=str(tmp_path), num_train=50, num_test=3)
  assert (ds.size("train"), ds.size("validation"), ds.size("test")) == (6, 6, 3)
  assert ds.train["inputs"].shape == (6, 96, 96, 1)
  assert (ds.train["count"] >= 1).all()


def test_bad_configs_are_config_errors():
  with pytest.raises(errors.ConfigError, match="max_scale"):
    scenes.digit_scenes(image_size=32, max_scale=40)
  with pytest.raises(errors.ConfigError, match="source"):
    scenes.digit_scenes(source="cifar10")
  with pytest.raises(errors.ConfigError, match="min_objects"):
    scenes.digit_scenes(min_objects=0)


def test_draw_scenes_png(ds, tmp_path):
  split = ds.validation
  predictions = {
    "boxes": split["boxes"] + 2,
    "classes": split["labels"],
    "scores": np.full(split["labels"].shape, 0.5),
    "valid": split["valid"],
  }
  path = tmp_path / "scenes.png"
  scene_figures.draw_scenes(split, path, num_examples=6, num_columns=3, predictions=predictions)
  conftest.assert_png(path, min_side=96)
  img = scene_figures.render_scene(
    split["inputs"][0], split["boxes"][0], split["labels"][0], split["valid"][0], split["mask"][0]
  )
  pixels = np.asarray(img)
  assert img.size == (288, 288) and (pixels[..., 0] != pixels[..., 2]).any()  # in colour
