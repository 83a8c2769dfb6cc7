"""Tests for dlx/tasks/segmentation.py: the confusion matrix, IoU and pixel accuracy
against scikit-learn, the loss, the set-level evaluate hook over uneven batches, the
report's figure, and a few training steps that lower the loss."""

import functools
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from sklearn import metrics

from dlx import errors
from dlx import losses
from dlx.data import scenes
from dlx.data import tfds_data
from dlx.models import unet
from dlx.tasks import segmentation
from tests import conftest

C = segmentation.NUM_CLASSES


def _random_maps(seed, shape=(4, 12, 10), num_classes=C):
  """Truth and prediction label maps; the last class appears in neither, and the
  next-to-last only in the prediction."""
  rng = np.random.default_rng(seed)
  truth = rng.integers(0, num_classes - 2, shape)
  predicted = np.where(rng.random(shape) < 0.7, truth, rng.integers(0, num_classes - 1, shape))
  assert (predicted == num_classes - 2).any()
  return truth, predicted


def test_confusion_matrix_matches_sklearn():
  truth, predicted = _random_maps(0)
  got = segmentation.confusion_matrix(jnp.asarray(truth), jnp.asarray(predicted), C)
  expected = metrics.confusion_matrix(truth.ravel(), predicted.ravel(), labels=range(C))
  np.testing.assert_array_equal(got, expected)


def _sklearn_iou(truth, predicted):
  """Per-class IoU from scikit-learn, NaN for a class with no pixels in truth or
  prediction (found as the classes whose score depends on zero_division)."""
  scores = [
    metrics.jaccard_score(
      truth.ravel(), predicted.ravel(), labels=range(C), average=None, zero_division=z
    )
    for z in (0.0, 1.0)
  ]
  return np.where(scores[0] == scores[1], scores[0], np.nan)


def test_iou_and_mean_iou_match_sklearn_with_an_absent_class():
  truth, predicted = _random_maps(1)
  confusion = metrics.confusion_matrix(truth.ravel(), predicted.ravel(), labels=range(C))
  expected = _sklearn_iou(truth, predicted)
  got = segmentation.iou_per_class(confusion)
  np.testing.assert_allclose(got, expected)
  assert np.isnan(got[C - 1])  # in neither: no IoU, left out of the mean
  assert got[C - 2] == 0.0  # predicted only: IoU 0, counted
  assert segmentation.mean_iou(confusion) == pytest.approx(np.mean(expected[: C - 1]))


def test_pixel_accuracy_by_hand():
  truth = np.array([[0, 0, 1], [2, 2, 2]])
  predicted = np.array([[0, 1, 1], [2, 0, 2]])  # 4 of 6 right
  confusion = segmentation.confusion_matrix(jnp.asarray(truth), jnp.asarray(predicted), 3)
  assert segmentation.pixel_accuracy(confusion) == pytest.approx(4 / 6)
  logits = jnp.asarray(np.eye(3)[predicted][None])
  per_image = segmentation.pixel_accuracy_per_image(logits, jnp.asarray(truth[None]))
  np.testing.assert_allclose(per_image, [4 / 6])


def test_loss_terms():
  rng = np.random.default_rng(2)
  logits = jnp.asarray(rng.standard_normal((3, 8, 8, C)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, C, (3, 8, 8)), jnp.uint8)  # any integer dtype
  plain = segmentation.segmentation_loss(logits, labels)
  assert set(plain) == {"loss", "cross_entropy", "accuracy"}
  np.testing.assert_allclose(plain["loss"], losses.pixel_cross_entropy(logits, labels), rtol=1e-6)
  with_dice = segmentation.segmentation_loss(logits, labels, dice_weight=0.5)
  dice = losses.soft_dice_loss(logits, labels)
  np.testing.assert_allclose(with_dice["dice_loss"], dice, rtol=1e-6)
  np.testing.assert_allclose(with_dice["loss"], plain["loss"] + 0.5 * dice, rtol=1e-6)


def test_get_loss_checks_the_config():
  config = segmentation.base_config()
  config.class_weights = (1.0, 2.0)
  with pytest.raises(errors.ConfigError, match="class_weights"):
    segmentation.get_loss(config)
  config.class_weights = (0.1,) + (1.0,) * 10
  out = segmentation.get_loss(config)(jnp.zeros((1, 4, 4, C)), {"targets": jnp.zeros((1, 4, 4))})
  np.testing.assert_allclose(out["loss"], [np.log(C)], rtol=1e-6)


def _context(inputs, truth, predicted, batch_size, workdir="."):
  """What the hooks read of a RunContext, for a 'model' whose logits are the one-hot
  of fixed predictions."""
  data = {"inputs": inputs, "targets": truth}
  logits = np.eye(C, dtype=np.float32)[predicted]

  def outputs(split, batch_size=batch_size):
    n = len(split["inputs"])
    for start in range(0, n, batch_size):
      batch = {k: v[start : start + batch_size] for k, v in split.items()}
      yield batch, jnp.asarray(logits[start : start + batch_size])

  config = ml_collections.ConfigDict(dict(num_classes=C))
  return types.SimpleNamespace(
    config=config,
    examples=lambda split: data,
    outputs=outputs,
    dataset=types.SimpleNamespace(test=data),
    workdir=str(workdir),
  )


def test_evaluate_sums_the_confusion_over_uneven_batches(tmp_path):
  truth, predicted = _random_maps(3, shape=(7, 16, 16))
  inputs = np.zeros(truth.shape + (1,), np.float32)
  ctx = _context(inputs, truth, predicted, batch_size=3, workdir=tmp_path)  # 3 + 3 + 1
  got = segmentation.evaluate(ctx, "test")
  assert got["miou"] == pytest.approx(np.nanmean(_sklearn_iou(truth, predicted)))
  assert got["pixel_accuracy"] == pytest.approx(
    metrics.accuracy_score(truth.ravel(), predicted.ravel())
  )
  report = segmentation.final_report(ctx)
  assert report["test_iou_per_class"]["9"] is None  # class 9 = id 10: absent
  assert report["test_iou_per_class"]["8"] == 0.0  # predicted, never true
  conftest.assert_png(tmp_path / "segmentation.png", min_side=200)


def test_a_few_steps_lower_the_loss(tmp_path):
  with tfds_data.mocked(8):  # small scenes keep the test fast
    ds = scenes.digit_scenes(
      data_dir=str(tmp_path),
      image_size=32,
      min_scale=10,
      max_scale=20,
      max_objects=2,
      num_train=8,
      num_validation=0,
      num_test=0,
    )
  batch = {"inputs": jnp.asarray(ds.train["inputs"]), "targets": jnp.asarray(ds.train["mask"])}
  model = unet.SegmentationUNet(num_classes=C, features=(8, 16), patch_size=2)
  # XLA's lowest optimisation level: compiling dominates this test's time.
  fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
  variables = fast_jit(model.init)(jax.random.PRNGKey(0), batch["inputs"])
  config = segmentation.base_config()
  config.dice_weight = 0.5
  loss_fn = segmentation.get_loss(config)
  optimizer = optax.adam(1e-2)

  @fast_jit
  def step(params, batch_stats, opt_state):
    def objective(params):
      logits, updates = model.apply(
        {"params": params, "batch_stats": batch_stats},
        batch["inputs"],
        train=True,
        mutable=["batch_stats"],
      )
      return jnp.mean(loss_fn(logits, batch)["loss"]), updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(objective, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = optimizer.init(params)
  history = []
  for _ in range(30):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    history.append(float(loss))
  assert np.isfinite(history).all()
  assert np.mean(history[-5:]) < 0.6 * history[0]
