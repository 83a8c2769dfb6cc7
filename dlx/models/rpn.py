"""Region proposal network, the first stage of Faster R-CNN (Ren et al., 2015;
docs/curriculum.md#f11).

A backbone (YOLOv1's Darknet-like stem and stages, dlx/models/yolo.py) brings the image
to a stride-8 feature map; a 3x3 convolution and two sibling 1x1 convolutions then score
every anchor of every cell for objectness (one logit) and regress its box deltas
(dx, dy, dw, dh, as `dlx.ops.boxes.encode_deltas`). Anchors and their assignment live in
dlx/ops/boxes.py, the sampled loss in dlx/tasks/detection/rpn.py: the network only knows
how many anchors a cell has. Both 1x1 layers start near 0 (std 0.01, as the paper), so
every proposal starts at its anchor.
"""

from typing import Sequence

import flax.linen as nn

from dlx import errors
from dlx.models import yolo
from dlx.nn.conv import FlaxConv


class RPN(nn.Module):
  """(N, H, W, C) images -> {'objectness': (N, h, w, A) logits, 'deltas': (N, h, w, A, 4)}
  with h = H / (stem_stride 2^len(features)): stride 8 with the defaults.

  Attributes:
    num_anchors: A, anchors per cell (3 scales x 3 ratios = 9).
    features, convs_per_stage, stem_*: the backbone's (`yolo.Backbone`).
    head_features: channels of the shared 3x3 layer.
  """

  num_anchors: int = 9
  features: Sequence[int] = (32, 64)
  convs_per_stage: int = 1
  stem_features: int = 16
  stem_kernel: int = 7
  stem_stride: int = 2
  head_features: int = 128

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.num_anchors < 1:
      raise errors.ConfigError(f"num_anchors must be >= 1, got {self.num_anchors}")
    x = yolo.Backbone(
      self.features, self.convs_per_stage, self.stem_features, self.stem_kernel, self.stem_stride
    )(x, train)
    return head(x, self.num_anchors, self.head_features)


def head(x, num_anchors: int, features: int):
  """The RPN head on (N, h, w, C) features, called inside a compact module (its layers
  join that module: Faster R-CNN, dlx/models/faster_rcnn.py, shares it) ->
  {'objectness': (N, h, w, A), 'deltas': (N, h, w, A, 4)}."""
  x = nn.relu(FlaxConv(features, (3, 3), padding=1, name="rpn_conv")(x))
  small = nn.initializers.normal(0.01)
  logits = FlaxConv(num_anchors, (1, 1), kernel_init=small, name="objectness")(x)
  deltas = FlaxConv(4 * num_anchors, (1, 1), kernel_init=small, name="deltas")(x)
  return {"objectness": logits, "deltas": deltas.reshape(deltas.shape[:3] + (-1, 4))}
