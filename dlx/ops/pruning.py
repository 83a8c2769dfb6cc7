"""Pruning (docs/curriculum.md#g2): masks that zero weights, kept while a model trains.

A mask is a pytree of booleans shaped like the parameters (True = keep). Masks come from
weight magnitudes (unstructured: globally, or layer by layer) or from whole units
(structured: the output neurons of dense layers and the filters of convolutions with the
smallest L1 or L2 norm, with their biases). `pruning` is an optax transformation that
recomputes the masks on a sparsity schedule and keeps pruned weights at exactly zero in
between, so a fine-tune, its checkpoints and a resumed run all keep them: the masks live
in the optimizer state.

    tx = optax.chain(optax.adam(1e-3), pruning.pruning(
        functools.partial(pruning.magnitude_masks, scope="global"),
        pruning.polynomial_sparsity(0.9, begin=0, end=2000), every=100))

jaxpruner (google-research) does this too, but it is not on the package index this
project installs from, so dlx keeps its own short version.
"""

from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from dlx import errors

SCOPES = ("global", "layerwise")
NORMS = ("l1", "l2")


def is_prunable(name: str, leaf) -> bool:
  """Weight matrices and convolution kernels ('.../kernel', 2-D or more); biases and
  normalisation parameters stay dense."""
  return name.endswith("kernel") and jnp.ndim(leaf) >= 2


def _flat(tree) -> dict[str, Any]:
  return flax.traverse_util.flatten_dict(tree, sep="/")


def _unflat(flat: dict[str, Any]):
  return flax.traverse_util.unflatten_dict(flat, sep="/")


def layer_of(name: str) -> str:
  """'Dense_0/kernel' -> 'Dense_0' (the module a parameter belongs to)."""
  return name.rpartition("/")[0]


def _keep_largest(scores, sparsity):
  """True for all but the floor(sparsity * n) smallest scores (ties: the earlier one is
  pruned first, so exactly that many go). `sparsity` may be traced."""
  n = scores.size
  drop = jnp.floor(jnp.clip(sparsity, 0.0, 1.0) * n).astype(jnp.int32)
  ranks = jnp.argsort(jnp.argsort(scores.reshape(-1), stable=True), stable=True)
  return (ranks >= drop).reshape(scores.shape)


def magnitude_masks(params, sparsity, *, scope: str = "global", prunable: Callable = is_prunable):
  """Masks that drop the smallest-magnitude prunable weights.

  sparsity: the fraction of prunable weights to drop; with scope='layerwise' also a dict
    {layer: fraction} (layers not named keep all their weights).
  scope: 'global' ranks every prunable weight together (layers end up with different
    sparsities); 'layerwise' drops the fraction from each layer.
  """
  if scope not in SCOPES:
    raise errors.ConfigError(f"pruning scope must be one of {SCOPES}, got {scope!r}")
  flat = _flat(params)
  chosen = [name for name, leaf in flat.items() if prunable(name, leaf)]
  masks = {name: jnp.ones(jnp.shape(leaf), bool) for name, leaf in flat.items()}
  if not chosen:
    return _unflat(masks)
  if scope == "global":
    if isinstance(sparsity, dict):
      raise errors.ConfigError("a per-layer sparsity needs scope='layerwise'")
    scores = jnp.concatenate([jnp.abs(flat[name]).reshape(-1) for name in chosen])
    keep = _keep_largest(scores, sparsity)
    start = 0
    for name in chosen:
      size = flat[name].size
      masks[name] = keep[start : start + size].reshape(flat[name].shape)
      start += size
  else:
    for name in chosen:
      fraction = sparsity.get(layer_of(name), 0.0) if isinstance(sparsity, dict) else sparsity
      masks[name] = _keep_largest(jnp.abs(flat[name]), fraction)
  return _unflat(masks)


def unit_masks(
  params,
  fraction,
  *,
  norm: str = "l2",
  prunable: Callable = is_prunable,
  exclude: tuple[str, ...] = (),
):
  """Structured masks: in every prunable layer (but the `exclude`d ones, e.g. the
  classifier), drop the `fraction` of output units (a dense layer's neurons, a
  convolution's filters: the kernel's last axis) whose incoming weights have the
  smallest L1 or L2 norm, and their biases. A dropped unit outputs act(0); with ReLU or
  tanh that is 0, so the next layer's weights on it do nothing (see `kept_units`)."""
  if norm not in NORMS:
    raise errors.ConfigError(f"unit norm must be one of {NORMS}, got {norm!r}")
  flat = _flat(params)
  masks = {name: jnp.ones(jnp.shape(leaf), bool) for name, leaf in flat.items()}
  for name, kernel in flat.items():
    if not prunable(name, kernel) or layer_of(name) in exclude:
      continue
    axes = tuple(range(kernel.ndim - 1))
    scores = jnp.sum(jnp.abs(kernel), axes) if norm == "l1" else jnp.sqrt(jnp.sum(kernel**2, axes))
    keep = _keep_largest(scores, fraction)
    masks[name] = jnp.broadcast_to(keep, kernel.shape)
    bias = f"{layer_of(name)}/bias"
    if bias in flat:
      masks[bias] = keep
  return _unflat(masks)


def apply_masks(params, masks):
  return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, masks)


def polynomial_sparsity(
  final: float, *, begin: int, end: int, initial: float = 0.0, power: float = 3.0
) -> Callable:
  """Zhu & Gupta's (2017) schedule: sparsity rises from `initial` at step `begin` to
  `final` at step `end` as final + (initial - final) (1 - progress)^power, then stays."""

  def sparsity_at(step):
    progress = jnp.clip((step - begin) / max(end - begin, 1), 0.0, 1.0)
    return final + (initial - final) * (1.0 - progress) ** power

  return sparsity_at


class PruningState(NamedTuple):
  count: jax.Array  # updates applied so far
  masks: Any  # the current masks (True = keep), checkpointed with the optimizer state


def pruning(make_masks: Callable, sparsity_at: Callable, *, every: int = 1, until: int = -1):
  """An optax transformation (put it last in the chain) that prunes the parameters.

  make_masks(params, sparsity) -> masks; sparsity_at(step) -> target sparsity. At every
  `every`-th update up to `until` (-1: always), and at update `until` itself (so the
  schedule's final sparsity is reached whatever `every` is), the masks are recomputed
  from the current parameters; every update then sets pruned weights to exactly zero
  (their update is -param) and leaves them there."""

  def init(params):
    masks = jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)
    return PruningState(jnp.zeros((), jnp.int32), masks)

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("pruning needs the parameters: call update(updates, state, params)")
    due = ((state.count % every == 0) & ((until < 0) | (state.count <= until))) | (
      state.count == until
    )
    masks = jax.lax.cond(
      due, lambda: make_masks(params, sparsity_at(state.count)), lambda: state.masks
    )
    updates = jax.tree.map(lambda u, p, m: jnp.where(m, u, -p), updates, params, masks)
    return updates, PruningState(state.count + 1, masks)

  return optax.GradientTransformation(init, update)


def kept_units(params, order: list[str]) -> dict[str, tuple[float, float]]:
  """For layers applied one after the other (`order`, e.g. ['Conv_0', 'Conv_1',
  'Dense_0']): (fraction of input units alive, fraction of output units kept) of each.
  An output unit is kept while any of its weights is nonzero; a layer's inputs are its
  predecessor's kept outputs (the first layer's are all alive). Flattening a conv's
  output keeps the fraction, so this holds for conv -> dense too."""
  flat = _flat(params)
  fractions, alive_in = {}, 1.0
  for layer in order:
    kernel = flat[f"{layer}/kernel"]
    kept = jnp.any(kernel.reshape(-1, kernel.shape[-1]) != 0, axis=0)
    fractions[layer] = (alive_in, float(jnp.mean(kept)))
    alive_in = fractions[layer][1]
  return fractions


def sparsity_report(params, prunable: Callable = is_prunable) -> dict:
  """Zero weights of the prunable layers: per layer (size, nonzero, sparsity) and in
  total, with the compression factor size / nonzero."""
  layers, size, nonzero = {}, 0, 0
  for name, leaf in _flat(params).items():
    if not prunable(name, leaf):
      continue
    n, nz = int(leaf.size), int(jnp.count_nonzero(leaf))
    layers[layer_of(name)] = {"size": n, "nonzero": nz, "sparsity": 1.0 - nz / n}
    size, nonzero = size + n, nonzero + nz
  return {
    "layers": layers,
    "size": size,
    "nonzero": nonzero,
    "sparsity": 1.0 - nonzero / max(size, 1),
    "compression": size / max(nonzero, 1),
  }
