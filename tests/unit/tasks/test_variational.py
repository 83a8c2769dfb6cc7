"""Tests for the VAE family (dlx/models/vae.py's conditioning, dlx/tasks/variational.py):
the CVAE's encoder and decoder against a hand-written NumPy forward pass, conditioning
that changes samples, the beta-weighted loss against the closed-form KL and BCE, the
traversal grid's layout, and the label grid's rows."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dlx import errors
from dlx.models import vae
from dlx.tasks import variational

LATENT = 3
IMAGE = 6  # side of the test images: small and fast; nothing here depends on 28
_KEY = jax.random.key(3, impl="rbg")  # rbg: threefry compiles slowly on this CPU


def _cvae():
  model = vae.VAE(latent_dim=LATENT, hidden=(8,), output_shape=(IMAGE, IMAGE, 1), num_classes=10)
  z = jnp.zeros((2, LATENT))
  labels = jnp.zeros((2,), jnp.int32)
  # Initialising from NumPy: compiling jax.random's initialisers costs seconds here.
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), z, labels, method="decode"))
  encoder = jax.eval_shape(
    lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((2, IMAGE, IMAGE, 1)), labels, method="encode"
    )
  )
  rng = np.random.default_rng(0)
  variables = jax.tree.map(
    lambda s: (rng.normal(size=s.shape) / np.sqrt(s.shape[0])).astype(np.float32),
    {"params": {**shapes["params"], **encoder["params"]}},
  )
  return model, variables


def _ctx(model, variables, **model_config):
  config = ml_collections.ConfigDict(
    {"seed": 0, "eval_batch_size": 4, "model": {"latent_dim": LATENT, **model_config}}
  )
  return types.SimpleNamespace(model=model, variables=variables, config=config)


def _relu(x):
  return np.maximum(x, 0.0)


def _dense(params, x):
  return x @ np.asarray(params["kernel"]) + np.asarray(params["bias"])


def test_the_cvae_concatenates_the_one_hot_label_in_encoder_and_decoder():
  model, variables = _cvae()
  p = variables["params"]
  rng = np.random.default_rng(0)
  x = rng.random((4, IMAGE, IMAGE, 1)).astype(np.float32)
  labels = np.array([0, 3, 9, 3])
  one_hot = np.eye(10, dtype=np.float32)[labels]
  h = _relu(_dense(p["encoder_layers_0"], np.concatenate([x.reshape(4, -1), one_hot], 1)))
  mean, log_variance = model.apply(variables, jnp.asarray(x), jnp.asarray(labels), method="encode")
  np.testing.assert_allclose(mean, _dense(p["mean_layer"], h), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(log_variance, _dense(p["log_variance_layer"], h), rtol=1e-5, atol=1e-5)
  z = rng.normal(size=(4, LATENT)).astype(np.float32)
  h = _relu(_dense(p["decoder_layers_0"], np.concatenate([z, one_hot], 1)))
  logits = model.apply(variables, jnp.asarray(z), jnp.asarray(labels), method="decode")
  np.testing.assert_allclose(
    logits, _dense(p["output_layer"], h).reshape(4, IMAGE, IMAGE, 1), rtol=1e-5, atol=1e-5
  )


def test_the_label_changes_the_samples_of_the_same_z():
  model, variables = _cvae()
  z = jnp.asarray(np.random.default_rng(1).normal(size=(1, LATENT)), jnp.float32)
  images = [
    np.asarray(model.apply(variables, z, jnp.array([k]), method="generate")) for k in range(10)
  ]
  for a in range(10):
    for b in range(a + 1, 10):
      assert np.abs(images[a] - images[b]).max() > 1e-3, (a, b)
  again = model.apply(variables, z, jnp.array([4]), method="generate")
  np.testing.assert_array_equal(again, images[4])


def test_labels_go_with_conditional_models_only():
  model, variables = _cvae()
  with pytest.raises(errors.ConfigError, match="needs labels"):
    model.apply(variables, jnp.zeros((2, LATENT)), method="generate")
  with pytest.raises(errors.ConfigError, match=r"labels must be \(2,\)"):
    model.apply(variables, jnp.zeros((2, LATENT)), jnp.zeros((3,), jnp.int32), method="decode")
  plain = vae.VAE(latent_dim=LATENT, hidden=(8,), output_shape=(4,))
  plain_vars = jax.eval_shape(
    lambda: plain.init(jax.random.PRNGKey(0), jnp.zeros((1, LATENT)), method="decode")
  )
  with pytest.raises(errors.ConfigError, match="unconditional"):
    plain.apply(plain_vars, jnp.zeros((1, LATENT)), jnp.zeros((1,), jnp.int32), method="decode")


def test_the_loss_is_the_beta_weighted_elbo_and_nelbo_its_unweighted_form():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(3, IMAGE, IMAGE, 1)).astype(np.float32)
  x = (rng.random((3, IMAGE, IMAGE, 1)) < 0.3).astype(np.float32)
  mean, log_variance = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)) * 0.3
  p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  bce = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
  kl = 0.5 * np.sum(np.exp(log_variance) + mean**2 - 1.0 - log_variance, axis=1)
  config = ml_collections.ConfigDict({"beta": 4.0})
  out = variational.get_loss(config)((logits, mean, log_variance), {"inputs": x})
  np.testing.assert_allclose(out["reconstruction"], bce, rtol=1e-4)
  np.testing.assert_allclose(out["kl"], kl, rtol=1e-5)
  np.testing.assert_allclose(out["nelbo"], bce + kl, rtol=1e-4)
  np.testing.assert_allclose(out["loss"], bce + 4.0 * kl, rtol=1e-4)
  # A conditional model's images sit under inputs['image'].
  labelled = {"inputs": {"image": x, "label": np.zeros(3, np.int32)}}
  again = variational.get_loss(config)((logits, mean, log_variance), labelled)
  np.testing.assert_allclose(again["loss"], out["loss"])
  with pytest.raises(errors.ConfigError, match="beta"):
    variational.get_loss(ml_collections.ConfigDict({"beta": -1.0}))


def test_traversal_rows_move_one_dimension_from_minus_3_to_3():
  base = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
  z = variational.traversal_latents(base, num_steps=7)
  assert z.shape == (4 * 7, 4)
  rows = z.reshape(4, 7, 4)
  for d in range(4):
    np.testing.assert_allclose(rows[d, :, d], np.linspace(-3.0, 3.0, 7), rtol=1e-6)
    others = np.delete(rows[d], d, axis=1)
    np.testing.assert_array_equal(others, np.tile(np.delete(base, d), (7, 1)))
  with pytest.raises(errors.ConfigError, match="one"):
    variational.traversal_latents(np.zeros((2, 4)))


def test_traversal_and_label_grids_have_one_row_per_dimension_or_digit():
  model, variables = _cvae()
  ctx = _ctx(model, variables, num_classes=10)
  grid = variational.traversal_grid(ctx, np.zeros(LATENT), num_steps=5, labels=2)
  assert grid.shape == (LATENT * 5, IMAGE, IMAGE, 1)
  assert np.all((grid >= 0) & (grid <= 1))
  labelled = variational.label_grid(ctx, _KEY, columns=4)
  assert labelled.shape == (10 * 4, IMAGE, IMAGE, 1)
  rows = labelled.reshape(10, 4, IMAGE, IMAGE, 1)
  # Column c is one z across the rows: each row matches generate(z, its digit).
  z = np.asarray(jax.random.normal(_KEY, (4, LATENT)))
  for digit in (0, 7):
    expected = model.apply(variables, z, jnp.full((4,), digit), method="generate")
    np.testing.assert_allclose(rows[digit], expected, rtol=1e-6)
  assert np.abs(rows[0] - rows[7]).max() > 1e-3


def test_posterior_means_of_a_split_come_in_batches_and_match_one_call():
  model, variables = _cvae()
  ctx = _ctx(model, variables, num_classes=10)
  rng = np.random.default_rng(4)
  split = {
    "inputs": {"image": rng.random((10, IMAGE, IMAGE, 1), np.float32), "label": np.arange(10) % 10}
  }
  mean, log_variance = variational.encode_split(ctx, split)  # batches of 4, 4, 2
  full = model.apply(
    variables, jnp.asarray(split["inputs"]["image"]), split["inputs"]["label"], method="encode"
  )
  np.testing.assert_allclose(mean, full[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(log_variance, full[1], rtol=1e-5, atol=1e-6)


def test_the_latent_plot_uses_the_principal_components_of_wide_codes():
  from sklearn import decomposition  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(5)
  codes = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
  points, share = variational._latent_2d(codes)  # pylint: disable=protected-access
  pca = decomposition.PCA(2).fit(codes)
  assert share == pytest.approx(pca.explained_variance_ratio_.sum())
  np.testing.assert_allclose(np.abs(points), np.abs(pca.transform(codes)), atol=1e-8)
  flat = codes[:, :2]
  points, share = variational._latent_2d(flat)  # pylint: disable=protected-access
  np.testing.assert_array_equal(points, flat)
  assert share == 1.0
