"""Mixed precision (dlx/training/precision.py): bfloat16 compute, float32 parameters and
outputs; a smoke run checks the dtypes of what the trainer keeps (parameters, Adam's
moments with --config.optimizer.mu_dtype=bfloat16, BatchNorm statistics). Every
experiment's model in bfloat16: tests/experiments/test_bfloat16_models.py."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import errors
from dlx import experiment
from dlx import train
from dlx.training import optim
from dlx.training import precision
from tests import conftest


def test_float32_is_the_model_itself():
  model = nn.Dense(3)
  assert precision.apply_policy(model, "float32") is model
  assert isinstance(precision.apply_policy(model, "bfloat16"), precision.MixedPrecision)


def test_gradients_of_bfloat16_compute_are_float32_and_close():
  model = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(4)])
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 5))
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  mixed = precision.MixedPrecision(model, "bfloat16")

  def loss(apply, p):
    return jnp.mean(apply({"params": p}, x) ** 2)

  exact = jax.grad(lambda p: loss(model.apply, p))(params)
  approx = jax.grad(lambda p: loss(mixed.apply, p))(params)
  for a, b in zip(jax.tree.leaves(exact), jax.tree.leaves(approx)):
    assert b.dtype == jnp.float32
    np.testing.assert_allclose(b, a, rtol=0.05, atol=0.02)  # bf16 keeps 8 mantissa bits


def test_batch_norm_statistics_stay_float32():
  model = precision.MixedPrecision(nn.BatchNorm(use_running_average=False), "bfloat16")
  x = 100.0 + jax.random.normal(jax.random.PRNGKey(0), (64, 3))
  variables = model.init(jax.random.PRNGKey(1), x)
  y, state = model.apply(variables, x, mutable=["batch_stats"])
  assert y.dtype == jnp.float32
  mean = state["batch_stats"]["mean"]
  assert mean.dtype == jnp.float32
  # momentum 0.99: 0.01 * batch mean, which bf16 arithmetic would round to ~0.4% off.
  np.testing.assert_allclose(mean, 0.01 * np.mean(np.asarray(x), axis=0), rtol=1e-3)


def test_unknown_dtype_is_a_config_error():
  with pytest.raises(errors.ConfigError, match="float32, bfloat16, float16"):
    precision.compute_dtype("int8")


def test_mu_dtype_needs_adam():
  config = optim.default_config()
  config.name, config.mu_dtype = "sgd", "bfloat16"
  with pytest.raises(errors.ConfigError, match="first-moment"):
    optim.create_optimizer(config, 10)


def test_adam_first_moment_in_bfloat16():
  config = optim.default_config()
  config.mu_dtype = "bfloat16"
  params = {"w": jnp.ones((3,))}
  state = optim.create_optimizer(config, 10).init(params)
  adam = [s for s in jax.tree.leaves(state, is_leaf=lambda s: hasattr(s, "mu")) if hasattr(s, "mu")]
  assert adam[0].mu["w"].dtype == jnp.bfloat16 and adam[0].nu["w"].dtype == jnp.float32
  updates, _ = optim.create_optimizer(config, 10).update(params, state, params)
  assert updates["w"].dtype == jnp.float32
  assert isinstance(optax.global_norm(updates), jax.Array)


def test_bfloat16_training_keeps_float32_parameters(tmp_path):
  exp = experiment.load("lenet5_mnist")
  config = exp.config("smoke")
  config.dtype = "bfloat16"
  config.optimizer.mu_dtype = "bfloat16"
  results = train.train_and_evaluate(config, str(tmp_path), data_dir=None, experiment=exp)
  conftest.assert_finite(results["test"])
  state, _ = conftest.restore_checkpoint(tmp_path / "checkpoints", 3)
  for leaf in jax.tree.leaves(state["params"]):
    assert leaf.dtype == np.float32
  mus = [
    leaf
    for path, leaf in jax.tree_util.tree_leaves_with_path(state["opt_state"])
    if "mu" in jax.tree_util.keystr(path)
  ]
  nus = [
    leaf
    for path, leaf in jax.tree_util.tree_leaves_with_path(state["opt_state"])
    if "nu" in jax.tree_util.keystr(path)
  ]
  assert mus and all(m.dtype == jnp.bfloat16 for m in mus)
  assert nus and all(n.dtype == np.float32 for n in nus)
