"""Faster R-CNN's second stage, the non-learned array math (docs/curriculum.md#f11): which
region of interest (RoI) learns which object, the random sample of RoIs per image, and
the detections from the head's class scores and class-specific box deltas.

Semantics follow torchvision's `RoIHeads`: a RoI whose best IoU with an object is
>= positive_iou learns that object's class and box, one below negative_iou is
background, the rest are ignored; the ground-truth boxes join the proposals in training
(so every object has a RoI from the first step); box targets are `encode_deltas` with
weights (10, 10, 5, 5). Static shapes throughout (random scores and top-k instead of
boolean indexing), so it jits and vmaps. Labels: 0 background, 1..C the classes.
"""

import jax
import jax.numpy as jnp

from dlx import errors
from dlx.ops import boxes as box_ops

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # torchvision's RoI-head box coder
IGNORE = -1  # label of a RoI that is neither object nor background (or a padding slot)


def roi_targets(rois, roi_valid, boxes, labels, valid, positive_iou=0.5, negative_iou=0.5):
  """One image's RoI labels and box targets.

  Args:
    rois: (R, 4); roi_valid: (R,) bool.
    boxes: (M, 4) objects; labels: (M,) class ids 0..C-1; valid: (M,) bool.

  Returns:
    (labels (R,) int32: 1 + the matched object's class, 0 background or IGNORE;
    targets (R, 4): `encode_deltas(roi, matched box, BOX_WEIGHTS)`, 0 where not an object).
  """
  if not 0 <= negative_iou <= positive_iou <= 1:
    raise errors.ConfigError(
      f"need 0 <= negative_iou <= positive_iou <= 1, got {negative_iou}, {positive_iou}"
    )
  iou = jnp.where(jnp.asarray(valid, bool)[None, :], box_ops.box_iou(rois, boxes), -1.0)
  best = jnp.max(iou, axis=1)
  matched = jnp.argmax(iou, axis=1)
  positive = (best >= positive_iou) & roi_valid
  negative = (best < negative_iou) & (best >= 0) & roi_valid
  # An image without objects (best -1 everywhere): every valid RoI is background.
  negative |= (best < 0) & roi_valid
  out = jnp.where(positive, labels[matched] + 1, jnp.where(negative, 0, IGNORE))
  # Non-positives regress to themselves: finite targets that the loss masks out.
  target_boxes = jnp.where(positive[:, None], boxes[matched], rois)
  targets = box_ops.encode_deltas(rois, target_boxes, BOX_WEIGHTS)
  return out.astype(jnp.int32), jnp.where(positive[:, None], targets, 0.0)


def sample_rois(
  rng,
  proposals,
  proposal_valid,
  boxes,
  labels,
  valid,
  *,
  num_samples: int = 64,
  positive_fraction: float = 0.25,
  positive_iou: float = 0.5,
  negative_iou: float = 0.5,
):
  """Training RoIs of one image: the proposals (P, 4) plus the objects (M, 4), labelled
  by `roi_targets`, then up to num_samples * positive_fraction random objects and the
  rest random background (fewer where there are not enough; the unused slots are
  padding labelled IGNORE).

  Returns (rois (S, 4), roi_valid (S,), labels (S,), targets (S, 4)), S = num_samples."""
  rois = jnp.concatenate([proposals, boxes.astype(proposals.dtype)])
  roi_valid = jnp.concatenate([proposal_valid, valid])
  roi_labels, targets = roi_targets(
    rois, roi_valid, boxes, labels, valid, positive_iou, negative_iou
  )
  # anchor sampling's subset draw, with positive = object, negative = background
  positive, negative = box_ops.sample_anchors(
    rng,
    jnp.where(roi_labels > 0, 1, jnp.where(roi_labels == 0, 0, IGNORE)),
    num_samples,
    positive_fraction,
  )
  chosen = positive | negative
  # The chosen RoIs first (stable order), padding after: a fixed count of S slots.
  order = jnp.argsort(~chosen, stable=True)[:num_samples]
  taken = chosen[order]
  return (
    rois[order],
    taken,
    jnp.where(taken, roi_labels[order], IGNORE),
    jnp.where(taken[:, None], targets[order], 0.0),
  )


def detect(
  rois,
  roi_valid,
  class_logits,
  box_deltas,
  *,
  image_size: tuple,
  score_threshold: float = 0.01,
  iou_threshold: float = 0.5,
  max_detections: int = 100,
  pre_nms_top_k: int = 300,
):
  """Detections from the second stage: rois (N, R, 4), roi_valid (N, R), class_logits
  (N, R, 1 + C), box_deltas (N, R, C or 1, 4) -> {'boxes' (N, D, 4), 'scores',
  'classes' (0..C-1), 'valid' (N, D)}, D = max_detections, best first.

  Each (RoI, class) pair is a candidate scored by the softmax probability of the class,
  with the class's box decoded from its RoI and clipped to the image; the
  `pre_nms_top_k` best pairs above `score_threshold` go through class-wise NMS, as
  `yolo_detect` does."""
  num_classes = class_logits.shape[-1] - 1
  if box_deltas.shape[-2] not in (1, num_classes):
    raise errors.ConfigError(
      f"box_deltas need 1 or {num_classes} boxes per RoI, got {box_deltas.shape}"
    )
  height, width = image_size
  limit = jnp.asarray([width, height, width, height], jnp.float32)
  boxes = box_ops.decode_deltas(rois[..., None, :], box_deltas.astype(jnp.float32), BOX_WEIGHTS)
  boxes = jnp.clip(jnp.broadcast_to(boxes, rois.shape[:2] + (num_classes, 4)), 0.0, limit)
  probs = jax.nn.softmax(class_logits.astype(jnp.float32), axis=-1)[..., 1:]
  probs = jnp.where(roi_valid[..., None], probs, 0.0)
  n, r = probs.shape[:2]
  top_k = min(pre_nms_top_k, r * num_classes)
  top_scores, top = jax.lax.top_k(probs.reshape(n, r * num_classes), top_k)
  top_boxes = jnp.take_along_axis(boxes.reshape(n, r * num_classes, 4), top[..., None], axis=1)
  top_classes = (top % num_classes).astype(jnp.int32)

  def one_image(b, sc, cl):
    keep, ok = box_ops.batched_nms(
      b, sc, cl, iou_threshold, max_detections, valid=sc > score_threshold
    )
    return b[keep], sc[keep], cl[keep], ok

  out_boxes, out_scores, out_classes, ok = jax.vmap(one_image)(top_boxes, top_scores, top_classes)
  return {"boxes": out_boxes, "scores": out_scores, "classes": out_classes, "valid": ok}
