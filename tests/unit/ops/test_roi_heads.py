"""Tests for dlx/ops/roi_heads.py (Faster R-CNN's second stage) on hand-built cases, and
RoI align (dlx/ops/boxes.py) at the settings Faster R-CNN uses against a live
torchvision: values, and gradients with respect to the features against torch autograd
(the stored fixtures of test_boxes.py cover values only)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.ops import boxes as B
from dlx.ops import roi_heads as R

# Two objects (class 3 and class 7) and a padding slot.
OBJECTS = jnp.array([[10.0, 10.0, 30.0, 30.0], [50.0, 50.0, 90.0, 70.0], [0.0, 0.0, 1.0, 1.0]])
CLASSES = jnp.array([3, 7, 0])
VALID = jnp.array([True, True, False])


def test_roi_targets_hand_built():
  rois = jnp.array(
    [
      [10.0, 10.0, 30.0, 30.0],  # the first object exactly: class 3 -> label 4
      [12.0, 10.0, 32.0, 30.0],  # IoU 18*20 / (2*400 - 360) = 0.818: label 4
      [50.0, 50.0, 70.0, 70.0],  # IoU 0.5 with the second (>= 0.5): class 7 -> label 8
      [20.0, 10.0, 40.0, 30.0],  # IoU 200 / 600 = 1/3 < 0.5: background
      [0.0, 0.0, 1.0, 1.0],  # only on the padding object: background
      [10.0, 10.0, 30.0, 30.0],  # not a valid RoI: ignored
    ]
  )
  roi_valid = jnp.array([True, True, True, True, True, False])
  labels, targets = R.roi_targets(rois, roi_valid, OBJECTS, CLASSES, VALID)
  np.testing.assert_array_equal(labels, [4, 4, 8, 0, 0, R.IGNORE])
  # Targets: encode_deltas with weights (10, 10, 5, 5); the second RoI is 2 px right of
  # its object of width 20: dx = 10 * (-2) / 20 = -1; the third is half as wide as its
  # object: dx = 10 * 10 / 20 = 5, dw = 5 log 2.
  np.testing.assert_allclose(targets[0], 0.0, atol=1e-6)
  np.testing.assert_allclose(targets[1], [-1.0, 0.0, 0.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(targets[2], [5.0, 0.0, 5 * np.log(2.0), 0.0], atol=1e-5)
  np.testing.assert_array_equal(targets[3:], 0.0)
  # With a band between the thresholds, the RoIs of IoU 0.818, 0.5 and 1/3 are ignored.
  banded, _ = R.roi_targets(rois, roi_valid, OBJECTS, CLASSES, VALID, 0.9, 0.3)
  np.testing.assert_array_equal(banded, [4, R.IGNORE, R.IGNORE, R.IGNORE, 0, R.IGNORE])


def test_sample_rois_adds_the_objects_and_keeps_a_fixed_count():
  # No useful proposal at all: the objects themselves are the positives.
  proposals = jnp.array([[0.0, 0.0, 5.0, 5.0], [80.0, 0.0, 95.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
  proposal_valid = jnp.array([True, True, False])
  rois, valid, labels, targets = R.sample_rois(
    jax.random.PRNGKey(0),
    proposals,
    proposal_valid,
    OBJECTS,
    CLASSES,
    VALID,
    num_samples=6,
    positive_fraction=0.5,
  )
  assert rois.shape == (6, 4) and labels.shape == (6,) and targets.shape == (6, 4)
  # 2 objects (positives) + 2 background proposals; the last 2 slots are padding.
  np.testing.assert_array_equal(valid, [True] * 4 + [False] * 2)
  np.testing.assert_array_equal(np.sort(labels[:4]), [0, 0, 4, 8])
  np.testing.assert_array_equal(labels[4:], R.IGNORE)
  positives = np.asarray(labels) > 0
  np.testing.assert_allclose(targets[positives], 0.0, atol=1e-6)  # boxes on themselves
  # At most num_samples * positive_fraction positives.
  _, _, few, _ = R.sample_rois(
    jax.random.PRNGKey(1),
    proposals,
    proposal_valid,
    OBJECTS,
    CLASSES,
    VALID,
    num_samples=2,
    positive_fraction=0.5,
  )
  assert np.sum(np.asarray(few) > 0) == 1 and np.sum(np.asarray(few) == 0) == 1


def test_detect_decodes_the_class_box_and_suppresses_per_class():
  rois = jnp.array([[[10.0, 10.0, 30.0, 30.0], [11.0, 10.0, 31.0, 30.0], [0.0, 0.0, 9.0, 9.0]]])
  logits = jnp.full((1, 3, 4), -10.0)  # background + 3 classes
  logits = logits.at[0, 0, 2].set(10.0).at[0, 1, 2].set(9.0).at[0, 2, 3].set(10.0)
  deltas = jnp.zeros((1, 3, 3, 4)).at[0, 0, 1].set(jnp.array([0.5, 0.0, 0.0, 0.0]))
  found = R.detect(
    rois, jnp.array([[True, True, False]]), logits, deltas, image_size=(96, 96), max_detections=4
  )
  # The third RoI is invalid; the second overlaps the first in class 1 and is suppressed.
  assert int(found["valid"].sum()) == 1
  np.testing.assert_array_equal(found["classes"][0, 0], 1)
  # Class 1's delta dx = 0.5 moves the first box by 0.5 / 10 of its width, onto the second.
  np.testing.assert_allclose(found["boxes"][0, 0], [11.0, 10.0, 31.0, 30.0], atol=1e-4)
  np.testing.assert_allclose(found["scores"][0, 0], jax.nn.softmax(logits[0, 0])[2], rtol=1e-6)


def _random_rois(rng, num, size, batch):
  xy = rng.uniform(-4, size - 8, (num, 2))
  wh = rng.uniform(2, size / 2, (num, 2))
  index = rng.integers(0, batch, (num, 1))
  return np.concatenate([index, xy, xy + wh], axis=1).astype(np.float32)


@pytest.mark.parametrize("ratio", [2, -1])
def test_roi_align_values_and_gradients_match_torchvision(ratio):
  torch = pytest.importorskip("torch")
  tv_ops = pytest.importorskip("torchvision.ops")
  rng = np.random.default_rng(0)
  features = rng.normal(size=(2, 12, 12, 3)).astype(np.float32)  # a stride-8 map of 96x96
  rois = _random_rois(rng, 12, 96, 2)
  weights = rng.normal(size=(12, 7, 7, 3)).astype(np.float32)  # a random cotangent

  def dlx_loss(f):
    out = B.roi_align(f, jnp.asarray(rois), 7, 1.0 / 8, ratio, aligned=True)
    return jnp.sum(out * weights), out

  (_, out), grad = jax.value_and_grad(dlx_loss, has_aux=True)(jnp.asarray(features))
  f_torch = torch.tensor(np.transpose(features, (0, 3, 1, 2)), requires_grad=True)
  ref = tv_ops.roi_align(f_torch, torch.tensor(rois), 7, 1.0 / 8, ratio, aligned=True)
  (ref * torch.tensor(np.transpose(weights, (0, 3, 1, 2)))).sum().backward()
  np.testing.assert_allclose(
    out, np.transpose(ref.detach().numpy(), (0, 2, 3, 1)), rtol=1e-5, atol=1e-5
  )
  np.testing.assert_allclose(
    grad, np.transpose(f_torch.grad.numpy(), (0, 2, 3, 1)), rtol=1e-4, atol=1e-5
  )
