"""Embeddings shared by several models."""

import math

import jax.numpy as jnp


def sinusoidal_embedding(t, dim: int, max_period: float = 10000.0):
  """Sinusoidal embedding of scalar positions or timesteps (Transformer/DDPM).

  For i in [0, dim // 2) the frequency is f_i = max_period ** (-i / (dim // 2)).
  The output is [sin(t * f_0), ..., sin(t * f_{h-1}), cos(t * f_0), ...,
  cos(t * f_{h-1})]: the first half holds sines, the second half cosines. An
  odd `dim` gets one trailing zero column.

  Args:
    t: (N,) int or float positions/timesteps.
    dim: embedding width.
    max_period: controls the lowest frequency.

  Returns:
    (N, dim) float32 array.
  """
  t = jnp.asarray(t, jnp.float32).reshape(-1)
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = t[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb
