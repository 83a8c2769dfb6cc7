"""Per-example loss-and-metric functions for common tasks, in the experiment protocol's
form `loss(outputs, batch) -> {'loss': (B,), metric: (B,), ...}` (dlx/experiment.py)."""

import jax.numpy as jnp

from dlx import errors
from dlx import losses


def accuracy(logits, labels):
  return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def classification(logits, batch, label_smoothing: float = 0.0):
  """Softmax cross-entropy on integer `targets`, with accuracy."""
  labels = batch["targets"]
  return {"loss": losses.softmax_cross_entropy(logits, labels, label_smoothing=label_smoothing),
          "accuracy": accuracy(logits, labels)}


def regression(predictions, batch, loss: str = "mse", delta: float = 1.0):
  """A regression loss ('mse' or 'huber' with `delta`) plus MSE and MAE to compare runs."""
  targets = batch["targets"]
  if loss == "mse":
    value = losses.mse(predictions, targets)
  elif loss == "huber":
    value = losses.huber(predictions, targets, delta=delta)
  else:
    raise errors.ConfigError(f"unknown regression loss {loss!r}; choose mse or huber")
  return {"loss": value, "mse": losses.mse(predictions, targets),
          "mae": losses.mae(predictions, targets)}
