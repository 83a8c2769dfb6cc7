"""Tests for dlx/ops/boxes.py: hand-computed cases, and parity with torchvision's outputs
stored in tests/unit/ops/fixtures/boxes.npz (made by fixtures/make_box_fixtures.py); the
detectors' box math (YOLOv1 target encoding with a round trip back to the boxes, the
decoder and class-wise NMS on a hand-built prediction, anchor assignment and sampling) on
hand-built cases."""

import functools
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx.ops import boxes as B

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
NMS_CASES = range(4)


@pytest.fixture(scope="module")
def tv():
  """torchvision's reference outputs."""
  with np.load(FIXTURES / "boxes.npz") as f:
    return dict(f)


def _nhwc(x):
  return np.transpose(x, (0, 2, 3, 1))


# IoU.


def test_box_iou_hand_computed():
  a = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
  b = jnp.array([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]])
  iou = np.asarray(B.box_iou(a, b))
  # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7.
  np.testing.assert_allclose(iou[0], [1 / 7, 1 / 4, 0.0], rtol=1e-6)
  np.testing.assert_allclose(iou[1], [0.0, 1.0, 0.0], rtol=1e-6)
  np.testing.assert_array_equal(iou[2], [0.0, 0.0, 0.0])  # a zero-area box
  np.testing.assert_allclose(B.box_area(a), [4.0, 1.0, 0.0])
  giou = np.asarray(B.generalized_box_iou(a, b))
  # The enclosing box of the first pair is [0,0,3,3] (area 9), 2 of it outside the union.
  np.testing.assert_allclose(giou[0, 0], 1 / 7 - 2 / 9, rtol=1e-6)
  # Disjoint unit boxes [0,0,1,1] and [5,5,6,6]: union 2 inside an enclosing area of 36.
  np.testing.assert_allclose(giou[1, 2], -34 / 36, rtol=1e-6)
  assert giou[1, 1] == 1.0


def test_box_iou_matches_torchvision(tv):
  iou = np.asarray(jax.jit(B.box_iou)(tv["iou_boxes1"], tv["iou_boxes2"]))
  ref = tv["box_iou"]
  finite = np.isfinite(ref)
  assert (~finite).sum() >= 3  # the zero-area pairs torchvision divides 0 by 0 for
  np.testing.assert_allclose(iou[finite], ref[finite], rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(iou[~finite], 0.0)


def test_generalized_box_iou_matches_torchvision(tv):
  giou = np.asarray(jax.jit(B.generalized_box_iou)(tv["iou_boxes1"], tv["iou_boxes2"]))
  ref = tv["generalized_box_iou"]
  finite = np.isfinite(ref)
  np.testing.assert_allclose(giou[finite], ref[finite], rtol=1e-6, atol=1e-6)
  # Where torchvision has NaN (a zero union) ours is finite: -1 for two distinct points.
  assert np.isfinite(giou).all() and giou.min() >= -1.0 and giou.max() <= 1.0


# NMS.


@functools.partial(jax.jit, static_argnames="max_output")
def _nms(boxes, scores, threshold, max_output, valid=None):
  return B.nms(boxes, scores, threshold, max_output, valid=valid)


def _kept(result):
  indices, valid = (np.asarray(x) for x in result)
  assert not valid[np.argmin(valid) :].any() or valid.all(), "valid slots must come first"
  return indices[valid]


def test_nms_hand_built():
  boxes = jnp.array(
    [
      [0.0, 0.0, 10.0, 10.0],  # 0: score .9
      [1.0, 1.0, 11.0, 11.0],  # 1: IoU 81/119 with 0: suppressed
      [20.0, 20.0, 30.0, 30.0],  # 2: alone
      [0.0, 0.0, 10.0, 10.0],  # 3: a duplicate of 0 with the same score: 0 comes first
      [5.0, 5.0, 5.0, 5.0],  # 4: zero area, best score: kept, suppresses nothing
    ]
  )
  scores = jnp.array([0.9, 0.8, 0.7, 0.9, 0.95])
  indices, valid = _nms(boxes, scores, 0.5, max_output=5)
  np.testing.assert_array_equal(indices, [4, 0, 2, 0, 0])
  np.testing.assert_array_equal(valid, [True, True, True, False, False])
  # IoU(0, 1) = 0.68: above 0.7 nothing but the duplicate goes.
  np.testing.assert_array_equal(_kept(_nms(boxes, scores, 0.7, max_output=5)), [4, 0, 1, 2])
  # max_output cuts the list after the best boxes.
  np.testing.assert_array_equal(_kept(_nms(boxes, scores, 0.5, max_output=2)), [4, 0])


def test_nms_suppresses_only_strictly_above_the_threshold():
  boxes = jnp.array([[0.0, 0.0, 4.0, 2.0], [0.0, 0.0, 4.0, 1.0]])  # IoU exactly 0.5
  scores = jnp.array([1.0, 0.5])
  np.testing.assert_array_equal(_kept(_nms(boxes, scores, 0.5, max_output=2)), [0, 1])
  np.testing.assert_array_equal(_kept(_nms(boxes, scores, 0.49, max_output=2)), [0])


def test_nms_invalid_boxes_are_never_kept_and_suppress_nothing():
  boxes = jnp.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
  scores = jnp.array([0.5, 0.9, 0.1])
  valid = jnp.array([True, False, True])
  np.testing.assert_array_equal(_kept(_nms(boxes, scores, 0.5, 3, valid)), [0, 2])


def _padded_nms_cases(tv):
  """The fixture's NMS cases stacked and padded to one size: padding is invalid."""
  size = max(len(tv[f"nms{c}_boxes"]) for c in NMS_CASES)
  stack = {"boxes": [], "scores": [], "classes": [], "valid": [], "threshold": []}
  for c in NMS_CASES:
    n = len(tv[f"nms{c}_boxes"])
    stack["boxes"].append(np.pad(tv[f"nms{c}_boxes"], ((0, size - n), (0, 0))))
    stack["scores"].append(np.pad(tv[f"nms{c}_scores"], (0, size - n)))
    stack["classes"].append(np.pad(tv[f"nms{c}_classes"], (0, size - n)))
    stack["valid"].append(np.arange(size) < n)
    stack["threshold"].append(tv[f"nms{c}_threshold"])
  return {k: np.stack(v) for k, v in stack.items()}, size


@pytest.mark.parametrize("batched", [False, True], ids=["nms", "batched_nms"])
def test_nms_under_jit_and_vmap_matches_torchvision(tv, batched):
  cases, size = _padded_nms_cases(tv)

  def one(boxes, scores, classes, valid, threshold):
    if batched:
      return B.batched_nms(boxes, scores, classes, threshold, size, valid=valid)
    return B.nms(boxes, scores, threshold, size, valid=valid)

  fn = jax.jit(jax.vmap(one))
  indices, ok = fn(*(cases[k] for k in ("boxes", "scores", "classes", "valid", "threshold")))
  assert indices.shape == ok.shape == (len(NMS_CASES), size)
  for c in NMS_CASES:
    want = tv[f"nms{c}_batched_keep" if batched else f"nms{c}_keep"]
    assert len(want) < cases["valid"][c].sum()  # the case suppresses something
    np.testing.assert_array_equal(_kept((indices[c], ok[c])), want, err_msg=f"case {c}")


# Encodings.


def test_center_corner_conversions():
  corners = jnp.array([[1.0, 2.0, 5.0, 10.0]])
  np.testing.assert_allclose(B.corners_to_center(corners), [[3.0, 6.0, 4.0, 8.0]])
  np.testing.assert_allclose(B.center_to_corners(B.corners_to_center(corners)), corners)


def test_encode_decode_hand_computed():
  ref = jnp.array([0.0, 0.0, 10.0, 20.0])
  box = jnp.array([5.0, 5.0, 25.0, 25.0])  # centre moved by (10, 5), width doubled
  np.testing.assert_allclose(
    B.encode_deltas(ref, box), [1.0, 0.25, math.log(2.0), 0.0], rtol=1e-6, atol=1e-7
  )
  np.testing.assert_allclose(
    B.encode_deltas(ref, box, (10.0, 10.0, 5.0, 5.0)),
    [10.0, 2.5, 5 * math.log(2.0), 0.0],
    rtol=1e-6,
    atol=1e-6,
  )
  np.testing.assert_allclose(B.decode_deltas(ref, B.encode_deltas(ref, box)), box, atol=1e-5)
  # A huge log-width is capped at log(1000 / 16): the width grows 62.5-fold at most.
  wide = B.decode_deltas(ref, jnp.array([0.0, 0.0, 10.0, 0.0]))
  np.testing.assert_allclose(wide[2] - wide[0], 625.0, rtol=1e-5)


@pytest.mark.parametrize(
  "name,weights", [("w1", (1.0, 1.0, 1.0, 1.0)), ("w10", (10.0, 10.0, 5.0, 5.0))]
)
def test_box_coder_matches_torchvision(tv, name, weights):
  anchors, targets = tv["coder_anchors"], tv["coder_targets"]
  encode = jax.jit(lambda a, t: B.encode_deltas(a, t, weights))
  decode = jax.jit(lambda a, d: B.decode_deltas(a, d, weights))
  np.testing.assert_allclose(encode(anchors, targets), tv[f"coder_{name}_encoded"], atol=2e-6)
  np.testing.assert_allclose(
    decode(anchors, tv["coder_deltas"]), tv[f"coder_{name}_decoded"], rtol=1e-6, atol=1e-4
  )
  assert (tv["coder_deltas"][:5, 2:] > B.BBOX_XFORM_CLIP).all()  # the clip is exercised
  np.testing.assert_allclose(decode(anchors, encode(anchors, targets)), targets, atol=1e-4)


# Anchors.


def test_anchors_count_centres_and_shapes():
  scales, ratios = (16.0, 32.0, 64.0), (0.5, 1.0, 2.0)
  a = np.asarray(B.anchors((3, 4), 8, scales, ratios)).reshape(3, 4, 9, 4)
  assert a.shape == (3, 4, 9, 4)
  cx, cy = (a[..., 0] + a[..., 2]) / 2, (a[..., 1] + a[..., 3]) / 2
  np.testing.assert_allclose(
    cx, np.broadcast_to(((np.arange(4) + 0.5) * 8)[None, :, None], cx.shape)
  )
  np.testing.assert_allclose(
    cy, np.broadcast_to(((np.arange(3) + 0.5) * 8)[:, None, None], cy.shape)
  )
  w, h = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
  # Ratio-major, scale-minor: anchor k * 3 + m has ratio k and scale m.
  want_area = np.tile(np.square(scales), 3)
  want_ratio = np.repeat(ratios, 3)
  np.testing.assert_allclose(w * h, np.broadcast_to(want_area, w.shape), rtol=1e-5)
  np.testing.assert_allclose(h / w, np.broadcast_to(want_ratio, w.shape), rtol=1e-5)
  # A non-square stride and offset 0 put the first centre on the origin.
  b = np.asarray(B.anchors((2, 2), (4, 8), (10.0,), (1.0,), offset=0.0))
  np.testing.assert_allclose(b, [[-5, -5, 5, 5], [3, -5, 13, 5], [-5, -1, 5, 9], [3, -1, 13, 9]])


@pytest.mark.parametrize("name,sizes", [("small", (16, 32, 64)), ("default", (128, 256, 512))])
def test_anchors_match_torchvision_anchor_generator(tv, name, sizes):
  a = B.anchors((5, 7), 8, sizes, (0.5, 1.0, 2.0), offset=0.0, round_to_int=True)
  np.testing.assert_array_equal(a, tv[f"anchors_{name}"])


# RoI pool and RoI align.


def test_roi_pool_hand_computed():
  features = jnp.arange(36.0).reshape(1, 6, 6, 1)  # value = 6 * row + column
  rois = jnp.array([[0.0, 0.0, 0.0, 3.0, 3.0], [0.0, 2.0, 2.0, 5.0, 5.0]])
  out = np.asarray(B.roi_pool(features, rois, 2))[..., 0]
  # Box [0, 3] covers cells 0..3 (4 cells, end inclusive): bins {0, 1} and {2, 3}; a bin's
  # max is its bottom-right cell.
  np.testing.assert_array_equal(out[0], [[7.0, 9.0], [19.0, 21.0]])
  np.testing.assert_array_equal(out[1], [[21.0, 23.0], [33.0, 35.0]])
  # spatial_scale maps image pixels to cells: the same cells from a box twice as large.
  np.testing.assert_array_equal(
    B.roi_pool(features, rois * jnp.array([1, 2, 2, 2, 2]), 2, 0.5), out[..., None]
  )


@pytest.mark.parametrize("size", [(3, 3), (2, 4)])
def test_roi_pool_matches_torchvision(tv, size):
  out = np.transpose(
    B.roi_pool(_nhwc(tv["roi_features"]), tv["roi_boxes"], size, 0.5), (0, 3, 1, 2)
  )
  np.testing.assert_array_equal(out, tv[f"roi_pool_{size[0]}x{size[1]}"])


def test_roi_align_hand_computed():
  # Features equal to the column index: bilinear sampling of a linear function is exact,
  # so each bin averages to its centre's x, shifted by half a cell when aligned.
  features = jnp.broadcast_to(jnp.arange(8.0)[None, :, None], (8, 8, 1))[None]
  rois = jnp.array([[0.0, 2.0, 2.0, 6.0, 6.0]])
  aligned = np.asarray(B.roi_align(features, rois, 2, 1.0, 2, aligned=True))[0, ..., 0]
  np.testing.assert_allclose(aligned, [[2.5, 4.5], [2.5, 4.5]], rtol=1e-6)
  legacy = np.asarray(B.roi_align(features, rois, 2, 1.0, 2, aligned=False))[0, ..., 0]
  np.testing.assert_allclose(legacy, [[3.0, 5.0], [3.0, 5.0]], rtol=1e-6)
  # A constant map pools to the constant anywhere inside it.
  ones = B.roi_align(jnp.ones((1, 8, 8, 3)), rois, (3, 2), 1.0, -1, aligned=True)
  np.testing.assert_allclose(ones, 1.0, rtol=1e-6)


# Exact sampling grids of 1, 2 and 3 points and the adaptive grid (-1), on square and
# non-square outputs (the fixture holds every combination; these cover each code path).
ALIGN_CASES = [
  ((3, 3), 1, False),
  ((3, 3), 2, True),
  ((3, 3), 3, False),
  ((3, 3), -1, False),
  ((3, 3), -1, True),
  ((2, 4), 2, False),
  ((2, 4), 1, True),
  ((2, 4), -1, True),
]


@pytest.mark.parametrize("size,ratio,aligned", ALIGN_CASES)
def test_roi_align_matches_torchvision(tv, size, ratio, aligned):
  features, rois = _nhwc(tv["roi_features"]), tv["roi_boxes"]

  def align(**kw):
    out = B.roi_align(features, rois, size, 0.5, ratio, aligned, **kw)
    return np.transpose(out, (0, 3, 1, 2))

  ref = tv[f"roi_align_{size[0]}x{size[1]}_{'a' if aligned else 'l'}_{ratio}"]
  out = align()
  if ratio > 0:
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    return
  # Adaptive sampling: box 2 is taller than the map (17 cells for 12), so its grid is
  # capped at ceil(12 / out_h) rows; every other box matches, and so does box 2 once
  # max_sampling_ratio allows torchvision's ceil(17 / out_h).
  inside = np.arange(len(rois)) != 2
  np.testing.assert_allclose(out[inside], ref[inside], rtol=1e-5, atol=1e-6)
  assert np.abs(out[2] - ref[2]).max() > 1e-3
  np.testing.assert_allclose(align(max_sampling_ratio=9), ref, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_config_errors():
  with pytest.raises(errors.ConfigError, match="max_output"):
    B.nms(jnp.zeros((3, 4)), jnp.zeros(3), 0.5, 0)
  with pytest.raises(errors.ConfigError, match="scores"):
    B.nms(jnp.zeros((3, 4)), jnp.zeros(4), 0.5, 2)
  with pytest.raises(errors.ConfigError, match=r"\(K, 5\)"):
    B.roi_align(jnp.zeros((1, 4, 4, 1)), jnp.zeros((2, 4)), 2)
  with pytest.raises(errors.ConfigError, match="channels-last"):
    B.roi_pool(jnp.zeros((4, 4, 1)), jnp.zeros((2, 5)), 2)
  with pytest.raises(errors.ConfigError, match="boxes1"):
    B.box_iou(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


# YOLOv1's grid encoding, decoding and detections; anchor assignment and sampling
# (the digit-scene detectors of dlx/tasks/detection/).

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


def test_encode_yolo_targets_hand_computed():
  boxes, labels, valid = _scene_boxes()
  t = np.asarray(B.encode_yolo_targets(boxes, labels, valid, 6, 10, SIZE))
  assert t.shape == (2, 6, 6, 15)
  # Box (20, 30, 40, 60): centre (30, 45) px = (1.875, 2.8125) cells -> row 2, col 1.
  np.testing.assert_allclose(t[0, 2, 1, :5], [0.875, 0.8125, 20 / 96, 30 / 96, 1.0], atol=1e-6)
  assert t[0, 2, 1, 5 + 3] == 1.0 and t[0, 2, 1, 5:].sum() == 1.0
  # The whole-image box: centre (48, 48) -> cell (3, 3) at offset 0, size 1.
  np.testing.assert_allclose(t[1, 3, 3, : 6 + 5], [0, 0, 1, 1, 1] + [0] * 5 + [1], atol=1e-6)
  assert t[0, ..., 4].sum() == 4 and t[1, ..., 4].sum() == 3  # padding is no object
  empty = t[..., 4] == 0
  assert not t[empty].any()


def test_encode_yolo_targets_round_trips_to_the_boxes():
  boxes, labels, valid = _scene_boxes()
  targets = B.encode_yolo_targets(boxes, labels, valid, 6, 10, SIZE)
  # Targets have the layout of a one-box prediction: decode them as one.
  decoded, confidence, classes = B.decode_yolo_predictions(targets, 1, 10, SIZE)
  for i in range(2):
    found = np.asarray(confidence[i]) == 1.0
    got = np.asarray(decoded[i])[found]
    got_labels = np.asarray(classes[i]).argmax(-1)[found]
    true = boxes[i][valid[i]]
    order = np.lexsort(true.T[::-1])
    got_order = np.lexsort(got.T[::-1])
    np.testing.assert_allclose(got[got_order], true[order], atol=1e-4)
    np.testing.assert_array_equal(got_labels[got_order], labels[i][valid[i]][order])


def test_encode_yolo_targets_keeps_the_larger_of_two_boxes_in_one_cell():
  boxes = np.array([[[16, 16, 30, 30], [10, 10, 38, 36], [17, 18, 29, 30]]], np.float32)
  t = np.asarray(
    B.encode_yolo_targets(boxes, np.array([[1, 2, 3]]), np.ones((1, 3), bool), 6, 10, SIZE)
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

  boxes, confidence, classes = B.decode_yolo_predictions(pred, b, c, size)
  assert boxes.shape == (1, 8, 4) and confidence.shape == (1, 8) and classes.shape == (1, 8, 3)
  np.testing.assert_allclose(boxes[0, 0], [6, 6, 26, 26], atol=1e-5)
  np.testing.assert_allclose(boxes[0, 1], [7, 6, 27, 26], atol=1e-5)
  np.testing.assert_allclose(boxes[0, 6], [40, 32, 56, 64], atol=1e-5)  # cell (1,1), box 0
  np.testing.assert_allclose(boxes[0, 2], [40, 8, 72, 24], atol=1e-5)  # cell (0,1), box 0

  found = jax.device_get(
    B.yolo_detect(pred, num_boxes=b, num_classes=c, image_size=size, max_detections=10)
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
  labels, matched = jax.device_get(B.anchor_labels(anchors, objects, valid))
  np.testing.assert_array_equal(labels, [1, 1, -1, 0, 0, 1, 0, 1, -1])
  np.testing.assert_array_equal(matched[labels == 1], [0, 0, 1, 1])
  # No object at all: every anchor is negative.
  labels, _ = B.anchor_labels(anchors, objects, np.zeros(3, bool))
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
  sample = jax.jit(B.sample_anchors, static_argnums=(2, 3))
  pos, neg = jax.device_get(sample(jax.random.PRNGKey(0), labels, 256, 0.5))
  assert pos.sum() == want_pos and neg.sum() == want_neg
  assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
  pos2, neg2 = sample(jax.random.PRNGKey(1), labels, 256, 0.5)
  if num_pos > want_pos or num_neg > want_neg:  # a choice to make: another key, another one
    assert (np.asarray(pos2) != pos).any() or (np.asarray(neg2) != neg).any()


def test_propose_decodes_clips_drops_small_boxes_and_suppresses():
  anchors = np.array(
    [[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 40, 40], [50, 50, 52, 52]], np.float32
  )
  logits = np.array([[3.0, 2.0, 1.0, 4.0]], np.float32)
  deltas = np.zeros((1, 4, 4), np.float32)
  # Anchor 2 moved 30 px right, half out of the 64x64 image: clipped at 64.
  deltas[0, 2] = B.encode_deltas(anchors[2], np.array([50.0, 20.0, 70.0, 40.0]))
  found = jax.device_get(
    B.propose(
      logits, deltas, jnp.asarray(anchors), image_size=(64, 64), num_proposals=4, min_size=3.0
    )
  )
  # Anchor 3 scores best but is 2 px wide (< min_size); anchor 1 overlaps anchor 0 with
  # IoU 100 / 110 > 0.7 and is suppressed.
  np.testing.assert_array_equal(found["valid"][0], [True, True, False, False])
  np.testing.assert_allclose(found["boxes"][0][:2], [[0, 0, 10, 10], [50, 20, 64, 40]], atol=1e-4)
  np.testing.assert_array_equal(found["scores"][0][:2], [3.0, 1.0])
