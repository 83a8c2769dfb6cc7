"""Tests for dlx/tasks/detection/ (scenes, yolo, rpn): the mAP of perfect and of shifted
YOLOv1 predictions through the evaluate hook, the YOLOv1 loss hook, the translation
augmentation, and the region-proposal parts: the sampled objectness loss (counts and
value against NumPy), exact deltas decoding back to the objects, proposal recall and the
loss hook's anchor check. The box math they use (YOLOv1's grid encoding and decoding,
anchor assignment and sampling, proposals) is tested in tests/unit/ops/test_boxes.py."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dlx import errors
from dlx.ops import boxes as box_ops
from dlx.tasks.detection import rpn
from dlx.tasks.detection import scenes
from dlx.tasks.detection import yolo
from tests.unit.ops.test_boxes import SIZE
from tests.unit.ops.test_boxes import _scene_boxes


def _perfect_predictions(boxes, labels, valid, num_boxes=2):
  """YOLOv1 outputs that are exactly the targets, each box slot a copy."""
  t = box_ops.encode_yolo_targets(boxes, labels, valid, 6, 10, SIZE)
  return jnp.concatenate([t[..., :5]] * num_boxes + [t[..., 5:]], axis=-1)


def _fake_context(split, predict):
  config = ml_collections.ConfigDict(
    dict(
      model=dict(num_boxes=2, num_classes=10),
      detection=dict(
        score_threshold=0.01, iou_threshold=0.5, max_detections=100, pre_nms_top_k=300
      ),
      eval_batch_size=2,
    )
  )

  def outputs(data, batch_size=None):
    n = len(data["inputs"])
    for start in range(0, n, batch_size or 2):
      batch = {k: v[start : start + (batch_size or 2)] for k, v in data.items()}
      yield batch, predict(batch)

  return types.SimpleNamespace(config=config, examples=lambda name: split, outputs=outputs)


def test_map_of_perfect_predictions_is_1_and_of_shifted_ones_only_at_low_iou():
  boxes, labels, valid = _scene_boxes()
  boxes = np.concatenate([boxes, boxes[:, ::-1]])  # 4 images, the second pair reordered
  labels, valid = np.concatenate([labels, labels[:, ::-1]]), np.concatenate([valid, valid[:, ::-1]])
  split = {
    "inputs": np.zeros((4, 96, 96, 1), np.float32),
    "boxes": boxes,
    "labels": labels,
    "valid": valid,
  }
  perfect = lambda batch: _perfect_predictions(batch["boxes"], batch["labels"], batch["valid"])
  result = yolo.evaluate(_fake_context(split, perfect), "test")
  assert result == {"map50": 1.0, "map": 1.0, "map75": 1.0}

  # Every predicted box one fifth of its width to the right: IoU = 0.8 / 1.2 = 2/3,
  # a hit at 0.5 ... 0.65 only (4 of COCO's 10 thresholds).
  def shifted(batch):
    b = batch["boxes"].copy()
    dx = (b[..., 2] - b[..., 0]) / 5
    b[..., 0] += dx
    b[..., 2] += dx
    return _perfect_predictions(b, batch["labels"], batch["valid"])

  split["boxes"] = split["boxes"].copy()
  split["boxes"][:, :, [0, 2]] = np.minimum(split["boxes"][:, :, [0, 2]], 80)  # room to shift
  result = yolo.evaluate(_fake_context(split, shifted), "test")
  assert result["map50"] == 1.0 and result["map75"] == 0.0
  np.testing.assert_allclose(result["map"], 0.4)


def test_yolo_loss_hook_is_zero_on_perfect_predictions():
  boxes, labels, valid = _scene_boxes()
  config = ml_collections.ConfigDict(
    dict(model=dict(num_boxes=2, num_classes=10), lambda_coord=5.0, lambda_noobj=0.5)
  )
  batch = {
    "inputs": np.zeros((2, 96, 96, 1), np.float32),
    "boxes": boxes,
    "labels": labels,
    "valid": valid,
  }
  loss = yolo.get_loss(config)
  out = loss(_perfect_predictions(boxes, labels, valid, num_boxes=2), batch)
  # The second box slot of each object cell copies the first: it is not responsible,
  # so its confidence of 1 costs lambda_noobj each (4 + 3 objects).
  np.testing.assert_allclose(out["loss"], [0.5 * 4, 0.5 * 3], atol=1e-5)
  np.testing.assert_allclose(out["class_accuracy"], [1.0, 1.0])
  one = _perfect_predictions(boxes, labels, valid, num_boxes=1)
  config.model.num_boxes = 1
  np.testing.assert_allclose(yolo.get_loss(config)(one, batch)["loss"], [0, 0], atol=1e-5)


def test_random_shift_moves_pixels_and_boxes_together_and_keeps_boxes_inside():
  rng = np.random.default_rng(0)
  boxes, labels, valid = _scene_boxes()
  boxes[1, 0] = [10, 10, 30, 30]  # the whole-image box could not move
  images = np.zeros((2, 96, 96, 1), np.float32)
  for i in range(2):
    for (x1, y1, x2, y2), ok in zip(boxes[i].astype(int), valid[i]):
      if ok:
        images[i, y1:y2, x1:x2, 0] += rng.uniform(0.1, 1, (y2 - y1, x2 - x1))
  batch = {"inputs": images, "boxes": boxes, "labels": labels, "valid": valid}
  moved_any = False
  for seed in range(5):
    out = jax.device_get(scenes.random_shift(jax.random.PRNGKey(seed), batch, 6))
    assert np.isclose(out["inputs"].sum(), images.sum(), rtol=1e-5)  # nothing pushed out
    for i in range(2):
      delta = out["boxes"][i][valid[i]] - boxes[i][valid[i]]
      dx, dy = delta[0, 0], delta[0, 1]
      assert abs(dx) <= 6 and abs(dy) <= 6 and dx == int(dx) and dy == int(dy)
      np.testing.assert_array_equal(delta, np.tile([dx, dy, dx, dy], (len(delta), 1)))
      shifted = np.roll(images[i], (int(dy), int(dx)), axis=(0, 1))
      np.testing.assert_array_equal(out["inputs"][i], shifted)
      moved_any |= bool(dx or dy)
      assert (out["boxes"][i][valid[i]] >= 0).all() and (out["boxes"][i][valid[i]] <= 96).all()
  assert moved_any


# ------------------------------------------------------------------ region proposals


def _np_deltas(anchors, boxes):
  aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
  bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
  acx, acy = anchors[:, 0] + aw / 2, anchors[:, 1] + ah / 2
  bcx, bcy = boxes[:, 0] + bw / 2, boxes[:, 1] + bh / 2
  return np.stack([(bcx - acx) / aw, (bcy - acy) / ah, np.log(bw / aw), np.log(bh / ah)], -1)


def test_rpn_image_loss_against_numpy():
  anchors = box_ops.anchors((12, 12), 8, (16.0, 24.0, 36.0), (0.5, 1.0, 2.0))
  objects = np.array([[10, 12, 30, 40], [50, 40, 80, 60], [0, 0, 0, 0]], np.float32)
  valid = np.array([True, True, False])
  rng = np.random.default_rng(0)
  logits = rng.normal(size=len(anchors)).astype(np.float32)
  deltas = rng.normal(scale=0.3, size=(len(anchors), 4)).astype(np.float32)
  key = jax.random.PRNGKey(3)
  terms = jax.device_get(jax.jit(rpn.image_loss)(key, logits, deltas, anchors, objects, valid))
  labels, matched = jax.device_get(box_ops.anchor_labels(anchors, objects, valid))
  pos, neg = jax.device_get(box_ops.sample_anchors(key, labels, 256, 0.5))
  assert terms["positives"] == pos.sum() > 0 and terms["negatives"] == neg.sum()
  assert pos.sum() + neg.sum() == 256
  z = pos.astype(np.float64)
  bce = np.log1p(np.exp(-np.abs(logits))) + np.maximum(logits, 0) - logits * z
  np.testing.assert_allclose(terms["objectness_loss"], bce[pos | neg].sum() / 256, rtol=1e-5)
  r = np.abs(deltas[pos] - _np_deltas(anchors[pos], objects[matched[pos]]))
  beta = 1 / 9
  l1 = np.where(r < beta, 0.5 * r**2 / beta, r - 0.5 * beta).sum()
  np.testing.assert_allclose(terms["box_loss"], l1 / 256, rtol=1e-5)


def _rpn_config():
  return rpn.base_config()


def test_exact_deltas_decode_back_to_the_objects_and_give_full_recall():
  config = _rpn_config()
  boxes, _, valid = _scene_boxes()
  anchors = rpn.make_anchors(config, SIZE)
  logits = np.full((2, len(anchors)), -5.0, np.float32)
  deltas = np.zeros((2, len(anchors), 4), np.float32)
  for i in range(2):
    labels, matched = jax.device_get(box_ops.anchor_labels(anchors, boxes[i], valid[i]))
    positive = labels == 1
    assert positive.any()
    deltas[i, positive] = _np_deltas(anchors[positive], boxes[i][matched[positive]])
    logits[i, positive] = 5.0
  found = jax.device_get(
    box_ops.propose(logits, deltas, jnp.asarray(anchors), image_size=SIZE, num_proposals=50)
  )
  for i in range(2):
    top = found["boxes"][i][found["valid"][i]]
    # NMS leaves one proposal per object among the confident ones, each exact.
    confident = top[: valid[i].sum()]
    got = confident[np.lexsort(confident.T[::-1])]
    true = boxes[i][valid[i]]
    np.testing.assert_allclose(got, true[np.lexsort(true.T[::-1])], atol=1e-3)
  recall = rpn.proposal_recall(found, {"boxes": boxes, "valid": valid}, counts=(1, 50))
  assert recall[50] == 1.0 and recall[1] == 2 / 7


def test_proposal_recall_counts_objects_not_images():
  gt = {
    "boxes": np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], np.float32),
    "valid": np.ones((1, 2), bool),
  }
  proposals = {
    "boxes": np.array([[[0, 0, 10, 14], [50, 50, 60, 60], [21, 21, 30, 30]]], np.float32),
    "valid": np.array([[True, True, False]]),
  }
  # The first proposal covers object 0 (IoU 0.71); the third, a hit, is not valid.
  assert rpn.proposal_recall(proposals, gt, counts=(1, 2, 3)) == {1: 0.5, 2: 0.5, 3: 0.5}


def test_rpn_loss_hook_rejects_a_model_with_other_anchors():
  config = _rpn_config()
  loss = rpn.get_loss(config)
  boxes, _, valid = _scene_boxes()
  batch = {"inputs": np.zeros((2, 96, 96, 1), np.float32), "boxes": boxes, "valid": valid}
  outputs = {"objectness": jnp.zeros((2, 12, 12, 3)), "deltas": jnp.zeros((2, 12, 12, 3, 4))}
  with pytest.raises(errors.ConfigError, match="anchors"):
    loss(outputs, batch)
  outputs = {"objectness": jnp.zeros((2, 12, 12, 9)), "deltas": jnp.zeros((2, 12, 12, 9, 4))}
  terms = jax.device_get(loss(outputs, batch))
  # Logits 0 everywhere: the objectness loss is log 2 whatever is sampled.
  np.testing.assert_allclose(terms["objectness_loss"], np.log(2), rtol=1e-5)
  assert (terms["positives"] + terms["negatives"] == 256).all()
