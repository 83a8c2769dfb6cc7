"""Tests for dlx/tasks/detection.py: YOLOv1 target encoding (hand-computed values and a
round trip back to the boxes), the decoder and class-wise NMS on a hand-built
prediction, the mAP of perfect and of shifted predictions through the evaluate hook,
the translation augmentation, and the region-proposal parts: anchor assignment on a
hand-built case, the sampled objectness loss (counts and value against NumPy), and
exact deltas decoding back to the objects."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dlx import errors
from dlx.ops import boxes as box_ops
from dlx.tasks import detection

SIZE = (96, 96)


def _scene_boxes():
  """Two images of hand-placed boxes, each centre in its own cell of a 6x6 grid (16-px
  cells); the second image has a padding slot."""
  boxes = np.array(
    [
      [[20, 30, 40, 60], [2, 3, 16, 31], [60, 70, 95, 96], [50, 5, 54, 30]],
      [[0, 0, 96, 96], [33, 17, 47, 45], [70, 40, 90, 52], [0, 0, 0, 0]],
    ],
    np.float32,
  )
  labels = np.array([[3, 0, 9, 1], [5, 7, 2, 0]], np.int32)
  valid = np.array([[True] * 4, [True, True, True, False]])
  return boxes, labels, valid


def test_encode_targets_hand_computed():
  boxes, labels, valid = _scene_boxes()
  t = np.asarray(detection.encode_targets(boxes, labels, valid, 6, 10, SIZE))
  assert t.shape == (2, 6, 6, 15)
  # Box (20, 30, 40, 60): centre (30, 45) px = (1.875, 2.8125) cells -> row 2, col 1.
  np.testing.assert_allclose(t[0, 2, 1, :5], [0.875, 0.8125, 20 / 96, 30 / 96, 1.0], atol=1e-6)
  assert t[0, 2, 1, 5 + 3] == 1.0 and t[0, 2, 1, 5:].sum() == 1.0
  # The whole-image box: centre (48, 48) -> cell (3, 3) at offset 0, size 1.
  np.testing.assert_allclose(t[1, 3, 3, : 6 + 5], [0, 0, 1, 1, 1] + [0] * 5 + [1], atol=1e-6)
  assert t[0, ..., 4].sum() == 4 and t[1, ..., 4].sum() == 3  # padding is no object
  empty = t[..., 4] == 0
  assert not t[empty].any()


def test_encode_targets_round_trips_to_the_boxes():
  boxes, labels, valid = _scene_boxes()
  targets = detection.encode_targets(boxes, labels, valid, 6, 10, SIZE)
  # Targets have the layout of a one-box prediction: decode them as one.
  decoded, confidence, classes = detection.decode_predictions(targets, 1, 10, SIZE)
  for i in range(2):
    found = np.asarray(confidence[i]) == 1.0
    got = np.asarray(decoded[i])[found]
    got_labels = np.asarray(classes[i]).argmax(-1)[found]
    true = boxes[i][valid[i]]
    order = np.lexsort(true.T[::-1])
    got_order = np.lexsort(got.T[::-1])
    np.testing.assert_allclose(got[got_order], true[order], atol=1e-4)
    np.testing.assert_array_equal(got_labels[got_order], labels[i][valid[i]][order])


def test_encode_targets_keeps_the_larger_of_two_boxes_in_one_cell():
  boxes = np.array([[[16, 16, 30, 30], [10, 10, 38, 36], [17, 18, 29, 30]]], np.float32)
  t = np.asarray(
    detection.encode_targets(boxes, np.array([[1, 2, 3]]), np.ones((1, 3), bool), 6, 10, SIZE)
  )
  assert t[..., 4].sum() == 1
  np.testing.assert_allclose(t[0, 1, 1, 2:4], [28 / 96, 26 / 96], atol=1e-6)
  assert t[0, 1, 1, 5:].argmax() == 2


def _cell(x, y, w, h, conf):
  return [x, y, w, h, conf]


def test_decoder_and_classwise_nms_on_a_hand_built_prediction():
  # S = 2 on a 64x64 image (32-px cells), B = 2, C = 3.
  s, b, c, size = 2, 2, 3, (64, 64)
  pred = np.zeros((1, s, s, b * 5 + c), np.float32)
  # Cell (0, 0): two boxes on the same object, class 0 certain. Box 0: centre (16, 16),
  # 20x20 -> (6, 6, 26, 26); box 1: centre (17, 16), 20x20 -> IoU 19/21 with box 0.
  pred[0, 0, 0] = (
    _cell(0.5, 0.5, 20 / 64, 20 / 64, 0.9) + _cell(17 / 32, 0.5, 20 / 64, 20 / 64, 0.8) + [1, 0, 0]
  )
  # Cell (1, 1): one box of class 1 or 2 (half each), centre (48, 48), 16x32; the other
  # box has confidence 0.
  pred[0, 1, 1] = _cell(0.5, 0.5, 0.25, 0.5, 0.6) + _cell(0.5, 0.5, 0.25, 0.5, 0.0) + [0, 0.5, 0.5]
  # Cell (0, 1): a box overflowing the image on the right, class 2 (clipped at 64).
  pred[0, 0, 1] = _cell(0.75, 0.5, 0.5, 0.25, 0.5) + _cell(0, 0, 0, 0, -0.3) + [0, 0, 1.2]

  boxes, confidence, classes = detection.decode_predictions(pred, b, c, size)
  assert boxes.shape == (1, 8, 4) and confidence.shape == (1, 8) and classes.shape == (1, 8, 3)
  np.testing.assert_allclose(boxes[0, 0], [6, 6, 26, 26], atol=1e-5)
  np.testing.assert_allclose(boxes[0, 1], [7, 6, 27, 26], atol=1e-5)
  np.testing.assert_allclose(boxes[0, 6], [40, 32, 56, 64], atol=1e-5)  # cell (1,1), box 0
  np.testing.assert_allclose(boxes[0, 2], [40, 8, 72, 24], atol=1e-5)  # cell (0,1), box 0

  found = jax.device_get(
    detection.detect(pred, num_boxes=b, num_classes=c, image_size=size, max_detections=10)
  )
  kept = found["valid"][0]
  got = sorted(
    (round(float(sc), 4), int(cl), tuple(np.round(bx, 3)))
    for bx, sc, cl in zip(
      found["boxes"][0][kept], found["scores"][0][kept], found["classes"][0][kept]
    )
  )
  expected = sorted(
    [
      (0.9, 0, (6.0, 6.0, 26.0, 26.0)),  # box 1 (0.8, same class, IoU 0.9) is suppressed
      (0.3, 1, (40.0, 32.0, 56.0, 64.0)),  # one box, two classes: both kept
      (0.3, 2, (40.0, 32.0, 56.0, 64.0)),
      (0.5, 2, (40.0, 8.0, 64.0, 24.0)),  # class score 1.2 clipped to 1; box clipped
    ]
  )
  assert got == expected
  assert list(found["scores"][0][kept]) == sorted(found["scores"][0][kept], reverse=True)


def _perfect_predictions(boxes, labels, valid, num_boxes=2):
  """YOLOv1 outputs that are exactly the targets, each box slot a copy."""
  t = detection.encode_targets(boxes, labels, valid, 6, 10, SIZE)
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
  result = detection.evaluate(_fake_context(split, perfect), "test")
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
  result = detection.evaluate(_fake_context(split, shifted), "test")
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
  loss = detection.get_loss(config)
  out = loss(_perfect_predictions(boxes, labels, valid, num_boxes=2), batch)
  # The second box slot of each object cell copies the first: it is not responsible,
  # so its confidence of 1 costs lambda_noobj each (4 + 3 objects).
  np.testing.assert_allclose(out["loss"], [0.5 * 4, 0.5 * 3], atol=1e-5)
  np.testing.assert_allclose(out["class_accuracy"], [1.0, 1.0])
  one = _perfect_predictions(boxes, labels, valid, num_boxes=1)
  config.model.num_boxes = 1
  np.testing.assert_allclose(detection.get_loss(config)(one, batch)["loss"], [0, 0], atol=1e-5)


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
    out = jax.device_get(detection.random_shift(jax.random.PRNGKey(seed), batch, 6))
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


def test_anchor_labels_hand_built():
  objects = np.array([[0, 0, 10, 10], [50, 50, 60, 80], [5, 5, 15, 15]], np.float32)
  valid = np.array([True, True, False])  # the third is padding
  anchors = np.array(
    [
      [0, 0, 10, 10],  # IoU 1 with object 0: positive
      [0, 0, 10, 12],  # IoU 100 / 120 = 0.83: positive
      [0, 0, 10, 20],  # IoU 0.5: ignored
      [5, 5, 15, 15],  # IoU 25 / 175 = 0.14 (1 with the padding): negative
      [70, 0, 90, 20],  # no overlap: negative
      [50, 50, 70, 70],  # object 1: IoU 200 / 500 = 0.4, its best anchor: positive
      [40, 40, 60, 60],  # object 1: IoU 100 / 600 = 0.17: negative
      [50, 52, 70, 72],  # object 1: IoU 200 / 500, tied with its best: positive too
      [50, 50, 70, 66],  # object 1: IoU 160 / 460 = 0.35: ignored
    ],
    np.float32,
  )
  labels, matched = jax.device_get(detection.anchor_labels(anchors, objects, valid))
  np.testing.assert_array_equal(labels, [1, 1, -1, 0, 0, 1, 0, 1, -1])
  np.testing.assert_array_equal(matched[labels == 1], [0, 0, 1, 1])
  # No object at all: every anchor is negative.
  labels, _ = detection.anchor_labels(anchors, objects, np.zeros(3, bool))
  np.testing.assert_array_equal(labels, np.zeros(9))


@pytest.mark.parametrize(
  "num_pos,num_neg,want_pos,want_neg",
  [(10, 1000, 10, 246), (200, 1000, 128, 128), (5, 20, 5, 20), (0, 300, 0, 256)],
)
def test_sample_anchors_counts(num_pos, num_neg, want_pos, want_neg):
  labels = np.full(1500, -1, np.int32)
  order = np.random.default_rng(num_pos).permutation(1500)
  labels[order[:num_pos]] = 1
  labels[order[num_pos : num_pos + num_neg]] = 0
  sample = jax.jit(detection.sample_anchors, static_argnums=(2, 3))
  pos, neg = jax.device_get(sample(jax.random.PRNGKey(0), labels, 256, 0.5))
  assert pos.sum() == want_pos and neg.sum() == want_neg
  assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
  pos2, neg2 = sample(jax.random.PRNGKey(1), labels, 256, 0.5)
  if num_pos > want_pos or num_neg > want_neg:  # a choice to make: another key, another one
    assert (np.asarray(pos2) != pos).any() or (np.asarray(neg2) != neg).any()


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
  terms = jax.device_get(
    jax.jit(detection.rpn_image_loss)(key, logits, deltas, anchors, objects, valid)
  )
  labels, matched = jax.device_get(detection.anchor_labels(anchors, objects, valid))
  pos, neg = jax.device_get(detection.sample_anchors(key, labels, 256, 0.5))
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
  return detection.rpn_config()


def test_exact_deltas_decode_back_to_the_objects_and_give_full_recall():
  config = _rpn_config()
  boxes, _, valid = _scene_boxes()
  anchors = detection.make_anchors(config, SIZE)
  logits = np.full((2, len(anchors)), -5.0, np.float32)
  deltas = np.zeros((2, len(anchors), 4), np.float32)
  for i in range(2):
    labels, matched = jax.device_get(detection.anchor_labels(anchors, boxes[i], valid[i]))
    positive = labels == 1
    assert positive.any()
    deltas[i, positive] = _np_deltas(anchors[positive], boxes[i][matched[positive]])
    logits[i, positive] = 5.0
  found = jax.device_get(
    detection.propose(logits, deltas, jnp.asarray(anchors), image_size=SIZE, num_proposals=50)
  )
  for i in range(2):
    top = found["boxes"][i][found["valid"][i]]
    # NMS leaves one proposal per object among the confident ones, each exact.
    confident = top[: valid[i].sum()]
    got = confident[np.lexsort(confident.T[::-1])]
    true = boxes[i][valid[i]]
    np.testing.assert_allclose(got, true[np.lexsort(true.T[::-1])], atol=1e-3)
  recall = detection.proposal_recall(found, {"boxes": boxes, "valid": valid}, counts=(1, 50))
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
  assert detection.proposal_recall(proposals, gt, counts=(1, 2, 3)) == {1: 0.5, 2: 0.5, 3: 0.5}


def test_rpn_loss_hook_rejects_a_model_with_other_anchors():
  config = _rpn_config()
  loss = detection.get_rpn_loss(config)
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
