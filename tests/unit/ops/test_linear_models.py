"""Tests for dlx/ops/linear_models.py (docs/curriculum.md#f1): closed-form least squares
recovers noiseless weights exactly and agrees with scikit-learn's LinearRegression."""

import numpy as np
import pytest
from sklearn import linear_model

from dlx.ops import linear_models


def test_least_squares_recovers_noiseless_weights():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((30, 4)).astype(np.float32)
  w, b = np.array([1.0, -2.0, 0.5, 3.0]), 0.25
  weights, bias = linear_models.least_squares(x, x.astype(np.float64) @ w + b)
  assert weights.dtype == np.float64 and isinstance(bias, float)
  np.testing.assert_allclose(weights, w, atol=1e-10)
  assert bias == pytest.approx(b, abs=1e-10)


def test_least_squares_matches_sklearn_on_noisy_column_targets():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((100, 3))
  y = (x @ np.array([0.5, 1.0, -1.0]) + 2.0 + 0.3 * rng.standard_normal(100))[:, None]
  weights, bias = linear_models.least_squares(x, y)  # (n, 1) targets, as a split holds them
  reference = linear_model.LinearRegression().fit(x, y[:, 0])
  np.testing.assert_allclose(weights, reference.coef_, rtol=1e-10)
  assert bias == pytest.approx(reference.intercept_, rel=1e-10)
