"""Magnitude pruning of LeNet-300-100 (Han et al., 2015; docs/curriculum.md#g2): start
from a trained dense run (experiments/compression/lenet300_mnist.py), raise the sparsity of
the weight matrices to 92% (12.5x fewer weights; Han et al.: 12x) along a cubic schedule
while fine-tuning, keeping pruned weights at zero through the optimizer, then fine-tune
with the masks fixed. Reports per-layer sparsity, the test accuracy beside the dense
run's, and sparsity_curve.png (one-shot pruning of the dense run without fine-tuning,
against this run's path).

  ./launch.sh lenet300_mnist --data_dir=../shared/tfds            # the dense run, once
  ./launch.sh prune_lenet300_mnist --data_dir=../shared/tfds --config.init_from=runs/lenet300_mnist
  ./launch.sh prune_lenet300_mnist:layerwise ...                  # every layer at 92%
"""

from dlx import config as config_lib
from dlx.tasks import classification
from dlx.tasks.compression import common
from dlx.tasks.compression import pruning

_DENSE = config_lib.model_config(hidden=(300, 100), dropout_rate=0.0)  # lenet300_mnist's


def get_config(arg=None):
  args = config_lib.parse_arg(arg, ("layerwise",))
  config = common.mnist_config(epochs=40.0, **_DENSE)
  pruning.pruning_config(config, sparsity=0.92)
  if "layerwise" in args:
    config.pruning.scope = "layerwise"
  # The dense run's AdamW (decoupled weight decay 0.05) at half its learning rate. Measured
  # at 92%: 98.19% test with it, 98.10% with plain Adam, 98.06% with Adam over 20 epochs.
  config.optimizer.name = "adamw"
  config.optimizer.weight_decay = 0.05
  config.optimizer.learning_rate = 5e-4
  config.eval_every_steps = 500
  config.best_metric = ""  # the sparsity rises during the run: keep the final model
  if config_lib.SMOKE in args:
    common.smoke_mlp(config, **{"pruning.every": 1})
  return config


get_model = common.mlp_model
get_dataset = common.mnist_dataset
loss = classification.classification
make_optimizer = pruning.make_optimizer
evaluate = pruning.evaluate
final_report = pruning.final_report
OUTPUTS = pruning.OUTPUTS
STARTS_FROM = {"init_from": "lenet300_mnist"}
TARGETS = {
  "report.sparsity": (">=", 0.9166),  # 12x fewer weights
  "report.accuracy_drop": ("<=", 0.001),  # within 0.1 point of the dense run
}
