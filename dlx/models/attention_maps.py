"""The attention weights of any dlx model built from `dlx.nn.attention.MultiHeadAttention`
(docs/curriculum.md#h4), read out without changing the model.

Every Transformer layer in dlx/nn/transformer.py calls its attention with
`return_weights=True` and keeps the weights to itself; Flax's `capture_intermediates`
records what a module's `__call__` returns, so filtering on the attention modules yields
(output, weights) for each of them from one ordinary forward pass. The GPT and the ViT
need no hook of their own, and the weights are exactly those the forward pass used.
"""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.nn.attention import MultiHeadAttention


def _is_attention(module: nn.Module, method_name: str) -> bool:
  return isinstance(module, MultiHeadAttention) and method_name == "__call__"


def attention_weights(model: nn.Module, variables, inputs, **kwargs) -> dict:
  """{path: weights (B, heads, T, S)} of every attention module, in call order, from
  `model.apply(variables, inputs, train=False, **kwargs)`. A path names the module,
  e.g. 'encoder/layer_0/self_attention'. One compiled pass (op by op, a Transformer's
  first call compiles each small op on its own, which takes longer)."""

  def captured(variables, inputs):
    _, state = model.apply(
      variables,
      inputs,
      train=False,
      capture_intermediates=_is_attention,
      mutable=["intermediates"],
      **kwargs,
    )
    return state.get("intermediates", {})

  found = {}
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(jax.jit(captured)(variables, inputs)))
  for path, calls in flat.items():
    if path[-1] != "__call__":
      continue
    for i, (_, weights) in enumerate(calls):
      name = "/".join(path[:-1]) + (f"#{i}" if len(calls) > 1 else "")
      found[name] = weights
  return found


def attention_rollout(layers):
  """Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on
  each input token through all layers. Each layer's head-averaged weights A are mixed
  with the residual path, 0.5 A + 0.5 I (rows still sum to 1), and the layers are
  multiplied in order. layers: a sequence of (B, heads, T, T) -> (B, T, T)."""
  rollout = None
  for weights in layers:
    mixed = 0.5 * jnp.mean(weights, axis=1) + 0.5 * jnp.eye(weights.shape[-1])
    rollout = mixed if rollout is None else mixed @ rollout
  return rollout
