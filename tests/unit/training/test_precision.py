"""Mixed precision (dlx/training/precision.py): bfloat16 compute, float32 parameters and outputs.

The forward pass of every experiment's model is traced (no compilation) with
--config.dtype=bfloat16 and each matmul and convolution in its jaxpr must take bfloat16
operands; a smoke run checks the dtypes of what the trainer keeps (parameters, Adam's
moments with --config.optimizer.mu_dtype=bfloat16, BatchNorm statistics).
"""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import errors
from dlx import experiment
from dlx import train
from dlx.data import core as data_core
from dlx.data import tfds_data
from dlx.training import optim
from dlx.training import precision
from tests import conftest

PRODUCTS = ("dot_general", "conv_general_dilated")
# Experiments whose forward pass holds no learned matmul or convolution.
NO_PRODUCTS = ("kmeans_pca_digits",)


def _equations(jaxpr):
  """Every equation of a jaxpr, including those of nested jaxprs (jit, scan, cond...)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else (value,):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from _equations(inner)


def _products(fn, *args):
  jaxpr = jax.make_jaxpr(fn)(*args)
  eqns = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name in PRODUCTS]
  return eqns, jax.eval_shape(fn, *args)


def _operand_dtypes(eqn):
  return tuple(v.aval.dtype for v in eqn.invars)


def _forward(name):
  """(model under the bf16 policy, eval-shaped variables, two sample inputs)."""
  exp = experiment.load(name)
  config = exp.config("smoke")
  config.dtype = "bfloat16"
  with tfds_data.mocked(config.tfds_mock_examples):
    dataset = exp.get_dataset(config, None)
  model = precision.apply_policy(exp.get_model(config), config.dtype)
  split = dataset.validation if isinstance(dataset, data_core.Stream) else dataset.train
  inputs = data_core.take(split, slice(0, 2))["inputs"]
  rngs = {k: jax.random.PRNGKey(i) for i, k in enumerate(("params", "dropout", "sample"))}
  variables = jax.eval_shape(lambda x: model.init(rngs, x, train=False), inputs)
  return model, variables, inputs


def _one_per_family():
  """Every experiment, the first one per model module (dlx.models.X it imports) in the
  fast suite and the rest in the slow suite: the families are what is checked, and the
  fast suite has a 15-minute budget."""
  seen, params = set(), []
  for name in experiment.available():
    if name in NO_PRODUCTS:
      continue
    source = experiment.resolve(name).read_text()
    family = re.search(r"^from dlx\.models import (\w+)", source, re.M)
    family = family.group(1) if family else name
    params.append(pytest.param(name, marks=pytest.mark.slow) if family in seen else name)
    seen.add(family)
  return params


@pytest.mark.parametrize("name", _one_per_family())
def test_every_model_family_multiplies_in_bfloat16(name):
  model, variables, inputs = _forward(name)
  assert all(
    leaf.dtype == jnp.float32
    for leaf in jax.tree.leaves(variables["params"])
    if jnp.issubdtype(leaf.dtype, jnp.floating)
  ), "parameters must stay float32"

  rngs = {"dropout": jax.random.PRNGKey(1), "sample": jax.random.PRNGKey(2)}
  eqns, outputs = _products(
    lambda v, x: model.apply(v, x, train=False, rngs=rngs), variables, inputs
  )
  assert eqns, f"{name}: no matmul or convolution traced"
  wrong = [
    f"{e.primitive.name}{_operand_dtypes(e)}"
    for e in eqns
    if any(d != jnp.bfloat16 for d in _operand_dtypes(e))
  ]
  assert not wrong, f"{name}: products not in bfloat16: {wrong[:5]}"
  for leaf in jax.tree.leaves(outputs):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      assert leaf.dtype == jnp.float32, "outputs (logits) must be float32"


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
