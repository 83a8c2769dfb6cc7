"""Object detection on the digit scenes of dlx/data/scenes.py: up to 5 MNIST digits per
96x96 canvas, each with a box (x1, y1, x2, y2 pixels) and a class 0-9.

YOLOv1 (docs/curriculum.md#f10, the loss #b11):

  encode_targets   boxes -> the (N, S, S, 5 + C) grid `dlx.losses.yolo_v1_loss` reads:
                   the cell holding a box's centre is responsible for it, with x, y the
                   centre's offset in that cell and w, h relative to the image
  get_loss         that loss, encoding the targets inside the compiled step (so
                   augmentations that move boxes need no second copy of the data)
  detect           predictions -> boxes with class-specific scores (class probability
                   x confidence), class-wise NMS, at most `max_detections` per image
  evaluate         COCO-style `map50` and `map` (IoU 0.5:0.95) over the split
  final_report     per-class AP and detections.png (test scenes, true boxes in colour,
                   predicted ones in white with class and score)

Region proposals, the first stage of Faster R-CNN (docs/curriculum.md#f11):

  anchor_labels    anchor assignment by IoU: positive >= 0.7 or the best anchor of an
                   object, negative < 0.3, the rest ignored
  sample_anchors   a fixed number of anchors per image (up to half positive), drawn with
                   random scores and top-k masks so the shapes stay static under jit
  get_rpn_loss     binary cross-entropy over the sampled anchors + smooth L1 on the
                   positives' box deltas
  propose          decoded boxes -> clip, top-k by objectness, NMS -> the best proposals
  evaluate_proposals  recall at IoU 0.5 of the top 10, 50 and 100 proposals
  rpn_final_report    proposals.png (each test scene's best proposals)

An experiment (experiments/detection/yolo_digit_scenes.py, rpn_digit_scenes.py) picks the
hooks it needs.
"""

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dlx import config as config_lib
from dlx import data
from dlx import errors
from dlx import losses
from dlx.ops import boxes as box_ops
from dlx.ops import detection_metrics
from dlx.viz import scene_figures

NUM_CLASSES = 10
OUTPUTS = ("detections.png",)
RPN_OUTPUTS = ("proposals.png",)
RECALL_AT = (10, 50, 100)  # proposal counts evaluate_proposals reports recall for
_EVAL_SAMPLE_SEED = 0  # anchor sampling in the evaluation loss (fixed: a comparable number)


def base_config():
  """What both detectors share: the scenes, the translation augmentation, the budget."""
  config = config_lib.base_config()
  config.num_classes = NUM_CLASSES
  # dlx.data.scenes.digit_scenes' arguments (the seed is config.seed).
  config.scenes = ml_collections.ConfigDict(
    dict(num_train=10000, num_validation=500, num_test=1000, clutter=0)
  )
  # Random translation in training, by up to this many pixels per axis, never pushing
  # an object out of the canvas (so every box stays whole); 0 = off.
  config.max_shift = 0
  config.batch_size = 32
  config.eval_batch_size = 50  # divides every split: no second compiled shape
  config.train_eval_examples = 500
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  return config


def yolo_config():
  config = base_config()
  config.lambda_coord = 5.0
  config.lambda_noobj = 0.5
  config.detection = ml_collections.ConfigDict(
    dict(score_threshold=0.01, iou_threshold=0.5, max_detections=100, pre_nms_top_k=300)
  )
  config.best_metric = "map50"
  config.best_mode = "max"
  return config


def rpn_config():
  config = base_config()
  # Anchors: 3 scales (sqrt of the area, pixels) x 3 ratios (height / width) per cell
  # of the model's stride-`stride` feature map.
  config.anchors = ml_collections.ConfigDict(
    dict(stride=8, scales=(16.0, 24.0, 36.0), ratios=(0.5, 1.0, 2.0))
  )
  config.positive_iou = 0.7
  config.negative_iou = 0.3
  config.anchors_per_image = 256
  config.positive_fraction = 0.5
  config.box_weight = 1.0  # on the smooth-L1 term
  config.smooth_l1_beta = 1.0 / 9.0  # as torchvision's RPN
  config.proposals = ml_collections.ConfigDict(
    dict(pre_nms_top_k=600, iou_threshold=0.7, min_size=1.0)
  )
  config.best_metric = "recall_at_50"
  config.best_mode = "max"
  return config


def get_dataset(config, data_dir):
  ds = data.load("digit_scenes", data_dir=data_dir, seed=config.seed, **config.scenes.to_dict())
  # The trainer's evaluation batches use the key `mask` for their padding rows, so the
  # scene's segmentation mask (and the bookkeeping) is dropped.
  keep = ("inputs", "boxes", "labels", "valid")
  return ds.map(lambda split: {k: split[k] for k in keep})


# ------------------------------------------------------------------ augmentation


def random_shift(rng, batch, max_shift: int):
  """Translates each image and its boxes by whole pixels, at most `max_shift` per axis
  and never so far that a valid box leaves the canvas; uncovered pixels are 0."""
  images, boxes, valid = batch["inputs"], batch["boxes"], batch["valid"]
  n, height, width, _ = images.shape
  big = jnp.float32(1e9)
  lo_x = jnp.min(jnp.where(valid, boxes[..., 0], big), axis=1)  # room to the left
  lo_y = jnp.min(jnp.where(valid, boxes[..., 1], big), axis=1)
  hi_x = jnp.min(jnp.where(valid, width - boxes[..., 2], big), axis=1)  # to the right
  hi_y = jnp.min(jnp.where(valid, height - boxes[..., 3], big), axis=1)
  u = jax.random.uniform(rng, (2, n))
  low = -jnp.minimum(jnp.floor(jnp.stack([lo_x, lo_y])), max_shift)
  high = jnp.minimum(jnp.floor(jnp.stack([hi_x, hi_y])), max_shift)
  shift = jnp.floor(low + u * (high - low + 1)).astype(jnp.int32)  # (2, n): dx, dy
  shift = jnp.clip(shift, low.astype(jnp.int32), high.astype(jnp.int32))
  p = max_shift
  padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))

  def crop(image, dx, dy):
    return jax.lax.dynamic_slice(image, (p - dy, p - dx, 0), (height, width, image.shape[-1]))

  moved = jax.vmap(crop)(padded, shift[0], shift[1])
  offset = jnp.stack([shift[0], shift[1], shift[0], shift[1]], axis=-1).astype(boxes.dtype)
  new_boxes = jnp.where(valid[..., None], boxes + offset[:, None, :], boxes)
  return {**batch, "inputs": moved, "boxes": new_boxes}


def get_augment(config):
  """The translation augmentation (config.max_shift), or None."""
  if config.max_shift < 0:
    raise errors.ConfigError(f"--config.max_shift must be >= 0, got {config.max_shift}")
  if not config.max_shift:
    return None
  return lambda rng, batch: random_shift(rng, batch, int(config.max_shift))


# ------------------------------------------------------------------ YOLOv1


def encode_targets(boxes, labels, valid, grid_size: int, num_classes: int, image_size):
  """Scenes -> YOLOv1 targets (N, S, S, 5 + C) = [x, y, w, h, obj, one-hot class].

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


def decode_predictions(predictions, num_boxes: int, num_classes: int, image_size):
  """YOLOv1 outputs (N, S, S, B*5 + C) -> (boxes (N, S*S*B, 4) x1 y1 x2 y2 pixels,
  confidence (N, S*S*B), class scores (N, S*S*B, C)), boxes in cell-major order, each
  box with its cell's class scores. Raw values: negative sizes become 0. The targets
  (B = 1) decode back to the boxes they encode."""
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
def detect(
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
  boxes, confidence, class_scores = decode_predictions(
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
    keep, ok = box_ops.batched_nms(
      b, sc, cl, iou_threshold, max_detections, valid=sc > score_threshold
    )
    return b[keep], sc[keep], cl[keep], ok

  out_boxes, out_scores, out_classes, ok = jax.vmap(one_image)(top_boxes, top_scores, top_classes)
  return {"boxes": out_boxes, "scores": out_scores, "classes": out_classes, "valid": ok}


def get_loss(config):
  """`losses.yolo_v1_loss` per image, targets encoded from the batch's boxes; plus
  `class_accuracy`, the share of each image's responsible cells whose top class is right.

  The confidence target is 1, the loss's (the paper's text asks for the IoU of the
  predicted box with the truth). Early in training that IoU is near 0, so an IoU target
  teaches the responsible box to say "no object" exactly where objects are and slows
  objectness down; and mAP@0.5, the target here, only needs detections ranked by object
  presence, which a target of 1 trains directly. Localisation quality is left to the
  box terms."""
  num_boxes, num_classes = config.model.num_boxes, config.model.num_classes
  if config.lambda_coord < 0 or config.lambda_noobj < 0:
    raise errors.ConfigError("--config.lambda_coord and --config.lambda_noobj must be >= 0")

  def loss(outputs, batch):
    image_size = batch["inputs"].shape[1:3]
    targets = encode_targets(
      batch["boxes"], batch["labels"], batch["valid"], outputs.shape[1], num_classes, image_size
    )
    total = losses.yolo_v1_loss(
      outputs,
      targets,
      num_boxes=num_boxes,
      num_classes=num_classes,
      lambda_coord=config.lambda_coord,
      lambda_noobj=config.lambda_noobj,
    )
    obj = targets[..., 4]
    right = jnp.argmax(outputs[..., num_boxes * 5 :], -1) == jnp.argmax(targets[..., 5:], -1)
    accuracy = jnp.sum(obj * right, axis=(1, 2)) / jnp.maximum(jnp.sum(obj, axis=(1, 2)), 1.0)
    return {"loss": total, "class_accuracy": accuracy}

  return loss


def _detector(config, image_size):
  d = config.detection
  return functools.partial(
    detect,
    num_boxes=config.model.num_boxes,
    num_classes=config.model.num_classes,
    image_size=tuple(int(v) for v in image_size),
    score_threshold=d.score_threshold,
    iou_threshold=d.iou_threshold,
    max_detections=d.max_detections,
    pre_nms_top_k=d.pre_nms_top_k,
  )


def _ground_truths(split):
  return {"boxes": split["boxes"], "classes": split["labels"], "valid": split["valid"]}


def split_detections(ctx, split_data):
  """The run's detections on a split's arrays, as NumPy arrays over all its images."""
  run_detector = _detector(ctx.config, split_data["inputs"].shape[1:3])
  parts = [jax.device_get(run_detector(outputs)) for _, outputs in ctx.outputs(split_data)]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def average_precision(ctx, split_data):
  return detection_metrics.mean_average_precision(
    split_detections(ctx, split_data), _ground_truths(split_data), ctx.config.model.num_classes
  )


def evaluate(ctx, split):
  result = average_precision(ctx, ctx.examples(split))
  return {k: result[k] for k in ("map50", "map", "map75")}


def final_report(ctx, num_examples: int = 16):
  """Per-class test AP and detections.png (the first `num_examples` test scenes)."""
  test = ctx.examples("test")
  result = average_precision(ctx, test)
  # One evaluation-sized batch (a shape already compiled), of which the first are drawn.
  shown, outputs = next(ctx.outputs(test))
  found = jax.device_get(_detector(ctx.config, shown["inputs"].shape[1:3])(outputs))
  # Drawn: detections scoring at least 0.3 (the low-score tail counts for AP, not here).
  found["valid"] = found["valid"] & (found["scores"] >= 0.3)
  scene_figures.draw_scenes(
    shown, os.path.join(ctx.workdir, OUTPUTS[0]), num_examples, predictions=found
  )

  def rounded(values):
    return [None if np.isnan(v) else round(float(v), 4) for v in values]

  return {
    "plots": list(OUTPUTS),
    "test_ap_per_class": rounded(result["per_class_ap"]),
    "test_ap50_per_class": rounded(result["per_class_ap50"]),
    "test_map75": round(result["map75"], 4),
  }


# ------------------------------------------------------------------ region proposals


def make_anchors(config, image_size):
  """The (A_total, 4) anchors of config.anchors on an image of `image_size` (h, w)."""
  a = config.anchors
  height, width = (int(v) for v in image_size)
  if height % a.stride or width % a.stride:
    raise errors.ConfigError(
      f"--config.anchors.stride={a.stride} must divide the image size {height}x{width}"
    )
  return box_ops.anchors((height // a.stride, width // a.stride), a.stride, a.scales, a.ratios)


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
  iou = box_ops.box_iou(anchors, boxes)  # (A, M)
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
  """(positive mask, negative mask), each (A,) bool: up to num_samples * positive_fraction
  random positives, then random negatives filling up to num_samples (fewer where there are
  not enough). Static shapes: random scores and top-k, no boolean indexing."""
  pos_rng, neg_rng = jax.random.split(rng)
  positive = _random_subset(pos_rng, labels == 1, int(num_samples * positive_fraction))
  negative = _random_subset(
    neg_rng, labels == 0, num_samples, limit=num_samples - jnp.sum(positive)
  )
  return positive, negative


def rpn_image_loss(
  rng,
  logits,
  deltas,
  anchors,
  boxes,
  valid,
  *,
  positive_iou=0.7,
  negative_iou=0.3,
  num_samples=256,
  positive_fraction=0.5,
  beta=1.0 / 9.0,
):
  """One image's RPN loss terms (logits (A,), deltas (A, 4)), torchvision's reduction:
  objectness = mean binary cross-entropy over the sampled anchors, box = smooth L1 of the
  sampled positives' deltas summed and divided by the number sampled. Returns a dict of
  scalars, with the sample's counts."""
  labels, matched = anchor_labels(anchors, boxes, valid, positive_iou, negative_iou)
  positive, negative = sample_anchors(rng, labels, num_samples, positive_fraction)
  sampled = positive | negative
  count = jnp.maximum(jnp.sum(sampled), 1).astype(logits.dtype)
  bce = losses.sigmoid_binary_cross_entropy(logits, positive.astype(logits.dtype))
  objectness = jnp.sum(jnp.where(sampled, bce, 0.0)) / count
  # Anchors without a positive label regress to themselves (finite deltas of 0).
  target_boxes = jnp.where(positive[:, None], boxes[matched], anchors)
  targets = jax.lax.stop_gradient(box_ops.encode_deltas(anchors, target_boxes))
  l1 = jnp.sum(losses.smooth_l1(deltas, targets, beta=beta), axis=-1)
  box = jnp.sum(jnp.where(positive, l1, 0.0)) / count
  return {
    "objectness_loss": objectness,
    "box_loss": box,
    "positives": jnp.sum(positive).astype(logits.dtype),
    "negatives": jnp.sum(negative).astype(logits.dtype),
  }


def flatten_rpn(outputs):
  """The RPN's {'objectness' (N, H, W, A), 'deltas' (N, H, W, A, 4)} in anchor order
  (cells row-major, then anchors, as `box_ops.anchors`): (N, H*W*A), (N, H*W*A, 4)."""
  logits, deltas = outputs["objectness"], outputs["deltas"]
  return logits.reshape(logits.shape[0], -1), deltas.reshape(deltas.shape[0], -1, 4)


def rpn_augment(config):
  """The translation augmentation, plus a key per image for the anchor sampling (the
  loss sees no rng; this hook runs inside the step with the step's key)."""
  shift = get_augment(config)

  def augment(rng, batch):
    shift_rng, sample_rng = jax.random.split(rng)
    if shift is not None:
      batch = shift(shift_rng, batch)
    keys = jax.random.split(sample_rng, batch["inputs"].shape[0])
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
      keys = jax.random.key_data(keys)
    return {**batch, "sample_keys": keys}

  return augment


def get_rpn_loss(config):
  """Per image: objectness_loss + box_weight x box_loss, and the sample's counts. In
  evaluation the anchors are sampled with a fixed key, so the loss is comparable."""
  if not 0 <= config.negative_iou <= config.positive_iou <= 1:
    raise errors.ConfigError("need 0 <= --config.negative_iou <= --config.positive_iou <= 1")
  if config.anchors_per_image < 1 or not 0 < config.positive_fraction <= 1:
    raise errors.ConfigError(
      "need --config.anchors_per_image >= 1 and 0 < --config.positive_fraction <= 1"
    )
  kwargs = dict(
    positive_iou=config.positive_iou,
    negative_iou=config.negative_iou,
    num_samples=config.anchors_per_image,
    positive_fraction=config.positive_fraction,
    beta=config.smooth_l1_beta,
  )

  def loss(outputs, batch):
    logits, deltas = flatten_rpn(outputs)
    anchors = jnp.asarray(make_anchors(config, batch["inputs"].shape[1:3]))
    if logits.shape[1] != anchors.shape[0]:
      raise errors.ConfigError(
        f"the model predicts for {logits.shape[1]} anchors, config.anchors makes "
        f"{anchors.shape[0]}: its stride or its number of anchors per cell differ"
      )
    keys = batch.get("sample_keys")
    if keys is None:
      keys = jax.random.split(jax.random.PRNGKey(_EVAL_SAMPLE_SEED), logits.shape[0])
    terms = jax.vmap(lambda k, lg, d, b, v: rpn_image_loss(k, lg, d, anchors, b, v, **kwargs))(
      keys, logits, deltas, batch["boxes"], batch["valid"]
    )
    terms["loss"] = terms["objectness_loss"] + config.box_weight * terms["box_loss"]
    return terms

  return loss


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
  """Proposals per image (docs/curriculum.md#f11): anchors moved by their deltas,
  clipped to the image, boxes narrower or lower than `min_size` dropped, the
  `pre_nms_top_k` best by objectness kept, NMS at `iou_threshold`, then the
  `num_proposals` best. logits (N, A), deltas (N, A, 4), anchors (A, 4) ->
  {'boxes' (N, P, 4), 'scores' (N, P) logits, 'valid' (N, P)}, best first."""
  height, width = image_size
  limit = jnp.asarray([width, height, width, height], jnp.float32)
  boxes = jnp.clip(box_ops.decode_deltas(anchors[None], deltas), 0.0, limit)
  top_k = min(pre_nms_top_k, logits.shape[1])

  def one_image(b, s):
    s, top = jax.lax.top_k(s, top_k)
    b = b[top]
    big_enough = ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
    keep, ok = box_ops.nms(b, s, iou_threshold, num_proposals, valid=big_enough)
    return b[keep], s[keep], ok

  out_boxes, out_scores, ok = jax.vmap(one_image)(boxes, logits)
  return {"boxes": out_boxes, "scores": out_scores, "valid": ok}


def proposal_recall(proposals, ground_truths, counts=RECALL_AT, iou: float = 0.5):
  """{count: share of the objects covered (IoU >= iou) by one of an image's first
  `count` valid proposals}, over all images; NumPy, padded arrays as `propose` gives
  ('boxes', 'valid') and ground truths ('boxes', 'valid')."""
  hits = {c: 0 for c in counts}
  total = 0
  for i in range(len(ground_truths["boxes"])):
    gt = ground_truths["boxes"][i][ground_truths["valid"][i]]
    total += len(gt)
    if not len(gt):
      continue
    ranked = proposals["boxes"][i][proposals["valid"][i]]  # best first
    overlap = detection_metrics.pairwise_iou(ranked, gt)  # (P, G)
    for c in counts:
      hits[c] += int(np.sum(np.any(overlap[:c] >= iou, axis=0))) if c and len(ranked) else 0
  return {c: (hits[c] / total if total else float("nan")) for c in counts}


def split_proposals(ctx, split_data, num_proposals: int = max(RECALL_AT)):
  """The run's proposals on a split's arrays, as NumPy arrays over all its images."""
  p = ctx.config.proposals
  image_size = tuple(int(v) for v in split_data["inputs"].shape[1:3])
  anchors = jnp.asarray(make_anchors(ctx.config, image_size))
  parts = []
  for _, outputs in ctx.outputs(split_data):
    logits, deltas = flatten_rpn(outputs)
    found = propose(
      logits,
      deltas,
      anchors,
      image_size=image_size,
      num_proposals=num_proposals,
      pre_nms_top_k=p.pre_nms_top_k,
      iou_threshold=p.iou_threshold,
      min_size=p.min_size,
    )
    parts.append(jax.device_get(found))
  return {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}


def evaluate_proposals(ctx, split):
  split_data = ctx.examples(split)
  recall = proposal_recall(split_proposals(ctx, split_data), split_data)
  return {f"recall_at_{c}": r for c, r in recall.items()}


def rpn_final_report(ctx, num_examples: int = 16, num_drawn: int = 5):
  """proposals.png: the first `num_examples` test scenes with their `num_drawn` best
  proposals (white, with the objectness probability)."""
  # One evaluation-sized batch (a shape already compiled), of which the first are drawn.
  shown = data.core.take(ctx.examples("test"), slice(0, ctx.config.eval_batch_size))
  found = split_proposals(ctx, shown, num_proposals=num_drawn)
  drawn = {
    "boxes": found["boxes"],
    "scores": 1 / (1 + np.exp(-found["scores"])),
    "classes": np.zeros(found["valid"].shape, np.int32),
    "valid": found["valid"],
  }
  # Proposals have no class: each is drawn as class 0 with its objectness.
  scene_figures.draw_scenes(shown, os.path.join(ctx.workdir, RPN_OUTPUTS[0]), predictions=drawn)
  return {"plots": list(RPN_OUTPUTS)}
