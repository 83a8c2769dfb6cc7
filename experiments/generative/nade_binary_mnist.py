"""NADE (Larochelle & Murray, 2011) on binarised MNIST (docs/curriculum.md#f22): an
autoregressive model over the 784 pixels in raster order whose likelihood is exact,
so the test number is a true negative log-likelihood in nats, not a bound like the
VAE's negative ELBO. The data is vae_mnist's: each pixel drawn once ~ Bernoulli(grey
level) with a fixed seed. Writes samples_<step>.png (ancestral samples) and
completions_<step>.png (rows alternate test digits and NADE's completion of their
bottom half given the top half). H = 500, batch 100, Adam 5e-3 with a cosine schedule,
4 epochs. Expected: exact test NLL about 90.1 nats.

  ./launch.sh nade_binary_mnist --data_dir=../shared/tfds
"""

from dlx import config as config_lib
from dlx.models import nade
from dlx.tasks.density import nade as nade_task


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.model = config_lib.model_config(hidden=500)
  config.batch_size = 100
  config.eval_batch_size = 500
  config.num_epochs = 4.0
  config.checkpoint_every_steps = 500
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 5e-3
  config.optimizer.schedule = "cosine"
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"model.hidden": 8})
  return config


def get_model(config):
  return nade.NADE(**config_lib.model_kwargs(config))


get_dataset = nade_task.get_dataset
loss = nade_task.loss
visualize = nade_task.visualize
OUTPUTS = nade_task.OUTPUTS
TARGETS = {"test.nll": ("<=", 92.0)}  # nats (anchor: the NADE paper's 88.9 with H = 500)
