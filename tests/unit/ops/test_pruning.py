"""Pruning masks and the optax transformation that keeps them (dlx/ops/pruning.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import errors
from dlx.ops import pruning


def _params(seed=0):
  rng = np.random.default_rng(seed)
  return {
    "Dense_0": {"kernel": jnp.asarray(rng.normal(size=(20, 10))), "bias": jnp.ones(10)},
    "Dense_1": {"kernel": jnp.asarray(rng.normal(size=(10, 5))), "bias": jnp.ones(5)},
    "Conv_0": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 4))), "bias": jnp.ones(4)},
  }


def _kernels(tree):
  return {layer: np.asarray(leaves["kernel"]) for layer, leaves in tree.items()}


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 1.0])
def test_global_magnitude_masks_drop_exactly_the_smallest(sparsity):
  params = _params()
  masks = pruning.magnitude_masks(params, sparsity, scope="global")
  weights = np.concatenate([k.ravel() for k in _kernels(params).values()])
  keep = np.concatenate([m.ravel() for m in _kernels(masks).values()])
  assert (~keep).sum() == int(np.floor(sparsity * weights.size))
  if 0 < sparsity < 1:
    assert np.abs(weights[keep]).min() >= np.abs(weights[~keep]).max()
  for layer in params:  # biases are not prunable
    assert np.all(np.asarray(masks[layer]["bias"]))


def test_layerwise_masks_prune_each_layer_by_its_fraction():
  params = _params()
  masks = pruning.magnitude_masks(params, 0.5, scope="layerwise")
  for layer, kernel in _kernels(params).items():
    keep = np.asarray(masks[layer]["kernel"])
    assert (~keep).sum() == kernel.size // 2
    assert np.abs(kernel[keep]).min() >= np.abs(kernel[~keep]).max()
  per_layer = pruning.magnitude_masks(params, {"Dense_0": 0.9}, scope="layerwise")
  assert (~np.asarray(per_layer["Dense_0"]["kernel"])).sum() == 180
  assert np.all(np.asarray(per_layer["Dense_1"]["kernel"]))
  with pytest.raises(errors.ConfigError, match="layerwise"):
    pruning.magnitude_masks(params, {"Dense_0": 0.9}, scope="global")
  with pytest.raises(errors.ConfigError, match="scope"):
    pruning.magnitude_masks(params, 0.5, scope="per-row")


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_unit_masks_drop_the_weakest_units_with_their_biases(norm):
  params = _params()
  masks = pruning.unit_masks(params, 0.5, norm=norm, exclude=("Dense_1",))
  for layer in ("Dense_0", "Conv_0"):
    kernel = np.asarray(params[layer]["kernel"])
    flat = kernel.reshape(-1, kernel.shape[-1])
    scores = np.abs(flat).sum(0) if norm == "l1" else np.sqrt((flat**2).sum(0))
    kept = np.asarray(masks[layer]["kernel"]).reshape(-1, kernel.shape[-1])
    units = kept.all(axis=0)
    assert np.array_equal(units, kept.any(axis=0))  # whole units, never parts
    assert (~units).sum() == kernel.shape[-1] // 2
    assert scores[units].min() >= scores[~units].max()
    np.testing.assert_array_equal(np.asarray(masks[layer]["bias"]), units)
  assert np.all(np.asarray(masks["Dense_1"]["kernel"]))  # excluded: the classifier


def test_masks_work_under_jit_with_a_traced_sparsity():
  params = _params()
  masks = jax.jit(lambda p, s: pruning.magnitude_masks(p, s))(params, 0.4)
  eager = pruning.magnitude_masks(params, 0.4)
  jax.tree.map(np.testing.assert_array_equal, masks, eager)


def test_polynomial_sparsity_closed_form():
  schedule = pruning.polynomial_sparsity(0.9, begin=10, end=110, initial=0.1)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-6)  # float32
  close(schedule(0), 0.1)
  close(schedule(10), 0.1)
  close(schedule(60), 0.9 + (0.1 - 0.9) * 0.5**3)
  close(schedule(110), 0.9)
  close(schedule(500), 0.9)


def _prune_and_train(steps, every=1):
  params = _params()
  make_masks = functools.partial(pruning.magnitude_masks, scope="global")
  tx = optax.chain(
    optax.adamw(1e-2, weight_decay=0.1),
    pruning.pruning(make_masks, pruning.polynomial_sparsity(0.8, begin=0, end=4), every=every),
  )
  state = tx.init(params)

  def loss(p):
    return sum(jnp.sum((leaf - 3.0) ** 2) for leaf in jax.tree.leaves(p))

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  history = []
  for _ in range(steps):
    params, state = step(params, state)
    history.append(pruning.sparsity_report(params)["sparsity"])
  return params, state, history


def test_pruned_weights_stay_exactly_zero_while_training():
  params, state, history = _prune_and_train(12)
  # The schedule rises to 0.8 by step 4; between pruning steps nothing grows back,
  # although the loss pulls every weight towards 3 and AdamW decays them.
  assert history[0] == pytest.approx(0.0, abs=1e-9)
  assert history == sorted(history) and history[-1] == pytest.approx(0.8, abs=0.01)
  masks = state[1].masks
  for layer in params:
    kernel, keep = np.asarray(params[layer]["kernel"]), np.asarray(masks[layer]["kernel"])
    assert np.all(kernel[~keep] == 0.0) and np.all(kernel[keep] != 0.0)


def test_pruning_every_n_steps_holds_the_masks_in_between():
  _, state, history = _prune_and_train(6, every=3)
  # Prunes at updates 0 (sparsity 0) and 3 (0.8 * (1 - 0.25^3)): flat in between.
  assert history[0] == history[1] == history[2] == 0.0
  assert history[3] == history[4] == history[5] > 0.7
  assert int(state[1].count) == 6


def test_the_final_sparsity_is_reached_at_until_whatever_every_is():
  params = _params()
  tx = pruning.pruning(
    pruning.magnitude_masks, pruning.polynomial_sparsity(0.6, begin=0, end=7), every=5, until=7
  )
  state = tx.init(params)
  zero = jax.tree.map(jnp.zeros_like, params)
  history = []
  for _ in range(10):
    updates, state = tx.update(zero, state, params)
    params = optax.apply_updates(params, updates)
    history.append(pruning.sparsity_report(params)["sparsity"])
  # Masks at updates 0 (sparsity 0), 5 (below 0.6) and 7 (0.6 exactly), then fixed.
  assert history[0] == 0.0 and 0.0 < history[5] < 0.6
  assert history[7] == history[9] == pytest.approx(int(0.6 * 322) / 322)


def test_pruning_needs_params():
  tx = pruning.pruning(pruning.magnitude_masks, lambda step: 0.5)
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(_params(), tx.init(_params()))


def test_sparsity_report_and_kept_units():
  params = pruning.apply_masks(_params(), pruning.unit_masks(_params(), 0.5))
  report = pruning.sparsity_report(params)
  assert report["size"] == 200 + 50 + 72
  assert report["layers"]["Dense_0"] == {"size": 200, "nonzero": 100, "sparsity": 0.5}
  assert report["compression"] == pytest.approx(report["size"] / report["nonzero"])
  kept = pruning.kept_units(
    {"a": {"kernel": params["Conv_0"]["kernel"]}, "b": {"kernel": jnp.ones((4, 3))}},
    ["a", "b"],
  )
  assert kept == {"a": (1.0, 0.5), "b": (0.5, 1.0)}
