"""What the compression experiments share: the MNIST MLP family (teacher, student,
LeNet-300-100: config, model, data, the `:smoke` variant) and the test accuracy that the
pruning and quantization reports score a model's variables with.
"""

import numpy as np

from dlx import config as config_lib
from dlx import data
from dlx.data import pipeline
from dlx.models import mlp


def mnist_config(*, epochs=30.0, **model):
  """MNIST classification by an MLP (`model`: dlx.models.mlp.MLP's keyword arguments):
  images scaled to [0, 1], Adam with a cosine schedule, best checkpoint by accuracy."""
  config = config_lib.base_config()
  config.model = config_lib.model_config(num_outputs=10, activation="relu", **model)
  config.batch_size = 128
  config.num_epochs = epochs
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  config.best_metric = "accuracy"
  config.best_mode = "max"
  return config


def smoke_mlp(config, **overrides):
  """The `:smoke` variant of an MNIST MLP experiment: hidden layers 16 wide."""
  hidden = (16,) * len(config.model.hidden)
  return config_lib.smoke(config, **{"model.hidden": hidden, **overrides})


def mlp_model(config):
  """The experiment's MLP (get_model of the MNIST MLP experiments)."""
  return mlp.MLP(**config_lib.model_kwargs(config))


def mnist_dataset(config, data_dir):
  del config
  return data.load("mnist", data_dir=data_dir).map(data.transforms.scale_images)


def test_errors(results) -> int:
  """Misclassified test images (MNIST's test split has 10,000)."""
  return round((1.0 - results["test"]["accuracy"]) * 10_000)


def test_accuracy(ctx, variables, apply=None) -> float:
  """Accuracy on the whole test split of the run's model with `variables`, or of
  `apply(variables, inputs) -> logits` (a jitted function) when given; the logits come
  from `pipeline.apply_in_chunks` (eval_batch_size rows at a time, one compiled shape)."""
  data, predict = ctx.dataset.test, apply or ctx.predict
  logits = pipeline.apply_in_chunks(
    lambda v, inputs: predict(v, inputs=inputs),
    variables,
    data["inputs"],
    batch_size=ctx.config.eval_batch_size,
  )
  correct = int(np.sum(np.argmax(logits, -1) == data["targets"]))
  return correct / len(data["targets"])
