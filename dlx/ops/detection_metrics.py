"""COCO-style average precision for box detection (docs/curriculum.md#f10, #f11).

A set-level metric in NumPy (float64), run on the host after a pass over a split, not
inside jit. It follows pycocotools' bbox evaluation for the 'all' area range, which
tests/unit/ops/test_detection_metrics.py checks against pycocotools itself:

  * per image and class, only the `max_detections` best-scored predictions count (COCO:
    100), equal scores in input order;
  * predictions are matched greedily by decreasing score to the unmatched ground truth
    of the same class with the highest IoU, if that IoU >= the threshold (ties: the
    later ground truth, as COCO); each ground truth matches at most one prediction;
  * per class, predictions of all images are ranked by score (a stable sort: ties keep
    image order, then input order), the precision envelope (the best precision at any
    higher recall) is read at 101 recall points 0, 0.01, ..., 1 (0 beyond the largest
    recall reached), and AP is their mean;
  * a class without ground truth in the whole set has AP NaN and is left out of the
    means (COCO's -1); a class with ground truth and no prediction has AP 0.

There are no crowd annotations or area ranges. Boxes are x1, y1, x2, y2 with x1 <= x2 and
y1 <= y2; an inverted predicted box matches nothing and counts as a false positive here,
while COCO, reading a negative area, ignores it.
"""

from typing import Mapping, Sequence

import numpy as np

from dlx import errors

# As COCO builds them, so that 0.5 and 0.75 are exactly in the list.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1, endpoint=True)


def _arrays(sets, name, keys):
  missing = [k for k in keys if k not in sets]
  if missing:
    raise errors.ConfigError(f"{name} needs the keys {', '.join(keys)}; missing {missing}")
  out = [np.asarray(sets[k]) for k in keys]
  boxes = out[0].astype(np.float64)
  if boxes.ndim != 3 or boxes.shape[-1] != 4:
    raise errors.ConfigError(f"{name}['boxes'] must be (images, slots, 4), got {boxes.shape}")
  valid = np.asarray(sets.get("valid", np.ones(boxes.shape[:2], bool)), bool)
  rest = [a for a in out[1:]] + [valid]
  for key, value in zip(list(keys[1:]) + ["valid"], rest):
    if value.shape != boxes.shape[:2]:
      raise errors.ConfigError(
        f"{name}[{key!r}] must be (images, slots) = {boxes.shape[:2]}, got {value.shape}"
      )
  return [boxes] + rest


def pairwise_iou(boxes1, boxes2) -> np.ndarray:
  """(N, 4), (M, 4) -> (N, M) IoU in float64; 0 where the union is empty."""
  boxes1, boxes2 = np.asarray(boxes1, np.float64), np.asarray(boxes2, np.float64)
  lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
  rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
  wh = np.clip(rb - lt, 0.0, None)
  inter = wh[..., 0] * wh[..., 1]
  area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
  area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
  union = area1[:, None] + area2[None, :] - inter
  return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_detections(pred_boxes, gt_boxes, iou_thresholds) -> np.ndarray:
  """COCO's greedy matching of one image and class: (T, D) bool, True where prediction d
  (`pred_boxes` sorted by decreasing score) is a true positive at threshold t."""
  thresholds = np.minimum(np.asarray(iou_thresholds, np.float64), 1 - 1e-10)
  num_preds, num_gts = len(pred_boxes), len(gt_boxes)
  tp = np.zeros((len(thresholds), num_preds), bool)
  if num_preds == 0 or num_gts == 0:
    return tp
  ious = pairwise_iou(pred_boxes, gt_boxes)
  matched = np.zeros((len(thresholds), num_gts), bool)
  rows = np.arange(len(thresholds))
  for d in range(num_preds):
    candidates = ~matched & (ious[d][None, :] >= thresholds[:, None])
    if not candidates.any():
      continue
    scores = np.where(candidates, ious[d][None, :], -1.0)
    best = num_gts - 1 - np.argmax(scores[:, ::-1], axis=1)  # the last of equal maxima
    hit = candidates.any(axis=1)
    matched[rows[hit], best[hit]] = True
    tp[hit, d] = True
  return tp


def average_precision(scores, true_positives, num_ground_truths) -> np.ndarray:
  """COCO's 101-point interpolated AP of one class.

  Args:
    scores: (D,) scores of all the class's counted predictions over the set.
    true_positives: (T, D) bool, per IoU threshold.
    num_ground_truths: ground-truth objects of the class (> 0).

  Returns:
    (T,) AP per threshold.
  """
  tp = np.asarray(true_positives, bool)
  order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
  tp = tp[:, order]
  tp_sum = np.cumsum(tp, axis=1, dtype=np.float64)
  fp_sum = np.cumsum(~tp, axis=1, dtype=np.float64)
  out = np.zeros(tp.shape[0])
  if tp.shape[1] == 0:
    return out
  for t in range(tp.shape[0]):
    recall = tp_sum[t] / num_ground_truths
    precision = tp_sum[t] / (tp_sum[t] + fp_sum[t] + np.spacing(1))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, RECALL_POINTS, side="left")
    reached = index < len(recall)
    out[t] = np.where(reached, envelope[np.minimum(index, len(recall) - 1)], 0.0).mean()
  return out


def mean_average_precision(
  predictions: Mapping[str, np.ndarray],
  ground_truths: Mapping[str, np.ndarray],
  num_classes: int,
  iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
  max_detections: int = 100,
) -> dict:
  """COCO-style box AP of padded per-image predictions against padded ground truths.

  Args:
    predictions: 'boxes' (I, P, 4) x1 y1 x2 y2, 'scores' (I, P), 'classes' (I, P) ints in
      [0, num_classes), 'valid' (I, P) bool (all valid if absent).
    ground_truths: 'boxes' (I, G, 4), 'classes' (I, G), 'valid' (I, G).
    num_classes: number of classes.
    iou_thresholds: the thresholds `map` averages over (COCO: 0.5, 0.55, ..., 0.95).
    max_detections: predictions counted per image and class (COCO: 100).

  Returns:
    {'map': mean over classes and `iou_thresholds`, 'map50' and 'map75': at IoU 0.5 and
    0.75, 'per_class_ap' and 'per_class_ap50': (num_classes,) arrays (NaN for classes
    without ground truth), 'num_ground_truths': (num_classes,) ints}. The means are NaN
    when no class has ground truth.
  """
  p_boxes, p_scores, p_classes, p_valid = _arrays(
    predictions, "predictions", ("boxes", "scores", "classes")
  )
  g_boxes, g_classes, g_valid = _arrays(ground_truths, "ground_truths", ("boxes", "classes"))
  if len(p_boxes) != len(g_boxes):
    raise errors.ConfigError(
      f"predictions cover {len(p_boxes)} images and ground_truths {len(g_boxes)}"
    )
  for name, classes, valid in (
    ("predictions", p_classes, p_valid),
    ("ground_truths", g_classes, g_valid),
  ):
    used = classes[valid]
    if used.size and (used.min() < 0 or used.max() >= num_classes):
      raise errors.ConfigError(
        f"{name}['classes'] must lie in [0, {num_classes}), got {used.min()}..{used.max()}"
      )
  if max_detections < 1:
    raise errors.ConfigError(f"max_detections must be >= 1, got {max_detections}")
  requested = np.asarray(iou_thresholds, np.float64).reshape(-1)
  if requested.size == 0 or requested.min() < 0 or requested.max() > 1:
    raise errors.ConfigError(f"iou_thresholds must be non-empty, in [0, 1], got {requested}")
  extra = [t for t in (0.5, 0.75) if not np.isclose(requested, t).any()]
  thresholds = np.concatenate([requested, extra])
  at = {t: int(np.flatnonzero(np.isclose(thresholds, t))[0]) for t in (0.5, 0.75)}

  scores = [[] for _ in range(num_classes)]
  hits = [[] for _ in range(num_classes)]
  num_gts = np.zeros(num_classes, np.int64)
  for i in range(len(p_boxes)):
    for k in range(num_classes):
      gt = g_boxes[i][g_valid[i] & (g_classes[i] == k)]
      num_gts[k] += len(gt)
      mine = np.flatnonzero(p_valid[i] & (p_classes[i] == k))
      if mine.size == 0:
        continue
      mine = mine[np.argsort(-p_scores[i][mine].astype(np.float64), kind="mergesort")]
      mine = mine[:max_detections]
      scores[k].append(p_scores[i][mine])
      hits[k].append(match_detections(p_boxes[i][mine], gt, thresholds))

  ap = np.full((num_classes, len(thresholds)), np.nan)
  for k in range(num_classes):
    if num_gts[k] == 0:
      continue
    if not scores[k]:
      ap[k] = 0.0
      continue
    ap[k] = average_precision(np.concatenate(scores[k]), np.concatenate(hits[k], 1), num_gts[k])

  per_class = ap[:, : len(requested)].mean(axis=1)
  present = num_gts > 0

  def mean(values):
    return float(values[present].mean()) if present.any() else float("nan")

  return {
    "map": mean(per_class),
    "map50": mean(ap[:, at[0.5]]),
    "map75": mean(ap[:, at[0.75]]),
    "per_class_ap": per_class,
    "per_class_ap50": ap[:, at[0.5]],
    "num_ground_truths": num_gts,
  }
