"""Region proposals on digit scenes, the first stage of Faster R-CNN
(docs/curriculum.md#f11); the data are `scenes`', the anchor assignment, sampling and
proposals `dlx.ops.boxes`' (`anchor_labels`, `sample_anchors`, `propose`).

  base_config   the scenes' config plus the anchors, IoU thresholds, sample size and
                proposal settings
  get_augment   the translation augmentation, plus a key per image for the sampling
  get_loss      binary cross-entropy over the sampled anchors (up to half positive:
                IoU >= 0.7 or an object's best; negative < 0.3) + smooth L1 on the
                positives' box deltas
  evaluate      recall at IoU 0.5 of the top 10, 50 and 100 proposals
  final_report  proposals.png (each test scene's best proposals)
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dlx import data
from dlx import errors
from dlx import losses
from dlx.ops import boxes as box_ops
from dlx.ops import detection_metrics
from dlx.tasks.detection import scenes
from dlx.viz import scene_figures

OUTPUTS = ("proposals.png",)
RECALL_AT = (10, 50, 100)  # proposal counts `evaluate` reports recall for
_EVAL_SAMPLE_SEED = 0  # anchor sampling in the evaluation loss (fixed: a comparable number)


def base_config():
  config = scenes.base_config()
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


def make_anchors(config, image_size):
  """The (A_total, 4) anchors of config.anchors on an image of `image_size` (h, w)."""
  a = config.anchors
  height, width = (int(v) for v in image_size)
  if height % a.stride or width % a.stride:
    raise errors.ConfigError(
      f"--config.anchors.stride={a.stride} must divide the image size {height}x{width}"
    )
  return box_ops.anchors((height // a.stride, width // a.stride), a.stride, a.scales, a.ratios)


def image_loss(
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
  labels, matched = box_ops.anchor_labels(anchors, boxes, valid, positive_iou, negative_iou)
  positive, negative = box_ops.sample_anchors(rng, labels, num_samples, positive_fraction)
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


def flatten_outputs(outputs):
  """The RPN's {'objectness' (N, H, W, A), 'deltas' (N, H, W, A, 4)} in anchor order
  (cells row-major, then anchors, as `box_ops.anchors`): (N, H*W*A), (N, H*W*A, 4)."""
  logits, deltas = outputs["objectness"], outputs["deltas"]
  return logits.reshape(logits.shape[0], -1), deltas.reshape(deltas.shape[0], -1, 4)


def get_augment(config):
  """The translation augmentation, plus a key per image for the anchor sampling (the
  loss sees no rng; this hook runs inside the step with the step's key)."""
  shift = scenes.get_augment(config)

  def augment(rng, batch):
    shift_rng, sample_rng = jax.random.split(rng)
    if shift is not None:
      batch = shift(shift_rng, batch)
    keys = jax.random.split(sample_rng, batch["inputs"].shape[0])
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
      keys = jax.random.key_data(keys)
    return {**batch, "sample_keys": keys}

  return augment


def get_loss(config):
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
    logits, deltas = flatten_outputs(outputs)
    anchors = jnp.asarray(make_anchors(config, batch["inputs"].shape[1:3]))
    if logits.shape[1] != anchors.shape[0]:
      raise errors.ConfigError(
        f"the model predicts for {logits.shape[1]} anchors, config.anchors makes "
        f"{anchors.shape[0]}: its stride or its number of anchors per cell differ"
      )
    keys = batch.get("sample_keys")
    if keys is None:
      keys = jax.random.split(jax.random.PRNGKey(_EVAL_SAMPLE_SEED), logits.shape[0])
    terms = jax.vmap(lambda k, lg, d, b, v: image_loss(k, lg, d, anchors, b, v, **kwargs))(
      keys, logits, deltas, batch["boxes"], batch["valid"]
    )
    terms["loss"] = terms["objectness_loss"] + config.box_weight * terms["box_loss"]
    return terms

  return loss


def proposal_recall(proposals, ground_truths, counts=RECALL_AT, iou: float = 0.5):
  """{count: share of the objects covered (IoU >= iou) by one of an image's first
  `count` valid proposals}, over all images; NumPy, padded arrays as `box_ops.propose`
  gives ('boxes', 'valid') and ground truths ('boxes', 'valid')."""
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
    logits, deltas = flatten_outputs(outputs)
    found = box_ops.propose(
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


def evaluate(ctx, split):
  split_data = ctx.examples(split)
  recall = proposal_recall(split_proposals(ctx, split_data), split_data)
  return {f"recall_at_{c}": r for c, r in recall.items()}


def final_report(ctx, num_examples: int = 16, num_drawn: int = 5):
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
  scene_figures.draw_scenes(shown, os.path.join(ctx.workdir, OUTPUTS[0]), predictions=drawn)
  return {"plots": list(OUTPUTS)}
