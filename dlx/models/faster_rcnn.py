"""Faster R-CNN (Ren et al., 2015; docs/curriculum.md#f11): a region proposal network
and a second stage that classifies and refines its proposals, on one shared feature map.

  backbone   YOLOv1's stem and stages (dlx/models/yolo.py) to a stride-8 map
  RPN        `rpn.head`'s objectness and deltas per anchor (dlx/models/rpn.py); its
             proposals (`box_ops.propose`: decode, clip, top-k, NMS, a fixed count) carry
             no gradient, as in the paper's approximate joint training
  RoI head   RoI align (aligned=True, `box_ops.roi_align`; or Fast R-CNN's RoI max
             pooling, `box_ops.roi_pool`) of each region to a small grid, two fully
             connected layers, then 1 + C class logits (0 = background) and C
             class-specific box deltas (or one class-agnostic box)

In training, when the inputs are a dict with the ground truth ({'image', 'boxes',
'labels', 'valid'}, as the experiment's augmentation packs them), the objects join the
proposals and a fixed number of RoIs per image is sampled and labelled here
(`roi_heads.sample_rois`, rng stream 'sample'): the head runs on those only, and the
outputs carry their labels and box targets for the loss. Otherwise (evaluation) the head
runs on the proposals.
"""

from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx import errors
from dlx.models import rpn
from dlx.models import yolo
from dlx.nn.dense import Dense
from dlx.ops import boxes as box_ops
from dlx.ops import roi_heads


class FasterRCNN(nn.Module):
  """(N, H, W, C) images (or the training dict) -> {'objectness' (N, h, w, A), 'deltas'
  (N, h, w, A, 4): the RPN's; 'rois' (N, R, 4), 'roi_valid' (N, R), 'class_logits'
  (N, R, 1 + C), 'box_deltas' (N, R, C or 1, 4); in training with the ground truth also
  'roi_labels' (N, R) and 'roi_targets' (N, R, 4)}.

  Attributes:
    num_classes: C, the object classes (background is extra).
    features, convs_per_stage, stem_*: the backbone's (`yolo.Backbone`).
    rpn_features: channels of the RPN's 3x3 layer.
    anchor_scales, anchor_ratios: the anchors per cell (3 x 3 = 9 by default).
    train_proposals, test_proposals: proposals per image kept after NMS.
    pre_nms_top_k, proposal_iou, min_size: `box_ops.propose`'s settings.
    rois_per_image, positive_fraction, positive_iou, negative_iou: the training sample.
    roi_size, sampling_ratio: RoI align's output grid and points per bin and axis.
    roi_pooling: 'align' (RoI align, aligned=True) or 'pool' (Fast R-CNN's RoI max
      pooling, `box_ops.roi_pool`, as the lecture notes describe the second stage).
    head_features: width of the two fully connected layers.
    class_agnostic: one box per RoI instead of one per class.
  """

  num_classes: int = 10
  features: Sequence[int] = (32, 64)
  convs_per_stage: int = 2
  stem_features: int = 16
  stem_kernel: int = 7
  stem_stride: int = 2
  rpn_features: int = 128
  anchor_scales: Sequence[float] = (16.0, 24.0, 36.0)
  anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0)
  train_proposals: int = 64
  test_proposals: int = 50
  pre_nms_top_k: int = 300
  proposal_iou: float = 0.7
  min_size: float = 1.0
  rois_per_image: int = 32
  positive_fraction: float = 0.25
  positive_iou: float = 0.5
  negative_iou: float = 0.5
  roi_size: int = 7
  sampling_ratio: int = 2
  roi_pooling: str = "align"
  head_features: int = 256
  class_agnostic: bool = False

  @property
  def stride(self) -> int:
    return yolo.Backbone.stride(len(self.features), self.stem_stride)

  @nn.compact
  def __call__(self, x, train: bool = False):
    truth = None
    if isinstance(x, Mapping):
      truth, x = x, x["image"]
    if self.roi_pooling not in ("align", "pool"):
      raise errors.ConfigError(f"roi_pooling must be 'align' or 'pool', got {self.roi_pooling!r}")
    if self.num_classes < 1 or self.rois_per_image < 1:
      raise errors.ConfigError(
        f"need num_classes >= 1 and rois_per_image >= 1, got {self.num_classes}, "
        f"{self.rois_per_image}"
      )
    feats = yolo.Backbone(
      self.features, self.convs_per_stage, self.stem_features, self.stem_kernel, self.stem_stride
    )(x, train)
    num_anchors = len(self.anchor_scales) * len(self.anchor_ratios)
    out = rpn.head(feats, num_anchors, self.rpn_features)
    n, height, width = x.shape[:3]
    anchors = box_ops.anchors(feats.shape[1:3], self.stride, self.anchor_scales, self.anchor_ratios)
    found = box_ops.propose(
      jax.lax.stop_gradient(out["objectness"].reshape(n, -1)).astype(jnp.float32),
      jax.lax.stop_gradient(out["deltas"].reshape(n, -1, 4)).astype(jnp.float32),
      jnp.asarray(anchors),
      image_size=(height, width),
      num_proposals=self.train_proposals if train else self.test_proposals,
      pre_nms_top_k=self.pre_nms_top_k,
      iou_threshold=self.proposal_iou,
      min_size=self.min_size,
    )
    rois, roi_valid = found["boxes"], found["valid"]
    if train and truth is not None:
      keys = jax.random.split(self.make_rng("sample"), n)
      rois, roi_valid, labels, targets = jax.vmap(self._sample)(
        keys, rois, roi_valid, truth["boxes"], truth["labels"], truth["valid"]
      )
      out.update(roi_labels=labels, roi_targets=targets)
    out.update(rois=rois, roi_valid=roi_valid, **self._head(feats, rois))
    return out

  def _sample(self, key, rois, roi_valid, boxes, labels, valid):
    return roi_heads.sample_rois(
      key,
      rois,
      roi_valid,
      jnp.asarray(boxes, jnp.float32),
      labels,
      valid,
      num_samples=self.rois_per_image,
      positive_fraction=self.positive_fraction,
      positive_iou=self.positive_iou,
      negative_iou=self.negative_iou,
    )

  def _head(self, feats, rois):
    n, r = rois.shape[:2]
    image_index = jnp.broadcast_to(jnp.arange(n, dtype=rois.dtype)[:, None, None], (n, r, 1))
    indexed = jnp.concatenate([image_index, rois], axis=-1).reshape(n * r, 5)
    if self.roi_pooling == "pool":
      pooled = box_ops.roi_pool(feats, indexed, self.roi_size, 1.0 / self.stride)
    else:
      pooled = box_ops.roi_align(
        feats, indexed, self.roi_size, 1.0 / self.stride, self.sampling_ratio, aligned=True
      )
    h = pooled.reshape(n, r, -1)
    h = nn.relu(Dense(self.head_features, name="fc1")(h))
    h = nn.relu(Dense(self.head_features, name="fc2")(h))
    logits = Dense(self.num_classes + 1, name="classes")(h)
    boxes_per_roi = 1 if self.class_agnostic else self.num_classes
    # Small initial deltas (std 0.001, as torchvision): every box starts at its RoI.
    deltas = Dense(4 * boxes_per_roi, kernel_init=nn.initializers.normal(0.001), name="boxes")(h)
    return {"class_logits": logits, "box_deltas": deltas.reshape(n, r, boxes_per_roi, 4)}
