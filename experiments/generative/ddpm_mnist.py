"""DDPM (Ho et al., 2020) on MNIST (docs/curriculum.md#f21, #b10): a small U-Net noise
model with sinusoidal time embedding trained on noise-prediction MSE, with what makes a
small diffusion model good: the cosine noise schedule (Nichol & Dhariwal, 2021;
--config.model.schedule=linear|cosine), an EMA of the weights to sample from
(--config.optimizer.ema_decay, kept in the optimizer state) and DDIM sampling (Song et
al., 2021) in --config.sample_steps steps (0: T-step ancestral sampling) with noise scale
--config.sample_eta. Writes samples_<step>.png; the final report scores
config.fid_samples samples by MNIST-FID (dlx/tasks/sample_quality.py).
Expected: MNIST-FID about 0.66 on 2,000 EMA samples, with a confident fraction above the
0.8 bar (experiments/generative/README.md has the measurements and the GANs beside it).

  ./launch.sh lenet5_mnist --data_dir=../shared/tfds   # the MNIST-FID classifier, once
  ./launch.sh ddpm_mnist --data_dir=../shared/tfds --config.fid_classifier=runs/lenet5_mnist
"""

import functools

import jax
import numpy as np

from dlx import config as config_lib
from dlx import data
from dlx import losses
from dlx.models import ddpm
from dlx.tasks import sample_quality
from dlx.training import optim

SAMPLE_BATCH = 500  # images per compiled sampler call in the final report


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  # channels (16, 32, 64) are sized for a CPU: ~0.4 s per step at batch 64.
  config.model = config_lib.model_config(
    num_timesteps=1000,
    schedule="cosine",
    beta_start=1e-4,
    beta_end=0.02,
    channels=(16, 32, 64),
    time_dim=128,
  )
  config.num_samples = 64
  config.sample_steps = 100  # DDIM steps for grids and the report; 0 = ancestral (T steps)
  config.sample_eta = 1.0  # DDIM noise scale: 0 deterministic, 1 ~ ancestral (better FID here)
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.eval_every_steps = 1000
  config.eval_examples = 1000  # noise-MSE on 1,000 images is plenty; sampling is the real test
  config.checkpoint_every_steps = 1000
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 100
  config.optimizer.schedule = "cosine"
  config.optimizer.grad_clip_norm = 1.0
  config.optimizer.ema_decay = 0.999
  sample_quality.add_config(config, num_samples=2000)
  if config_lib.SMOKE in args:
    # U-Net widths must divide by its GroupNorm's 8 groups (dlx/models/unet.py).
    config_lib.smoke(
      config,
      num_samples=4,
      sample_steps=3,
      **{"model.num_timesteps": 10, "model.channels": (8, 8, 8), "model.time_dim": 16},
    )
  return config


def get_model(config):
  return ddpm.DDPM(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del config
  ds = data.load("mnist", data_dir=data_dir)
  ds = ds.map(lambda split: data.transforms.scale_images(split, low=-1.0, high=1.0))
  return sample_quality.with_reference(ds, (ds.test["inputs"] + 1.0) / 2.0)


def loss(outputs, batch):
  del batch
  return {"loss": losses.diffusion_noise_mse(outputs["predicted_noise"], outputs["noise"])}


def sampling_variables(ctx):
  """ctx.variables with the weights' EMA as parameters when the optimizer keeps one."""
  ema = optim.ema_params(ctx.opt_state) if ctx.opt_state is not None else None
  if ema is None:
    return ctx.variables
  return {**ctx.variables, "params": ema}


def _sampler(ctx, num_samples):
  """Jitted (variables, rng) -> images in [0, 1], config.sample_steps DDIM steps."""
  return jax.jit(
    functools.partial(
      ddpm.sample,
      ctx.model,
      num_samples=num_samples,
      clip=1.0,
      num_steps=ctx.config.sample_steps,
      eta=ctx.config.sample_eta,
    ),
    compiler_options=config_lib.compiler_options(ctx.config),
  )


def visualize(ctx, batch):
  draw = _sampler(ctx, ctx.config.num_samples)
  variables = sampling_variables(ctx)
  images = draw(variables, jax.random.PRNGKey(ctx.config.seed))
  return {"samples": (images + 1.0) / 2.0}


def final_report(ctx):
  """MNIST-FID and the confident fraction of config.fid_samples samples, drawn as the
  grids are (same sampler and steps) in batches of SAMPLE_BATCH."""
  variables = sampling_variables(ctx)

  def draw(n):
    batch = min(n, SAMPLE_BATCH)
    sampler = _sampler(ctx, batch)
    chunks = []
    for i in range(-(-n // batch)):
      key = jax.random.fold_in(ctx.rng, i)
      chunks.append(np.asarray(sampler(variables, key)))
    return (np.concatenate(chunks)[:n] + 1.0) / 2.0

  return sample_quality.report(ctx, draw)


OUTPUTS = ("samples_{step}.png",)
TARGETS = {
  "test.loss": ("<", 0.1),  # noise-prediction MSE
  "report.confident_fraction": (">=", 0.8),
}
