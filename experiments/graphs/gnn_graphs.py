"""Graph classification with a GIN (docs/curriculum.md#f25): is a graph a cycle, a tree or a
wheel? Every node carries the same constant feature and every class has the same sizes, so
only the edges tell the classes apart. The report trains the bag-of-nodes baseline (the
same widths, no edges) with the same budget: it sees only how many nodes there are, which
is the same for every class, and stays near chance (1/3).

GIN's sum aggregation counts neighbours; `--config.model.layer=gcn` swaps in Kipf &
Welling's layer, whose degree normalisation makes every node of a regular graph (a cycle)
look alike whatever its degree.

Expected: test accuracy about 0.96, the baseline near chance.

  ./launch.sh gnn_graphs
"""

import ml_collections

from dlx import config as config_lib
from dlx import data
from dlx.models import gnn
from dlx.tasks import graphs


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.data = ml_collections.ConfigDict(
    dict(num_train=1200, num_validation=300, num_test=300, min_nodes=8, max_nodes=16)
  )
  config.model = config_lib.model_config(
    widths=(32, 32, 32), num_classes=3, layer="gin", readout="sum"
  )
  config.batch_size = 64
  config.num_train_steps = 1000
  config.log_every_steps = 100
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 1000
  config.best_metric = "accuracy"
  config.best_mode = "max"
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-2
  config.optimizer.schedule = "cosine"
  if config_lib.SMOKE in args:
    config_lib.smoke(
      config,
      **{
        "model.widths": (8, 8),
        "data.num_train": 48,
        "data.num_validation": 24,
        "data.num_test": 24,
      },
    )
  return config


def get_model(config):
  return gnn.GraphClassifier(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return data.load("graph_shapes", seed=config.seed, **config.data.to_dict())


loss = graphs.graph_classification
final_report = graphs.final_report
TARGETS = {"test.accuracy": (">=", 0.94), "report.accuracy_gain": (">=", 0.5)}
