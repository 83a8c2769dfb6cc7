"""DCGAN (Radford et al., 2016) on MNIST (docs/curriculum.md#f19, #b9).

Convolutional players with batch norm (the generator's every layer but the tanh output,
the discriminator's every layer but the input), weights from N(0, 0.02), Adam(2e-4,
beta1 0.5). Each step: one discriminator update on the minimax loss
-log D(x) - log(1 - D(G(z))), then one generator update on
--config.generator_loss=non_saturating (-log D(G(z)), the default) or saturating
(log(1 - D(G(z))), the minimax game itself). Logs the generator's gradient norm
(generator_grad_norm) and D(G(z)) (fake_prob) every 10 steps; writes samples_<step>.png.
The saturating loss shows the vanishing gradient: its samples stay noise.
Expected: MNIST-FID about 4.72 after the default 3000 steps (experiments/generative/README.md
has the measurements, the vanishing gradient included).

  ./launch.sh lenet5_mnist --data_dir=../shared/tfds   # the MNIST-FID classifier, once
  ./launch.sh dcgan_mnist --data_dir=../shared/tfds --config.fid_classifier=runs/lenet5_mnist
  ./launch.sh dcgan_mnist --data_dir=../shared/tfds --config.generator_loss=saturating \\
    --config.num_train_steps=300 --workdir=runs/dcgan_mnist_saturating
"""

from dlx import config as config_lib
from dlx.models import gan
from dlx.tasks import adversarial
from dlx.tasks import sample_quality


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.model = config_lib.model_config(latent_dim=64, base_features=32)
  config.generator_loss = "non_saturating"  # or "saturating"
  config.batch_size = 64
  config.num_train_steps = 3000
  config.log_every_steps = 10  # fine enough to see the first steps' gradient norms
  config.eval_every_steps = 500
  config.eval_examples = 2000
  config.checkpoint_every_steps = 500
  config.sample_every_steps = 1000
  config.best_metric = ""  # a GAN has no validation loss to pick the best by
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  sample_quality.add_config(config)
  if config_lib.SMOKE in args:
    config_lib.smoke(config, batch_size=8, **{"model.base_features": 4, "model.latent_dim": 8})
  return config


def get_model(config):
  return gan.DCGAN(**config_lib.model_kwargs(config))


get_dataset = adversarial.mnist_dataset
get_loss = adversarial.get_dcgan_loss
make_optimizer = adversarial.make_dcgan_optimizers
make_train_step = adversarial.make_dcgan_step
visualize = adversarial.visualize
final_report = adversarial.final_report

OUTPUTS = ("samples_{step}.png",)
