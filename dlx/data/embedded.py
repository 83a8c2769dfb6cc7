"""Datasets that need no network: they ship inside installed packages or are generated.

Each loader returns a `Dataset` with `inputs` (float32) and `targets` (int32 class ids,
or float32 for regression), split into train / validation / test by a fixed seed.
"""

import numpy as np

from dlx import optional_deps
from dlx.data import core


def digits(*, validation_fraction=0.1, test_fraction=0.2, seed=0) -> core.Dataset:
  """scikit-learn's 8x8 handwritten digits (1,797 images), scaled to [0, 1], NHWC."""
  optional_deps.require("the scikit-learn datasets", "sklearn")
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  raw = datasets.load_digits()
  images = (raw.images / 16.0).astype(np.float32)[..., None]
  return core.train_validation_test(
    images,
    raw.target.astype(np.int32),
    validation_fraction=validation_fraction,
    test_fraction=test_fraction,
    seed=seed,
    info=dict(name="digits", num_classes=10),
  )


def iris(*, validation_fraction=0.2, test_fraction=0.2, seed=0) -> core.Dataset:
  """scikit-learn's iris: 150 flowers, 4 measurements (cm), 3 species."""
  optional_deps.require("the scikit-learn datasets", "sklearn")
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  raw = datasets.load_iris()
  return core.train_validation_test(
    raw.data.astype(np.float32),
    raw.target.astype(np.int32),
    validation_fraction=validation_fraction,
    test_fraction=test_fraction,
    seed=seed,
    info=dict(name="iris", num_classes=3),
  )


def mnist1d(*, validation_fraction=0.1, seed=0) -> core.Dataset:
  """MNIST-1D (Greydanus, 2020) from the package's offline generator, default arguments:
  4,000 train and 1,000 test sequences of length 40. The generator's own seed (42) fixes
  the data, so every run sees the same dataset; `seed` is unused and kept for symmetry."""
  del seed
  from mnist1d import data as mnist1d_data  # pylint: disable=g-import-not-at-top

  raw = mnist1d_data.make_dataset(mnist1d_data.get_dataset_args())
  train = {"inputs": raw["x"].astype(np.float32), "targets": raw["y"].astype(np.int32)}
  test = {"inputs": raw["x_test"].astype(np.float32), "targets": raw["y_test"].astype(np.int32)}
  return core.split_off_validation(
    train, test, validation_fraction=validation_fraction, info=dict(name="mnist1d", num_classes=10)
  )


def xor_points(rng: np.random.Generator, num_examples: int, noise: float = 0.1):
  """(inputs (N, 2) float32, targets (N,) int32): noisy corners of the unit square,
  labelled x1 XOR x2, drawn from `rng`."""
  corners = rng.integers(0, 2, size=(num_examples, 2))
  inputs = (corners + noise * rng.standard_normal((num_examples, 2))).astype(np.float32)
  return inputs, (corners[:, 0] ^ corners[:, 1]).astype(np.int32)


def xor(
  *, num_examples=400, noise=0.1, validation_fraction=0.25, test_fraction=0.25, seed=0
) -> core.Dataset:
  """The four corners of the unit square with Gaussian noise; label = x1 XOR x2.

  No straight line separates the classes, so a linear model tops out at 75% accuracy."""
  inputs, targets = xor_points(np.random.default_rng(seed), num_examples, noise)
  return core.train_validation_test(
    inputs,
    targets,
    validation_fraction=validation_fraction,
    test_fraction=test_fraction,
    seed=seed,
    info=dict(name="xor", num_classes=2),
  )


def two_moons(
  *, num_examples=1000, noise=0.1, validation_fraction=0.2, test_fraction=0.2, seed=0
) -> core.Dataset:
  """scikit-learn's two interleaving half circles."""
  optional_deps.require("the scikit-learn datasets", "sklearn")
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  inputs, targets = datasets.make_moons(num_examples, noise=noise, random_state=seed)
  return core.train_validation_test(
    inputs.astype(np.float32),
    targets.astype(np.int32),
    validation_fraction=validation_fraction,
    test_fraction=test_fraction,
    seed=seed,
    info=dict(name="two_moons", num_classes=2),
  )


def spirals(
  *,
  num_examples=1000,
  num_classes=2,
  turns=1.5,
  noise=0.05,
  validation_fraction=0.2,
  test_fraction=0.2,
  seed=0,
) -> core.Dataset:
  """`num_classes` interleaved Archimedean spirals in the plane."""
  rng = np.random.default_rng(seed)
  targets = rng.integers(0, num_classes, size=num_examples)
  radius = rng.uniform(0.05, 1.0, size=num_examples)
  angle = 2 * np.pi * (turns * radius + targets / num_classes)
  inputs = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
  inputs += noise * rng.standard_normal(inputs.shape)
  return core.train_validation_test(
    inputs.astype(np.float32),
    targets.astype(np.int32),
    validation_fraction=validation_fraction,
    test_fraction=test_fraction,
    seed=seed,
    info=dict(name="spirals", num_classes=num_classes),
  )


def regression(
  *,
  num_examples=1000,
  noise=0.1,
  outlier_fraction=0.0,
  outlier_scale=10.0,
  validation_fraction=0.2,
  test_fraction=0.2,
  seed=0,
) -> core.Dataset:
  """y = sin(2x) + 0.5 x + N(0, noise^2) for x ~ U(-3, 3), inputs (N, 1), targets (N, 1).

  `outlier_fraction` of the TRAIN targets get gross errors (+-U(0.5, 1) * outlier_scale);
  validation and test stay clean, so they measure how well the true curve was learned."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-3, 3, size=(num_examples, 1))
  y = np.sin(2 * x) + 0.5 * x + noise * rng.standard_normal(x.shape)
  ds = core.train_validation_test(
    x.astype(np.float32),
    y.astype(np.float32),
    validation_fraction=validation_fraction,
    test_fraction=test_fraction,
    seed=seed,
    info=dict(name="regression", outlier_fraction=outlier_fraction),
  )
  if outlier_fraction > 0:
    targets = ds.train["targets"].copy()
    n = len(targets)
    hit = rng.choice(n, size=int(round(outlier_fraction * n)), replace=False)
    sign = rng.choice([-1.0, 1.0], size=(len(hit), 1))
    targets[hit] += (sign * rng.uniform(0.5, 1.0, size=(len(hit), 1)) * outlier_scale).astype(
      np.float32
    )
    ds.train["targets"] = targets
  return ds


LOADERS = {
  "digits": digits,
  "iris": iris,
  "mnist1d": mnist1d,
  "xor": xor,
  "two_moons": two_moons,
  "spirals": spirals,
  "regression": regression,
}
