"""U-Net (Ronneberger et al. 2015; docs/curriculum.md#f9) segmenting digit scenes: a
class per pixel (background or the digit 0-9) on 96x96 canvases of MNIST digits
(dlx/data/scenes.py). Reports test mIoU and pixel accuracy, per-class IoU, and
segmentation.png (image | true mask | predicted mask).

The net runs at 48x48 on 2x2 patches (space-to-depth in, depth-to-space out), so every
pixel still gets its own class; four levels (48, 24, 12, 6) see a whole 40-pixel digit.

  ./launch.sh unet_digit_scenes --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.models import unet
from dlx.tasks import segmentation


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = segmentation.base_config()
  config.model = config_lib.model_config(
    num_classes=config.get_ref("num_classes"),
    features=(16, 32, 64, 128),
    patch_size=2,
    upsampling="transpose",
    deep_supervision=True,
  )
  config.scenes.num_train = 10000
  config.batch_size = 16
  config.num_train_steps = 3000
  config.eval_every_steps = 300
  config.checkpoint_every_steps = 500
  config.log_every_steps = 50
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-2
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 100
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.features": (4, 8)})
  return config


def get_model(config):
  return unet.SegmentationUNet(**config_lib.model_kwargs(config))


get_dataset = segmentation.get_dataset
get_loss = segmentation.get_loss
evaluate = segmentation.evaluate
final_report = segmentation.final_report
OUTPUTS = segmentation.OUTPUTS
TARGETS = {"test.miou": (">=", 0.80)}
