"""Faster R-CNN (Ren et al., 2015; docs/curriculum.md#f11) detecting MNIST digits in 96x96
scenes of up to five (dlx/data/scenes.py): a stride-8 backbone, an RPN with 3 scales x
3 ratios of anchors per cell, its proposals (NMS, a fixed count) RoI-aligned to 7x7 and
classified (10 digits + background) with class-specific box regression. Both stages
train together (the RPN's proposals carry no gradient); the ground-truth boxes join the
proposals in training. Reports test mAP@0.5 and COCO mAP@0.5:0.95 after class-wise NMS,
exactly as yolo_digit_scenes, per-class AP and detections.png.

  ./launch.sh faster_rcnn_digit_scenes --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.models import faster_rcnn as faster_rcnn_model
from dlx.tasks.detection import faster_rcnn
from dlx.tasks.detection import scenes


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = faster_rcnn.base_config()
  config.model = config_lib.model_config(
    num_classes=config.get_ref("num_classes"),
    features=(32, 64),
    convs_per_stage=2,
    stem_features=16,
    rpn_features=128,
    train_proposals=64,
    test_proposals=50,
    pre_nms_top_k=300,
    rois_per_image=32,
    positive_fraction=0.25,
    positive_iou=0.5,  # RoI labels (the RPN's anchors: config.positive_iou, 0.7)
    negative_iou=0.5,
    roi_size=7,
    roi_pooling="align",  # or 'pool': Fast R-CNN's RoI max pooling
    sampling_ratio=2,
    head_features=256,
  )
  config.scenes.num_train = 20000
  config.max_shift = 8  # random translations of whole scenes (boxes move with them)
  config.batch_size = 32
  config.num_train_steps = 3000
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.log_every_steps = 100
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 200
  if config_lib.SMOKE in args:
    config_lib.smoke(
      config,
      **{
        "model.features": (4, 8),
        "model.stem_features": 4,
        "model.rpn_features": 8,
        "model.head_features": 8,
        "model.train_proposals": 8,
        "model.test_proposals": 8,
        "model.rois_per_image": 8,
        "max_shift": 4,
      },
    )
  return config


def get_model(config):
  return faster_rcnn_model.FasterRCNN(
    anchor_scales=tuple(config.anchors.scales),
    anchor_ratios=tuple(config.anchors.ratios),
    **config_lib.model_kwargs(config),
  )


get_dataset = scenes.get_dataset
get_loss = faster_rcnn.get_loss
get_augment = faster_rcnn.get_augment
evaluate = faster_rcnn.evaluate
final_report = faster_rcnn.final_report
OUTPUTS = faster_rcnn.OUTPUTS
TARGETS = {"test.map50": (">=", 0.88)}
