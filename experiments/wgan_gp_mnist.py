"""WGAN with gradient penalty (Gulrajani et al., 2017) on MNIST (CURRICULUM F19, B9).

lambda = 10, 5 critic steps per generator step, Adam(1e-4, beta1 0.5, beta2 0.9).
Logs the critic's Wasserstein estimate; writes samples_<step>.png.

  ./launch.sh wgan_gp_mnist --data_dir=../shared/tfds
"""

import jax

from dlx import adversarial
from dlx import config as config_lib
from dlx import data
from dlx.models import gan


def get_config():
  config = config_lib.base_config()
  config.latent_dim = 64
  config.base_features = 16       # sized for a CPU: ~0.5 s per generator step
  config.critic_steps = 5
  config.gradient_penalty_weight = 10.0
  config.weight_clip = 0.0         # > 0: the original WGAN's weight clipping (e.g. 0.01)
  config.batch_size = 5 * 64     # one 64-image slice per critic step
  config.num_train_steps = 4000  # generator steps
  config.log_every_steps = 100
  config.eval_every_steps = 500
  config.eval_examples = 2000
  config.checkpoint_every_steps = 500
  config.sample_every_steps = 1000
  config.best_metric = ""        # a GAN has no validation loss to pick the best by
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.9
  return config


def get_model(config):
  return gan.WGAN(latent_dim=config.latent_dim, base_features=config.base_features)


def get_dataset(config, data_dir):
  del config
  ds = data.load("mnist", data_dir=data_dir)
  return ds.map(lambda split: data.transforms.scale_images(split, low=-1.0, high=1.0))


loss = adversarial.wgan_loss
make_optimizer = adversarial.make_optimizers
make_train_step = adversarial.make_wgan_gp_step


def visualize(model, variables, batch, rng, config):
  del batch
  z = jax.random.normal(jax.random.PRNGKey(config.seed), (64, config.latent_dim))
  del rng  # the same latents every time, so grids over training are comparable
  images = model.apply(variables, z, method="generate")
  return {"samples": (images + 1.0) / 2.0}
