"""Tests for dlx/tasks/sample_quality.py: the report a sampling experiment adds (MNIST-FID,
confident fraction, label agreement), on sets of random ink blobs and tiny classifiers
whose outputs are known: real images score far better than noise, the report is the
Frechet distance to the recorded reference images, the skip message names the command
that makes the classifier, and bad inputs are one-line errors."""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dlx import errors
from dlx.data import core
from dlx.ops import fid
from dlx.tasks import sample_quality


def _blobs(n, seed):
  """n 'digit-like' images: one to three Gaussian bumps of ink on a dark 28x28 canvas,
  with positions and widths drawn at random (every set from the same distribution)."""
  rng = np.random.default_rng(seed)
  grid = np.arange(28, dtype=np.float32)
  images = np.zeros((n, 28, 28), np.float32)
  for i in range(n):
    for _ in range(rng.integers(1, 4)):
      (cy, cx), sigma = rng.uniform(8, 20, 2), rng.uniform(1.5, 4.0)
      bump = np.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / (2 * sigma**2))
      images[i] = np.maximum(images[i], bump)
  return images[..., None]


@pytest.fixture(scope="module")
def digits():
  splits = [
    {"inputs": _blobs(n, seed), "targets": np.zeros(n, np.int32)}
    for seed, n in enumerate((400, 200, 300))
  ]
  return core.Dataset(*splits)


class _Random(nn.Module):
  """An untrained classifier of 32x32 images: its features are random projections."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    h = jnp.tanh(nn.Dense(24)(x.reshape((x.shape[0], -1))))
    return nn.Dense(10)(h)


class _Brightness(nn.Module):
  """Logits k * b - k^2 / 2 of the mean pixel b scaled to [0, 10]: argmax = round(b)."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    b = 10.0 * jnp.mean(x.reshape((x.shape[0], -1)), -1, keepdims=True) * (32 * 32) / (28 * 28)
    return nn.Dense(10)(b)


def _frozen(model, variables):
  return types.SimpleNamespace(model=model, variables=variables)


def _random_classifier():
  # Weights from NumPy: compiling jax.random's initialisers costs seconds on this CPU.
  rng = np.random.default_rng(0)
  params = {
    "Dense_0": {"kernel": rng.normal(size=(1024, 24)) / 32.0, "bias": np.zeros(24)},
    "Dense_1": {"kernel": rng.normal(size=(24, 10)), "bias": np.zeros(10)},
  }
  return _frozen(_Random(), {"params": jax.tree.map(np.float32, params)})


def _brightness_classifier():
  k = np.arange(10, dtype=np.float32)
  params = {"Dense_0": {"kernel": k[None, :], "bias": -(k**2) / 2}}
  return _frozen(_Brightness(), {"params": params})


def _ctx(dataset, **fields):
  config = ml_collections.ConfigDict({"smoke": False})
  sample_quality.add_config(config, num_samples=50)
  config.update(fields)
  return types.SimpleNamespace(config=config, dataset=dataset, examples=dataset.split)


def test_real_digits_score_far_better_than_noise(digits):
  ctx, classifier = _ctx(digits), _random_classifier()
  real = sample_quality.report(ctx, digits.train["inputs"], classifier)
  noise = np.random.default_rng(0).random(digits.train["inputs"].shape, np.float32)
  noisy = sample_quality.report(ctx, noise, classifier)
  assert real["mnist_fid"] < 0.1 * noisy["mnist_fid"]
  assert real["fid_num_samples"] == len(digits.train["inputs"])
  assert real["fid_num_reference"] == len(digits.test["inputs"])
  assert set(real) >= {"mnist_fid", "confident_fraction", "class_entropy"}


def test_the_report_is_fid_against_the_recorded_reference(digits):
  # with_reference replaces the test inputs: the numbers are dlx.ops.fid.mnist_fid's
  # against those images. A sampler is called with config.fid_samples.
  classifier = _random_classifier()
  reference = digits.validation["inputs"]
  ctx = _ctx(sample_quality.with_reference(digits, reference))
  calls = []

  def sampler(n):
    calls.append(n)
    return digits.train["inputs"][:n]

  got = sample_quality.report(ctx, sampler, classifier)
  assert calls == [50] and got["fid_num_samples"] == 50
  features, _ = fid.classifier_outputs(
    classifier.model, classifier.variables, fid.lenet_inputs(reference)
  )
  expected = fid.mnist_fid(
    classifier, digits.train["inputs"][:50], fid.feature_statistics(features)
  )
  for key, value in expected.items():
    assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
  # No classifier (or a :smoke run): the sampler is never called.
  for fields in ({}, {"smoke": True, "fid_classifier": "runs/x"}):
    skipped = sample_quality.report(_ctx(digits, **fields), sampler)
    assert calls == [50] and set(skipped) == {sample_quality.SKIPPED}


def test_without_a_classifier_the_report_says_how_to_get_one(digits):
  message = sample_quality.report(_ctx(digits), digits.test["inputs"])["sample_quality"]
  assert "--config.fid_classifier=runs/lenet5_mnist" in message
  assert "./launch.sh lenet5_mnist --data_dir=../shared/tfds" in message
  smoke = _ctx(digits, smoke=True)
  assert "smoke" in sample_quality.report(smoke, digits.test["inputs"])["sample_quality"]
  assert sample_quality.load_classifier(smoke) is None


def test_label_agreement_matches_a_hand_count():
  classifier = _brightness_classifier()
  # Image i has mean brightness labels[i] / 10 (after the 2-pixel padding): the
  # classifier labels it labels[i]; labels shifted by one agree nowhere.
  labels = np.array([0, 3, 3, 7, 9, 1])
  images = np.ones((6, 28, 28, 1), np.float32) * (labels[:, None, None, None] / 10.0)
  assert sample_quality.label_agreement(classifier, images, labels) == 1.0
  wrong = labels.copy()
  wrong[:2] = 5
  assert sample_quality.label_agreement(classifier, images, wrong) == pytest.approx(4 / 6)


def test_bad_inputs_are_config_errors(digits, tmp_path):
  classifier = _random_classifier()
  ctx = _ctx(digits)
  with pytest.raises(errors.ConfigError, match=r"\(N, 28, 28, 1\)"):
    sample_quality.report(ctx, np.zeros((4, 32, 32, 1)), classifier)
  with pytest.raises(errors.ConfigError, match=r"\[0, 1\]"):
    sample_quality.report(ctx, -np.ones((4, 28, 28, 1)), classifier)
  with pytest.raises(errors.ConfigError, match=r"\[0, 1\]"):
    sample_quality.with_reference(digits, 2.0 * digits.test["inputs"] - 1.0)
  with pytest.raises(errors.ConfigError, match="fid_samples"):
    sample_quality.report(_ctx(digits, fid_samples=1), lambda n: None, classifier)
  with pytest.raises(errors.ConfigError, match="labels must be"):
    sample_quality.label_agreement(classifier, digits.test["inputs"][:3], [1, 2])
  missing = _ctx(digits, fid_classifier=str(tmp_path / "nothing"))
  with pytest.raises(errors.ConfigError, match="fid_classifier"):
    sample_quality.report(missing, digits.test["inputs"])
