"""Region proposal network (Faster R-CNN's first stage; docs/curriculum.md#f11) on 96x96
scenes of up to five MNIST digits (dlx/data/scenes.py): 9 anchors (3 scales x 3 ratios)
per cell of a stride-8 feature map, anchors labelled by IoU (>= 0.7 or an object's best:
positive, < 0.3: negative), 256 sampled per image (up to half positive) for the
objectness cross-entropy, smooth L1 on the positives' deltas. Reports the recall at IoU
0.5 of the top 10 / 50 / 100 proposals after NMS, and proposals.png.

  ./launch.sh rpn_digit_scenes --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.models import rpn as rpn_model
from dlx.tasks.detection import rpn
from dlx.tasks.detection import scenes


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = rpn.base_config()
  config.model = config_lib.model_config(
    num_anchors=9, features=(32, 64), convs_per_stage=1, stem_features=16, head_features=128
  )
  config.scenes.num_train = 5000
  config.batch_size = 32
  config.num_train_steps = 1500
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.log_every_steps = 100
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  if config_lib.SMOKE in args:
    config_lib.smoke(
      config, **{"model.features": (4, 8), "model.stem_features": 4, "model.head_features": 8}
    )
  return config


def get_model(config):
  return rpn_model.RPN(**config_lib.model_kwargs(config))


get_dataset = scenes.get_dataset
get_loss = rpn.get_loss
get_augment = rpn.get_augment
evaluate = rpn.evaluate
final_report = rpn.final_report
OUTPUTS = rpn.OUTPUTS
TARGETS = {"test.recall_at_50": (">=", 0.95)}
