"""Tests for dlx/models/autoencoder.py and dlx/tasks/autoencoder.py
(docs/curriculum.md#f17): shapes, the denoising corruptions' statistics, that only
training corrupts, the reconstruction scores against hand values, and the latent plot.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import errors
from dlx.models import autoencoder
from dlx.tasks import autoencoder as task
from tests import conftest


def _images(n=6, seed=0):
  return jax.random.uniform(jax.random.PRNGKey(seed), (n, 28, 28, 1))


def _init(model, x):
  return model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, x)


@pytest.mark.parametrize("latent_dim", [2, 7])
def test_shapes(latent_dim):
  model = autoencoder.Autoencoder(latent_dim=latent_dim, hidden=(32, 16))
  x = _images()
  outputs = model.apply(_init(model, x), x)
  assert outputs["logits"].shape == x.shape
  assert outputs["latent"].shape == (6, latent_dim)


def test_gaussian_noise_has_the_configured_std():
  x = jnp.full((200, 28, 28, 1), 0.5)
  noisy = autoencoder.corrupt(x, jax.random.PRNGKey(0), "gaussian", 0.3)
  assert float(jnp.mean(noisy - x)) == pytest.approx(0.0, abs=3e-3)
  assert float(jnp.std(noisy - x)) == pytest.approx(0.3, rel=0.01)


def test_masking_zeroes_the_configured_fraction_and_keeps_the_rest():
  x = _images(200) + 0.1  # no pixel is 0 before masking
  noisy = autoencoder.corrupt(x, jax.random.PRNGKey(0), "mask", 0.25)
  zeroed = noisy == 0
  assert float(jnp.mean(zeroed)) == pytest.approx(0.25, abs=0.005)
  np.testing.assert_array_equal(np.asarray(noisy)[~zeroed], np.asarray(x)[~zeroed])
  assert autoencoder.corrupt(x, jax.random.PRNGKey(0), "none", 0.5) is x


@pytest.mark.parametrize("noise", ["gaussian", "mask"])
def test_only_training_corrupts(noise):
  model = autoencoder.Autoencoder(latent_dim=4, hidden=(16,), noise=noise, noise_level=0.5)
  clean = autoencoder.Autoencoder(latent_dim=4, hidden=(16,))
  x = _images()
  variables = _init(model, x)
  rngs = {"dropout": jax.random.PRNGKey(2)}
  evaluated = model.apply(variables, x, train=False)["logits"]
  trained = model.apply(variables, x, train=True, rngs=rngs)["logits"]
  np.testing.assert_allclose(evaluated, clean.apply(variables, x)["logits"], rtol=1e-6)
  assert not np.allclose(evaluated, trained)
  # The corruption is drawn from the 'dropout' stream: the same key, the same noise.
  again = model.apply(variables, x, train=True, rngs=rngs)["logits"]
  other = model.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(3)})
  np.testing.assert_array_equal(trained, again)
  assert not np.allclose(trained, other["logits"])
  # Without noise, training sees the clean input.
  np.testing.assert_allclose(
    clean.apply(variables, x, train=True, rngs=rngs)["logits"], evaluated, rtol=1e-6
  )


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(noise="salt"), "noise must be one of"),
    (dict(noise="mask", noise_level=1.0), r"in \[0, 1\)"),
    (dict(noise="gaussian", noise_level=-0.1), ">= 0"),
  ],
)
def test_bad_noise_is_a_config_error(kwargs, match):
  model = autoencoder.Autoencoder(hidden=(8,), **kwargs)
  with pytest.raises(errors.ConfigError, match=match):
    _init(model, _images(2))


def test_reconstruction_scores_match_hand_values():
  # Logits 0 predict 0.5 everywhere: BCE = 784 ln 2 per image, whatever the target;
  # MSE = 0.25 for a binary target and 0 for an all-0.5 target.
  x = jnp.stack([jnp.ones((28, 28, 1)), jnp.full((28, 28, 1), 0.5)])
  scores = task.loss({"logits": jnp.zeros_like(x), "latent": jnp.zeros((2, 2))}, {"inputs": x})
  np.testing.assert_allclose(scores["bce"], [784 * math.log(2)] * 2, rtol=1e-5)
  np.testing.assert_allclose(scores["loss"], scores["bce"])
  np.testing.assert_allclose(scores["mse"], [0.25, 0.0], atol=1e-7)


def test_latent_plot_uses_pca_only_for_wide_codes(tmp_path):
  rng = np.random.default_rng(0)
  flat = rng.normal(size=(100, 2)).astype(np.float32)
  points, share = task._latent_2d(flat)  # pylint: disable=protected-access
  assert share == 1.0 and points is flat
  # Wide codes that vary along two directions only: PCA keeps all their variance.
  wide = flat @ rng.normal(size=(2, 9)).astype(np.float32)
  points, share = task._latent_2d(wide)  # pylint: disable=protected-access
  assert points.shape == (100, 2) and share == pytest.approx(1.0, abs=1e-4)
  path = tmp_path / "latent.png"
  task.plot_latent(points, rng.integers(0, 10, 100), path, "test codes")
  conftest.assert_png(path, min_side=16)
