"""SimCLR pieces (dlx/tasks/self_supervised.py, dlx/data/views.py, dlx/models/simclr.py):
NT-Xent against a hand-computed case and a loop over its definition, the two views, the
frozen probe, and the linear-probe and k-NN helpers against separable data and sklearn."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dlx import errors
from dlx import losses
from dlx.data import views
from dlx.models import simclr
from dlx.tasks import self_supervised as ssl

# Jitted once each: eager dispatch compiles every small op on its own, which is slower.
_nt_xent = jax.jit(ssl.nt_xent)
_FAST = {"xla_backend_optimization_level": 0}  # compiles faster; these are tiny


def _nt_xent_loop(z1, z2, t):
  """NT-Xent straight from Chen et al. (2020), eq. 1, one view at a time."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z1)
  per_view = []
  for k in range(2 * n):
    positive = (k + n) % (2 * n)
    others = [np.exp(z[k] @ z[j] / t) for j in range(2 * n) if j != k]
    per_view.append(-np.log(np.exp(z[k] @ z[positive] / t) / np.sum(others)))
  return 0.5 * (np.array(per_view[:n]) + np.array(per_view[n:]))


def test_nt_xent_hand_computed():
  # Orthogonal images, identical views: each view has its positive at cosine 1 and two
  # negatives at 0, so l = -1 + log(e + 2) (T = 1); at T = 0.5, -2 + log(e^2 + 2).
  z = np.array([[1.0, 0.0], [0.0, 3.0]])
  np.testing.assert_allclose(_nt_xent(z, z, 1.0), [np.log(np.e + 2) - 1] * 2, rtol=1e-6)
  np.testing.assert_allclose(_nt_xent(z, 2 * z, 0.5), [np.log(np.e**2 + 2) - 2] * 2, rtol=1e-6)


def test_nt_xent_matches_its_definition():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
  np.testing.assert_allclose(_nt_xent(z1, z2, 0.3), _nt_xent_loop(z1, z2, 0.3), rtol=1e-5)


def test_nt_xent_ignores_padding_rows():
  rng = np.random.default_rng(1)
  z1, z2 = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  valid = np.array([1, 1, 1, 1, 0, 0], bool)
  out = _nt_xent(z1, z2, 0.5, valid)
  np.testing.assert_allclose(out[:4], _nt_xent_loop(z1[:4], z2[:4], 0.5), rtol=1e-5)
  assert np.all(np.isfinite(out)) and np.all(out[4:] == 0)


def test_loss_hook_reports_the_configured_loss():
  config = ml_collections.ConfigDict(dict(contrastive_loss="clip", temperature=0.1))
  rng = np.random.default_rng(2)
  outputs = {"z1": rng.normal(size=(4, 3)), "z2": rng.normal(size=(4, 3))}
  values = jax.jit(ssl.get_loss(config))(outputs, {})
  np.testing.assert_allclose(
    values["loss"], losses.clip_contrastive(outputs["z1"], outputs["z2"], 0.1), rtol=1e-6
  )
  same = {"z1": outputs["z1"], "z2": outputs["z1"]}
  values = jax.jit(
    ssl.get_loss(ml_collections.ConfigDict(dict(contrastive_loss="nt_xent", temperature=0.1)))
  )(same, {})
  np.testing.assert_allclose(values["positive_cosine"], 1.0, rtol=1e-6)
  np.testing.assert_array_equal(values["positive_top1"], 1.0)
  config.contrastive_loss = "triplet"
  with pytest.raises(errors.ConfigError, match="nt_xent"):
    ssl.get_loss(config)


def test_full_box_crop_is_the_identity_and_a_quadrant_matches_jax_resize():
  images = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
  full = jnp.array([[0.0, 0.0, 8.0, 8.0]] * 2)
  crop = jax.jit(views.crop_and_resize, compiler_options=_FAST)
  np.testing.assert_allclose(crop(images, full), images, atol=1e-6)
  quadrant = jnp.array([[0.0, 0.0, 4.0, 4.0]] * 2)
  expected = jax.image.resize(images[:, :4, :4], (2, 8, 8, 3), "linear")
  # The last row and column sample 3.75, between the box's edge pixel and the image's next
  # one (ours, which has it) or the edge pixel alone (resize, which sees the crop only).
  out = crop(images, quadrant)
  np.testing.assert_allclose(out[:, :7, :7], expected[:, :7, :7], atol=1e-5)


def test_two_views_differ_and_come_from_the_same_image():
  images = jax.random.normal(jax.random.PRNGKey(1), (16, 10, 10, 1))
  # Flips only: each view is its own image or its mirror image, and the views differ.
  flips = views.make_views(
    dict(min_scale=1.0, min_ratio=1.0, max_ratio=1.0, brightness=0.0, contrast=0.0)
  )
  first, second = jax.jit(flips, compiler_options=_FAST)(jax.random.PRNGKey(2), images)
  for view in (first, second):
    same = jnp.all(view == images, axis=(1, 2, 3)) | jnp.all(
      view == images[:, :, ::-1], axis=(1, 2, 3)
    )
    assert bool(jnp.all(same))
  assert not np.allclose(first, second)
  # The default views (crops, flips, jitter) keep shape and dtype and differ too.
  make = jax.jit(views.make_views(), compiler_options=_FAST)
  first, second = make(jax.random.PRNGKey(3), images)
  assert first.shape == images.shape and first.dtype == images.dtype
  assert not np.allclose(first, second)


def test_bad_views_config_is_a_config_error():
  with pytest.raises(errors.ConfigError, match="unknown views keys"):
    views.make_views({"scale": 0.5})
  with pytest.raises(errors.ConfigError, match="min_scale"):
    views.make_views({"min_scale": 0.0})


def test_frozen_probe_trains_only_the_head():
  config = ssl.probe_config(frozen=True)
  config.model.widths = (4,)
  model = ssl.probe_model(config)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 1))
  y = jnp.arange(4)
  variables = jax.jit(model.init, compiler_options=_FAST)(jax.random.PRNGKey(1), x)
  params = variables["params"]
  tx = ssl.probe_optimizer(config, 10)

  @functools.partial(jax.jit, compiler_options=_FAST)
  def step(params):
    def loss(p):
      logits, _ = model.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
      return jnp.mean(losses.softmax_cross_entropy(logits, y))

    grads = jax.grad(loss)(params)
    updates, _ = tx.update(grads, tx.init(params), params)
    return grads, optax.apply_updates(params, updates)

  grads, new = step(params)
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["encoder"]))
  for a, b in zip(jax.tree.leaves(new["encoder"]), jax.tree.leaves(params["encoder"])):
    np.testing.assert_array_equal(a, b)  # weight decay leaves it too
  assert not np.allclose(new["head"]["kernel"], params["head"]["kernel"])


@pytest.mark.slow  # compiles the whole SimCLR model; the smoke run covers it quickly too
def test_simclr_features_are_the_encoder_of_the_pretraining_params():
  model = simclr.SimCLR(
    widths=(4, 8), projection_hidden=8, projection_dim=4, views=views.make_views()
  )
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 1))
  probe = simclr.LinearProbe(num_classes=2, widths=(4, 8))

  @jax.jit
  def run(x):
    variables = model.init({"params": jax.random.PRNGKey(1), "sample": jax.random.PRNGKey(2)}, x)
    out = model.apply(variables, x, rngs={"sample": jax.random.PRNGKey(3)})
    probe_vars = probe.init(jax.random.PRNGKey(4), x)
    probe_vars = {
      "params": {**probe_vars["params"], "encoder": variables["params"]["encoder"]},
      "batch_stats": {"encoder": variables["batch_stats"]["encoder"]},
    }
    probe_vars["batch_stats"]["feature_norm"] = probe.init(jax.random.PRNGKey(4), x)["batch_stats"][
      "feature_norm"
    ]
    h = model.apply(variables, x, method="features")
    norm = probe_vars["batch_stats"]["feature_norm"]
    h = (h - norm["mean"]) / jnp.sqrt(norm["var"] + 1e-5)  # flax BatchNorm's epsilon
    head = probe_vars["params"]["head"]
    return out, probe.apply(probe_vars, x), h @ head["kernel"] + head["bias"]

  out, logits, expected = run(x)
  assert out["z1"].shape == out["z2"].shape == (3, 4)
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_linear_probe_separates_separable_features():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 5)) * 10
  y = rng.integers(0, 3, 300)
  x = centres[y] + rng.normal(size=(300, 5))
  train_acc, test_acc = ssl.linear_probe(x[:200], y[:200], x[200:], y[200:], 3, steps=300)
  assert train_acc == 1.0 and test_acc == 1.0


def test_knn_matches_sklearn():
  from sklearn.neighbors import KNeighborsClassifier  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(1)
  train_x, train_y = rng.normal(size=(200, 6)), rng.integers(0, 4, 200)
  test_x = rng.normal(size=(57, 6))
  reference = KNeighborsClassifier(7, metric="cosine", algorithm="brute").fit(train_x, train_y)
  predicted = ssl.knn_predict(train_x, train_y, test_x, 4, k=7, chunk=20)
  np.testing.assert_array_equal(predicted, reference.predict(test_x))
  with pytest.raises(errors.ConfigError, match="k-NN"):
    ssl.knn_predict(train_x, train_y, test_x, 4, k=0)
