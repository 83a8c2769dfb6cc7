"""D3 and C5 switched on (docs/curriculum.md#d3, #c5) in `lenet5_digits`: the config flags
reach the batches and the loss, `:overfit` overfits, and early stopping ends it
(numbers: experiments/vision/README.md#regularisers-switched-on)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import experiment
from dlx import train

NAME = "lenet5_digits"


def _batch(n=10):
  # Example i is digit i, so row i of the soft targets names its partner.
  images = jax.random.uniform(jax.random.key(0), (n, 32, 32, 1))
  return {"inputs": images, "targets": jnp.arange(n, dtype=jnp.int32)}


def _augment(**fields):
  exp = experiment.load(NAME)
  config = exp.config()
  for key, value in fields.items():
    config.augment[key] = value
  return exp.get_augment(config)


def test_defaults_leave_the_batch_alone():
  batch = _batch()
  out = _augment()(jax.random.key(1), batch)
  assert set(out) == set(batch)
  np.testing.assert_array_equal(out["inputs"], batch["inputs"])
  exp = experiment.load(NAME)
  assert exp.config().weight_noise == 0.0


def test_mixup_flag_mixes_images_as_their_labels_say():
  batch = _batch()
  out = _augment(mixup_alpha=0.4)(jax.random.key(1), batch)
  x, mixed, soft = map(np.asarray, (batch["inputs"], out["inputs"], out["soft_targets"]))
  np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
  assert not np.array_equal(mixed, x)
  for i in range(len(x)):
    # By hand: the image is the same weighted sum of the two digits its label row names.
    expected = sum(soft[i, c] * x[c] for c in np.flatnonzero(soft[i] > 0))
    np.testing.assert_allclose(mixed[i], expected, atol=1e-5)


def test_cutmix_flag_pastes_a_box_with_the_label_weight_of_its_area():
  batch = _batch()
  out = _augment(cutmix_alpha=1.0)(jax.random.key(3), batch)
  x, pasted, soft = map(np.asarray, (batch["inputs"], out["inputs"], out["soft_targets"]))
  for i in range(len(x)):
    # By hand: the share of pixels still its own is its own label's weight.
    from_self = np.isclose(pasted[i], x[i]).mean()
    assert soft[i, i] == pytest.approx(from_self, abs=1e-6)
  assert (soft.max(axis=1) < 1).any()  # some box was pasted


def test_input_noise_flag_adds_noise_of_that_size():
  batch = _batch(64)
  out = _augment(input_noise=0.1)(jax.random.key(1), batch)
  noise = np.asarray(out["inputs"] - batch["inputs"])
  assert noise.std() == pytest.approx(0.1, rel=0.02)
  np.testing.assert_array_equal(out["targets"], batch["targets"])


def test_the_loss_reads_the_soft_targets():
  exp = experiment.load(NAME)
  loss_fn = exp.get_loss(exp.config())
  logits = jnp.array([[2.0, 0.0, -1.0]])
  soft = jnp.array([[0.3, 0.7, 0.0]])
  batch = {"targets": jnp.array([0]), "soft_targets": soft}
  by_hand = -(0.3 * jax.nn.log_softmax(logits)[0, 0] + 0.7 * jax.nn.log_softmax(logits)[0, 1])
  assert float(loss_fn(logits, batch)["loss"][0]) == pytest.approx(float(by_hand), rel=1e-6)
  hard = loss_fn(logits, {"targets": jnp.array([1])})["loss"][0]
  assert float(hard) == pytest.approx(float(-jax.nn.log_softmax(logits)[0, 1]), rel=1e-6)


def test_overfit_trains_on_a_hundred_images():
  exp = experiment.load(NAME)
  config = exp.config("overfit")
  dataset = exp.get_dataset(config, None)
  full = exp.get_dataset(exp.config(), None)
  assert dataset.size("train") == 100 < full.size("train")
  assert dataset.size("test") == full.size("test")
  assert config.optimizer.schedule == "constant"


def _run(tmp_path, arg, **fields):
  exp = experiment.load(NAME)
  config = exp.config(arg)
  for key, value in fields.items():
    config[key] = value
  return train.train_and_evaluate(config, str(tmp_path), experiment=exp)


def test_early_stopping_ends_an_overfitting_run(tmp_path):
  """100 images, validation every 10 steps, patience 2: the validation loss turns up
  within a few hundred steps, and the run stops there instead of at step 400."""
  results = _run(
    tmp_path, "overfit", num_train_steps=400, early_stopping_patience=2, fast_compile=True
  )
  assert results["stopped_early"], results
  assert results["step"] < 400, results


@pytest.mark.slow
def test_early_stopping_against_training_to_the_end(tmp_path):
  """The README's C5 rows: `:overfit` with patience 5 stops early with a lower test loss
  than the run trained to step 3000."""
  stopped = _run(tmp_path / "stopped", "overfit", early_stopping_patience=5)
  full = _run(tmp_path / "full", "overfit")
  assert stopped["stopped_early"] and stopped["step"] < 1000, stopped
  assert not full["stopped_early"] and full["step"] == 3000, full
  assert stopped["test"]["loss"] < full["test"]["loss"], (stopped["test"], full["test"])
  # 91.92% both (measured): stopping costs no accuracy here.
  assert stopped["test"]["accuracy"] >= full["test"]["accuracy"] - 0.01, (stopped, full)
  assert stopped["generalization_gap"] < full["generalization_gap"], (stopped, full)
