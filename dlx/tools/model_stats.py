"""Parameter and FLOP counts per layer (docs/curriculum.md#g4).

FLOP convention: one multiply-add (MAC) counts as 2 FLOPs, and only the
matrix products are counted:

  Conv           2 * output elements * (kh * kw * C_in / groups)
                 (strides, dilation and padding act through the real output
                 shape; input dilation counts the inserted zeros too)
  ConvTranspose  2 * input positions * (kh * kw * C_in * C_out)
                 (every input pixel scattered through the kernel)
  Dense(General) 2 * output elements * contracted input size
                 (Dense: 2 * in * out per example)
  Embed.attend   2 * output elements * embedding size (tied output layer)
  MultiHeadDotProductAttention
                 its q/k/v/out projections are Dense rows; the module's own
                 row adds the two attention products Q K^T and A V:
                 2 * 2 * batch * L_q * L_kv * qkv_features

Not counted (all O(activations), small next to the products above): bias
adds, activations, normalisation (BatchNorm / LayerNorm rows show their
parameters with 0 FLOPs), pooling, softmax, residual adds, einsums written
inline in custom modules. Counts are for the inputs given, batch included:
pass a batch of 1 for per-example numbers. A module inside `nn.scan` is
traced once, so its FLOPs are per scan step.

Nothing is computed: `layer_table` traces `model.init` under
`jax.eval_shape` and reads shapes with a flax method interceptor.
"""

import argparse
from collections.abc import Mapping
import math
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from dlx import errors
from dlx import experiment

_DEFAULT_RNG_NAMES = ("params", "dropout", "sample")


def _size(leaf) -> int:
  return int(math.prod(np.shape(leaf)))


def _params_of(variables_or_params):
  if isinstance(variables_or_params, Mapping) and "params" in variables_or_params:
    return variables_or_params["params"]
  return variables_or_params


def count_params(variables_or_params) -> int:
  """Number of scalars in the 'params' collection (or in a bare params tree).

  Other collections (batch_stats, ...) are not parameters and not counted.
  Works on arrays and on `jax.ShapeDtypeStruct` leaves.
  """
  return sum(_size(x) for x in jax.tree.leaves(_params_of(variables_or_params)))


def _is_array_like(x) -> bool:
  return hasattr(x, "shape") and hasattr(x, "dtype")


def _shapes(tree):
  """The shape of an array output, or a tree of shapes for tuple/dict outputs."""
  if _is_array_like(tree):
    return tuple(tree.shape)
  # Non-array leaves (a Python int a module returns) have no shape: kept as None.
  return jax.tree.map(
    lambda x: tuple(x.shape) if _is_array_like(x) else None,
    tree,
    is_leaf=lambda x: _is_array_like(x),
  )


def _kernel_shape(module):
  params = module.variables.get("params", {})
  kernel = params.get("kernel", params.get("embedding"))
  return None if kernel is None else tuple(kernel.shape)


def _call_macs(module, method_name, args, kwargs, output) -> int:
  """Multiply-adds of one method call, by the conventions in the docstring."""
  if method_name == "attend" and isinstance(module, nn.Embed):
    return _size(output) * module.features
  if method_name != "__call__":
    return 0
  if isinstance(module, nn.ConvTranspose):
    kernel = _kernel_shape(module)
    x = args[0]
    return _size(x) // x.shape[-1] * math.prod(kernel)
  if isinstance(module, (nn.Conv, nn.Dense, nn.DenseGeneral)):
    # kernel (kh, kw, C_in / groups, C_out) or (in..., out...): every output
    # element costs (kernel size / output features) MACs.
    kernel = _kernel_shape(module)
    if isinstance(module, nn.DenseGeneral):
      out_features = math.prod(np.atleast_1d(module.features))
    else:
      out_features = kernel[-1]
    return _size(output) * math.prod(kernel) // out_features
  if isinstance(module, nn.MultiHeadDotProductAttention):
    queries = args[0]
    keys = kwargs.get("inputs_kv")
    if keys is None:
      keys = args[1] if len(args) > 1 and args[1] is not None else queries
    batch = math.prod(queries.shape[:-2])
    features = module.qkv_features or queries.shape[-1]
    return 2 * batch * queries.shape[-2] * keys.shape[-2] * features
  return 0


def _split_inputs(sample_inputs):
  """Array-like leaves (traced by eval_shape) apart from static Python values."""
  leaves, treedef = jax.tree.flatten(sample_inputs)
  is_array = [_is_array_like(x) for x in leaves]
  arrays = [x for x, keep in zip(leaves, is_array) if keep]

  def rebuild(traced):
    traced = iter(traced)
    merged = [next(traced) if keep else x for x, keep in zip(leaves, is_array)]
    return jax.tree.unflatten(treedef, merged)

  return arrays, rebuild


def _subtree(params, path):
  for name in path:
    if not isinstance(params, Mapping) or name not in params:
      return {}
    params = params[name]
  return params


def layer_table(
  model: nn.Module, *sample_inputs, rngs=None, **apply_kwargs
) -> list[dict[str, Any]]:
  """One row per layer of `model` for a forward pass on `sample_inputs`.

  sample_inputs: arrays or `jax.ShapeDtypeStruct`s, passed to `model.init`
  with `apply_kwargs` (e.g. train=False, method=...). rngs: dict for init;
  default: keys for 'params', 'dropout' and 'sample'.

  A layer is a module that calls no submodule (Conv, Dense, BatchNorm, ...);
  a module that does gets a row only for parameters or FLOPs of its own
  (e.g. attention products). A module called several times is one row with
  its FLOPs summed. Rows are in call order; each is a dict with keys
  path ('block/Conv_0'), type, output_shape, params, flops, calls.
  """
  if rngs is None:
    keys = jax.random.split(jax.random.key(0), len(_DEFAULT_RNG_NAMES))
    rngs = dict(zip(_DEFAULT_RNG_NAMES, keys))
  records = {}  # path tuple -> row being filled; dicts keep call order.

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == "setup":
      return next_fun(*args, **kwargs)
    path = tuple(module.path)
    row = records.setdefault(
      path, {"type": type(module).__name__, "flops": 0, "calls": 0, "output_shape": None}
    )
    output = next_fun(*args, **kwargs)
    row["flops"] += 2 * _call_macs(module, context.method_name, args, kwargs, output)
    if context.method_name == "__call__" or row["output_shape"] is None:
      row["output_shape"] = _shapes(output)
    if context.method_name == "__call__":
      row["calls"] += 1
    return output

  arrays, rebuild = _split_inputs(sample_inputs)

  def init(*traced):
    with nn.intercept_methods(interceptor):
      return model.init(rngs, *rebuild(traced), **apply_kwargs)

  variables = jax.eval_shape(init, *arrays)
  params = variables.get("params", {})

  rows = []
  paths = list(records)
  for path, record in records.items():
    is_leaf = not any(len(p) > len(path) and p[: len(path)] == path for p in paths)
    owned = _subtree(params, path)
    if is_leaf:
      num_params = count_params(owned)
    else:  # Only arrays held directly, not those of submodules.
      num_params = (
        sum(_size(v) for v in owned.values() if not isinstance(v, Mapping))
        if isinstance(owned, Mapping)
        else 0
      )
    if not is_leaf and not num_params and not record["flops"]:
      continue
    rows.append(
      {
        "path": "/".join(path) or "(root)",
        "type": record["type"],
        "output_shape": record["output_shape"],
        "params": num_params,
        "flops": record["flops"],
        "calls": record["calls"],
      }
    )
  missing = count_params(params) - sum(row["params"] for row in rows)
  if missing:  # Parameters created outside any intercepted method call.
    rows.append(
      {
        "path": "(unattributed)",
        "type": "",
        "output_shape": None,
        "params": missing,
        "flops": 0,
        "calls": 0,
      }
    )
  return rows


def count_flops(model: nn.Module, *sample_inputs, **apply_kwargs) -> int:
  """Total forward FLOPs (2 * MACs convention) of `layer_table`."""
  return sum(row["flops"] for row in layer_table(model, *sample_inputs, **apply_kwargs))


def format_table(rows: list[dict[str, Any]]) -> str:
  """Aligned text table of `layer_table` rows, with a total row."""
  header = ("layer", "type", "output shape", "params", "FLOPs")
  body = [
    (
      row["path"],
      row["type"],
      "" if row["output_shape"] is None else str(row["output_shape"]),
      f"{row['params']:,}",
      f"{row['flops']:,}",
    )
    for row in rows
  ]
  total = (
    "total",
    "",
    "",
    f"{sum(r['params'] for r in rows):,}",
    f"{sum(r['flops'] for r in rows):,}",
  )
  widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(len(header))]

  def render(line):
    cells = [
      cell.ljust(width) if i < 3 else cell.rjust(width)
      for i, (cell, width) in enumerate(zip(line, widths))
    ]
    return "  ".join(cells).rstrip()

  rule = "-" * len(render(tuple("-" * w for w in widths)))
  return "\n".join([render(header), rule, *map(render, body), rule, render(total)])


def summarize(model: nn.Module, *sample_inputs, **apply_kwargs) -> str:
  """`format_table(layer_table(...))`."""
  return format_table(layer_table(model, *sample_inputs, **apply_kwargs))


def reduction_saving_example(
  height: int = 64,
  width: int = 64,
  in_channels: int = 64,
  reduced_channels: int = 16,
  out_channels: int = 64,
  kernel_size: int = 5,
) -> dict[str, Any]:
  """The course's GoogLeNet 1x1-reduction example, counted with `layer_table`.

  The course (docs/curriculum.md#g4): a 64x64 feature map with 64 channels is
  reduced to 16 by a 1x1 convolution before the 3x3 / 5x5 one; 64x64x64 =
  262,144 values become 16x64x64 = 65,536 (1/4). Those are activation sizes;
  the cost of the following kxk convolution drops by the same 4x, but the 1x1
  layer costs extra, so the whole saving is a bit below 4x. out_channels (not
  given in the course) defaults to 64; 'SAME' padding, biases on, batch 1.
  """
  direct = nn.Conv(out_channels, (kernel_size, kernel_size), padding="SAME")
  reduced = nn.Sequential(
    [
      nn.Conv(reduced_channels, (1, 1)),
      nn.Conv(out_channels, (kernel_size, kernel_size), padding="SAME"),
    ]
  )
  x = jax.ShapeDtypeStruct((1, height, width, in_channels), np.float32)
  direct_rows = layer_table(direct, x)
  reduced_rows = layer_table(reduced, x)
  direct_flops = sum(r["flops"] for r in direct_rows)
  reduced_flops = sum(r["flops"] for r in reduced_rows)
  direct_params = sum(r["params"] for r in direct_rows)
  reduced_params = sum(r["params"] for r in reduced_rows)
  return {
    "kernel_size": kernel_size,
    "input_values": height * width * in_channels,
    "reduced_values": height * width * reduced_channels,
    "direct_flops": direct_flops,
    "reduced_flops": reduced_flops,
    "flops_ratio": direct_flops / reduced_flops,
    "direct_params": direct_params,
    "reduced_params": reduced_params,
    "params_ratio": direct_params / reduced_params,
  }


def format_reduction_example(result: dict[str, Any]) -> str:
  k = result["kernel_size"]
  return (
    f"{k}x{k} conv on {result['input_values']:,} input values: "
    f"{result['direct_flops']:,} FLOPs, {result['direct_params']:,} params\n"
    f"1x1 reduction first ({result['reduced_values']:,} values into the "
    f"{k}x{k}): {result['reduced_flops']:,} FLOPs, "
    f"{result['reduced_params']:,} params\n"
    f"saving: {result['flops_ratio']:.3f}x FLOPs, "
    f"{result['params_ratio']:.3f}x params"
  )


def experiment_table(name: str, input_shape=None) -> str:
  """The per-layer table of an experiment's model (`NAME` or `NAME:ARG`). The input is
  one grey image of the config's `image_size` unless `input_shape` (batch included)."""
  name, _, arg = name.partition(":")
  module = experiment.load(name)
  config = module.config(arg or None)
  if input_shape is None:
    if "image_size" not in config:
      raise ValueError(f"{name} has no config.image_size; pass --input_shape")
    input_shape = (1, config.image_size, config.image_size, 1)
  inputs = jax.ShapeDtypeStruct(tuple(input_shape), np.float32)
  return summarize(module.get_model(config), inputs, train=False)


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog="python -m dlx.tools.model_stats",
    description="Per-layer parameters and forward FLOPs of an experiment's model; "
    "without an experiment, the course's 1x1-reduction example.",
  )
  parser.add_argument("experiment", nargs="?", help="e.g. resnet_fashion_mnist:full")
  parser.add_argument("--input_shape", help="comma-separated, batch first, e.g. 1,224,224,3")
  args = parser.parse_args(argv)
  if args.experiment is None:
    for size in (3, 5):
      print(format_reduction_example(reduction_saving_example(kernel_size=size)))
    return
  try:
    shape = tuple(int(v) for v in args.input_shape.split(",")) if args.input_shape else None
    print(experiment_table(args.experiment, shape))
  except (ValueError, errors.UserError) as e:  # bad input: one line, no traceback
    raise SystemExit(f"dlx model_stats: error: {e}") from None


if __name__ == "__main__":
  main()
