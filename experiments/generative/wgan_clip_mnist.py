"""The original WGAN (Arjovsky et al., 2017) on MNIST: weight clipping (docs/curriculum.md#f19,
#b9).

The critic's Lipschitz constraint is enforced crudely by clipping every critic weight to
[-0.01, 0.01] after each update; no gradient penalty (it is not even computed).
RMSprop(5e-5) for both players, 5 critic steps per generator step, batch 64 per critic
step, as in the paper (without its 100-critic-step bursts). The same DCGAN-shaped players
as wgan_gp_mnist, with per-example LayerNorm in the critic in place of the paper's batch
norm. The paper trains for 100k+ generator steps; this runs 30,000 (150,000 critic steps).
Expected: MNIST-FID about 8.3, strokes that mostly read as digits (14.4 after 4000
steps, 10.8 after 8000, 10.5 after 20,000); compare wgan_gp_mnist and dcgan_mnist.

  ./launch.sh wgan_clip_mnist --data_dir=../shared/tfds --config.fid_classifier=runs/lenet5_mnist
"""

from dlx import config as config_lib
from dlx.models import gan
from dlx.tasks import adversarial
from dlx.tasks import sample_quality


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.model = config_lib.model_config(latent_dim=64, base_features=16, critic_normalize=True)
  config.critic_steps = 5
  config.gradient_penalty_weight = 0.0
  config.weight_clip = 0.01
  config.batch_size = 5 * 64  # one 64-image slice per critic step
  # Generator steps (5 critic steps each). Measured MNIST-FID: 27.0 after 1000, 14.4 after
  # 4000, 10.8 after 8000, 10.5 after 20,000, 8.3 after 30,000; clipping learns slowly.
  config.num_train_steps = 30_000
  config.log_every_steps = 50
  config.eval_every_steps = 250
  config.eval_examples = 2000
  config.checkpoint_every_steps = 250
  config.sample_every_steps = 500
  config.best_metric = ""  # a GAN has no validation loss to pick the best by
  config.optimizer.name = "rmsprop"
  config.optimizer.learning_rate = 5e-5
  # torch's RMSprop (the paper's code): rho 0.99 and eps 1e-8 outside the square root;
  # dlx puts eps inside it, so 1e-16. The clipped critic's gradients are tiny, and a
  # larger eps would swamp them.
  config.optimizer.decay = 0.99
  config.optimizer.eps = 1e-16
  sample_quality.add_config(config)
  if config_lib.SMOKE in args:
    # The batch splits into critic_steps slices, so it must divide by 5.
    config_lib.smoke(config, batch_size=10, **{"model.base_features": 4, "model.latent_dim": 8})
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
