"""Sample quality of generated MNIST digits: the report every sampling experiment shares
(VAEs, GANs, DDPM; docs/curriculum.md#f18, #f19, #f21).

  add_config(config)           adds config.fid_classifier (a finished lenet5_mnist run,
                               WORKDIR[:best|:latest]; '' = not measured) and
                               config.fid_samples (how many samples to score)
  with_reference(dataset, x)   records the real images, in [0, 1], the samples are compared
                               with, when the dataset's test inputs are not them (binarised
                               or scaled to [-1, 1]); default: the test split's inputs
  load_classifier(ctx)         the frozen LeNet-5 named by config.fid_classifier, or None
  report(ctx, samples)         {'mnist_fid', 'confident_fraction', 'class_entropy', ...}
  label_agreement(c, x, y)     fraction of conditioned samples the classifier labels as y

MNIST-FID (dlx/ops/fid.py) is the Frechet distance between Gaussians fitted to the 84
penultimate features of that LeNet-5 for the samples and for the real test images; it
is not Inception-FID. An experiment calls `report` from its final_report:

    def final_report(ctx):
      return sample_quality.report(ctx, my_samples(ctx, ctx.config.fid_samples))

Without --config.fid_classifier the report holds one line saying how to get the number
instead of it, and the run goes on; `:smoke` runs never measure it.
"""

import dataclasses
import functools

from absl import logging
import numpy as np

from dlx import errors
from dlx.ops import fid
from dlx.training import warm_start

FIELD = "fid_classifier"
CLASSIFIER_EXPERIMENT = "lenet5_mnist"
MAKE_CLASSIFIER = "./launch.sh lenet5_mnist --data_dir=../shared/tfds"
REFERENCE = "sample_reference"  # the Dataset.info key `with_reference` sets
SKIPPED = "sample_quality"  # the report key that says why nothing was measured


def add_config(config, num_samples: int = 10_000):
  """config.fid_classifier ('' = skip) and config.fid_samples; returns config."""
  config.fid_classifier = ""  # a finished lenet5_mnist run: WORKDIR[:best|:latest]
  config.fid_samples = num_samples
  return config


def with_reference(dataset, images):
  """`dataset` with the real images, (N, 28, 28[, 1]) in [0, 1], that samples are scored
  against (kept in dataset.info, away from the training batches)."""
  images = _images(images, "reference images")
  return dataclasses.replace(dataset, info={**dataset.info, REFERENCE: images})


def _images(images, what):
  images = np.asarray(images, np.float32)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
    raise errors.ConfigError(f"{what} must be (N, 28, 28, 1) MNIST images, got {images.shape}")
  if images.size and (images.min() < 0.0 or images.max() > 1.0):
    raise errors.ConfigError(
      f"{what} must lie in [0, 1], got [{images.min():.3g}, {images.max():.3g}]"
    )
  return images


def reference_images(ctx) -> np.ndarray:
  """The real images samples are compared with: `with_reference`'s, else the test split's
  inputs (which must then be MNIST images in [0, 1])."""
  images = ctx.dataset.info.get(REFERENCE)
  if images is None:
    images = ctx.examples("test")["inputs"]
  return _images(images, "the reference (test) images")


def skip_reason(config) -> str | None:
  """Why the report measures nothing for this config (None: it measures)."""
  if config.get("smoke", False):
    return "not measured in a :smoke run"
  if not config.get(FIELD, ""):
    return (
      f"not measured: pass --config.{FIELD}=runs/{CLASSIFIER_EXPERIMENT} (a finished "
      f"{CLASSIFIER_EXPERIMENT} run; make one with `{MAKE_CLASSIFIER}`)"
    )
  return None


@functools.lru_cache(maxsize=2)
def _load(ref: str):
  classifier = warm_start.load_frozen(ref, FIELD)
  if classifier.experiment.name != CLASSIFIER_EXPERIMENT:
    raise errors.ConfigError(
      f"--config.{FIELD}={ref!r} is a {classifier.experiment.name} run; MNIST-FID is "
      f"defined on the features of a {CLASSIFIER_EXPERIMENT} run (`{MAKE_CLASSIFIER}`)"
    )
  return classifier


def load_classifier(ctx):
  """The frozen LeNet-5 of config.fid_classifier (loaded once per process), or None when
  `skip_reason` says so. A bad path or another experiment's run is a ConfigError."""
  if skip_reason(ctx.config) is not None:
    return None
  return _load(ctx.config[FIELD])


def report(ctx, samples, classifier=None) -> dict:
  """MNIST-FID of `samples` ((N, 28, 28, 1) in [0, 1]) against the reference images,
  the fraction the classifier labels with confidence >= 0.9 and the entropy (nats) of
  its predicted-class histogram; or {'sample_quality': why not}.

  samples: the images, or a function n -> images that is called with config.fid_samples
  only when something is measured (no sampling in a :smoke run). classifier: anything
  with .model and .variables, replacing config.fid_classifier's (tests)."""
  if classifier is None:
    reason = skip_reason(ctx.config)
    if reason is not None:
      logging.warning("MNIST-FID %s", reason)
      return {SKIPPED: reason}
    classifier = load_classifier(ctx)
  if callable(samples):
    if ctx.config.fid_samples < 2:
      raise errors.ConfigError(f"--config.fid_samples={ctx.config.fid_samples}: must be >= 2")
    samples = samples(ctx.config.fid_samples)
  samples = _images(samples, "samples")
  reference = reference_images(ctx)
  # One pass over both sets: fid.mnist_fid's numbers, with one compilation.
  features, logits = fid.classifier_outputs(
    classifier.model, classifier.variables, fid.lenet_inputs(np.concatenate([samples, reference]))
  )
  n = len(samples)
  return {
    "mnist_fid": fid.features_distance(features[:n], features[n:]),
    "confident_fraction": fid.confident_fraction(logits[:n]),
    "class_entropy": fid.class_entropy(logits[:n]),
    "fid_num_samples": n,
    "fid_num_reference": len(reference),
  }


def label_agreement(classifier, images, labels) -> float:
  """Fraction of `images` the classifier assigns to `labels` (the conditioning labels
  of a conditional model's samples)."""
  labels = np.asarray(labels)
  images = _images(images, "samples")
  if labels.shape != images.shape[:1]:
    raise errors.ConfigError(f"labels must be ({len(images)},), got shape {labels.shape}")
  _, logits = fid.classifier_outputs(
    classifier.model, classifier.variables, fid.lenet_inputs(images)
  )
  return float(np.mean(np.argmax(logits, axis=-1) == labels))
