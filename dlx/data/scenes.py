"""Synthetic detection and segmentation scenes: MNIST digits on a blank canvas
(docs/curriculum.md#d7, for the detectors of #f10 and #f11).

Each scene pastes 1-5 digits at random sizes and positions onto a 96x96 canvas. Every
split holds, for N scenes of H x W pixels and up to M = max_objects digits:

  inputs       (N, H, W, 1) float32  intensities in [0, 1]
  boxes        (N, M, 4) float32     x1, y1, x2, y2 in pixels, padded with 0
  labels       (N, M) int32          the digit's class 0-9, padded with 0
  valid        (N, M) bool           which slots hold a digit
  count        (N,) int32            number of digits
  mask         (N, H, W) int32       per-pixel class: 0 background, digit d -> d + 1
  digit_index  (N, M) int32          the digit's index in its source split, -1 if none

A digit is cut to the tight box of its ink, resized (bilinear) so that its longer side
is a random scale in [min_scale, max_scale], and intensities below `ink_threshold` are set
to 0; its box is the tight box of the remaining nonzero pixels, where pixel (row r,
column c) covers [c, c + 1) x [r, r + 1), so a box is x1 = first column, x2 = last
column + 1. Digits are composited with max(), so overlapping strokes stay visible; in
`mask` a later digit's pixels overwrite earlier ones, while every box stays the whole
digit's box even where a later digit covers part of it. A new digit is placed where its
box has IoU <= max_iou with every earlier box (up to `max_tries` positions, else it is
dropped, so a scene may hold fewer digits than drawn; the first always fits). `clutter`
fragments (random crops of other digits) are pasted first; they are background in
`mask` and have no box.

Train and validation scenes use digits of the source's train split (validation the last
`validation_fraction`, as `tfds_data.load` splits it), test scenes the test split, so no
test digit appears in training. Everything follows from `seed`. Inside
`tfds_data.mocked(n)` the digits are tfds' random mock examples and each split has at
most n scenes, so smoke runs need no data.
"""

import functools

import numpy as np

from dlx import errors
from dlx.data import core
from dlx.data import tfds_data

SOURCES = ("mnist", "fashion_mnist")
_SPLIT_STREAMS = {"train": 0, "validation": 1, "test": 2}


@functools.lru_cache(maxsize=4096)
def _resize_axis(out_size: int, in_size: int):
  # Source indices and weights of one axis of a bilinear resize.
  pos = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
  low = np.floor(pos).astype(np.int64)
  return low, np.minimum(low + 1, in_size - 1), (pos - low).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """(h, w) float image -> (height, width), bilinear with half-pixel centres (edges
  clamped), like PIL's and TF's resize without antialiasing."""
  in_h, in_w = image.shape
  y0, y1, wy = _resize_axis(int(height), in_h)
  x0, x1, wx = _resize_axis(int(width), in_w)
  top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
  bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
  return (top * (1 - wy)[:, None] + bottom * wy[:, None]).astype(np.float32)


def _tight_box(ink: np.ndarray):
  """(r0, c0, r1, c1) with r1, c1 exclusive, of the True pixels; None if there are none."""
  rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
  if rows.size == 0:
    return None
  return rows[0], cols[0], rows[-1] + 1, cols[-1] + 1


def _iou(box, boxes):
  if not boxes:
    return np.zeros(0)
  boxes = np.asarray(boxes, np.float64)
  lt = np.maximum(box[:2], boxes[:, :2])
  rb = np.minimum(box[2:], boxes[:, 2:])
  inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
  area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  return inter / (area(np.asarray(box, np.float64)) + area(boxes) - inter)


class _Painter:
  """Draws scenes from one pool of digits (uint8 images (n, h, w))."""

  def __init__(self, images, labels, indices, cfg):
    self.images, self.labels, self.indices, self.cfg = images, labels, indices, cfg
    rows, cols = images.any(axis=2), images.any(axis=1)  # (n, h), (n, w): any ink
    self.usable = np.flatnonzero(rows.any(axis=1))
    first = lambda a: a.argmax(axis=1)
    last = lambda a: a.shape[1] - a[:, ::-1].argmax(axis=1)  # exclusive
    self.crops = np.stack([first(rows), first(cols), last(rows), last(cols)], axis=1)

  def digit(self, rng, scale):
    """A random digit resized so its longer side is `scale`: (patch, index in pool)."""
    i = int(self.usable[rng.integers(len(self.usable))])
    r0, c0, r1, c1 = self.crops[i]
    crop = self.images[i][r0:r1, c0:c1].astype(np.float32) / 255.0
    h, w = crop.shape
    factor = scale / max(h, w)
    patch = resize_bilinear(crop, max(1, round(h * factor)), max(1, round(w * factor)))
    patch[patch < self.cfg["ink_threshold"]] = 0
    return patch, i

  def scene(self, rng):
    cfg = self.cfg
    height, width, m = cfg["height"], cfg["width"], cfg["max_objects"]
    canvas = np.zeros((height, width), np.float32)
    mask = np.zeros((height, width), np.int32)
    for _ in range(cfg["clutter"]):
      self._paste_fragment(rng, canvas)
    boxes, labels, sources = [], [], []
    for _ in range(int(rng.integers(cfg["min_objects"], m + 1))):
      scale = int(rng.integers(cfg["min_scale"], cfg["max_scale"] + 1))
      patch, i = self.digit(rng, scale)
      tight = _tight_box(patch > 0)
      if tight is None:  # nothing survived the threshold
        continue
      r0, c0, r1, c1 = tight
      patch = patch[r0:r1, c0:c1]
      ph, pw = patch.shape
      for _ in range(cfg["max_tries"]):
        y = int(rng.integers(height - ph + 1))
        x = int(rng.integers(width - pw + 1))
        box = np.array([x, y, x + pw, y + ph], np.float64)
        if not boxes or _iou(box, boxes).max() <= cfg["max_iou"]:
          break
      else:
        continue  # no room for this digit
      region = canvas[y : y + ph, x : x + pw]
      np.maximum(region, patch, out=region)
      mask[y : y + ph, x : x + pw][patch > 0] = self.labels[i] + 1
      boxes.append(box)
      labels.append(self.labels[i])
      sources.append(self.indices[i])
    n = len(boxes)
    out_boxes = np.zeros((m, 4), np.float32)
    out_labels = np.zeros(m, np.int32)
    out_sources = np.full(m, -1, np.int32)
    if n:
      out_boxes[:n], out_labels[:n], out_sources[:n] = boxes, labels, sources
    return canvas, out_boxes, out_labels, n, mask, out_sources

  def _paste_fragment(self, rng, canvas):
    cfg = self.cfg
    image = self.images[int(rng.integers(len(self.images)))]
    side_h, side_w = (int(s) for s in rng.integers(4, 9, size=2))  # a stroke, not a digit
    r = int(rng.integers(image.shape[0] - side_h + 1))
    c = int(rng.integers(image.shape[1] - side_w + 1))
    factor = rng.uniform(cfg["min_scale"], cfg["max_scale"]) / image.shape[0]
    size_h = min(cfg["height"], max(1, round(side_h * factor)))
    size_w = min(cfg["width"], max(1, round(side_w * factor)))
    piece = image[r : r + side_h, c : c + side_w].astype(np.float32) / 255.0
    piece = resize_bilinear(piece, size_h, size_w)
    piece[piece < cfg["ink_threshold"]] = 0
    y = int(rng.integers(cfg["height"] - size_h + 1))
    x = int(rng.integers(cfg["width"] - size_w + 1))
    region = canvas[y : y + size_h, x : x + size_w]
    np.maximum(region, piece, out=region)


def _draw_split(painter, num, rng) -> core.Split:
  m, (h, w) = painter.cfg["max_objects"], (painter.cfg["height"], painter.cfg["width"])
  split = {
    "inputs": np.zeros((num, h, w, 1), np.float32),
    "boxes": np.zeros((num, m, 4), np.float32),
    "labels": np.zeros((num, m), np.int32),
    "valid": np.zeros((num, m), bool),
    "count": np.zeros(num, np.int32),
    "mask": np.zeros((num, h, w), np.int32),
    "digit_index": np.zeros((num, m), np.int32),
  }
  for k in range(num):
    canvas, boxes, labels, n, mask, sources = painter.scene(rng)
    split["inputs"][k, ..., 0] = canvas
    split["boxes"][k], split["labels"][k], split["mask"][k] = boxes, labels, mask
    split["valid"][k, :n] = True
    split["count"][k] = n
    split["digit_index"][k] = sources
  return split


def _pool(raw, indices):
  # (uint8 images (n, h, w), int32 labels, indices into the source split).
  images = raw["inputs"][indices]
  return images.reshape(images.shape[:3]), raw["targets"][indices].astype(np.int32), indices


def digit_scenes(
  *,
  data_dir=None,
  seed: int = 0,
  source: str = "mnist",
  num_train: int = 10000,
  num_validation: int = 1000,
  num_test: int = 1000,
  image_size=96,
  min_scale: int = 14,
  max_scale: int = 40,
  min_objects: int = 1,
  max_objects: int = 5,
  max_iou: float = 0.3,
  clutter: int = 0,
  ink_threshold: float = 0.1,
  max_tries: int = 50,
  validation_fraction: float = 0.1,
) -> core.Dataset:
  """Detection / segmentation scenes of MNIST (or Fashion-MNIST) digits; see the module
  docstring for the arrays and the rules. A 96x96 scene takes ~74 KB (float32 image,
  int32 mask) and 0.5-1 ms to draw: the default 12,000 scenes take ~0.9 GB and 5-10 s.

  Args:
    data_dir: the prepared tfds data dir holding `source`.
    seed: fixes every scene.
    source: 'mnist' or 'fashion_mnist'.
    num_train, num_validation, num_test: scenes per split.
    image_size: canvas side, or (height, width).
    min_scale, max_scale: range of a digit's longer side, pixels.
    min_objects, max_objects: range of digits drawn per scene.
    max_iou: the largest IoU a new digit's box may have with an earlier one.
    clutter: digit fragments pasted per scene (no boxes, background in `mask`).
    ink_threshold: resized intensities below this become 0.
    max_tries: positions tried per digit.
    validation_fraction: share of the source's train split kept for validation scenes.
  """
  height, width = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
  if source not in SOURCES:
    raise errors.ConfigError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
  if not 1 <= min_scale <= max_scale <= min(height, width):
    raise errors.ConfigError(
      f"need 1 <= min_scale <= max_scale <= canvas side, got {min_scale}, {max_scale} "
      f"for a {height}x{width} canvas"
    )
  if not 1 <= min_objects <= max_objects:
    raise errors.ConfigError(
      f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}"
    )
  if min(num_train, num_validation, num_test) < 0 or not 0 <= max_iou <= 1 or clutter < 0:
    raise errors.ConfigError(
      "num_train, num_validation, num_test and clutter must be >= 0 and max_iou in [0, 1]"
    )
  cfg = dict(
    height=int(height),
    width=int(width),
    min_scale=int(min_scale),
    max_scale=int(max_scale),
    min_objects=int(min_objects),
    max_objects=int(max_objects),
    max_iou=float(max_iou),
    clutter=int(clutter),
    ink_threshold=float(ink_threshold),
    max_tries=max(1, int(max_tries)),
  )
  train_raw = tfds_data.load_split(source, "train", data_dir=data_dir)
  test_raw = tfds_data.load_split(source, "test", data_dir=data_dir)
  n_train = len(train_raw["targets"])
  n_val = int(round(n_train * validation_fraction))
  pools = {
    "train": _pool(train_raw, np.arange(n_train - n_val)),
    "validation": _pool(train_raw, np.arange(n_train - n_val, n_train)),
    "test": _pool(test_raw, np.arange(len(test_raw["targets"]))),
  }
  sizes = {"train": num_train, "validation": num_validation, "test": num_test}
  mock = tfds_data.mock_examples()
  if mock:  # smoke runs: as many scenes as tfds' mock examples
    sizes = {k: min(v, mock) for k, v in sizes.items()}
  splits = {}
  for name, (images, labels, indices) in pools.items():
    painter = _Painter(images, labels, indices, cfg)
    if sizes[name] and len(painter.usable) == 0:
      raise errors.ConfigError(f"no {source} digits with ink for the {name} scenes")
    rng = np.random.default_rng([seed, _SPLIT_STREAMS[name]])
    splits[name] = _draw_split(painter, sizes[name], rng)
  return core.Dataset(
    splits["train"],
    splits["validation"],
    splits["test"],
    dict(name="digit_scenes", num_classes=10, source=source, image_size=(height, width), **cfg),
  )


LOADERS = {"digit_scenes": digit_scenes}
