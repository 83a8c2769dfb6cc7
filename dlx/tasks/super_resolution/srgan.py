"""SRGAN on MNIST (docs/curriculum.md#f20), from a finished srresnet_mnist run.

  make_train_step   one discriminator update (non-saturating GAN loss), then one generator
                    update on content + adv_weight * adversarial (+ pixel_weight * MSE)
  final_report      PSNR / SSIM of bicubic, the SRResNet of config.init_from and the SRGAN,
                    and with the classifier its accuracy on each and MNIST-FID of each

The content loss is SRGAN's perceptual loss with the frozen LeNet-5 of a finished
lenet5_mnist run (--config.fid_classifier) standing in for VGG: the squared distance of
its 84 penultimate (tanh) features. A `:smoke` run has no classifier and uses pixel MSE
instead (the report says so); a full run without one stops with the command to make it,
unless --config.content_loss=pixel asks for SRGAN-MSE. The classifier is read from
fid_classifier, not the protocol's `teacher`: the generic evaluation step runs a teacher
on the model's inputs, which here are 7x7 images a LeNet-5 cannot read.
"""

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx import config as config_lib
from dlx import errors
from dlx import losses
from dlx.models import srgan
from dlx.tasks import sample_quality
from dlx.tasks.super_resolution import common
from dlx.tasks.super_resolution import srresnet
from dlx.training import optim
from dlx.training import parallel
from dlx.training import warm_start

CONTENT_LOSSES = ("perceptual", "pixel")


def base_config():
  """SRGAN on MNIST, from a finished srresnet_mnist run (--config.init_from): its
  generator, a fresh discriminator, SRGAN's Adam 1e-4 for both."""
  config = srresnet.base_config()
  config.model = config_lib.model_config(
    features=32, num_blocks=8, scale=common.SCALE, disc_features=32, disc_dense=128
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


def get_model(config):
  return srgan.SRGAN(**config_lib.model_kwargs(config))


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


def make_train_step(model, optimizer, config, axis_name=None, teacher=None):
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


def final_report(ctx):
  """Bicubic, the SRResNet the run started from (config.init_from) and the SRGAN on the
  whole test set; grid.png. Without init_from (`:smoke`) the SRResNet is left out."""
  images = {"bicubic": common.bicubic_images(ctx)}
  report = {}
  if ctx.config.init_from:
    source, _ = warm_start.restore_state(ctx.config.init_from, "init_from")
    images["srresnet"] = common.upscaled(ctx, {"generator": source["params"]["generator"]})
  else:
    report["srresnet"] = "not measured: no --config.init_from (a :smoke run)"
  images["srgan"] = common.upscaled(ctx)
  params = ctx.variables["params"]
  report["generator_parameters"] = _count(params["generator"])
  report["discriminator_parameters"] = _count(params["discriminator"])
  _, report["content_loss"] = perceptual_network(ctx.config)
  return {**common.report(ctx, images), **report}


def _count(tree):
  return int(sum(np.size(x) for x in jax.tree.leaves(tree)))
