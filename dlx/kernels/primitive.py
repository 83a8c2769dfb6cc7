"""`define`: the JAX primitive behind each of dlx's oneDNN kernels (dlx/kernels/*.py).

An eager call jits one `bind` (the FFI target runs only inside XLA programs); the CPU
lowering calls the extension's FFI target of the same name unless given another one.
Each kernel module adds its own differentiation and batching rules.
"""

import functools

import jax
from jax.extend import core as jex_core
from jax.interpreters import mlir


def define(name, abstract, *, lowering=None, multiple_results=False):
  """A primitive `name` with abstract evaluation `abstract`, lowered on the CPU by
  `lowering` (default: the FFI target `name`, its parameters passed as attributes)."""
  primitive = jex_core.Primitive(name)
  primitive.multiple_results = multiple_results
  primitive.def_impl(
    lambda *args, **params: jax.jit(functools.partial(primitive.bind, **params))(*args)
  )
  primitive.def_abstract_eval(abstract)
  mlir.register_lowering(primitive, lowering or jax.ffi.ffi_lowering(name), platform="cpu")
  return primitive


def like_first(first, *args, **params):
  """Abstract evaluation of a primitive whose output is shaped as its first argument."""
  del args, params
  return jax.core.ShapedArray(first.shape, first.dtype)
