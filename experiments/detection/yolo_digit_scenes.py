"""YOLOv1 (Redmon et al., 2016; docs/curriculum.md#f10, loss #b11) detecting MNIST digits
in 96x96 scenes of up to five (dlx/data/scenes.py): a 6x6 grid of 16-pixel cells, two
boxes per cell, ten classes. Reports test mAP@0.5 and COCO mAP@0.5:0.95 after class-wise
NMS, per-class AP, and detections.png (true boxes in colour, predictions in white).

  ./launch.sh yolo_digit_scenes --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.models import yolo as yolo_model
from dlx.tasks.detection import scenes
from dlx.tasks.detection import yolo


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = yolo.base_config()
  config.model = config_lib.model_config(
    grid_size=6,
    num_boxes=2,
    num_classes=config.get_ref("num_classes"),
    features=(32, 64, 128),
    convs_per_stage=2,
    stem_features=16,
    head="conv",
    head_features=128,
    head_convs=2,
  )
  config.scenes.num_train = 20000
  config.max_shift = 8  # random translations of whole scenes (boxes move with them)
  config.batch_size = 32
  config.num_train_steps = 5000
  config.eval_every_steps = 500
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
        "model.features": (4, 8, 8),
        "model.stem_features": 4,
        "model.head_features": 8,
        "max_shift": 4,
      },
    )
  return config


def get_model(config):
  return yolo_model.YOLOv1(**config_lib.model_kwargs(config))


get_dataset = scenes.get_dataset
get_loss = yolo.get_loss
get_augment = scenes.get_augment
evaluate = yolo.evaluate
final_report = yolo.final_report
OUTPUTS = yolo.OUTPUTS
TARGETS = {"test.map50": (">=", 0.85)}
