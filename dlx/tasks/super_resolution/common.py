"""What SRResNet and SRGAN on MNIST share (docs/curriculum.md#f20): the degradation,
the bicubic baseline, the data, the per-image loss and metrics, and the report.

  area_downsample   the degradation: the mean of each factor x factor block (what PIL's
                    BOX filter and scikit-image's downscale_local_mean compute)
  bicubic           the baseline: jax.image.resize(method='bicubic'), Keys' cubic with
                    a = -0.5 and the out-of-image taps dropped and the rest renormalised;
                    on float images it equals PIL's Image.BICUBIC to 1e-7 (tested), while
                    torch's interpolate(mode='bicubic') uses a = -0.75 with clamped edges
                    and differs by up to 0.08 on 7 -> 28
  mnist_dataset     inputs = 7x7 area-downsampled images, targets = the 28x28 originals,
                    labels = the digits; all in [0, 1]
  loss              per image: pixel MSE (the SRResNet's training loss), and PSNR / SSIM
                    of the model's and of bicubic images (clipped to [0, 1])
  report            PSNR / SSIM of each method on the whole test set (with the classifier:
                    its accuracy and MNIST-FID of each); grid.png
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import data
from dlx import errors
from dlx.data import pipeline
from dlx.models import srgan
from dlx.ops import fid
from dlx.ops import image_quality
from dlx.tasks import sample_quality
from dlx.training import precision
from dlx.viz import plots

SCALE = 4
GRID = "grid.png"
GRID_ROWS = 8


def area_downsample(images, factor: int = SCALE):
  """(N, H, W, C) -> (N, H / f, W / f, C): the mean of each f x f block (NumPy or jnp)."""
  n, h, w, c = images.shape
  if h % factor or w % factor:
    raise errors.ConfigError(f"cannot area-downsample {h}x{w} images by {factor}")
  blocks = images.reshape((n, h // factor, factor, w // factor, factor, c))
  return blocks.mean(axis=(2, 4))


def bicubic(images, factor: int = SCALE):
  """(N, H, W, C) -> (N, H f, W f, C) by bicubic interpolation (see the module docstring)."""
  n, h, w, c = images.shape
  return jax.image.resize(jnp.asarray(images), (n, h * factor, w * factor, c), "bicubic")


def nearest(images, factor: int = SCALE):
  """Each pixel repeated f x f times: how the low-resolution input looks at full size."""
  return jnp.repeat(jnp.repeat(jnp.asarray(images), factor, axis=1), factor, axis=2)


def smoke(config):
  """`:smoke`: tiny networks, 3 steps."""
  overrides = {"model.features": 8, "model.num_blocks": 1}
  if "disc_features" in config.model:
    overrides.update({"model.disc_features": 8, "model.disc_dense": 16})
  return config_lib.smoke(config, **overrides)


def mnist_dataset(config, data_dir):
  """MNIST in [0, 1]: inputs 7x7 (area-downsampled), targets 28x28, labels."""
  del config

  def to_pairs(split):
    high = split["inputs"].astype(np.float32) / 255.0
    low = area_downsample(high, SCALE)
    return {"inputs": low, "targets": high, "labels": split["targets"]}

  return data.load("mnist", data_dir=data_dir).map(to_pairs)


def _scores(images, targets):
  images = jnp.clip(images, 0.0, 1.0)
  return image_quality.psnr(images, targets), image_quality.ssim(images, targets)


def loss(images, batch):
  """Per image: 'loss' = pixel MSE of the model's images (SRResNet's training loss);
  PSNR (dB) and SSIM of them ('psnr', 'ssim') and of bicubic upsampling, both clipped
  to [0, 1], against the original."""
  targets = batch["targets"]
  values = {"loss": image_quality.mse_per_image(images, targets)}
  values["psnr"], values["ssim"] = _scores(images, targets)
  values["psnr_bicubic"], values["ssim_bicubic"] = _scores(bicubic(batch["inputs"]), targets)
  return values


def upscaled(ctx, params=None):
  """The model's images for every test image (clipped to [0, 1]); `params`: another
  generator's {'generator': ...} in the same architecture."""
  model, variables = ctx.model, ctx.variables
  if params is not None:
    kwargs = config_lib.model_kwargs(ctx.config)
    model = precision.apply_policy(
      srgan.Upscaler(kwargs["features"], kwargs["num_blocks"], kwargs["scale"]),
      ctx.config.get("dtype", "float32"),
    )
    variables = {"params": params}
  predict = jax.jit(model.apply, compiler_options=config_lib.compiler_options(ctx.config))
  # Fixed-size chunks (the last one padded): one compiled shape for the whole split.
  images = pipeline.apply_in_chunks(
    predict, variables, ctx.dataset.test["inputs"], batch_size=ctx.config.eval_batch_size
  )
  return np.clip(images.astype(np.float32), 0.0, 1.0)


def _write_grid(ctx, images, targets):
  """grid.png: one test image per row; columns low-res (nearest) | each method's
  images, in order | original."""
  rows = min(GRID_ROWS, len(targets))
  low = np.asarray(nearest(ctx.dataset.test["inputs"][:rows]))
  columns = [low, *(x[:rows] for x in images.values()), targets[:rows]]
  grid = np.stack(columns, axis=1).reshape((-1,) + targets.shape[1:])
  plots.save_image_grid(grid, os.path.join(ctx.workdir, GRID), num_columns=len(columns), scale=3)


def report(ctx, images):
  """PSNR / SSIM of each method's test images (dict, in grid order) and the gains over
  bicubic; with config.fid_classifier, the classifier's accuracy on each and MNIST-FID
  of each against the originals; writes grid.png."""
  test = ctx.dataset.test
  targets, labels = np.asarray(test["targets"], np.float32), np.asarray(test["labels"])
  report = {"test_images": len(targets), "grid": GRID}
  scores = jax.jit(_scores)
  for method, x in images.items():
    psnr, ssim = scores(x, targets)
    report[f"psnr_{method}"] = float(np.mean(psnr))
    report[f"ssim_{method}"] = float(np.mean(ssim))
  for method in images:
    if method != "bicubic":
      report[f"{method}_gain_db"] = report[f"psnr_{method}"] - report["psnr_bicubic"]
  classifier = sample_quality.load_classifier(ctx)
  if classifier is not None:
    apply = lambda x: fid.classifier_outputs(
      classifier.model, classifier.variables, fid.lenet_inputs(x)
    )
    reference, logits = apply(targets)
    report["accuracy_original"] = float(np.mean(np.argmax(logits, -1) == labels))
    for method, x in images.items():
      features, logits = apply(x)
      report[f"accuracy_{method}"] = float(np.mean(np.argmax(logits, -1) == labels))
      report[f"mnist_fid_{method}"] = fid.features_distance(features, reference)
  _write_grid(ctx, images, targets)
  return report


def bicubic_images(ctx):
  return np.clip(np.asarray(bicubic(ctx.dataset.test["inputs"])), 0.0, 1.0)
