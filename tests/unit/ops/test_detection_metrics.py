"""Tests for dlx/ops/detection_metrics.py: APs worked out by hand, and parity with
pycocotools on the sets in tests/unit/ops/fixtures/coco_ap.json (made by
fixtures/make_box_fixtures.py)."""

import json
import pathlib

import numpy as np
import pytest

from dlx import errors
from dlx.ops import detection_metrics as dm

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
with open(FIXTURES / "coco_ap.json") as _f:
  CASES = {case["name"]: case for case in json.load(_f)["cases"]}


def _nan(values):
  return np.array([np.nan if v is None else v for v in values], np.float64)


def _one_image(gt_boxes, gt_classes, pred_boxes, scores, pred_classes):
  ground_truths = {
    "boxes": np.asarray([gt_boxes], np.float64),
    "classes": np.asarray([gt_classes]),
    "valid": np.ones((1, len(gt_boxes)), bool),
  }
  predictions = {
    "boxes": np.asarray([pred_boxes], np.float64),
    "scores": np.asarray([scores], np.float64),
    "classes": np.asarray([pred_classes]),
    "valid": np.ones((1, len(pred_boxes)), bool),
  }
  return predictions, ground_truths


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pycocotools(name):
  case = CASES[name]
  got = dm.mean_average_precision(case["predictions"], case["ground_truths"], case["num_classes"])
  want = case["coco"]
  for key in ("map", "map50", "map75"):
    np.testing.assert_allclose(got[key], want[key], atol=1e-12, err_msg=key)
  np.testing.assert_allclose(got["per_class_ap"], _nan(want["per_class_ap"]), atol=1e-12)
  np.testing.assert_allclose(got["per_class_ap50"], _nan(want["per_class_ap50"]), atol=1e-12)


def test_random_fixtures_are_not_trivial():
  # The random sets must exercise partial APs, not just 0 and 1.
  for name in ("random0", "random1", "random2"):
    ap = _nan(CASES[name]["coco"]["per_class_ap"])
    assert np.nanmin(ap) > 0.02 and np.nanmax(ap) < 0.98, (name, ap)


def test_ranking_by_hand():
  # Three objects; five detections ranked TP, FP, TP, FP, TP at IoU 0.5. The third
  # overlaps its object with IoU exactly 0.5 and the fifth with 90 / 110 = 0.82.
  case = CASES["ranking"]
  got = dm.mean_average_precision(case["predictions"], case["ground_truths"], 3)
  # IoU 0.5: recall 1/3, 1/3, 2/3, 2/3, 1 and precision envelope 1, 2/3, 2/3, 3/5, 3/5.
  # Of the recall points 0, 0.01, ..., 1, 34 are <= 1/3, 33 in (1/3, 2/3], 34 above.
  ap50 = (34 * 1 + 33 * 2 / 3 + 34 * 3 / 5) / 101
  # IoU 0.55 ... 0.8 (6 thresholds): TP, FP, FP, FP, TP: envelope 1 then 2/5.
  ap_mid = (34 * 1 + 33 * 2 / 5) / 101
  # IoU 0.85, 0.9, 0.95: only the first detection: recall 1/3 at precision 1.
  ap_high = 34 / 101
  np.testing.assert_allclose(got["map50"], ap50, rtol=1e-12)
  np.testing.assert_allclose(got["map75"], ap_mid, rtol=1e-12)
  np.testing.assert_allclose(got["map"], (ap50 + 6 * ap_mid + 3 * ap_high) / 10, rtol=1e-12)
  np.testing.assert_array_equal(np.isnan(got["per_class_ap"]), [False, True, True])
  np.testing.assert_array_equal(got["num_ground_truths"], [3, 0, 0])


def test_perfect_detections_score_one_and_duplicates_cost():
  boxes = [[0, 0, 10, 10], [20, 20, 40, 30]]
  perfect = dm.mean_average_precision(*_one_image(boxes, [0, 1], boxes, [0.9, 0.8], [0, 1]), 2)
  # 1 up to COCO's eps in tp / (tp + fp + eps).
  np.testing.assert_allclose([perfect["map"], perfect["map50"]], 1.0, rtol=1e-12)
  # A higher-scored duplicate of the first box matches it; the original becomes a false
  # positive below full recall of class 0, so its AP drops below 1 but stays high.
  dup = _one_image(boxes, [0, 0], boxes + [[0, 0, 10, 10]], [0.9, 0.5, 0.95], [0, 0, 0])
  ap = dm.mean_average_precision(*dup, 1)["map50"]
  assert 0.6 < ap < 1.0


def test_absent_classes_are_left_out_and_missed_classes_count_zero():
  # Class 0 perfect; class 1 has an object and no detection; class 2 only a detection.
  pred, gt = _one_image(
    [[0, 0, 10, 10], [30, 30, 40, 40]],
    [0, 1],
    [[0, 0, 10, 10], [50, 50, 60, 60]],
    [0.9, 0.9],
    [0, 2],
  )
  got = dm.mean_average_precision(pred, gt, 3)
  np.testing.assert_allclose(got["per_class_ap"][:2], [1.0, 0.0], atol=1e-12)
  assert np.isnan(got["per_class_ap"][2])
  np.testing.assert_allclose(got["map"], 0.5, rtol=1e-12)
  # With no ground truth at all there is nothing to average.
  none = dm.mean_average_precision(pred, {k: v[:, :0] for k, v in gt.items()}, 3)
  assert np.isnan(none["map"]) and np.isnan(none["per_class_ap"]).all()


def test_max_detections_cuts_per_image():
  case = CASES["max_detections"]
  # The only object is matched by the 120th best detection: gone at the COCO cut of 100.
  assert dm.mean_average_precision(case["predictions"], case["ground_truths"], 1)["map"] == 0.0
  kept = dm.mean_average_precision(
    case["predictions"], case["ground_truths"], 1, max_detections=120
  )
  assert kept["map50"] > 0


def test_custom_thresholds_and_padding_are_ignored():
  case = CASES["random1"]
  pred, gt = case["predictions"], case["ground_truths"]
  at50 = dm.mean_average_precision(pred, gt, 3, iou_thresholds=[0.5])
  np.testing.assert_allclose(at50["map"], case["coco"]["map50"], atol=1e-12)
  # Garbage in invalid slots changes nothing.
  noisy = {k: np.array(v) for k, v in pred.items()}
  noisy["scores"] = np.where(noisy["valid"], noisy["scores"], 5.0)
  noisy["boxes"] = np.where(noisy["valid"][..., None], noisy["boxes"], 1.0)
  again = dm.mean_average_precision(noisy, gt, 3)
  np.testing.assert_allclose(again["map"], case["coco"]["map"], atol=1e-12)


def test_bad_inputs_are_config_errors():
  pred, gt = _one_image([[0, 0, 1, 1]], [0], [[0, 0, 1, 1]], [0.5], [0])
  with pytest.raises(errors.ConfigError, match="classes"):
    dm.mean_average_precision(pred, gt, 0)
  with pytest.raises(errors.ConfigError, match="scores"):
    dm.mean_average_precision({k: v for k, v in pred.items() if k != "scores"}, gt, 1)
  with pytest.raises(errors.ConfigError, match="images"):
    dm.mean_average_precision(pred, {k: np.concatenate([v, v]) for k, v in gt.items()}, 1)
