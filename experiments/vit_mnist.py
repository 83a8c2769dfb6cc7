"""Vision Transformer (CURRICULUM F15) on MNIST: 7x7 patches of the 28x28 digits (16
tokens) plus a class token, learned positions, a pre-norm Transformer encoder and a
classifier on the class token. (4x4 patches, 49 tokens, cost about 4x more per step on
the CPU for little gain on digits.)

  ./launch.sh vit_mnist --data_dir=../shared/tfds
"""

from dlx import image_classification as ic
from dlx.models import vit


def get_config():
  config = ic.base_config(image_size=28, dataset="mnist")
  config.patch_size = 7
  config.num_layers = 4
  config.num_heads = 4
  config.features = 96
  config.hidden = 192
  config.dropout_rate = 0.1
  config.num_epochs = 10.0
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 400
  config.optimizer.grad_clip_norm = 1.0
  config.augment.crop_padding = 2  # digits must not be flipped; small shifts are fine
  return config


def get_model(config):
  return vit.ViT(config.num_classes, config.patch_size, config.num_layers, config.num_heads,
                 config.features, config.hidden, config.dropout_rate)


get_dataset = ic.get_dataset
get_loss = ic.get_loss

