"""Where each array of the train state lives on the device mesh (docs/scaling.md).

The mesh has three named axes, sized by `--config.mesh.data/fsdp/tensor` (-1 takes the
devices the others leave; the default data=-1, fsdp=1, tensor=1 is plain data
parallelism with every array replicated):

  data    splits the batch.
  fsdp    splits the batch too, and every parameter and its optimizer state along one
          dimension it divides (the largest; leaves under `--config.fsdp_min_elements` stay
          replicated): each device holds 1/fsdp of the model, gathered for the step.
  tensor  splits attention heads and MLP hidden units (Megatron's column/row split) of
          the layers that name their parameters' logical axes (`LOGICAL_AXES` in
          dlx/nn/attention.py and dlx/nn/transformer.py); LOGICAL_TO_MESH maps them.

`--config.sharding_rules='REGEX=SPEC;...'` overrides both for the leaves whose path
(e.g. `params/decoder/layer_0/self_attention/query/kernel`,
`opt_state/0/mu/...`) the first matching REGEX is found in (re.search). SPEC is
`replicated` or one entry per leading dimension, comma-separated: a mesh axis, axes
joined by `+`, or `-` for none (`-,tensor`; `fsdp+tensor,-`).

The step's code holds no sharding annotation: jit gets these shardings for its inputs
and outputs, and XLA inserts the gathers and reductions.
"""

import math
import re
from typing import Any, Optional

import flax.linen as nn
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from dlx import errors

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")
# The one table from the layers' logical axis names to mesh axes (None: not split).
LOGICAL_TO_MESH = {"heads": "tensor", "mlp": "tensor", "embed": None}
# The default of --config.fsdp_min_elements: smaller leaves stay whole on every device,
# as splitting them saves little memory and costs a gather each step (big_vision's rule).
FSDP_MIN_ELEMENTS = 2**12


def mesh_sizes(config, num_devices: int) -> dict[str, int]:
  """{'data': D, 'fsdp': F, 'tensor': T} with D * F * T == num_devices."""
  mesh = config.get("mesh", {})
  sizes = {axis: int(mesh.get(axis, -1 if axis == "data" else 1)) for axis in AXES}
  spelled = " ".join(f"--config.mesh.{a}={sizes[a]}" for a in AXES)
  free = [a for a in AXES if sizes[a] == -1]
  if len(free) > 1 or any(sizes[a] == 0 or sizes[a] < -1 for a in AXES):
    raise errors.ConfigError(
      f"{spelled}: each size must be positive, with at most one -1 (the devices the others leave)"
    )
  fixed = math.prod(sizes[a] for a in AXES if a not in free)
  if free:
    if num_devices % fixed:
      raise errors.ConfigError(
        f"{spelled}: {num_devices} devices do not divide into the fixed sizes' product "
        f"{fixed}; choose sizes whose product divides {num_devices}"
      )
    sizes[free[0]] = num_devices // fixed
  elif fixed != num_devices:
    raise errors.ConfigError(
      f"{spelled}: the sizes multiply to {fixed}, but there are {num_devices} devices; "
      "make the product equal the device count, or set one size to -1"
    )
  return sizes


def create_mesh(config, devices=None) -> jax.sharding.Mesh:
  """The config's mesh over `devices` (default: every device of every process, process
  by process, so that `data`, the outer axis, is the one that crosses hosts)."""
  devices = jax.devices() if devices is None else list(devices)
  sizes = mesh_sizes(config, len(devices))
  auto = (jax.sharding.AxisType.Auto,) * len(AXES)
  return jax.make_mesh(tuple(sizes[a] for a in AXES), AXES, auto, devices=devices)


def sizes_of(mesh) -> dict[str, int]:
  return {axis: int(mesh.shape[axis]) for axis in mesh.axis_names}


def batch_sharding(mesh) -> NamedSharding:
  """The batch's leading dimension over data x fsdp (replicated over tensor)."""
  return NamedSharding(mesh, P(BATCH_AXES))


def logical_axes(model, *init_args, **init_kwargs) -> dict[tuple[str, ...], tuple]:
  """{parameter path: logical axis names} for the parameters of layers that declare
  `LOGICAL_AXES`, found by tracing `model.init(*init_args, **init_kwargs)` for shapes
  only. The path is the key path in `params` (module names, then the parameter's)."""
  found = {}

  def record(next_fun, args, kwargs, context):
    declared = getattr(type(context.module), "LOGICAL_AXES", None)
    if declared and context.method_name == "__call__":
      prefix = tuple(context.module.path)
      for relative, names in declared.items():
        found[prefix + tuple(relative.split("/"))] = tuple(names)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda *a: model.init(*a, **init_kwargs), *init_args)
  return found


def parse_rules(text: str) -> list[tuple[re.Pattern, Optional[tuple]]]:
  """`REGEX=SPEC;...` -> [(pattern, per-dimension axes or None for replicated)]."""
  rules = []
  for part in (p.strip() for p in str(text or "").split(";")):
    if not part:
      continue
    regex, sep, spec = part.rpartition("=")
    if not sep or not regex:
      raise errors.ConfigError(
        f"--config.sharding_rules: {part!r} is not REGEX=SPEC; e.g. "
        "'.*embedding=replicated;.*query/kernel=-,tensor'"
      )
    try:
      pattern = re.compile(regex)
    except re.error as e:
      raise errors.ConfigError(f"--config.sharding_rules: bad regex {regex!r} ({e})") from None
    rules.append((pattern, _parse_spec(spec.strip(), part)))
  return rules


def _parse_spec(spec: str, rule: str) -> Optional[tuple]:
  if spec == "replicated":
    return None
  dims = []
  for entry in spec.split(","):
    axes = tuple(a.strip() for a in entry.split("+") if a.strip() not in ("-", ""))
    unknown = [a for a in axes if a not in AXES]
    if unknown:
      raise errors.ConfigError(
        f"--config.sharding_rules: {rule!r} names {unknown[0]!r}; mesh axes are "
        f"{', '.join(AXES)} ('-' = not split, 'replicated' = whole everywhere)"
      )
    dims.append(axes[0] if len(axes) == 1 else (axes or None))
  return tuple(dims)


def leaf_spec(
  path: str, keys: tuple, shape, sizes, logical, rules, min_elements=FSDP_MIN_ELEMENTS
) -> P:
  """The PartitionSpec of one state leaf (see the module docstring for the order)."""
  for pattern, dims in rules:
    if pattern.search(path):
      return _checked(P() if dims is None else P(*dims), path, shape, sizes)
  dims = [None] * len(shape)
  names = _logical_of(keys, len(shape), logical)
  if names and sizes.get("tensor", 1) > 1:
    for i, name in enumerate(names):
      axis = LOGICAL_TO_MESH.get(name)
      if axis and shape[i] % sizes[axis] == 0:
        dims[i] = axis
  fsdp = sizes.get("fsdp", 1)
  if fsdp > 1 and math.prod(shape) >= min_elements:
    free = [i for i, d in enumerate(dims) if d is None and shape[i] % fsdp == 0]
    if free:
      dims[max(free, key=lambda i: (shape[i], i))] = "fsdp"
  return P(*dims)


def _logical_of(keys, ndim, logical):
  """The logical names of the parameter whose path `keys` ends with (the optimizer
  state holds copies of the parameter tree inside its own containers)."""
  for start in range(len(keys)):
    names = logical.get(keys[start:])
    if names is not None and len(names) == ndim:
      return names
  return None


def _checked(spec, path, shape, sizes):
  if len(spec) > len(shape):
    raise errors.ConfigError(
      f"--config.sharding_rules: {path} has {len(shape)} dimensions {tuple(shape)}, the "
      f"rule gives {len(spec)}"
    )
  for dim, axes in zip(shape, spec):
    parts = (axes,) if isinstance(axes, str) else tuple(axes or ())
    split = math.prod(sizes[a] for a in parts)
    if dim % split:
      raise errors.ConfigError(
        f"--config.sharding_rules: {path} of shape {tuple(shape)}: a dimension of {dim} "
        f"does not split over {'+'.join(parts)} ({split} devices); change the rule or mesh"
      )
  return spec


def _path_keys(path) -> tuple[str, ...]:
  keys = []
  for entry in path:
    for attr in ("key", "name", "idx"):
      if hasattr(entry, attr):
        keys.append(str(getattr(entry, attr)))
        break
  return tuple(keys)


def state_shardings(abstract_state, mesh, config=None, logical=None) -> Any:
  """A NamedSharding for every leaf of `abstract_state` (a TrainState or any pytree of
  arrays or shapes), by the rules of the module docstring."""
  sizes = sizes_of(mesh)
  config = config if config is not None else {}
  rules = parse_rules(config.get("sharding_rules", ""))
  min_elements = config.get("fsdp_min_elements", FSDP_MIN_ELEMENTS)
  logical = logical or {}

  def place(path, leaf):
    keys = _path_keys(path)
    spec = leaf_spec("/".join(keys), keys, np.shape(leaf), sizes, logical, rules, min_elements)
    return NamedSharding(mesh, spec)

  return jax.tree_util.tree_map_with_path(place, abstract_state)


def with_shardings(abstract_tree, shardings):
  """ShapeDtypeStructs carrying the shardings: a restore target, or a lowering's args."""
  return jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s), abstract_tree, shardings
  )


def bytes_per_device(tree) -> tuple[int, int]:
  """(total bytes, the most bytes any one device holds) of a tree of placed arrays,
  counted from each array's addressable shards (this process's devices)."""
  total, per_device = 0, {}
  for leaf in jax.tree.leaves(tree):
    total += int(leaf.nbytes)
    for shard in getattr(leaf, "addressable_shards", ()):
      per_device[shard.device] = per_device.get(shard.device, 0) + int(shard.data.nbytes)
  return total, max(per_device.values(), default=total)


def abstract_bytes_per_device(tree, shardings) -> tuple[int, int]:
  """The same as `bytes_per_device` from shapes and shardings alone (no arrays)."""
  total, per_device = 0, 0
  for leaf, sharding in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)):
    nbytes = math.prod(np.shape(leaf)) * np.dtype(leaf.dtype).itemsize
    total += nbytes
    shard_shape = sharding.shard_shape(tuple(np.shape(leaf)))
    per_device += math.prod(shard_shape) * np.dtype(leaf.dtype).itemsize
  return total, per_device


def describe(state, mesh) -> dict:
  """results.json's `sharding`: the mesh (a Mesh, or its sizes as a dict) and what one
  device holds."""
  params_total, params_device = bytes_per_device(state.params)
  opt_total, opt_device = bytes_per_device(state.opt_state)
  return {
    "mesh": mesh if isinstance(mesh, dict) else sizes_of(mesh),
    "param_bytes_total": params_total,
    "param_bytes_per_device": params_device,
    "opt_state_bytes_total": opt_total,
    "opt_state_bytes_per_device": opt_device,
  }
