"""The Hessian of LeNet-5's training loss (docs/curriculum.md#c6): no training; the run
reads a finished experiments/vision/lenet5_mnist.py run and reports the top-5 and bottom-5
eigenvalues (Lanczos) of the loss on a fixed batch of 1,000 training images, at the fresh
initialisation of the config's seed and at the trained weights, with their spectral
densities (stochastic Lanczos quadrature) in hessian_spectrum.png. A smoke run has no
trained run to read and analyses its own weights.

  ./launch.sh lenet5_mnist --data_dir=../shared/tfds          # the trained run, once
  ./launch.sh hessian_spectrum --data_dir=../shared/tfds --config.init_from=runs/lenet5_mnist
"""

from dlx import config as config_lib
from dlx import experiment as experiment_lib
from dlx.tasks import classification
from dlx.tasks.classic import hessian

_TRAINED = experiment_lib.load("lenet5_mnist")  # the model and data of the run it reads


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = _TRAINED.get_config(config_lib.SMOKE if config_lib.SMOKE in args else None)
  return hessian.configure(config)


get_model = _TRAINED.get_model
get_dataset = _TRAINED.get_dataset
loss = classification.classification
final_report = hessian.final_report
OUTPUTS = (hessian.PLOT,)
STARTS_FROM = {"init_from": "lenet5_mnist"}
