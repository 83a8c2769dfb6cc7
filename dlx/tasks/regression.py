"""Regression: a per-example loss (squared error or Huber) plus MSE and MAE, so runs
with different losses compare on the same numbers (docs/curriculum.md#b1)."""

from dlx import errors
from dlx import losses

LOSSES = ("mse", "huber")


def regression(predictions, batch, loss: str = "mse", delta: float = 1.0):
  """A regression loss ('mse' or 'huber' with `delta`) plus MSE and MAE."""
  targets = batch["targets"]
  if loss == "mse":
    value = losses.mse(predictions, targets)
  elif loss == "huber":
    value = losses.huber(predictions, targets, delta=delta)
  else:
    raise errors.ConfigError(f"unknown regression loss {loss!r}; choose one of {', '.join(LOSSES)}")
  return {
    "loss": value,
    "mse": losses.mse(predictions, targets),
    "mae": losses.mae(predictions, targets),
  }
