"""Tests for Faster R-CNN (dlx/models/faster_rcnn.py): output shapes in evaluation and in
training (where the ground truth joins the proposals and a fixed number of RoIs is
sampled), and the loss of dlx/tasks/detection/faster_rcnn.py on those outputs."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dlx.models import faster_rcnn
from dlx.tasks.detection import faster_rcnn as task

SMALL = dict(
  features=(4, 8),
  stem_features=4,
  rpn_features=8,
  head_features=8,
  train_proposals=6,
  test_proposals=5,
  rois_per_image=8,
  positive_fraction=0.5,
)
FAST_COMPILE = {"xla_backend_optimization_level": 0}
BOXES = jnp.array([[[8.0, 8.0, 40.0, 40.0], [50.0, 20.0, 70.0, 60.0], [0.0, 0.0, 0.0, 0.0]]] * 2)
TRUTH = dict(
  boxes=BOXES, labels=jnp.array([[2, 5, 0]] * 2), valid=jnp.array([[True, True, False]] * 2)
)


def _outputs(model, x, train):
  jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  variables = jit(model.init)(jax.random.PRNGKey(0), x["image"])
  inputs = x if train else x["image"]
  out, _ = jit(
    lambda v, i: model.apply(
      v, i, train=train, mutable=["batch_stats"], rngs={"sample": jax.random.PRNGKey(1)}
    )
  )(variables, inputs)
  return out


def test_outputs_in_evaluation_and_training():
  model = faster_rcnn.FasterRCNN(num_classes=10, **SMALL)
  x = {"image": jax.random.uniform(jax.random.PRNGKey(2), (2, 96, 96, 1)), **TRUTH}
  out = _outputs(model, x, train=False)
  assert out["objectness"].shape == (2, 12, 12, 9)  # stride 8, 3 scales x 3 ratios
  assert out["deltas"].shape == (2, 12, 12, 9, 4)
  assert out["rois"].shape == (2, 5, 4) and out["roi_valid"].shape == (2, 5)
  assert out["class_logits"].shape == (2, 5, 11)
  assert out["box_deltas"].shape == (2, 5, 10, 4)
  assert "roi_labels" not in out

  out = _outputs(model, x, train=True)
  assert out["rois"].shape == (2, 8, 4) and out["class_logits"].shape == (2, 8, 11)
  assert out["roi_labels"].shape == (2, 8) and out["roi_targets"].shape == (2, 8, 4)
  labels = np.asarray(out["roi_labels"])
  # Both objects are in every image's sample (the ground truth joins the proposals).
  assert all({3, 6} <= set(row) for row in labels.tolist())

  # One box per RoI, and Fast R-CNN's RoI max pooling in place of RoI align.
  agnostic = faster_rcnn.FasterRCNN(
    num_classes=10, class_agnostic=True, roi_pooling="pool", **SMALL
  )
  out = _outputs(agnostic, x, train=False)
  assert out["box_deltas"].shape == (2, 5, 1, 4) and out["class_logits"].shape == (2, 5, 11)


def test_head_loss_on_training_and_evaluation_outputs():
  model = faster_rcnn.FasterRCNN(num_classes=10, **SMALL)
  x = {"image": jnp.zeros((2, 96, 96, 1)), **TRUTH}
  config = ml_collections.ConfigDict(
    dict(model=dict(positive_iou=0.5, negative_iou=0.5), head_smooth_l1_beta=1.0 / 9)
  )
  batch = dict(TRUTH)
  for train in (True, False):
    terms = task.head_loss(_outputs(model, x, train=train), batch, config)
    for value in terms.values():
      assert value.shape == (2,) and np.all(np.isfinite(value))
  # Freshly initialised: near-uniform class scores over 11 classes.
  np.testing.assert_allclose(terms["head_class_loss"], np.log(11.0), rtol=0.05)
