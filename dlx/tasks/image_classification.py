"""Image classification: what the CNN and ViT experiments share: config fields, data,
loss and the final report (learned first-layer filters, feature maps, classic fixed
kernels).

An experiment file (experiments/vision/alexnet_fashion_mnist.py, ...) adds its model:

    def get_config(arg=None):
      args = config_lib.parse_arg(arg, (image_classification.FULL,))
      config = image_classification.base_config(image_size=32)
      image_classification.set_model(config, width_multiplier=0.25)
      ...
    get_dataset = image_classification.get_dataset
    get_loss = image_classification.get_loss
    final_report = image_classification.final_report
    OUTPUTS = image_classification.OUTPUTS
"""

import os

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from dlx import config as config_lib
from dlx.data import images
from dlx.models import preprocess
from dlx.tasks import classification
from dlx.viz import plots

FULL = "full"  # the `:full` argument: original architecture at 224x224x3 (for a GPU)
OUTPUTS = ("first_layer_filters.png", "feature_maps.png", "classic_kernels.png")


def base_config(image_size: int = 28, dataset: str = "fashion_mnist"):
  config = config_lib.base_config()
  config.dataset = dataset
  config.image_size = image_size  # 28 = as stored; 32 = zero-padded by 2 pixels per side
  config.resize_to = 0  # > 0: resize inside the model (e.g. 224 for `:full`)
  config.num_classes = 10
  set_model(config)
  config.batch_size = 128
  config.label_smoothing = 0.0
  config.augment = ml_collections.ConfigDict(
    dict(
      flip=False,
      crop_padding=0,
      input_noise=0.0,
      mixup_alpha=0.0,
      cutmix_alpha=0.0,
      num_classes=config.get_ref("num_classes"),
    )
  )
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.weight_decay = 0.05
  config.optimizer.schedule = "cosine"
  config.best_metric = "accuracy"
  config.best_mode = "max"
  config.train_eval_examples = 5000
  return config


def set_model(config, **kwargs):
  """config.model = the model's keyword arguments, with num_classes following
  config.num_classes (one field to override)."""
  config.model = ml_collections.ConfigDict({"num_classes": config.get_ref("num_classes"), **kwargs})
  return config


def full_scale(config, *, num_epochs: float = 30.0):
  """The `:full` variant: resize to 224x224x3 on the device, original widths."""
  config.resize_to = 224
  config.batch_size = 128
  config.num_epochs = num_epochs
  config.eval_batch_size = 128
  return config


def get_dataset(config, data_dir):
  pad_to = config.image_size if config.image_size != 28 else None
  return images.load_images(config.dataset, data_dir=data_dir, pad_to=pad_to)


def wrap_for_full_scale(model, config):
  """Resizes grey 28x28 inputs to resize_to x resize_to x 3 inside the compiled step."""
  if not config.resize_to:
    return model
  return preprocess.ResizeInputs(model, size=config.resize_to, channels=3)


def get_loss(config):
  smoothing = config.label_smoothing

  def loss(logits, batch):
    return classification.soft_classification(logits, batch, label_smoothing=smoothing)

  return loss


def first_conv(model, variables, image):
  """(kernel, feature maps) of the first convolution the model runs on `image` (H, W, C),
  found by execution order, so it works on restored (key-sorted) parameter trees too."""
  captured = []

  def is_first_conv(module, method):
    # Called in execution order while the forward pass is traced: keep the first conv.
    if method == "__call__" and isinstance(module, nn.Conv) and not captured:
      captured.append(module.path)
      return True
    return False

  forward = jax.jit(
    lambda variables, x: model.apply(
      variables, x, train=False, capture_intermediates=is_first_conv, mutable=["intermediates"]
    )[1]
  )
  state = forward(variables, np.asarray(image)[None])
  path, node = [], state["intermediates"]
  while "__call__" not in node:
    (name,) = node  # only the first conv was captured
    path.append(name)
    node = node[name]
  kernel = variables["params"]
  for name in path:
    kernel = kernel[name]
  return np.asarray(kernel["kernel"]), np.asarray(node["__call__"][0][0])


def final_report(ctx):
  """Writes first_layer_filters.png and feature_maps.png (the first convolution's
  kernels and its output on the first test image) and classic_kernels.png (edge,
  sharpen, blur and emboss kernels applied to that image)."""
  image = ctx.dataset.test["inputs"][0]
  kernel, maps = first_conv(ctx.model, ctx.variables, image)
  plots.plot_first_layer_filters(kernel, os.path.join(ctx.workdir, OUTPUTS[0]))
  plots.plot_feature_maps(maps, os.path.join(ctx.workdir, OUTPUTS[1]))
  # The data are standardised; the classic kernels expect intensities in [0, 1].
  grey = plots.rescale_to_unit(np.asarray(image)[..., 0])
  plots.plot_filtered_images(grey, os.path.join(ctx.workdir, OUTPUTS[2]))
  return {"plots": list(OUTPUTS)}
