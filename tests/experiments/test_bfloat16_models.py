"""Every experiment's model under --config.dtype=bfloat16 (dlx/training/precision.py): its
forward pass is traced (no compilation) and each matmul and convolution in the jaxpr must
take bfloat16 operands, with float32 parameters and outputs."""

import re

import jax
import jax.numpy as jnp
import pytest

from dlx import experiment
from dlx.data import core as data_core
from dlx.data import tfds_data
from dlx.training import precision

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
