"""Tests for the detection models: YOLOv1 (dlx/models/yolo.py) and the region proposal
network (dlx/models/rpn.py): output shapes, the grid, the initial boxes, and the
anchors the RPN's outputs line up with."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx.models import rpn
from dlx.models import yolo
from dlx.tasks.detection import rpn as rpn_task

SMALL = dict(features=(4, 8, 8), stem_features=4, head_features=8)

FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _apply(model, x, train=False):
  """(variables, outputs); jitted, as op-by-op dispatch would dominate the test's time,
  at XLA's lowest optimisation level (compiling dominates, and shapes are what is tested)."""
  jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  variables = jit(model.init)(jax.random.PRNGKey(0), x)
  if train:
    out, _ = jax.jit(
      lambda v, x: model.apply(
        v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(1)}
      )
    )(variables, x)
    return variables, out
  return variables, jit(model.apply)(variables, x)


@pytest.mark.parametrize(
  "head,grid_size,num_boxes,num_classes", [("conv", 6, 2, 10), ("dense", 3, 3, 4)]
)
def test_yolo_output_is_the_grid_with_boxes_starting_at_the_cell_centre(
  head, grid_size, num_boxes, num_classes
):
  model = yolo.YOLOv1(
    grid_size=grid_size,
    num_boxes=num_boxes,
    num_classes=num_classes,
    head=head,
    dense_features=16,
    dropout_rate=0.5,
    init_box_size=0.3,
    **SMALL,
  )
  x = jnp.concatenate([jnp.zeros((1, 96, 96, 1)), jnp.ones((1, 96, 96, 1))])
  _, out = _apply(model, x, train=True)
  assert out.shape == (2, grid_size, grid_size, num_boxes * 5 + num_classes)
  # Every layer before the last is bias-free or starts at 0 on a blank image, so the
  # output is the last layer's bias: each box (0.5, 0.5, 0.3, 0.3, 0), classes 0.
  _, blank = _apply(model, x[:1])
  cell = [0.5, 0.5, 0.3, 0.3, 0.0] * num_boxes + [0.0] * num_classes
  np.testing.assert_allclose(blank, np.broadcast_to(cell, blank.shape), atol=1e-6)


def test_yolo_grid_pools_a_larger_map_and_rejects_a_smaller_one():
  # 112x112 through stride 16 is 7x7: pooled to the requested 3x3.
  _, out = _apply(yolo.YOLOv1(grid_size=3, **SMALL), jnp.ones((1, 112, 112, 1)))
  assert out.shape == (1, 3, 3, 20)
  with pytest.raises(errors.ConfigError, match="smaller than"):
    _apply(yolo.YOLOv1(grid_size=7, **SMALL), jnp.ones((1, 96, 96, 1)))
  with pytest.raises(errors.ConfigError, match="head"):
    _apply(yolo.YOLOv1(head="fc", **SMALL), jnp.ones((1, 96, 96, 1)))


def test_backbone_stride():
  for stages, stem_stride in ((3, 2), (2, 2), (3, 1)):
    backbone = yolo.Backbone(features=(4,) * stages, stem_features=4, stem_stride=stem_stride)
    _, out = _apply(backbone, jnp.ones((1, 96, 96, 1)))
    side = 96 // yolo.Backbone.stride(stages, stem_stride)
    assert out.shape == (1, side, side, 4)


def test_rpn_outputs_line_up_with_the_configured_anchors():
  config = rpn_task.base_config()
  model = rpn.RPN(num_anchors=9, features=(4, 8), stem_features=4, head_features=8)
  _, out = _apply(model, jnp.ones((2, 96, 96, 1)), train=True)
  assert out["objectness"].shape == (2, 12, 12, 9)
  assert out["deltas"].shape == (2, 12, 12, 9, 4)
  logits, deltas = rpn_task.flatten_outputs(out)
  anchors = rpn_task.make_anchors(config, (96, 96))
  assert logits.shape == (2, len(anchors)) and deltas.shape == (2, len(anchors), 4)
  # Anchor order is cell-major: anchor 9 * (i * 12 + j) + k is centred on cell (i, j).
  centres = (anchors[:, :2] + anchors[:, 2:]) / 2
  np.testing.assert_allclose(centres.reshape(12, 12, 9, 2)[3, 5], np.tile([[44, 28]], (9, 1)))
  # Deltas start near 0: every proposal starts at its anchor.
  assert np.abs(np.asarray(out["deltas"])).max() < 0.1


def test_rpn_rejects_no_anchors():
  with pytest.raises(errors.ConfigError, match="num_anchors"):
    _apply(rpn.RPN(num_anchors=0, features=(4,)), jnp.ones((1, 32, 32, 1)))
