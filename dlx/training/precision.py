"""Mixed precision (docs/curriculum.md#a10): compute in bfloat16, keep float32 where it counts.

`MixedPrecision(model, 'bfloat16')` is the model with the same `init` and an `apply` that

* casts the parameters to the compute dtype on the way in, so every matmul and
  convolution of every model family runs on bfloat16 operands, while the parameters
  the optimizer updates stay float32 (their gradients come back through the cast as
  float32);
* casts floating inputs to the compute dtype (integer tokens and labels stay as they are);
* returns float32 outputs, so logits, softmaxes in the losses and every loss and metric
  are float32; mutable collections (BatchNorm's running statistics, decoding caches)
  come back float32 too, the dtype `init` gave them.

Flax's norms (BatchNorm, LayerNorm, GroupNorm) reduce their mean and variance in float32
for bfloat16 inputs (`force_float32_reductions`), and dlx's attention takes its softmax
in float32, so statistics stay float32 inside the model as well.

This is the policy of DeepMind's `jmp` (params float32, compute half, output float32)
written as one wrapper, so no model family needs a dtype argument. The trainer applies
it when `--config.dtype` is not float32; `--config.optimizer.mu_dtype=bfloat16` also
stores Adam's first moment in bfloat16 (big_vision's practice, dlx/training/optim.py).
"""

from typing import Any

import jax
import jax.numpy as jnp

from dlx import errors

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
# apply() keyword arguments that are not model inputs.
_NOT_INPUTS = ("rngs", "mutable", "method", "capture_intermediates")


def compute_dtype(name: Any):
  """The jnp dtype named by `name` ('float32', 'bfloat16' or 'float16'); anything else is
  a one-line ConfigError naming the choices."""
  try:
    dtype = jnp.dtype(name)
  except (TypeError, ValueError):
    dtype = None
  if dtype is None or dtype.name not in COMPUTE_DTYPES:
    raise errors.ConfigError(
      f"--config.dtype={name!r}: unknown compute dtype; choose one of {', '.join(COMPUTE_DTYPES)}"
    )
  return dtype


def cast_floating(tree, dtype):
  """`tree` with every floating-point array cast to `dtype`; other leaves untouched."""

  def cast(x):
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != dtype:
      return jnp.asarray(x).astype(dtype)
    return x

  return jax.tree_util.tree_map(cast, tree)


class MixedPrecision:
  """`model` computing in `dtype` with float32 parameters and outputs (see the module
  docstring). Any other attribute is the wrapped model's, so code that reads
  `model.num_classes` or calls `model.apply(..., method='generate')` is unchanged."""

  def __init__(self, model, dtype):
    self.model = model
    self.dtype = compute_dtype(dtype)

  def init(self, *args, **kwargs):
    return self.model.init(*args, **kwargs)

  def apply(self, variables, *args, **kwargs):
    variables = dict(variables)
    if "params" in variables:
      variables["params"] = cast_floating(variables["params"], self.dtype)
    args = cast_floating(args, self.dtype)
    kwargs = {k: v if k in _NOT_INPUTS else cast_floating(v, self.dtype) for k, v in kwargs.items()}
    outputs = self.model.apply(variables, *args, **kwargs)
    return cast_floating(outputs, jnp.float32)

  def __getattr__(self, name):
    return getattr(self.model, name)

  def __repr__(self):
    return f"MixedPrecision({type(self.model).__name__}, {self.dtype.name})"


def apply_policy(model, dtype: Any = "float32"):
  """`model` itself at float32 (bit-identical to no policy), else MixedPrecision."""
  dtype = compute_dtype(dtype)
  return model if dtype == jnp.float32 else MixedPrecision(model, dtype)


def model_name(model) -> str:
  """The class name of the model, seen through MixedPrecision."""
  if isinstance(model, MixedPrecision):
    return f"{type(model.model).__name__} in {model.dtype.name}"
  return type(model).__name__
