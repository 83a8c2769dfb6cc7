"""DDPM (Ho et al., 2020) on MNIST (docs/curriculum.md#f21, #b10): linear beta
schedule, a small U-Net noise model with sinusoidal time embedding, noise-prediction
MSE, ancestral sampling. Writes samples_<step>.png.

  ./launch.sh ddpm_mnist --data_dir=../shared/tfds
"""

import functools

import jax

from dlx import config as config_lib
from dlx import data
from dlx import losses
from dlx.models import ddpm


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  # channels (16, 32, 64) are sized for a CPU: ~0.4 s per step at batch 64.
  config.model = config_lib.model_config(
    num_timesteps=1000, beta_start=1e-4, beta_end=0.02, channels=(16, 32, 64), time_dim=128
  )
  config.num_samples = 64
  config.batch_size = 64
  config.num_train_steps = 2500
  config.eval_every_steps = 500
  config.eval_examples = 1000  # noise-MSE on 1,000 images is plenty; sampling is the real test
  config.checkpoint_every_steps = 1000
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 100
  config.optimizer.schedule = "cosine"
  config.optimizer.grad_clip_norm = 1.0
  if config_lib.SMOKE in args:
    # U-Net widths must divide by its GroupNorm's 8 groups (dlx/models/unet.py).
    config_lib.smoke(
      config,
      num_samples=4,
      **{"model.num_timesteps": 10, "model.channels": (8, 8, 8), "model.time_dim": 16},
    )
  return config


def get_model(config):
  return ddpm.DDPM(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del config
  ds = data.load("mnist", data_dir=data_dir)
  return ds.map(lambda split: data.transforms.scale_images(split, low=-1.0, high=1.0))


def loss(outputs, batch):
  del batch
  return {"loss": losses.diffusion_noise_mse(outputs["predicted_noise"], outputs["noise"])}


def visualize(ctx, batch):
  shape = batch["inputs"].shape[1:]
  draw = jax.jit(
    functools.partial(
      ddpm.sample, ctx.model, num_samples=ctx.config.num_samples, shape=shape, clip=1.0
    )
  )
  return {"samples": (draw(ctx.variables, jax.random.PRNGKey(ctx.config.seed)) + 1.0) / 2.0}


OUTPUTS = ("samples_{step}.png",)
TARGETS = {"test.loss": ("<", 0.1)}  # noise-prediction MSE (measured 0.0289)
