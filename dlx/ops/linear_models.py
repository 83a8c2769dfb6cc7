"""Closed-form linear models (docs/curriculum.md#f1): the least-squares solution that a
linear layer trained on the squared error converges to, computed directly.
"""

import numpy as np


def least_squares(x, y) -> tuple[np.ndarray, float]:
  """(weights (d,), bias) minimising sum (x.w + b - y)^2, by numpy.linalg.lstsq in float64.

  x: (n, d) features; y: n targets (any shape with n entries). lstsq gives the normal
  equations' solution from an SVD of [x, 1], without forming x^T x; a rank-deficient x
  gets the minimum-norm one.
  """
  design = np.concatenate([np.asarray(x, np.float64), np.ones((len(x), 1))], 1)
  solution = np.linalg.lstsq(design, np.asarray(y, np.float64).reshape(-1), rcond=None)[0]
  return solution[:-1], float(solution[-1])
