"""Augmentations (dlx/data/augment.py): exact semantics, determinism, jit-safety."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dlx import errors
from dlx.data import augment

N, H, W, C = 8, 6, 5, 2


def _images(seed=0, shape=(N, H, W, C)):
  return jax.random.uniform(jax.random.key(seed), shape)


def _distinct_labels():
  # Example i has class i, so a soft label row shows who it was mixed with.
  return jnp.eye(N, dtype=jnp.float32)


KEY = jax.random.key(42)
OTHER = jax.random.key(7)


@pytest.mark.parametrize(
  "fn",
  [
    lambda k, x: augment.random_flip(k, x),
    lambda k, x: augment.random_crop(k, x, 2),
    lambda k, x: augment.random_crop(k, x, 2, mode="reflect"),
    lambda k, x: augment.gaussian_noise(k, x, 0.1),
    lambda k, x: augment.mixup(k, x, _distinct_labels(), 0.4)[0],
    lambda k, x: augment.cutmix(k, x, _distinct_labels(), 1.0)[0],
  ],
)
def test_deterministic_per_key_and_shape_preserving(fn):
  x = _images()
  a, b, c = fn(KEY, x), fn(KEY, x), fn(OTHER, x)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert a.shape == x.shape and a.dtype == x.dtype


def test_flip_mirrors_exactly_the_chosen_examples():
  x = _images()
  out = np.asarray(augment.random_flip(KEY, x))
  flipped = [np.array_equal(out[i], x[i, :, ::-1]) for i in range(N)]
  kept = [np.array_equal(out[i], x[i]) for i in range(N)]
  assert all(f != k for f, k in zip(flipped, kept))  # Each one or the other.
  assert 0 < sum(flipped) < N
  np.testing.assert_array_equal(augment.random_flip(KEY, x, p=0.0), x)
  np.testing.assert_array_equal(augment.random_flip(KEY, x, p=1.0), x[:, :, ::-1])


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_crop_is_a_slice_of_the_padded_image(mode):
  x = _images()
  pad = 3
  out = np.asarray(augment.random_crop(KEY, x, pad, mode))
  padded = np.pad(np.asarray(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)
  offsets = set()
  for i in range(N):
    matches = [
      (dy, dx)
      for dy in range(2 * pad + 1)
      for dx in range(2 * pad + 1)
      if np.array_equal(out[i], padded[i, dy : dy + H, dx : dx + W])
    ]
    assert matches, f"example {i} is not a crop of its padded image"
    offsets.add(matches[0])
  assert len(offsets) > 1  # Offsets differ between examples.
  np.testing.assert_array_equal(augment.random_crop(KEY, x, 0), x)
  with pytest.raises(ValueError):
    augment.random_crop(KEY, x, 2, mode="nope")


def test_gaussian_noise_statistics():
  x = jnp.zeros((64, 16, 16, 1))
  noise = np.asarray(augment.gaussian_noise(KEY, x, 0.5))
  assert abs(noise.mean()) < 0.02
  assert noise.std() == pytest.approx(0.5, rel=0.03)


def _partners(soft):
  """For distinct one-hot labels: each row's own weight, partner and its weight."""
  soft = np.asarray(soft)
  own = soft[np.arange(N), np.arange(N)]
  other = soft.copy()
  other[np.arange(N), np.arange(N)] = 0
  return own, other.argmax(1), other.max(1)


def test_mixup_is_one_convex_combination():
  x = _images()
  mixed, soft = augment.mixup(KEY, x, _distinct_labels(), alpha=0.4)
  np.testing.assert_allclose(np.sum(soft, 1), 1.0, atol=1e-6)
  own, partner, weight = _partners(soft)
  moved = weight > 0
  assert moved.sum() >= N - 2  # A random permutation has few fixed points.
  lam = own[moved][0]
  np.testing.assert_allclose(own[moved], lam, atol=1e-6)  # One lambda per batch.
  for i in range(N):
    j, lam_i = (partner[i], lam) if moved[i] else (i, 1.0)
    np.testing.assert_allclose(mixed[i], lam_i * x[i] + (1 - lam_i) * x[j], atol=1e-6)


def test_cutmix_label_weight_is_the_pasted_area():
  # Example i is filled with the value i, so pasted pixels show their source.
  x = jnp.broadcast_to(jnp.arange(N, dtype=jnp.float32)[:, None, None, None], (N, 16, 12, C))
  checked = 0
  for seed in range(5):
    mixed, soft = augment.cutmix(jax.random.key(seed), x, _distinct_labels(), alpha=1.0)
    mixed = np.asarray(mixed)
    np.testing.assert_allclose(np.sum(soft, 1), 1.0, atol=1e-6)
    own, partner, weight = _partners(soft)
    for i in range(N):
      pasted = mixed[i, :, :, 0] != i
      if weight[i] == 0:
        continue  # Paired with itself or an empty box.
      assert np.all(mixed[i, :, :, 0][pasted] == partner[i])
      assert weight[i] == pytest.approx(pasted.mean(), abs=1e-6)
      assert own[i] == pytest.approx(1 - pasted.mean(), abs=1e-6)
      rows, cols = np.nonzero(pasted)  # The pasted region is one rectangle.
      assert pasted[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
      checked += 1
  assert checked >= 10


def test_make_augment_flip_crop_noise():
  config = ml_collections.ConfigDict({"flip": True, "crop_padding": 2, "input_noise": 0.0})
  fn = augment.make_augment(config)
  batch = {"inputs": _images(), "targets": jnp.arange(N)}
  out = fn(KEY, batch)
  assert set(out) == {"inputs", "targets"}
  assert out["inputs"].shape == batch["inputs"].shape
  np.testing.assert_array_equal(out["targets"], batch["targets"])
  np.testing.assert_array_equal(fn(KEY, batch)["inputs"], out["inputs"])
  assert not np.array_equal(fn(OTHER, batch)["inputs"], out["inputs"])
  identity = augment.make_augment({})
  np.testing.assert_array_equal(identity(KEY, batch)["inputs"], batch["inputs"])


@pytest.mark.parametrize(
  "config",
  [
    {"mixup_alpha": 0.2, "num_classes": 10},
    {"cutmix_alpha": 1.0, "num_classes": 10},
  ],
)
def test_make_augment_adds_soft_targets(config):
  fn = augment.make_augment(config)
  batch = {"inputs": _images(), "targets": jnp.arange(N) % 10}
  out = fn(KEY, batch)
  assert out["soft_targets"].shape == (N, 10)
  np.testing.assert_allclose(out["soft_targets"].sum(1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(out["targets"], batch["targets"])


def test_make_augment_everything_on_under_jit():
  # One compilation covers every augmentation (Beta sampling compiles slowly).
  config = {
    "flip": True,
    "crop_padding": 2,
    "crop_mode": "reflect",
    "input_noise": 0.05,
    "mixup_alpha": 0.2,
    "cutmix_alpha": 1.0,
    "num_classes": 10,
  }
  fn = augment.make_augment(config)
  jitted = jax.jit(fn)
  batch = {"inputs": _images(), "targets": jnp.arange(N) % 10}
  outs = [jitted(jax.random.key(seed), batch) for seed in range(3)]
  eager = fn(jax.random.key(0), batch)
  for key in ("inputs", "soft_targets"):
    np.testing.assert_allclose(outs[0][key], eager[key], atol=1e-5)  # Fusion may round.
  for out in outs:
    assert out["inputs"].shape == batch["inputs"].shape
    assert out["inputs"].dtype == batch["inputs"].dtype
    np.testing.assert_allclose(out["soft_targets"].sum(1), 1.0, atol=1e-6)
  assert not np.array_equal(outs[0]["inputs"], outs[1]["inputs"])


def test_make_augment_rejects_bad_configs():
  with pytest.raises(errors.ConfigError):
    augment.make_augment({"flipp": True})
  with pytest.raises(errors.ConfigError):
    augment.make_augment({"mixup_alpha": 0.2})  # No num_classes.
  with pytest.raises(errors.ConfigError):
    augment.make_augment({"crop_padding": 2, "crop_mode": "nope"})
