"""Tests for the generic train step's hooks (augmentation, weight noise) and for splits
whose inputs are a dict of arrays (encoder-decoder models)."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import config as config_lib
from dlx import experiment as experiment_lib
from dlx import losses
from dlx import train
from dlx.data import core
from dlx.tasks import classification
from dlx.training import state as state_lib
from dlx.training import steps


class _Linear(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    del train
    return nn.Dense(1, use_bias=False)(x)


def _mse(outputs, batch):
  return {"loss": losses.mse(outputs, batch["targets"])}


def _state(model, optimizer, x):
  params = model.init(jax.random.PRNGKey(0), x)["params"]
  return state_lib.TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=optimizer.init(params),
    model_state={},
    rng=jax.random.PRNGKey(1),
  )


def _batch():
  x = jnp.arange(8, dtype=jnp.float32).reshape(4, 2) / 8
  return {"inputs": x, "targets": jnp.ones((4, 1))}


def test_augment_runs_inside_the_step_and_changes_the_gradient():
  model, tx = _Linear(), optax.sgd(0.1)
  batch = _batch()
  state = _state(model, tx, batch["inputs"])
  seen = []

  def augment(rng, b):
    seen.append(rng)
    return {**b, "inputs": b["inputs"] * 0.0}  # zero inputs: zero gradient for a bias-free map

  plain, _ = jax.jit(steps.make_train_step(model, tx, _mse))(state, batch)
  zeroed, metrics = jax.jit(steps.make_train_step(model, tx, _mse, augment=augment))(state, batch)
  assert seen, "augment was not traced into the step"
  np.testing.assert_allclose(zeroed.params["Dense_0"]["kernel"], state.params["Dense_0"]["kernel"])
  assert not np.allclose(plain.params["Dense_0"]["kernel"], state.params["Dense_0"]["kernel"])
  np.testing.assert_allclose(metrics["loss"], 1.0)  # prediction 0 against target 1


def test_augment_key_depends_on_the_step_and_is_reproducible():
  model, tx = _Linear(), optax.sgd(0.0)
  batch = _batch()
  state = _state(model, tx, batch["inputs"])

  def augment(rng, b):
    return {**b, "inputs": b["inputs"] + jax.random.normal(rng, b["inputs"].shape)}

  step = jax.jit(steps.make_train_step(model, tx, _mse, augment=augment))
  _, m0 = step(state, batch)
  _, m0_again = step(state, batch)
  _, m1 = step(state.replace(step=state.step + 1), batch)
  assert float(m0["loss"]) == float(m0_again["loss"])
  assert float(m0["loss"]) != float(m1["loss"])


def test_weight_noise_gradient_is_taken_at_noisy_weights_and_applied_to_clean_ones():
  model, tx = _Linear(), optax.sgd(1.0)
  batch = _batch()
  state = _state(model, tx, batch["inputs"])
  stddev = 0.5
  new_state, _ = jax.jit(steps.make_train_step(model, tx, _mse, weight_noise=stddev))(state, batch)
  # Recompute by hand: the same noise, the gradient at w + noise, subtracted from w.
  rng = jax.random.fold_in(steps.step_rngs(state)["sample"], 2)
  noisy = steps.add_weight_noise(rng, state.params, stddev)
  w = noisy["Dense_0"]["kernel"]
  x, y = batch["inputs"], batch["targets"]
  grad = 2 * x.T @ (x @ w - y) / x.shape[0]
  np.testing.assert_allclose(
    new_state.params["Dense_0"]["kernel"],
    state.params["Dense_0"]["kernel"] - grad,
    rtol=1e-5,
    atol=1e-6,
  )
  assert not np.allclose(w, state.params["Dense_0"]["kernel"])


def test_add_weight_noise_statistics():
  params = {"w": jnp.zeros((200, 200)), "b": jnp.zeros((7,))}
  noisy = steps.add_weight_noise(jax.random.PRNGKey(0), params, 0.3)
  assert noisy["b"].shape == (7,)
  assert abs(float(jnp.std(noisy["w"])) - 0.3) < 0.01


def test_take_and_num_examples_handle_nested_inputs():
  split = {
    "inputs": {"source": np.arange(10).reshape(5, 2), "target_in": np.arange(5)},
    "targets": np.arange(5) * 10,
  }
  assert core.num_examples(split) == 5
  rows = core.take(split, np.array([4, 0]))
  np.testing.assert_array_equal(rows["inputs"]["source"], [[8, 9], [0, 1]])
  np.testing.assert_array_equal(rows["inputs"]["target_in"], [4, 0])
  np.testing.assert_array_equal(rows["targets"], [40, 0])
  bad = {"inputs": {"source": np.zeros(3)}, "targets": np.zeros(4)}
  try:
    core.num_examples(bad)
  except ValueError as e:
    assert "differ in length" in str(e)
  else:
    raise AssertionError("mismatched lengths were accepted")


class _TwoInputModel(nn.Module):
  """Reads a dict of inputs, like an encoder-decoder."""

  @nn.compact
  def __call__(self, inputs, train=False):
    del train
    both = jnp.concatenate([inputs["a"], inputs["b"]], axis=-1)
    return nn.Dense(2)(both)


def test_trainer_runs_a_model_with_dict_inputs(tmp_path):
  rng = np.random.default_rng(0)
  a = rng.normal(size=(64, 3)).astype(np.float32)
  b = rng.normal(size=(64, 2)).astype(np.float32)
  y = (a[:, 0] + b[:, 0] > 0).astype(np.int32)
  split = {"inputs": {"a": a, "b": b}, "targets": y}
  dataset = core.Dataset(split, split, split, {"name": "two_inputs"})

  def get_config():
    cfg = config_lib.base_config()
    cfg.batch_size = 16
    cfg.eval_batch_size = 16
    cfg.num_train_steps = 30
    cfg.log_every_steps = 10
    cfg.optimizer.learning_rate = 0.05
    return cfg

  experiment = experiment_lib.build(
    "two_inputs",
    get_config=get_config,
    get_model=lambda c: _TwoInputModel(),
    get_dataset=lambda c, d: dataset,
    loss=classification.classification,
  )
  cfg = get_config()
  cfg.experiment = "two_inputs"
  results = train.train_and_evaluate(cfg, str(tmp_path), experiment=experiment)
  assert results["test"]["accuracy"] > 0.8


def test_final_report_hook_lands_in_results(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, 2)).astype(np.float32)
  split = {"inputs": {"a": x[:, :1], "b": x[:, 1:]}, "targets": (x[:, 0] > 0).astype(np.int32)}
  dataset = core.Dataset(split, split, split, {"name": "tiny"})
  calls = []

  def final_report(ctx):
    calls.append(ctx.workdir)
    logits = ctx.model.apply(ctx.variables, ctx.dataset.test["inputs"])
    (tmp_path / "report.txt").write_text("written by the hook")
    return {
      "num_test_logits": int(logits.shape[0]),
      "key_shape": list(ctx.rng.shape),
      "step": ctx.step,
    }

  def get_config():
    cfg = config_lib.base_config()
    cfg.batch_size = cfg.eval_batch_size = 8
    cfg.num_train_steps = 2
    return cfg

  experiment = experiment_lib.build(
    "tiny",
    get_config=get_config,
    get_model=lambda c: _TwoInputModel(),
    get_dataset=lambda c, d: dataset,
    loss=classification.classification,
    final_report=final_report,
  )
  cfg = get_config()
  cfg.experiment = "tiny"
  results = train.train_and_evaluate(cfg, str(tmp_path), experiment=experiment)
  assert calls == [str(tmp_path)]
  assert results["report"]["num_test_logits"] == 32
  assert results["report"]["step"] == 2
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk["report"] == results["report"]


def test_weight_noise_stddev_and_structure():
  params = {"dense": {"kernel": jnp.ones((256, 256)), "bias": jnp.zeros((256,))}}
  noisy = steps.add_weight_noise(jax.random.key(0), params, 0.1)
  assert jax.tree.structure(noisy) == jax.tree.structure(params)
  delta = np.asarray(noisy["dense"]["kernel"] - 1.0)
  assert abs(delta.mean()) < 0.002
  assert delta.std() == pytest.approx(0.1, rel=0.02)
  # Independent noise per leaf, and the clean params are untouched.
  assert not np.allclose(noisy["dense"]["bias"], delta[0])
  np.testing.assert_array_equal(params["dense"]["kernel"], 1.0)
  again = steps.add_weight_noise(jax.random.key(0), params, 0.1)
  np.testing.assert_array_equal(again["dense"]["kernel"], noisy["dense"]["kernel"])
