"""Semantic segmentation (docs/curriculum.md#f9): a class for every pixel of the digit
scenes of dlx/data/scenes.py (0 = background, digit d -> d + 1: 11 classes), whose
`mask` arrives here as `targets` (B, H, W).

  loss            per image: the mean per-pixel softmax cross-entropy (optionally class
                  weighted), plus dice_weight x the soft Dice loss; and pixel `accuracy`;
                  with a deeply supervised model's (logits, aux...) in training, plus
                  aux_weight x each auxiliary head's loss
  evaluate        set-level metrics from one confusion matrix over the whole split
                  (computed per batch under jit, summed on the host): `miou` and
                  `pixel_accuracy`
  final_report    per-class IoU on the test split and segmentation.png (8 test scenes:
                  image | true mask | predicted mask)

IoU of class c = TP / (TP + FP + FN) over every pixel of the split, not per image. A
class with no pixels in truth and none in the prediction has no IoU (0 / 0): it is left
out of the mean (and reported as null). A class absent from the truth but predicted
somewhere has IoU 0 and counts. Images all have the same size, so the per-image mean of
`accuracy` equals the split's `pixel_accuracy`.

An experiment file (experiments/detection/unet_digit_scenes.py, ...) adds its model:

    def get_config(arg=None):
      args = config_lib.parse_arg(arg)
      config = segmentation.base_config()
      config.model = config_lib.model_config(num_classes=segmentation.NUM_CLASSES, ...)
      ...
    get_dataset = segmentation.get_dataset
    get_loss = segmentation.get_loss
    evaluate = segmentation.evaluate
    final_report = segmentation.final_report
    OUTPUTS = segmentation.OUTPUTS
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
from dlx.viz import plots

NUM_CLASSES = 11
CLASS_NAMES = ("background",) + tuple(str(d) for d in range(10))
OUTPUTS = ("segmentation.png",)


def base_config():
  config = config_lib.base_config()
  config.num_classes = NUM_CLASSES
  # dlx.data.scenes.digit_scenes' arguments (the seed is config.seed).
  config.scenes = ml_collections.ConfigDict(
    dict(num_train=10000, num_validation=500, num_test=1000, clutter=0)
  )
  config.class_weights = ()  # one cross-entropy weight per class; () = all 1
  config.dice_weight = 0.0  # loss = cross-entropy + dice_weight * soft Dice loss
  config.dice_smooth = 1.0
  config.aux_weight = 0.5  # on each auxiliary head's loss (models with deep supervision)
  config.batch_size = 32
  config.eval_batch_size = 50  # divides every split: no second compiled shape
  config.train_eval_examples = 1000
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.best_metric = "miou"
  config.best_mode = "max"
  return config


def get_dataset(config, data_dir):
  ds = data.load("digit_scenes", data_dir=data_dir, seed=config.seed, **config.scenes.to_dict())
  # The scene's `mask` becomes `targets`: the trainer's evaluation batches use the key
  # `mask` for their padding rows. Boxes and counts (detection) are dropped.
  return ds.map(lambda split: {"inputs": split["inputs"], "targets": split["mask"]})


def pixel_accuracy_per_image(logits, labels):
  """The share of each image's pixels whose argmax class is right: (B, H, W, C),
  (B, H, W) -> (B,)."""
  right = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return jnp.mean(right, axis=tuple(range(1, right.ndim)))


def segmentation_loss(
  logits, labels, *, class_weights=None, dice_weight: float = 0.0, dice_smooth: float = 1.0
):
  """{'loss', 'cross_entropy', 'accuracy'[, 'dice_loss']}, each (B,): logits
  (B, H, W, C), labels (B, H, W) class ids (any integer dtype)."""
  labels = labels.astype(jnp.int32)
  cross_entropy = losses.pixel_cross_entropy(logits, labels, class_weights)
  out = {"cross_entropy": cross_entropy, "accuracy": pixel_accuracy_per_image(logits, labels)}
  loss = cross_entropy
  if dice_weight:
    out["dice_loss"] = losses.soft_dice_loss(logits, labels, smooth=dice_smooth)
    loss = loss + dice_weight * out["dice_loss"]
  out["loss"] = loss
  return out


def get_loss(config):
  weights = tuple(config.class_weights) or None
  if weights is not None and len(weights) != config.num_classes:
    raise errors.ConfigError(
      f"--config.class_weights needs {config.num_classes} values (one per class), "
      f"got {len(weights)}"
    )
  if config.dice_weight < 0 or config.dice_smooth <= 0:
    raise errors.ConfigError("need --config.dice_weight >= 0 and --config.dice_smooth > 0")

  def single(logits, batch):
    return segmentation_loss(
      logits,
      batch["targets"],
      class_weights=weights,
      dice_weight=config.dice_weight,
      dice_smooth=config.dice_smooth,
    )

  def loss(outputs, batch):
    # A deeply supervised model's training outputs: (logits, auxiliary logits...).
    if not isinstance(outputs, tuple):
      return single(outputs, batch)
    logits, *aux_outputs = outputs
    result = single(logits, batch)
    aux = sum(single(a, batch)["loss"] for a in aux_outputs)
    return {**result, "loss": result["loss"] + config.aux_weight * aux, "aux_loss": aux}

  return loss


# ---------------------------------------------------------------- set-level metrics


def confusion_matrix(labels, predictions, num_classes: int):
  """(num_classes, num_classes) int32 pixel counts, rows = true class, columns =
  predicted class, over every pixel of `labels` and `predictions` (same shape).
  `num_classes` must be static under jit."""
  index = labels.reshape(-1).astype(jnp.int32) * num_classes + predictions.reshape(-1)
  return jnp.bincount(index, length=num_classes * num_classes).reshape(num_classes, num_classes)


@functools.partial(jax.jit, static_argnames="num_classes")
def _batch_confusion(logits, labels, num_classes):
  return confusion_matrix(labels, jnp.argmax(logits, axis=-1).astype(jnp.int32), num_classes)


def iou_per_class(confusion) -> np.ndarray:
  """TP / (TP + FP + FN) per class from a confusion matrix; NaN where the class has no
  pixels in truth and none predicted (0 / 0)."""
  confusion = np.asarray(confusion, np.float64)
  true_positives = np.diag(confusion)
  union = confusion.sum(0) + confusion.sum(1) - true_positives
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(union > 0, true_positives / union, np.nan)


def mean_iou(confusion) -> float:
  """The mean IoU over the classes that have one (absent classes are left out)."""
  iou = iou_per_class(confusion)
  return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(confusion) -> float:
  confusion = np.asarray(confusion, np.float64)
  return float(np.trace(confusion) / confusion.sum())


def split_confusion(ctx, split: str) -> np.ndarray:
  """The confusion matrix of the run's model over a split (as the trainer evaluates it:
  `ctx.examples`), batch by batch."""
  num_classes = ctx.config.num_classes
  total = np.zeros((num_classes, num_classes), np.int64)
  for batch, logits in ctx.outputs(ctx.examples(split)):
    total += np.asarray(_batch_confusion(logits, jnp.asarray(batch["targets"]), num_classes))
  return total


def evaluate(ctx, split):
  confusion = split_confusion(ctx, split)
  return {"miou": mean_iou(confusion), "pixel_accuracy": pixel_accuracy(confusion)}


def final_report(ctx, num_examples: int = 8):
  """Per-class IoU on the test split and segmentation.png (the first `num_examples`
  test scenes)."""
  confusion = split_confusion(ctx, "test")
  iou = iou_per_class(confusion)
  names = CLASS_NAMES if ctx.config.num_classes == NUM_CLASSES else None
  names = names or tuple(str(c) for c in range(ctx.config.num_classes))
  # One evaluation-sized batch (a shape already compiled), of which the first are drawn.
  batch, logits = next(ctx.outputs(ctx.dataset.test))
  batch = {k: v[:num_examples] for k, v in batch.items()}
  predicted = np.asarray(jnp.argmax(logits[:num_examples], axis=-1))
  right = (predicted == batch["targets"]).mean(axis=(1, 2))
  plots.plot_segmentation(
    batch["inputs"],
    batch["targets"],
    predicted,
    os.path.join(ctx.workdir, OUTPUTS[0]),
    names,
    titles=[f"pixel accuracy {a:.3f}" for a in right],
  )
  return {
    "plots": list(OUTPUTS),
    "test_iou_per_class": {
      name: (None if np.isnan(v) else round(float(v), 4)) for name, v in zip(names, iou)
    },
    "test_miou": round(mean_iou(confusion), 4),
    "test_confusion_matrix": confusion.tolist(),
  }
