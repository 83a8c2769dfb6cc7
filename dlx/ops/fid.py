"""MNIST-FID: sample quality measured by an MNIST classifier that dlx trained
(docs/curriculum.md#f18, #f19).

  frechet_distance      ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians
  feature_statistics    the (mean, covariance) fitted to a feature set
  confident_fraction    fraction of samples the classifier labels with confidence >= 0.9
  class_entropy         entropy (nats) of the predicted-class histogram (ln 10 = all even)
  classifier_outputs    penultimate features and logits of a Flax classifier, e.g. the
                        LeNet-5 of a finished lenet5_mnist run (`warm_start.load_frozen`)
  mnist_fid             all of it for a set of images against reference statistics

MNIST-FID uses the 84 penultimate (tanh) features of dlx's LeNet-5, not Inception-v3's
2,048 pool features: its values are not comparable with published (Inception) FIDs,
only with other MNIST-FIDs from the same classifier run.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

from dlx import errors

CONFIDENCE = 0.9  # the classifier-score threshold of issue 13


def _check_features(features, name="features"):
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise errors.ConfigError(f"{name} must be (N >= 2, D), got shape {features.shape}")
  if not np.all(np.isfinite(features)):
    raise errors.ConfigError(f"{name} contain NaN or infinite values")
  return features


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """(mean (D,), covariance (D, D), ddof=1) of (N, D) features, in float64: the
  distance subtracts nearly equal traces, so float32 would lose its small values."""
  features = _check_features(features)
  return features.mean(0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix):
  """Symmetric square root of a symmetric PSD matrix; eigenvalues rounded below zero
  are clipped (they are round-off, and their square roots would be NaN)."""
  values, vectors = linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mean1, cov1, mean2, cov2) -> float:
  """The squared 2-Wasserstein (Frechet) distance between N(mean1, cov1) and
  N(mean2, cov2).

  tr (S1 S2)^(1/2) is computed as tr (S1^(1/2) S2 S1^(1/2))^(1/2): the same eigenvalues,
  but of a symmetric PSD matrix, so an eigendecomposition is stable where a general
  sqrtm of the non-symmetric S1 S2 can return complex values for singular covariances.
  """
  mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
  cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
  if mean1.ndim != 1 or mean2.shape != mean1.shape:
    raise errors.ConfigError(f"means must be (D,) alike, got {mean1.shape} and {mean2.shape}")
  d = mean1.shape[0]
  for name, cov in (("cov1", cov1), ("cov2", cov2)):
    if cov.shape != (d, d):
      raise errors.ConfigError(f"{name} must be ({d}, {d}) for {d}-dim means, got {cov.shape}")
  root1 = _psd_sqrt(cov1)
  cross = np.sum(np.sqrt(np.clip(linalg.eigvalsh(root1 @ cov2 @ root1), 0.0, None)))
  value = np.sum((mean1 - mean2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * cross
  return float(max(value, 0.0))  # only round-off can make it negative


def features_distance(features1, features2) -> float:
  """The Frechet distance between Gaussians fitted to two (N, D) feature sets."""
  return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def confident_fraction(logits, threshold: float = CONFIDENCE) -> float:
  """Fraction of samples whose top softmax probability is >= threshold: how many look
  like some digit to the classifier, not like a blend."""
  probabilities = jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  return float(jnp.mean(jnp.max(probabilities, axis=-1) >= threshold))


def class_entropy(logits) -> float:
  """Entropy (nats) of the histogram of predicted classes: ln(C) when every class is
  predicted equally often, 0 when all samples get one class (mode collapse)."""
  logits = np.asarray(logits)
  counts = np.bincount(np.argmax(logits, axis=-1), minlength=logits.shape[-1])
  p = counts[counts > 0] / counts.sum()
  return float(-np.sum(p * np.log(p))) + 0.0  # + 0.0: no -0.0 for a single class


def classifier_outputs(model, variables, inputs, batch_size: int = 1000):
  """(penultimate features (N, F), logits (N, C)) of a Flax classifier in eval mode.

  The penultimate features are the input of the last nn.Dense the forward pass calls
  (LeNet-5: the 84 tanh units), caught with flax's method interception, so the model
  needs no feature output of its own.
  """

  def apply(variables, x):
    captured = []

    def catch_dense_input(next_fun, args, kwargs, context):
      if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
        captured.append(args[0])
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(catch_dense_input):
      logits = model.apply(variables, x, train=False)
    if not captured:
      raise errors.ConfigError(f"{type(model).__name__} calls no nn.Dense: no features")
    return captured[-1].reshape((x.shape[0], -1)), logits

  apply = jax.jit(apply)
  features, logits = [], []
  for start in range(0, len(inputs), batch_size):
    f, z = apply(variables, jnp.asarray(inputs[start : start + batch_size], jnp.float32))
    features.append(np.asarray(f))
    logits.append(np.asarray(z))
  return np.concatenate(features), np.concatenate(logits)


def lenet_inputs(images) -> np.ndarray:
  """MNIST images in [0, 1] as (N, 28, 28[, 1]) or (N, 784) -> (N, 32, 32, 1), zero-padded
  by 2 pixels as experiments/vision/lenet5_mnist.py trained on."""
  images = np.asarray(images, np.float32)
  if images.ndim == 2 and images.shape[1] == 784:
    images = images.reshape((-1, 28, 28, 1))
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] != 1:
    raise errors.ConfigError(f"MNIST images must be (N, H, W, 1), got shape {images.shape}")
  if images.shape[1:3] == (28, 28):
    images = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  if images.shape[1:3] != (32, 32):
    raise errors.ConfigError(f"MNIST images must be 28x28 or 32x32, got {images.shape[1:3]}")
  return images


def mnist_fid(classifier, images, reference) -> dict:
  """{'mnist_fid', 'confident_fraction', 'class_entropy'} of `images` (in [0, 1]).

  classifier: anything with .model and .variables (a `dlx.training.warm_start.load_frozen` of a
  lenet5_mnist run); reference: the (mean, covariance) of real images' features
  (`feature_statistics(classifier_outputs(...)[0])`), e.g. the test split's.
  """
  inputs = lenet_inputs(images)
  features, logits = classifier_outputs(classifier.model, classifier.variables, inputs)
  return {
    "mnist_fid": frechet_distance(*feature_statistics(features), *reference),
    "confident_fraction": confident_fraction(logits),
    "class_entropy": class_entropy(logits),
  }
