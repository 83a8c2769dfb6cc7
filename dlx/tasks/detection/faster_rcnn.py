"""Faster R-CNN on digit scenes (docs/curriculum.md#f11): the RPN's config, anchors and
loss are `rpn`'s, the evaluation mirrors `yolo`'s (the same
`detection_metrics.mean_average_precision` over class-wise NMS detections, the same
detection settings), the second stage's targets and detections `dlx.ops.roi_heads`'.

  base_config   the RPN's config plus the head's loss weights and the detection settings
  get_augment   the RPN's (translation, a key per image for the anchor sample), then the
                ground truth packed beside the image, so that the model can add the
                objects to its proposals and sample its RoIs in the compiled step
  get_loss      the RPN's terms + the head's cross-entropy over the sampled RoIs (1 + C
                classes) and smooth L1 on the positives' class boxes
  evaluate      COCO-style `map50` and `map` (IoU 0.5:0.95), as `yolo.evaluate`
  final_report  per-class AP and detections.png, as `yolo.final_report`
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dlx import errors
from dlx import losses
from dlx.ops import detection_metrics
from dlx.ops import roi_heads
from dlx.tasks.detection import rpn
from dlx.tasks.detection import yolo

OUTPUTS = yolo.OUTPUTS


def base_config():
  config = rpn.base_config()
  config.head_weight = 1.0  # on the head's cross-entropy + box terms
  config.head_smooth_l1_beta = 1.0 / 9.0  # as torchvision's RoI head
  config.detection = ml_collections.ConfigDict(
    dict(score_threshold=0.01, iou_threshold=0.5, max_detections=100, pre_nms_top_k=300)
  )
  config.best_metric = "map50"
  config.best_mode = "max"
  return config


def get_augment(config):
  """`rpn.get_augment`, then inputs -> {'image', 'boxes', 'labels', 'valid'}."""
  first = rpn.get_augment(config)

  def augment(rng, batch):
    batch = first(rng, batch)
    truth = {k: batch[k] for k in ("boxes", "labels", "valid")}
    return {**batch, "inputs": {"image": batch["inputs"], **truth}}

  return augment


def head_loss(outputs, batch, config):
  """Per image: cross-entropy over the RoIs with a label (mean), smooth L1 of the positive
  RoIs' boxes of their class (summed, divided by the number of labelled RoIs, as
  torchvision), and the RoIs' class accuracy. Without sampled labels in the outputs
  (evaluation) every valid proposal is labelled against the ground truth."""
  if "roi_labels" in outputs:
    labels, targets = outputs["roi_labels"], outputs["roi_targets"]
  else:
    p = config.model
    label_one = functools.partial(
      roi_heads.roi_targets, positive_iou=p.positive_iou, negative_iou=p.negative_iou
    )
    labels, targets = jax.vmap(label_one)(
      outputs["rois"], outputs["roi_valid"], batch["boxes"], batch["labels"], batch["valid"]
    )
  logits = outputs["class_logits"].astype(jnp.float32)
  used = labels >= 0
  count = jnp.maximum(jnp.sum(used, axis=1), 1).astype(jnp.float32)
  ce = losses.softmax_cross_entropy(logits, jnp.maximum(labels, 0))
  ce = jnp.sum(jnp.where(used, ce, 0.0), axis=1) / count
  deltas = outputs["box_deltas"].astype(jnp.float32)
  if deltas.shape[2] > 1:  # the box of the RoI's own class
    pick = jnp.clip(labels - 1, 0, deltas.shape[2] - 1)
    deltas = jnp.take_along_axis(deltas, pick[..., None, None], axis=2)
  l1 = jnp.sum(losses.smooth_l1(deltas[:, :, 0], targets, beta=config.head_smooth_l1_beta), -1)
  box = jnp.sum(jnp.where(labels > 0, l1, 0.0), axis=1) / count
  right = (jnp.argmax(logits, -1) == labels) & used
  return {
    "head_class_loss": ce,
    "head_box_loss": box,
    "roi_accuracy": jnp.sum(right, axis=1) / count,
    "roi_positives": jnp.sum(labels > 0, axis=1).astype(jnp.float32),
  }


def get_loss(config):
  """rpn's loss + head_weight x (the head's cross-entropy + box loss)."""
  if config.head_weight < 0:
    raise errors.ConfigError(f"--config.head_weight must be >= 0, got {config.head_weight}")
  first = rpn.get_loss(config)

  def loss(outputs, batch):
    image = batch["inputs"]["image"] if isinstance(batch["inputs"], dict) else batch["inputs"]
    rpn_outputs = {k: outputs[k] for k in ("objectness", "deltas")}
    terms = first(rpn_outputs, {**batch, "inputs": image})
    terms = {"rpn_" + k if k != "loss" else "rpn_loss": v for k, v in terms.items()}
    second = head_loss(outputs, batch, config)
    head = second["head_class_loss"] + second["head_box_loss"]
    return {**terms, **second, "loss": terms["rpn_loss"] + config.head_weight * head}

  return loss


def _detector(config, image_size):
  d = config.detection
  detect = functools.partial(
    roi_heads.detect,
    image_size=tuple(int(v) for v in image_size),
    score_threshold=d.score_threshold,
    iou_threshold=d.iou_threshold,
    max_detections=d.max_detections,
    pre_nms_top_k=d.pre_nms_top_k,
  )
  return jax.jit(
    lambda out: detect(out["rois"], out["roi_valid"], out["class_logits"], out["box_deltas"])
  )


def split_detections(ctx, split_data):
  """The run's detections on a split's arrays, as NumPy arrays over all its images."""
  run_detector = _detector(ctx.config, split_data["inputs"].shape[1:3])
  parts = [jax.device_get(run_detector(outputs)) for _, outputs in ctx.outputs(split_data)]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def average_precision(ctx, split_data):
  ground_truths = {
    "boxes": split_data["boxes"],
    "classes": split_data["labels"],
    "valid": split_data["valid"],
  }
  return detection_metrics.mean_average_precision(
    split_detections(ctx, split_data), ground_truths, ctx.config.model.num_classes
  )


def evaluate(ctx, split):
  result = average_precision(ctx, ctx.examples(split))
  return {k: result[k] for k in ("map50", "map", "map75")}


def final_report(ctx, num_examples: int = 16):
  """Per-class test AP and detections.png (the first `num_examples` test scenes), as
  `yolo.final_report`."""
  return yolo.detection_report(ctx, average_precision, _detector, num_examples)
