"""Regression: a per-example loss (squared error, Huber, or the clipped squared error of
docs/curriculum.md#b5) plus MSE and MAE, so runs with different losses compare on the
same numbers (docs/curriculum.md#b1)."""

from dlx import errors
from dlx import losses

LOSSES = ("mse", "huber", "clipped")


def regression(
  predictions, batch, loss: str = "mse", delta: float = 1.0, clip: float = float("inf")
):
  """A regression loss ('mse', 'huber' with `delta`, or 'clipped': min(r^2, clip)) plus
  MSE and MAE."""
  targets = batch["targets"]
  if loss == "mse":
    value = losses.mse(predictions, targets)
  elif loss == "huber":
    value = losses.huber(predictions, targets, delta=delta)
  elif loss == "clipped":
    value = losses.clipped_mse(predictions, targets, clip)
  else:
    raise errors.ConfigError(f"unknown regression loss {loss!r}; choose one of {', '.join(LOSSES)}")
  return {
    "loss": value,
    "mse": losses.mse(predictions, targets),
    "mae": losses.mae(predictions, targets),
  }
