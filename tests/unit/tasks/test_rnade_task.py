"""The RNADE task (dlx/tasks/density/rnade.py): the dequantised digits, the fresh noise
of every train batch, and the baselines' numbers against SciPy and scikit-learn."""

import jax
import ml_collections
import numpy as np
import pytest
from scipy import stats
from sklearn import mixture

from dlx.tasks.density import rnade as rnade_task


def _config(**fields):
  return ml_collections.ConfigDict({"seed": 0, "fresh_noise": True, **fields})


def test_dequantised_digits_stay_in_their_level_bins():
  ds = rnade_task.get_dataset(_config(), None)
  assert ds.train["inputs"].shape == (1258, 64) and ds.test["inputs"].shape == (359, 64)
  for split in (ds.train, ds.validation, ds.test):
    x, levels = split["inputs"], split["levels"]
    assert x.min() >= 0.0 and x.max() < 1.0
    np.testing.assert_array_equal(np.floor(x * rnade_task.LEVELS), levels)
    assert len(np.unique(x)) > 0.9 * x.size  # continuous: no two pixels share a value


def test_fresh_noise_redraws_points_in_the_same_bins():
  ds = rnade_task.get_dataset(_config(), None)
  batch = {k: v[:32] for k, v in ds.train.items()}
  augment = rnade_task.get_augment(_config())
  a, b = (np.asarray(augment(jax.random.PRNGKey(i), batch)["inputs"]) for i in (0, 1))
  assert not np.allclose(a, b)
  for x in (a, b):
    np.testing.assert_array_equal(np.floor(x * rnade_task.LEVELS), batch["levels"])
  assert rnade_task.get_augment(_config(fresh_noise=False)) is None


def test_gaussian_baseline_matches_scipy():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((300, 5)) @ rng.standard_normal((5, 5))
  mean, covariance = rnade_task.gaussian_fit(x)
  np.testing.assert_allclose(covariance, np.cov(x.T, bias=True), rtol=1e-10)
  expected = stats.multivariate_normal(mean, covariance).logpdf(x[:20])
  np.testing.assert_allclose(rnade_task.gaussian_log_density(x[:20], mean, covariance), expected)


def test_gmm_selection_picks_the_best_validation_score():
  rng = np.random.default_rng(1)
  centres = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
  points = centres[rng.integers(0, 3, 900)] + 0.5 * rng.standard_normal((900, 2))
  train, validation = points[:600], points[600:]
  gmm, scores = rnade_task.gmm_select(train, validation, (1, 3), (1e-6,), seed=0, n_init=1)
  assert gmm.n_components == 3
  assert [s["components"] for s in scores] == [1, 3]
  best = min(scores, key=lambda s: s["validation_nll"])
  assert best["validation_nll"] == pytest.approx(-gmm.score(validation))
  refit = mixture.GaussianMixture(3, random_state=0, max_iter=500).fit(train)
  assert -gmm.score(validation) == pytest.approx(-refit.score(validation), abs=1e-6)
