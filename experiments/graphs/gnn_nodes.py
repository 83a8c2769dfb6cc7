"""Node classification with a GCN (docs/curriculum.md#f25) on contextual stochastic block
models: each example is a graph of 48 nodes in 3 blocks, edges fall mostly within a block
(p 0.3 inside, 0.02 across) and a node's 8 features are its block's unit vector plus noise
N(0, I), too much to classify it from its own features alone. Two layers of Kipf &
Welling's convolution average over two hops of neighbours, most of them in the node's
block. The report trains the bag-of-nodes baseline (a per-node MLP of the same widths,
no edges) with the same budget beside it.

Expected: test accuracy about 0.93, well above the baseline.

  ./launch.sh gnn_nodes
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
    dict(num_train=400, num_validation=100, num_test=100, num_nodes=48, p_in=0.3, p_out=0.02)
  )
  config.model = config_lib.model_config(widths=(32, 32), num_classes=3, layer="gcn")
  config.batch_size = 16
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
        "model.widths": (8,),
        "data.num_train": 16,
        "data.num_validation": 8,
        "data.num_test": 8,
        "data.num_nodes": 12,
      },
    )
  return config


def get_model(config):
  return gnn.NodeClassifier(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return data.load("sbm_nodes", seed=config.seed, **config.data.to_dict())


loss = graphs.node_classification
final_report = graphs.final_report
TARGETS = {"test.accuracy": (">=", 0.9), "report.accuracy_gain": (">=", 0.2)}
