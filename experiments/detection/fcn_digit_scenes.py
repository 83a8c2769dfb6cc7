"""FCN (Long et al. 2015; docs/curriculum.md#f9) segmenting digit scenes: a class per
pixel (background or the digit 0-9) on 96x96 canvases of MNIST digits
(dlx/data/scenes.py), with the FCN-32s / 16s / 8s heads on a small VGG-like backbone
(`--config.model.variant=32s`). Reports test mIoU and pixel accuracy, per-class IoU, and
segmentation.png (image | true mask | predicted mask).

  ./launch.sh fcn_digit_scenes --data_dir=../shared/tfds

Expected: test mIoU about 0.58.
"""

from dlx import config as config_lib
from dlx.models import fcn
from dlx.tasks import segmentation


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = segmentation.base_config()
  config.model = config_lib.model_config(
    num_classes=config.get_ref("num_classes"),
    variant="8s",
    features=(16, 32, 64, 128, 128),
    convs_per_stage=(1, 1, 2, 2, 2),
    head_features=256,
    head_kernel=3,
  )
  config.scenes.num_train = 10000
  config.batch_size = 32
  config.num_train_steps = 1500
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  config.log_every_steps = 50
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  if config_lib.SMOKE in args:
    config_lib.smoke(
      config,
      **{
        "model.features": (4, 4, 8, 8, 8),
        "model.convs_per_stage": (1,) * 5,
        "model.head_features": 8,
      },
    )
  return config


def get_model(config):
  return fcn.FCN(**config_lib.model_kwargs(config))


get_dataset = segmentation.get_dataset
get_loss = segmentation.get_loss
evaluate = segmentation.evaluate
final_report = segmentation.final_report
OUTPUTS = segmentation.OUTPUTS
TARGETS = {"test.miou": (">=", 0.55)}  # measured: the family README
