"""4x super-resolution of MNIST (docs/curriculum.md#f20): SRResNet, then SRGAN from it.

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
  make_srgan_step   one discriminator update (non-saturating GAN loss), then one generator
                    update on content + adv_weight * adversarial (+ pixel_weight * MSE)
  srresnet_report   PSNR / SSIM of bicubic and the SRResNet on the whole test set; grid.png
  srgan_report      the same for bicubic, the SRResNet of config.init_from and the SRGAN,
                    and with the classifier its accuracy on each and MNIST-FID of each

The content loss is SRGAN's perceptual loss with the frozen LeNet-5 of a finished
lenet5_mnist run (--config.fid_classifier) standing in for VGG: the squared distance of
its 84 penultimate (tanh) features. A `:smoke` run has no classifier and uses pixel MSE
instead (the report says so); a full run without one stops with the command to make it,
unless --config.content_loss=pixel asks for SRGAN-MSE. The classifier is read from
fid_classifier, not the protocol's `teacher`: the generic evaluation step runs a teacher
on the model's inputs, which here are 7x7 images a LeNet-5 cannot read.
"""

import os

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx import config as config_lib
from dlx import data
from dlx import errors
from dlx import losses
from dlx.data import pipeline
from dlx.models import srgan
from dlx.ops import fid
from dlx.ops import image_quality
from dlx.tasks import sample_quality
from dlx.training import optim
from dlx.training import parallel
from dlx.training import precision
from dlx.training import warm_start
from dlx.viz import plots

SCALE = 4
GRID = "grid.png"
GRID_ROWS = 8
CONTENT_LOSSES = ("perceptual", "pixel")


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


def srresnet_config():
  """The SRResNet on MNIST with pixel MSE: 32 channels, 8 residual blocks, 800 steps of
  Adam 1e-3 (cosine) at batch 32."""
  config = config_lib.base_config()
  config.model = config_lib.model_config(features=32, num_blocks=8, scale=SCALE)
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


def srgan_config():
  """SRGAN on MNIST, from a finished srresnet_mnist run (--config.init_from): its
  generator, a fresh discriminator, SRGAN's Adam 1e-4 for both."""
  config = srresnet_config()
  config.model = config_lib.model_config(
    features=32, num_blocks=8, scale=SCALE, disc_features=32, disc_dense=128
  )
  config.init_from_keys = "generator"  # the discriminator starts fresh
  config.num_train_steps = 400
  config.content_loss = "perceptual"  # perceptual (LeNet-5 features) | pixel (SRGAN-MSE)
  config.adv_weight = 1e-3  # SRGAN's weight of the adversarial term
  config.pixel_weight = 0.0  # an optional pixel MSE term beside the content loss
  config.optimizer.learning_rate = 1e-4
  config.optimizer.schedule = "constant"
  config.best_metric = ""  # a GAN has no validation number to pick the best by
  sample_quality.add_config(config)  # fid_classifier: the perceptual loss's network
  return config


def smoke(config):
  """`:smoke`: tiny networks, 3 steps."""
  overrides = {"model.features": 8, "model.num_blocks": 1}
  if "disc_features" in config.model:
    overrides.update({"model.disc_features": 8, "model.disc_dense": 16})
  return config_lib.smoke(config, **overrides)


def srresnet_model(config):
  return srgan.Upscaler(**config_lib.model_kwargs(config))


def srgan_model(config):
  return srgan.SRGAN(**config_lib.model_kwargs(config))


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


def make_optimizers(config, total_steps):
  """The same optimizer config for the generator and the discriminator, kept as
  separate states (SRGAN: Adam 1e-4 for both)."""
  return {
    "generator": optim.create_optimizer(config.optimizer, total_steps),
    "discriminator": optim.create_optimizer(config.optimizer, total_steps),
  }


def perceptual_network(config):
  """(the frozen LeNet-5 of config.fid_classifier or None, what the content loss is)."""
  if config.content_loss not in CONTENT_LOSSES:
    raise errors.ConfigError(
      f"--config.content_loss={config.content_loss!r}: choose one of {', '.join(CONTENT_LOSSES)}"
    )
  if config.content_loss == "pixel":
    return None, "pixel MSE (SRGAN-MSE, --config.content_loss=pixel)"
  reason = sample_quality.skip_reason(config)
  if reason is None:
    classifier = warm_start.load_frozen(config[sample_quality.FIELD], sample_quality.FIELD)
    if classifier.experiment.name != sample_quality.CLASSIFIER_EXPERIMENT:
      raise errors.ConfigError(
        f"--config.{sample_quality.FIELD}: the perceptual loss reads a "
        f"{sample_quality.CLASSIFIER_EXPERIMENT} run, got a {classifier.experiment.name} run"
      )
    return classifier, "perceptual: LeNet-5 penultimate (84 tanh) features"
  if config.smoke:
    return None, "pixel MSE: a :smoke run has no classifier for the perceptual loss"
  raise errors.ConfigError(
    f"the perceptual loss needs a classifier: pass --config.{sample_quality.FIELD}="
    f"runs/{sample_quality.CLASSIFIER_EXPERIMENT} (make it with `{sample_quality.MAKE_CLASSIFIER}`)"
    ", or --config.content_loss=pixel for SRGAN-MSE"
  )


def penultimate_features(model, variables, images):
  """The input of the last nn.Dense a classifier calls (LeNet-5: its 84 tanh features)
  on 28x28 images, zero-padded to the 32x32 LeNet-5 trained on; differentiable."""
  captured = []

  def catch_dense_input(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
      captured.append(args[0])
    return next_fun(*args, **kwargs)

  padded = jnp.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  with nn.intercept_methods(catch_dense_input):
    model.apply(variables, padded, train=False)
  return captured[-1].reshape((images.shape[0], -1))


def make_srgan_step(model, optimizer, config, axis_name=None, teacher=None):
  """The protocol's make_train_step for SRGAN: one discriminator update (non-saturating
  GAN loss on real vs generated images), then one generator update on content +
  adv_weight * adversarial (+ pixel_weight * pixel MSE)."""
  if teacher is not None:
    raise errors.ConfigError(
      "srgan reads its perceptual network from --config.fid_classifier; unset --config.teacher"
    )
  classifier, content_name = perceptual_network(config)
  logging.info("SRGAN content loss: %s", content_name)
  adv_weight, pixel_weight = config.adv_weight, config.pixel_weight

  def upscale(params, low):
    return model.apply({"params": params}, low)

  def discriminate(params, images):
    return model.apply({"params": params}, images, method="discriminate")

  def content(images, targets):
    if classifier is None:
      return jnp.mean((images - targets) ** 2)
    # The classifier's variables are constants of the compiled step (61,706 numbers).
    features = lambda x: penultimate_features(classifier.model, classifier.variables, x)
    return jnp.mean((features(images) - jax.lax.stop_gradient(features(targets))) ** 2)

  def update(name, grads, params, opt_state):
    grads = parallel.mean_over_devices(grads, axis_name)
    updates, new_state = optimizer[name].update(grads, opt_state[name], params[name])
    params = {**params, name: optax.apply_updates(params[name], updates)}
    return params, {**opt_state, name: new_state}

  def train_step(state, batch):
    low, high = batch["inputs"], batch["targets"]
    params, opt_state = state.params, state.opt_state
    fake = jax.lax.stop_gradient(upscale(params, low))

    def discriminator_objective(p):
      both = {**params, "discriminator": p}
      real_logits, fake_logits = discriminate(both, high), discriminate(both, fake)
      return jnp.mean(losses.gan_discriminator_loss(real_logits, fake_logits))

    d_loss, grads = jax.value_and_grad(discriminator_objective)(params["discriminator"])
    params, opt_state = update("discriminator", grads, params, opt_state)

    def generator_objective(p):
      both = {**params, "generator": p}
      images = upscale(both, low)
      mse = jnp.mean((images - high) ** 2)
      terms = {
        "content": content(images, high),
        "adversarial": jnp.mean(losses.gan_generator_loss(discriminate(both, images))),
        "pixel_mse": mse,
      }
      total = terms["content"] + adv_weight * terms["adversarial"] + pixel_weight * mse
      return total, terms

    (g_loss, terms), grads = jax.value_and_grad(generator_objective, has_aux=True)(
      params["generator"]
    )
    params, opt_state = update("generator", grads, params, opt_state)
    metrics = parallel.mean_over_devices(
      {"loss": g_loss, **terms, "discriminator_loss": d_loss}, axis_name
    )
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def _upscaled(ctx, params=None):
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


def _report(ctx, images):
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


def _bicubic_images(ctx):
  return np.clip(np.asarray(bicubic(ctx.dataset.test["inputs"])), 0.0, 1.0)


def srresnet_report(ctx):
  """The SRResNet against bicubic on the whole test set; grid.png."""
  return _report(ctx, {"bicubic": _bicubic_images(ctx), "srresnet": _upscaled(ctx)})


def srgan_report(ctx):
  """Bicubic, the SRResNet the run started from (config.init_from) and the SRGAN on the
  whole test set; grid.png. Without init_from (`:smoke`) the SRResNet is left out."""
  images = {"bicubic": _bicubic_images(ctx)}
  report = {}
  if ctx.config.init_from:
    source, _ = warm_start.restore_state(ctx.config.init_from, "init_from")
    images["srresnet"] = _upscaled(ctx, {"generator": source["params"]["generator"]})
  else:
    report["srresnet"] = "not measured: no --config.init_from (a :smoke run)"
  images["srgan"] = _upscaled(ctx)
  params = ctx.variables["params"]
  report["generator_parameters"] = _count(params["generator"])
  report["discriminator_parameters"] = _count(params["discriminator"])
  _, report["content_loss"] = perceptual_network(ctx.config)
  return {**_report(ctx, images), **report}


def _count(tree):
  return int(sum(np.size(x) for x in jax.tree.leaves(tree)))
