"""Linear regression two ways (docs/curriculum.md#f1): a synthetic linear dataset with
known weights, and the report putting the closed-form least-squares solution
(dlx.ops.linear_models.least_squares) beside the trained linear layer and the truth.
"""

import numpy as np

from dlx.data import core
from dlx.ops import linear_models


def linear_data(*, num_examples=1000, num_features=8, noise=0.1, seed=0):
  """y = x.w + b + N(0, noise^2) for x ~ N(0, I), with w ~ N(0, I) and b ~ N(0, 1) drawn
  by `seed` (kept in info as true_weights and true_bias); splits 60/20/20."""
  rng = np.random.default_rng(seed)
  weights, bias = rng.standard_normal(num_features), float(rng.standard_normal())
  x = rng.standard_normal((num_examples, num_features))
  y = x @ weights + bias + noise * rng.standard_normal(num_examples)
  return core.train_validation_test(
    x.astype(np.float32),
    y[:, None].astype(np.float32),
    validation_fraction=0.2,
    test_fraction=0.2,
    seed=seed,
    info=dict(name="linear", true_weights=weights.tolist(), true_bias=bias),
  )


def _linear_layer(ctx):
  """(kernel (d, k), bias (k,)) of a dlx.models.mlp.Linear."""
  layer = ctx.variables["params"]["Dense_0"]
  return np.asarray(layer["kernel"], np.float64), np.asarray(layer["bias"], np.float64)


def final_report(ctx):
  """The closed-form solution (normal equations, by lstsq) beside the trained layer's
  weights and the true ones; their largest difference and each one's test MSE."""
  train, test = ctx.dataset.train, ctx.dataset.test
  closed_w, closed_b = linear_models.least_squares(train["inputs"], train["targets"])
  kernel, bias = _linear_layer(ctx)
  trained_w, trained_b = kernel[:, 0], float(bias[0])
  x, y = np.asarray(test["inputs"], np.float64), np.asarray(test["targets"], np.float64)[:, 0]
  difference = float(np.max(np.abs(np.append(closed_w - trained_w, closed_b - trained_b))))
  report = {
    "closed_form": {"weights": closed_w.tolist(), "bias": closed_b},
    "gradient_descent": {"weights": trained_w.tolist(), "bias": trained_b},
    "max_parameter_difference": difference,
    "agree": difference <= ctx.config.tolerance,
    "closed_form_test_mse": float(np.mean((x @ closed_w + closed_b - y) ** 2)),
    "gradient_descent_test_mse": float(np.mean((x @ trained_w + trained_b - y) ** 2)),
  }
  if "true_weights" in ctx.dataset.info:
    true_w = np.asarray(ctx.dataset.info["true_weights"])
    report["true"] = {"weights": true_w.tolist(), "bias": ctx.dataset.info["true_bias"]}
    report["closed_form_error_to_true"] = float(
      np.max(np.abs(np.append(closed_w - true_w, closed_b - ctx.dataset.info["true_bias"])))
    )
  return report
