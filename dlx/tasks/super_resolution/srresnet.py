"""SRResNet: 4x super-resolution of MNIST trained with pixel MSE (docs/curriculum.md#f20),
the run SRGAN starts from. Its report: PSNR / SSIM against bicubic; grid.png."""

from dlx import config as config_lib
from dlx.models import srgan
from dlx.tasks.super_resolution import common


def base_config():
  """The SRResNet on MNIST with pixel MSE: 32 channels, 8 residual blocks, 800 steps of
  Adam 1e-3 (cosine) at batch 32."""
  config = config_lib.base_config()
  config.model = config_lib.model_config(features=32, num_blocks=8, scale=common.SCALE)
  config.batch_size = 32
  config.num_train_steps = 800
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  config.eval_every_steps = 200
  config.eval_examples = 2000  # validation and test during training; the report: all
  config.train_eval_examples = 2000
  config.checkpoint_every_steps = 400
  return config


def get_model(config):
  return srgan.Upscaler(**config_lib.model_kwargs(config))


def final_report(ctx):
  """The SRResNet against bicubic on the whole test set; grid.png."""
  return common.report(
    ctx, {"bicubic": common.bicubic_images(ctx), "srresnet": common.upscaled(ctx)}
  )
