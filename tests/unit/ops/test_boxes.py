"""Tests for dlx/ops/boxes.py: hand-computed cases, and parity with torchvision's outputs
stored in tests/unit/ops/fixtures/boxes.npz (made by fixtures/make_box_fixtures.py)."""

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
