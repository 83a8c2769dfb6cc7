"""YOLOv1 on digit scenes (docs/curriculum.md#f10, the loss #b11); the data and the
translation augmentation are `scenes`', the grid encoding and the detector's box math
`dlx.ops.boxes`' (`encode_yolo_targets`, `decode_yolo_predictions`, `yolo_detect`).

  base_config   the scenes' config plus the loss weights and the detection settings
  get_loss      `dlx.losses.yolo_v1_loss`, encoding the targets inside the compiled step
                (so augmentations that move boxes need no second copy of the data)
  evaluate      COCO-style `map50` and `map` (IoU 0.5:0.95) over the split, after
                class-wise NMS (at most `max_detections` per image)
  final_report  per-class AP and detections.png (test scenes, true boxes in colour,
                predicted ones in white with class and score)
"""

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dlx import errors
from dlx import losses
from dlx.ops import boxes as box_ops
from dlx.ops import detection_metrics
from dlx.tasks.detection import scenes
from dlx.viz import scene_figures

OUTPUTS = ("detections.png",)


def base_config():
  config = scenes.base_config()
  config.lambda_coord = 5.0
  config.lambda_noobj = 0.5
  config.detection = ml_collections.ConfigDict(
    dict(score_threshold=0.01, iou_threshold=0.5, max_detections=100, pre_nms_top_k=300)
  )
  config.best_metric = "map50"
  config.best_mode = "max"
  return config


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
    targets = box_ops.encode_yolo_targets(
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
    box_ops.yolo_detect,
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
  return detection_report(ctx, average_precision, _detector, num_examples)


def detection_report(ctx, score, detector, num_examples: int = 16):
  """A detector's final report: per-class test AP (`score(ctx, examples)`, an
  `average_precision`) and detections.png of the first `num_examples` test scenes
  (`detector(config, image_hw)` turns the model's outputs into detections)."""
  test = ctx.examples("test")
  result = score(ctx, test)
  # One evaluation-sized batch (a shape already compiled), of which the first are drawn.
  shown, outputs = next(ctx.outputs(test))
  found = jax.device_get(detector(ctx.config, shown["inputs"].shape[1:3])(outputs))
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
