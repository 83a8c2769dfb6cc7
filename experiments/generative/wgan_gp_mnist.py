"""WGAN with gradient penalty (Gulrajani et al., 2017) on MNIST (docs/curriculum.md#f19,
#b9).

lambda = 10, 5 critic steps per generator step, Adam(1e-4, beta1 0.5, beta2 0.9).
Logs the critic's Wasserstein estimate; writes samples_<step>.png. With
--config.fid_classifier the report scores 10,000 samples by MNIST-FID against the test
images (dlx/tasks/sample_quality.py).
Expected: MNIST-FID about 4.88 after the default 4000 generator steps
(experiments/generative/README.md has the measurements).

  ./launch.sh wgan_gp_mnist --data_dir=../shared/tfds --config.fid_classifier=runs/lenet5_mnist
"""

from dlx import config as config_lib
from dlx.models import gan
from dlx.tasks import adversarial
from dlx.tasks import sample_quality


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  # base_features 16 is sized for a CPU: ~0.5 s per generator step.
  config.model = config_lib.model_config(latent_dim=64, base_features=16)
  config.critic_steps = 5
  config.gradient_penalty_weight = 10.0
  config.weight_clip = 0.0  # > 0: the original WGAN's weight clipping (e.g. 0.01)
  config.batch_size = 5 * 64  # one 64-image slice per critic step
  config.num_train_steps = 4000  # generator steps
  config.log_every_steps = 100
  config.eval_every_steps = 500
  config.eval_examples = 2000
  config.checkpoint_every_steps = 500
  config.sample_every_steps = 1000
  config.best_metric = ""  # a GAN has no validation loss to pick the best by
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.9
  sample_quality.add_config(config)
  if config_lib.SMOKE in args:
    # The batch splits into critic_steps slices, so it must divide by 5.
    config_lib.smoke(config, batch_size=10, **{"model.base_features": 8})
  return config


def get_model(config):
  return gan.WGAN(**config_lib.model_kwargs(config))


get_dataset = adversarial.mnist_dataset
loss = adversarial.wgan_loss
make_optimizer = adversarial.make_optimizers
make_train_step = adversarial.make_wgan_gp_step
visualize = adversarial.visualize
final_report = adversarial.final_report


OUTPUTS = ("samples_{step}.png",)
