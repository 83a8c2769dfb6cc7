"""Box operations for detection (docs/curriculum.md#f10, #f11): areas and IoU, box
encodings, non-maximum suppression, anchors, RoI pooling and RoI align; and the
detectors' non-learned array math: anchor assignment and sampling and region proposals
(Faster R-CNN's RPN), YOLOv1's grid targets, their decoding and detections
(dlx/tasks/detection/ holds the losses and evaluation around them).

Boxes are (x1, y1, x2, y2) in pixels with x1 <= x2 and y1 <= y2; a pixel (row r, column c)
covers [c, c + 1) x [r, r + 1). Everything is pure JAX with static shapes, so it jits and
vmaps. Semantics follow torchvision (`torchvision.ops`, `BoxCoder`, `AnchorGenerator`),
checked against its outputs in tests/unit/ops/test_boxes.py; the few deviations are noted
where they occur:

  * an IoU whose union is 0 (two zero-area boxes) is 0 here, NaN in torchvision; NMS
    decisions are the same (NaN > t is false there too);
  * `nms` returns a fixed number of indices plus a validity mask instead of a
    variable-length tensor;
  * `anchors` centres on cell centres and does not round by default (torchvision's
    convention is `offset=0.0, round_to_int=True`);
  * `roi_pool` / `roi_align` take channels-last (N, H, W, C) features, like the rest of
    dlx, and return (K, out_h, out_w, C);
  * `roi_align` with an adaptive sampling ratio caps the per-bin grid at a static size.

The detector-specific functions (`anchor_labels`, `sample_anchors`, `propose`,
`encode_yolo_targets`, `decode_yolo_predictions`, `yolo_detect`) are tested on
hand-built cases in the same test file.
"""

import functools
import math
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from dlx import errors

BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # torchvision's cap on decoded log-size deltas

IntPair = Union[int, Sequence[int]]


def _float(x):
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _check_boxes(boxes, name, ndim=None):
  if boxes.shape[-1:] != (4,) or (ndim is not None and boxes.ndim != ndim):
    want = "(..., 4)" if ndim is None else "(N, 4)"
    raise errors.ConfigError(f"{name} must have shape {want}, got {tuple(boxes.shape)}")


def _divide(x, d):
  """x / d as one IEEE division. XLA rewrites division by a constant or a broadcast scalar
  as multiplication by its reciprocal, up to 1 ulp off, which moves floor/ceil bin edges
  (7 / 3 * 3 gives 7.0000005); a divisor that depends on x stays a true division."""
  return x / (x * 0.0 + d)


def box_area(boxes):
  """(..., 4) boxes -> (...) areas (x2 - x1) * (y2 - y1)."""
  boxes = _float(boxes)
  _check_boxes(boxes, "boxes")
  return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _inter_union(boxes1, boxes2):
  # (..., N, 4), (..., M, 4) -> intersection and union areas, each (..., N, M).
  boxes1, boxes2 = _float(boxes1), _float(boxes2)
  _check_boxes(boxes1, "boxes1")
  _check_boxes(boxes2, "boxes2")
  lt = jnp.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
  rb = jnp.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
  wh = jnp.maximum(rb - lt, 0.0)
  inter = wh[..., 0] * wh[..., 1]
  union = box_area(boxes1)[..., :, None] + box_area(boxes2)[..., None, :] - inter
  return inter, union


def _safe_divide(num, den):
  # num / den where den > 0, else 0 (no NaN in the value or its gradient).
  ok = den > 0
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def box_iou(boxes1, boxes2):
  """Pairwise intersection over union: (..., N, 4), (..., M, 4) -> (..., N, M).

  A pair whose union is 0 (both boxes of zero area) has IoU 0 (torchvision: NaN)."""
  inter, union = _inter_union(boxes1, boxes2)
  return _safe_divide(inter, union)


def generalized_box_iou(boxes1, boxes2):
  """Pairwise generalized IoU (Rezatofighi et al., 2019), in [-1, 1]: IoU minus the share
  of the smallest enclosing box that the union leaves empty. (..., N, 4), (..., M, 4) ->
  (..., N, M). Where the enclosing box has zero area the penalty is 0 (torchvision: NaN)."""
  inter, union = _inter_union(boxes1, boxes2)
  iou = _safe_divide(inter, union)
  boxes1, boxes2 = _float(boxes1), _float(boxes2)
  lt = jnp.minimum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
  rb = jnp.maximum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
  wh = jnp.maximum(rb - lt, 0.0)
  enclosing = wh[..., 0] * wh[..., 1]
  return iou - _safe_divide(enclosing - union, enclosing)


def corners_to_center(boxes):
  """(..., 4) boxes (x1, y1, x2, y2) -> (cx, cy, w, h)."""
  boxes = _float(boxes)
  _check_boxes(boxes, "boxes")
  x1, y1, x2, y2 = jnp.moveaxis(boxes, -1, 0)
  return jnp.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def center_to_corners(boxes):
  """(..., 4) boxes (cx, cy, w, h) -> (x1, y1, x2, y2)."""
  boxes = _float(boxes)
  _check_boxes(boxes, "boxes")
  cx, cy, w, h = jnp.moveaxis(boxes, -1, 0)
  return jnp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def _size_and_center(boxes):
  w = boxes[..., 2] - boxes[..., 0]
  h = boxes[..., 3] - boxes[..., 1]
  return w, h, boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h


def encode_deltas(reference_boxes, boxes, weights=(1.0, 1.0, 1.0, 1.0)):
  """Faster R-CNN regression targets of `boxes` relative to `reference_boxes` (anchors or
  proposals), both (..., 4), broadcast: (wx dx/w_r, wy dy/h_r, ww log(w/w_r),
  wh log(h/h_r)) with dx, dy the shift between centres (docs/curriculum.md#f11).

  `decode_deltas(reference_boxes, encode_deltas(reference_boxes, boxes))` gives `boxes`
  back. Note the order: torchvision's `BoxCoder.encode_single(reference_boxes, proposals)`
  calls the boxes being encoded `reference_boxes`, so `encode_deltas(a, b)` equals its
  `encode_single(b, a)`. Zero-width boxes give infinite or NaN deltas, as there."""
  ref, boxes = _float(reference_boxes), _float(boxes)
  _check_boxes(ref, "reference_boxes")
  _check_boxes(boxes, "boxes")
  wx, wy, ww, wh = weights
  rw, rh, rcx, rcy = _size_and_center(ref)
  bw, bh, bcx, bcy = _size_and_center(boxes)
  return jnp.stack(
    [
      wx * (bcx - rcx) / rw,
      wy * (bcy - rcy) / rh,
      ww * jnp.log(bw / rw),
      wh * jnp.log(bh / rh),
    ],
    axis=-1,
  )


def decode_deltas(reference_boxes, deltas, weights=(1.0, 1.0, 1.0, 1.0), clip=BBOX_XFORM_CLIP):
  """Boxes from deltas relative to `reference_boxes`, both (..., 4), broadcast (a
  (N, 1, 4) reference with (N, K, 4) deltas decodes K class-specific boxes per RoI).

  The log-size deltas are capped at `clip` (default log(1000 / 16)) before exp, as in
  torchvision's `BoxCoder.decode_single(deltas, reference_boxes)`."""
  ref, deltas = _float(reference_boxes), _float(deltas)
  _check_boxes(ref, "reference_boxes")
  _check_boxes(deltas, "deltas")
  wx, wy, ww, wh = weights
  rw, rh, rcx, rcy = _size_and_center(ref)
  dx, dy = _divide(deltas[..., 0], wx), _divide(deltas[..., 1], wy)
  dw = jnp.minimum(_divide(deltas[..., 2], ww), clip)
  dh = jnp.minimum(_divide(deltas[..., 3], wh), clip)
  cx, cy = dx * rw + rcx, dy * rh + rcy
  half_w, half_h = 0.5 * (jnp.exp(dw) * rw), 0.5 * (jnp.exp(dh) * rh)
  return jnp.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)


def _greedy_nms(boxes, scores, classes, iou_threshold, max_output, valid):
  boxes, scores = _float(boxes), jnp.asarray(scores)
  _check_boxes(boxes, "boxes", ndim=2)
  n = boxes.shape[0]
  if scores.shape != (n,):
    raise errors.ConfigError(f"scores must have shape ({n},) to match boxes, got {scores.shape}")
  if not isinstance(max_output, int) or max_output < 1:
    raise errors.ConfigError(f"max_output must be a positive int (static), got {max_output!r}")
  if n == 0:
    return jnp.zeros((max_output,), jnp.int32), jnp.zeros((max_output,), bool)
  return _greedy_nms_jit(boxes, scores, classes, iou_threshold, max_output, valid)


@functools.partial(jax.jit, static_argnames="max_output")
def _greedy_nms_jit(boxes, scores, classes, iou_threshold, max_output, valid):
  n = boxes.shape[0]
  # Stable descending sort: equal scores keep their input order, as torchvision's CPU nms.
  order = jnp.argsort(scores, descending=True, stable=True)
  sorted_boxes = boxes[order]
  areas = box_area(sorted_boxes)
  remaining = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)[order]
  same_class = None if classes is None else jnp.asarray(classes)[order]

  def cond(state):
    count, remaining, _ = state
    return (count < max_output) & jnp.any(remaining)

  def body(state):
    count, remaining, kept = state
    i = jnp.argmax(remaining)  # the best box not yet kept or suppressed
    box = sorted_boxes[i]
    lt = jnp.maximum(box[:2], sorted_boxes[:, :2])
    rb = jnp.minimum(box[2:], sorted_boxes[:, 2:])
    wh = jnp.maximum(rb - lt, 0.0)
    inter = wh[:, 0] * wh[:, 1]
    iou = _safe_divide(inter, areas[i] + areas - inter)
    suppress = iou > iou_threshold
    if same_class is not None:
      suppress &= same_class == same_class[i]
    remaining = remaining & ~suppress
    remaining = remaining.at[i].set(False)
    kept = kept.at[count].set(order[i].astype(jnp.int32))
    return count + 1, remaining, kept

  init = (jnp.int32(0), remaining, jnp.zeros((max_output,), jnp.int32))
  count, _, kept = jax.lax.while_loop(cond, body, init)
  return kept, jnp.arange(max_output) < count


def nms(boxes, scores, iou_threshold, max_output: int, *, valid=None):
  """Greedy non-maximum suppression (docs/curriculum.md#f10) with a fixed output size.

  Walks the boxes by decreasing score (equal scores in input order, as torchvision's
  stable sort), keeps a box unless a kept one overlaps it with IoU > iou_threshold, and
  stops after `max_output` kept boxes. Zero-area boxes overlap nothing, so they are kept
  unless they run out of slots. jit- and vmap-safe; `max_output` is static.

  Args:
    boxes: (N, 4) boxes.
    scores: (N,) scores.
    iou_threshold: suppress overlaps strictly above this IoU.
    max_output: number of output slots.
    valid: optional (N,) bool; invalid boxes (padding) are never kept and suppress nothing.

  Returns:
    (indices (max_output,) int32 into `boxes`, in decreasing score order like
    torchvision's result; valid (max_output,) bool marking the filled slots). Unfilled
    slots hold index 0.
  """
  return _greedy_nms(boxes, scores, None, iou_threshold, max_output, valid)


def batched_nms(boxes, scores, classes, iou_threshold, max_output: int, *, valid=None):
  """`nms` run independently per class: a box only suppresses boxes of its own class
  (`classes`, (N,) ints). Output as `nms`: up to `max_output` indices over all classes,
  in decreasing score order, as torchvision's `batched_nms`.

  Uses a class mask on the suppression rather than torchvision's coordinate-offset trick,
  which is the same up to float rounding of the shifted coordinates."""
  classes = jnp.asarray(classes)
  if classes.shape != jnp.shape(scores):
    raise errors.ConfigError(f"classes must have the shape of scores, got {classes.shape}")
  return _greedy_nms(boxes, scores, classes, iou_threshold, max_output, valid)


def _pair(value, name) -> tuple[int, int]:
  pair = (value, value) if np.isscalar(value) else tuple(value)
  if len(pair) != 2 or any(v <= 0 for v in pair):
    raise errors.ConfigError(f"{name} must be a positive number or a pair of them, got {value!r}")
  return pair


def anchors(
  feature_shape: Sequence[int],
  stride: IntPair,
  scales: Sequence[float] = (16.0, 32.0, 64.0),
  ratios: Sequence[float] = (0.5, 1.0, 2.0),
  *,
  offset: float = 0.5,
  round_to_int: bool = False,
):
  """Anchor boxes of every feature-map cell (docs/curriculum.md#f11): an (H * W * A, 4)
  float32 NumPy array (a constant of static shapes, usable inside jit).

  Each cell (i, j) of an (H, W) feature map gets A = len(ratios) * len(scales) anchors
  centred on ((j + offset) * stride_x, (i + offset) * stride_y) in image pixels; offset
  0.5 is the cell's centre. An anchor of scale s and ratio r has area s^2 and
  height / width = r (w = s / sqrt(r), h = s sqrt(r)). Order: cells row-major, then
  ratios, then scales (index (i * W + j) * A + k * len(scales) + m), as torchvision's
  `AnchorGenerator`, which corresponds to `offset=0.0, round_to_int=True` (centres on the
  cells' top-left corners, corner offsets rounded half-to-even).

  Args:
    feature_shape: (H, W) of the feature map.
    stride: image pixels per feature cell, an int or (stride_y, stride_x).
    scales: anchor sides sqrt(area) in pixels.
    ratios: height / width.
    offset: where in the cell the centre sits, in cells.
    round_to_int: round the half-sizes (the offsets from the centre) to integers.
  """
  if len(feature_shape) != 2:
    raise errors.ConfigError(f"feature_shape must be (H, W), got {tuple(feature_shape)}")
  height, width = (int(d) for d in feature_shape)
  stride_y, stride_x = _pair(stride, "stride")
  if not scales or not ratios or min(scales) <= 0 or min(ratios) <= 0:
    raise errors.ConfigError(
      f"scales and ratios must be non-empty and positive, got {scales} and {ratios}"
    )
  f32 = np.float32
  scales = np.asarray(scales, f32)
  h_ratios = np.sqrt(np.asarray(ratios, f32))
  ws = ((f32(1) / h_ratios)[:, None] * scales[None, :]).reshape(-1)
  hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
  base = np.stack([-ws, -hs, ws, hs], axis=1) / f32(2)  # (A, 4) around the origin
  if round_to_int:
    base = np.round(base)  # half to even, like torch.round
  cx = (np.arange(width, dtype=f32) + f32(offset)) * f32(stride_x)
  cy = (np.arange(height, dtype=f32) + f32(offset)) * f32(stride_y)
  cy, cx = np.meshgrid(cy, cx, indexing="ij")
  centres = np.stack([cx, cy, cx, cy], axis=-1).reshape(-1, 1, 4)
  return (centres + base[None]).reshape(-1, 4).astype(f32)


def _check_rois(features, boxes, output_size):
  features = jnp.asarray(features)
  boxes = _float(boxes)
  if features.ndim != 4:
    raise errors.ConfigError(
      f"features must be (N, H, W, C) channels-last, got shape {tuple(features.shape)}"
    )
  if boxes.ndim != 2 or boxes.shape[1] != 5:
    raise errors.ConfigError(
      f"boxes must be (K, 5) rows (batch_index, x1, y1, x2, y2), got {tuple(boxes.shape)}"
    )
  out_h, out_w = _pair(output_size, "output_size")
  return features, boxes, int(out_h), int(out_w)


def _round_half_away(x):
  # C's round(): halves go away from zero (jnp.round goes to even).
  whole = jnp.trunc(x)
  return jnp.where(jnp.abs(x - whole) == 0.5, whole + jnp.sign(x), jnp.round(x))


def roi_pool(features, boxes, output_size: IntPair, spatial_scale: float = 1.0):
  """RoI max pooling (Fast R-CNN; docs/curriculum.md#f11), torchvision's `roi_pool`
  on channels-last features.

  Each box is scaled by `spatial_scale` and rounded to feature cells (halves away from
  zero), given at least one cell, and split into an out_h x out_w grid of bins with
  floor/ceil edges; a bin is the max of its cells, 0 if it lies outside the map.

  Args:
    features: (N, H, W, C).
    boxes: (K, 5) rows (batch_index, x1, y1, x2, y2) in image pixels.
    output_size: out_h or (out_h, out_w).
    spatial_scale: feature cells per image pixel (1 / stride).

  Returns:
    (K, out_h, out_w, C). Work and memory are O(K H W C out_w).
  """
  features, boxes, out_h, out_w = _check_rois(features, boxes, output_size)
  return _roi_pool(features, boxes, out_h, out_w, float(spatial_scale))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _roi_pool(features, boxes, out_h, out_w, spatial_scale):
  _, height, width, _ = features.shape
  floating = jnp.issubdtype(features.dtype, jnp.floating)
  lowest = (jnp.finfo if floating else jnp.iinfo)(features.dtype).min

  def bin_masks(start, end, bins, size):
    # (bins, size) bool: which cells of this axis fall in each bin.
    start = _round_half_away(start * spatial_scale).astype(jnp.int32)
    end = _round_half_away(end * spatial_scale).astype(jnp.int32)
    length = jnp.maximum(end - start + 1, 1)
    bin_size = _divide(length.astype(jnp.float32), bins)
    index = jnp.arange(bins, dtype=jnp.float32)
    lo = jnp.floor(index * bin_size).astype(jnp.int32) + start
    hi = jnp.ceil((index + 1) * bin_size).astype(jnp.int32) + start
    lo, hi = jnp.clip(lo, 0, size), jnp.clip(hi, 0, size)
    cells = jnp.arange(size)
    return (cells[None, :] >= lo[:, None]) & (cells[None, :] < hi[:, None])

  def pool_one(box):
    image = features[box[0].astype(jnp.int32)]  # (H, W, C)
    rows = bin_masks(box[2], box[4], out_h, height)  # (out_h, H)
    cols = bin_masks(box[1], box[3], out_w, width)  # (out_w, W)
    by_col = jnp.max(jnp.where(cols[None, :, :, None], image[:, None], lowest), axis=2)
    pooled = jnp.max(jnp.where(rows[:, :, None, None], by_col[None], lowest), axis=1)
    empty = ~rows.any(1)[:, None] | ~cols.any(1)[None, :]
    return jnp.where(empty[..., None], 0, pooled).astype(features.dtype)

  return jax.vmap(pool_one)(boxes)


def roi_align(
  features,
  boxes,
  output_size: IntPair,
  spatial_scale: float = 1.0,
  sampling_ratio: int = -1,
  aligned: bool = False,
  *,
  max_sampling_ratio: Optional[int] = None,
):
  """RoI align (Mask R-CNN; docs/curriculum.md#f11), torchvision's `roi_align` on
  channels-last features.

  Each of the out_h x out_w bins averages bilinear samples of the features on a regular
  grid of g_h x g_w points; samples more than a cell outside the map count as 0. With
  `aligned` the box is shifted by -0.5 cell so that a pixel's centre maps onto a feature
  cell's centre; without it (the legacy form) boxes are at least 1 cell wide.

  The grid is `sampling_ratio` points per axis when > 0 (exactly torchvision). When <= 0,
  torchvision picks ceil(roi_size / output_size) per box, which is data-dependent; here
  it does too, but capped at a static `max_sampling_ratio` (default ceil(feature_size /
  output_size), what a box inside the feature map can need), with unused points masked.
  Only boxes larger than the feature map differ from torchvision (they get the cap).

  Bilinear sampling is separable, so each box is two small matrix products: O(K H W C
  out_w) work and memory.

  Args:
    features: (N, H, W, C).
    boxes: (K, 5) rows (batch_index, x1, y1, x2, y2) in image pixels.
    output_size: out_h or (out_h, out_w).
    spatial_scale: feature cells per image pixel (1 / stride).
    sampling_ratio: sample points per bin and axis; <= 0 for adaptive.
    aligned: shift boxes by half a cell (Detectron2's RoIAlign).
    max_sampling_ratio: the adaptive grid's static cap, per axis.

  Returns:
    (K, out_h, out_w, C).
  """
  features, boxes, out_h, out_w = _check_rois(features, boxes, output_size)
  _, height, width, _ = features.shape
  adaptive = sampling_ratio <= 0
  if adaptive:
    if max_sampling_ratio is not None and max_sampling_ratio < 1:
      raise errors.ConfigError(f"max_sampling_ratio must be >= 1, got {max_sampling_ratio}")
    cap_h = max_sampling_ratio or -(-height // out_h)
    cap_w = max_sampling_ratio or -(-width // out_w)
  else:
    cap_h = cap_w = int(sampling_ratio)
  return _roi_align(
    features, boxes, out_h, out_w, float(spatial_scale), adaptive, bool(aligned), cap_h, cap_w
  )


@functools.partial(jax.jit, static_argnums=tuple(range(2, 9)))
def _roi_align(features, boxes, out_h, out_w, spatial_scale, adaptive, aligned, cap_h, cap_w):
  _, height, width, _ = features.shape
  dtype = features.dtype if jnp.issubdtype(features.dtype, jnp.floating) else jnp.float32
  offset = 0.5 if aligned else 0.0

  def axis_weights(start, end, bins, size, cap):
    # (bins, size): each bin's summed bilinear weights on the cells of this axis,
    # and the number of grid points used along this axis.
    start = start * spatial_scale - offset
    length = end * spatial_scale - offset - start
    if not aligned:
      length = jnp.maximum(length, 1.0)
    bin_size = _divide(length, bins)
    if adaptive:
      grid = jnp.clip(jnp.ceil(_divide(length, bins)), 0, cap).astype(jnp.int32)
    else:
      grid = jnp.int32(cap)
    points = jnp.arange(cap, dtype=jnp.float32)
    index = jnp.arange(bins, dtype=jnp.float32)
    grid_f = jnp.maximum(grid, 1).astype(jnp.float32)
    pos = start + index[:, None] * bin_size + _divide((points[None, :] + 0.5) * bin_size, grid_f)
    used = (points < grid)[None, :] & (pos >= -1.0) & (pos <= size)
    pos = jnp.maximum(pos, 0.0)
    low = jnp.floor(pos).astype(jnp.int32)
    at_edge = low >= size - 1
    low = jnp.where(at_edge, size - 1, low)
    high = jnp.where(at_edge, size - 1, low + 1)
    pos = jnp.where(at_edge, low.astype(pos.dtype), pos)
    frac = pos - low
    cells = jnp.arange(size)
    weights = (1.0 - frac)[..., None] * (cells == low[..., None]) + frac[..., None] * (
      cells == high[..., None]
    )  # (bins, cap, size)
    return jnp.sum(jnp.where(used[..., None], weights, 0.0), axis=1), grid

  def align_one(box):
    image = features[box[0].astype(jnp.int32)].astype(dtype)  # (H, W, C)
    rows, grid_h = axis_weights(box[2], box[4], out_h, height, cap_h)
    cols, grid_w = axis_weights(box[1], box[3], out_w, width, cap_w)
    hi = jax.lax.Precision.HIGHEST
    by_col = jnp.einsum("qw,hwc->hqc", cols.astype(dtype), image, precision=hi)
    pooled = jnp.einsum("ph,hqc->pqc", rows.astype(dtype), by_col, precision=hi)
    count = jnp.maximum(grid_h * grid_w, 1).astype(dtype)
    return pooled / count

  return jax.vmap(align_one)(boxes)


# ------------------------------------------------------------------ anchor assignment


def anchor_labels(anchors, boxes, valid, positive_iou: float = 0.7, negative_iou: float = 0.3):
  """Faster R-CNN's anchor assignment for one image (docs/curriculum.md#f11).

  An anchor is positive (1) if its IoU with some object is >= positive_iou, or if it is
  an object's best anchor (all anchors tied at that object's highest IoU, as
  torchvision's `allow_low_quality_matches`, so that every object has a positive);
  negative (0) if its IoU with every object is < negative_iou; ignored (-1) otherwise.

  Args:
    anchors: (A, 4); boxes: (M, 4) objects; valid: (M,) bool (padding is no object).

  Returns:
    (labels (A,) int32, matched (A,) int32: the index of the object with the highest IoU,
    whose box a positive anchor regresses to).
  """
  iou = box_iou(anchors, boxes)  # (A, M)
  iou = jnp.where(jnp.asarray(valid, bool)[None, :], iou, -1.0)
  best = jnp.max(iou, axis=1)
  matched = jnp.argmax(iou, axis=1).astype(jnp.int32)
  labels = jnp.where(best >= positive_iou, 1, jnp.where(best < negative_iou, 0, -1))
  object_best = jnp.max(iou, axis=0)  # (M,); -1 for padding
  best_of_object = (iou == object_best[None, :]) & (object_best[None, :] > 0)
  labels = jnp.where(jnp.any(best_of_object, axis=1), 1, labels)
  return labels.astype(jnp.int32), matched


def _random_subset(rng, candidates, size: int, limit=None):
  """A uniformly random subset of the True entries of `candidates` (A,), of at most
  `size` (static) entries, and at most `limit` (traced) if given: random scores, top-k."""
  size = min(size, candidates.shape[0])
  scores = jnp.where(candidates, jax.random.uniform(rng, candidates.shape), -1.0)
  top_scores, top = jax.lax.top_k(scores, size)
  take = top_scores >= 0
  if limit is not None:
    take &= jnp.arange(size) < limit
  return jnp.zeros(candidates.shape, bool).at[top].set(take)


def sample_anchors(rng, labels, num_samples: int = 256, positive_fraction: float = 0.5):
  """(positive mask, negative mask), each (A,) bool, from `anchor_labels`' labels: up to
  num_samples * positive_fraction random positives, then random negatives filling up to
  num_samples (fewer where there are not enough). Static shapes: random scores and top-k,
  no boolean indexing."""
  pos_rng, neg_rng = jax.random.split(rng)
  positive = _random_subset(pos_rng, labels == 1, int(num_samples * positive_fraction))
  negative = _random_subset(
    neg_rng, labels == 0, num_samples, limit=num_samples - jnp.sum(positive)
  )
  return positive, negative


@functools.partial(jax.jit, static_argnames=("image_size", "num_proposals", "pre_nms_top_k"))
def propose(
  logits,
  deltas,
  anchors,
  *,
  image_size: tuple,
  num_proposals: int = 100,
  pre_nms_top_k: int = 600,
  iou_threshold: float = 0.7,
  min_size: float = 1.0,
):
  """Region proposals per image (docs/curriculum.md#f11): anchors moved by their deltas,
  clipped to the image, boxes narrower or lower than `min_size` dropped, the
  `pre_nms_top_k` best by objectness kept, NMS at `iou_threshold`, then the
  `num_proposals` best. logits (N, A), deltas (N, A, 4), anchors (A, 4) ->
  {'boxes' (N, P, 4), 'scores' (N, P) logits, 'valid' (N, P)}, best first."""
  height, width = image_size
  limit = jnp.asarray([width, height, width, height], jnp.float32)
  boxes = jnp.clip(decode_deltas(anchors[None], deltas), 0.0, limit)
  top_k = min(pre_nms_top_k, logits.shape[1])

  def one_image(b, s):
    s, top = jax.lax.top_k(s, top_k)
    b = b[top]
    big_enough = ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
    keep, ok = nms(b, s, iou_threshold, num_proposals, valid=big_enough)
    return b[keep], s[keep], ok

  out_boxes, out_scores, ok = jax.vmap(one_image)(boxes, logits)
  return {"boxes": out_boxes, "scores": out_scores, "valid": ok}


# ------------------------------------------------------------------ YOLOv1 grid encoding


def encode_yolo_targets(boxes, labels, valid, grid_size: int, num_classes: int, image_size):
  """Boxes -> YOLOv1 targets (N, S, S, 5 + C) = [x, y, w, h, obj, one-hot class]
  (docs/curriculum.md#f10).

  The cell holding a box's centre is responsible for it; x, y are the centre's offset
  within that cell (in cells, [0, 1)), w, h the box's size relative to the image. A cell
  holds one object: where two centres share a cell the larger box wins (ties: the
  first), the other is lost, as in YOLOv1.

  Args:
    boxes: (N, M, 4) x1, y1, x2, y2 pixels; labels (N, M) ints; valid (N, M) bool.
    grid_size: S (static). num_classes: C (static).
    image_size: (height, width) in pixels.
  """
  boxes = jnp.asarray(boxes, jnp.float32)
  valid = jnp.asarray(valid, bool)
  height, width = image_size
  s = grid_size
  cx = (boxes[..., 0] + boxes[..., 2]) / 2 / width
  cy = (boxes[..., 1] + boxes[..., 3]) / 2 / height
  w = (boxes[..., 2] - boxes[..., 0]) / width
  h = (boxes[..., 3] - boxes[..., 1]) / height
  col = jnp.clip(jnp.floor(cx * s), 0, s - 1)
  row = jnp.clip(jnp.floor(cy * s), 0, s - 1)
  cell = (row * s + col).astype(jnp.int32)  # (N, M)
  in_cell = (cell[..., None] == jnp.arange(s * s)) & valid[..., None]  # (N, M, S*S)
  winner = jnp.argmax(jnp.where(in_cell, (w * h)[..., None], -1.0), axis=1)  # (N, S*S)
  occupied = jnp.any(in_cell, axis=1)
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  per_object = jnp.concatenate(
    [jnp.stack([cx * s - col, cy * s - row, w, h, jnp.ones_like(w)], -1), one_hot], -1
  )  # (N, M, 5 + C)
  targets = jnp.take_along_axis(per_object, winner[..., None], axis=1)
  targets = jnp.where(occupied[..., None], targets, 0.0)
  return targets.reshape(boxes.shape[0], s, s, 5 + num_classes)


def decode_yolo_predictions(predictions, num_boxes: int, num_classes: int, image_size):
  """YOLOv1 outputs (N, S, S, B*5 + C) -> (boxes (N, S*S*B, 4) x1 y1 x2 y2 pixels,
  confidence (N, S*S*B), class scores (N, S*S*B, C)), boxes in cell-major order, each
  box with its cell's class scores. Raw values: negative sizes become 0. The targets of
  `encode_yolo_targets` (B = 1) decode back to the boxes they encode."""
  predictions = jnp.asarray(predictions)
  n, s = predictions.shape[0], predictions.shape[1]
  if predictions.shape[1:] != (s, s, num_boxes * 5 + num_classes):
    raise errors.ConfigError(
      f"predictions must be (N, S, S, {num_boxes * 5 + num_classes}), got {predictions.shape}"
    )
  height, width = image_size
  b = predictions[..., : num_boxes * 5].reshape(n, s, s, num_boxes, 5)
  col = jnp.arange(s, dtype=b.dtype)[None, None, :, None]
  row = jnp.arange(s, dtype=b.dtype)[None, :, None, None]
  cx = (col + b[..., 0]) / s * width
  cy = (row + b[..., 1]) / s * height
  half_w = jnp.maximum(b[..., 2], 0.0) * width / 2
  half_h = jnp.maximum(b[..., 3], 0.0) * height / 2
  corners = jnp.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
  classes = jnp.broadcast_to(
    predictions[..., None, num_boxes * 5 :], (n, s, s, num_boxes, num_classes)
  )
  return (
    corners.reshape(n, -1, 4),
    b[..., 4].reshape(n, -1),
    classes.reshape(n, -1, num_classes),
  )


@functools.partial(
  jax.jit,
  static_argnames=("num_boxes", "num_classes", "image_size", "max_detections", "pre_nms_top_k"),
)
def yolo_detect(
  predictions,
  *,
  num_boxes: int,
  num_classes: int,
  image_size: tuple,
  score_threshold: float = 0.01,
  iou_threshold: float = 0.5,
  max_detections: int = 100,
  pre_nms_top_k: int = 300,
):
  """YOLOv1 outputs -> detections {'boxes' (N, D, 4), 'scores', 'classes', 'valid'
  (N, D)} with D = max_detections, best first.

  Every box is a candidate for every class, scored as in the paper by
  Pr(class | object) x confidence (each clipped to [0, 1], as the linear outputs may
  stray); boxes are clipped to the image. The `pre_nms_top_k` best (box, class) pairs
  with a score above `score_threshold` go through class-wise NMS (`batched_nms`)."""
  boxes, confidence, class_scores = decode_yolo_predictions(
    predictions, num_boxes, num_classes, image_size
  )
  height, width = image_size
  limit = jnp.asarray([width, height, width, height], boxes.dtype)
  boxes = jnp.clip(boxes, 0.0, limit)
  scores = jnp.clip(confidence, 0.0, 1.0)[..., None] * jnp.clip(class_scores, 0.0, 1.0)
  n, k = scores.shape[:2]
  flat_scores = scores.reshape(n, k * num_classes)
  top_k = min(pre_nms_top_k, k * num_classes)
  top_scores, top = jax.lax.top_k(flat_scores, top_k)  # (N, top_k)
  top_boxes = jnp.take_along_axis(boxes, (top // num_classes)[..., None], axis=1)
  top_classes = (top % num_classes).astype(jnp.int32)

  def one_image(b, sc, cl):
    keep, ok = batched_nms(b, sc, cl, iou_threshold, max_detections, valid=sc > score_threshold)
    return b[keep], sc[keep], cl[keep], ok

  out_boxes, out_scores, out_classes, ok = jax.vmap(one_image)(top_boxes, top_scores, top_classes)
  return {"boxes": out_boxes, "scores": out_scores, "classes": out_classes, "valid": ok}
