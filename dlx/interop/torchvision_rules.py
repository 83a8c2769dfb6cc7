"""How one torchvision tensor becomes dlx variables and back: the rules that
dlx/interop/torchvision_cnn.py and torchvision_vit.py list per architecture.

A `Rule` ties torchvision state-dict keys to dlx variable paths ('params/stem_conv/kernel',
'batch_stats/stem_bn/mean') with a conversion each way. Both directions only move
numbers (transposes, reshapes, splits), so a round trip is exact:

  conv     weight (O, I, kh, kw) <-> kernel (kh, kw, I, O); bias as is
  linear   weight (out, in) <-> kernel (in, out); bias as is
  flatten  a linear layer after torch.flatten of an NCHW map (C, H, W): torchvision's
           input index c * H * W + h * W + w is dlx's (h * W + w) * C + c (NHWC flatten),
           so the weight's columns are permuted as well as transposed
  bn       weight, bias -> params scale, bias; running_mean, running_var -> batch_stats
           mean, var; num_batches_tracked is not kept (used only by BatchNorm with
           momentum=None) and is exported as 0
  norm     LayerNorm weight, bias -> scale, bias

`Arch` is one architecture: how to build the dlx model from the sizes a checkpoint
implies, and its rules.
"""

import dataclasses
from typing import Callable, NamedTuple

import flax.linen as nn
import numpy as np

from dlx.interop.safetensors_io import CheckpointError

# torch's dtype for BatchNorm's num_batches_tracked.
BATCH_COUNT_DTYPE = np.int64


class Rule(NamedTuple):
  """torchvision keys <-> dlx paths. `to_dlx(*torch_arrays)` returns the dlx arrays;
  `to_torch(xp, *dlx_arrays)` the torch ones (xp: numpy, or jax.numpy to infer shapes).
  A rule without dlx paths is a buffer dlx does not keep: exported as a zero scalar,
  optional on import."""

  torch: tuple[str, ...]
  dlx: tuple[str, ...]
  to_dlx: Callable
  to_torch: Callable


@dataclasses.dataclass(frozen=True)
class Arch:
  """One torchvision architecture.

  build(options) -> model; options come from `options(shapes, side)`, which reads the
  sizes a checkpoint fixes (number of classes, ...) from torch key -> shape
  (side='torch') or dlx path -> shape (side='dlx'). rules(model, paths) lists the rules
  for the model whose variables have `paths`. input_side(options): the image side the
  model is initialized with (shapes only; ViT's position table depends on it).
  """

  build: Callable[[dict], nn.Module]
  options: Callable[[dict, str], dict]
  rules: Callable[[nn.Module, set], list]
  input_side: Callable[[dict], int] = lambda options: 224


def _same(x):
  return (x,)


def _same_back(xp, x):
  return (x,)


def same(torch_key: str, dlx_path: str) -> list:
  return [Rule((torch_key,), (dlx_path,), _same, _same_back)]


def conv(torch_name: str, dlx_name: str, bias: bool = False) -> list:
  rules = [
    Rule(
      (f"{torch_name}.weight",),
      (f"params/{dlx_name}/kernel",),
      lambda w: (w.transpose(2, 3, 1, 0),),
      lambda xp, k: (k.transpose(3, 2, 0, 1),),
    )
  ]
  return rules + (same(f"{torch_name}.bias", f"params/{dlx_name}/bias") if bias else [])


def linear(torch_name: str, dlx_name: str, flatten: tuple[int, int, int] | None = None) -> list:
  """A Linear layer; `flatten=(C, H, W)` when its input is an NCHW map torch flattened."""
  if flatten is None:
    to_dlx, to_torch = (lambda w: (w.T,)), (lambda xp, k: (k.T,))
  else:
    c, h, w = flatten

    def to_dlx(weight):  # (out, C * H * W) -> (H * W * C, out)
      out = weight.shape[0]
      return (_swap_outer(weight.reshape(out, c, h * w)).reshape(h * w * c, out),)

    def to_torch(xp, kernel):
      out = kernel.shape[-1]
      grouped = kernel.reshape(h * w, c, out)
      swapped = _swap_outer(grouped) if xp is np else grouped.transpose(2, 1, 0)
      return (swapped.reshape(out, c * h * w),)

  weight = Rule((f"{torch_name}.weight",), (f"params/{dlx_name}/kernel",), to_dlx, to_torch)
  return [weight] + same(f"{torch_name}.bias", f"params/{dlx_name}/bias")


def _swap_outer(x, step: int = 8) -> np.ndarray:
  """x (a, b, c) -> a new C-contiguous (c, b, a), copied `step` rows of b at a time: on
  VGG's 400 MB fc1 this is 3x faster than NumPy's one-shot copy, which misses the cache
  on every element."""
  out = np.empty(x.shape[::-1], x.dtype)
  for i in range(0, x.shape[1], step):
    out[:, i : i + step, :] = x[:, i : i + step, :].transpose(2, 1, 0)
  return out


def batch_norm(torch_name: str, dlx_name: str) -> list:
  rules = []
  for torch_field, dlx_field in (
    ("weight", "params/{}/scale"),
    ("bias", "params/{}/bias"),
    ("running_mean", "batch_stats/{}/mean"),
    ("running_var", "batch_stats/{}/var"),
  ):
    rules += same(f"{torch_name}.{torch_field}", dlx_field.format(dlx_name))
  count = lambda xp: (np.zeros((), BATCH_COUNT_DTYPE),)
  return rules + [Rule((f"{torch_name}.num_batches_tracked",), (), lambda n: (), count)]


def layer_norm(torch_name: str, dlx_name: str) -> list:
  return same(f"{torch_name}.weight", f"params/{dlx_name}/scale") + same(
    f"{torch_name}.bias", f"params/{dlx_name}/bias"
  )


def need(shapes: dict, key: str, ndim: int) -> tuple:
  """The shape of `key`, from which an architecture takes its sizes: one error when absent."""
  if key not in shapes:
    raise CheckpointError(f"no {key}")
  if len(shapes[key]) != ndim:
    raise CheckpointError(f"{key} has shape {tuple(shapes[key])}, not {ndim}-D")
  return tuple(shapes[key])
