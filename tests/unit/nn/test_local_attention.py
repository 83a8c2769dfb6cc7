"""Blockwise local attention (docs/curriculum.md#e6) against full attention under
local_window_mask(T, w, causal=True): values, gradients, MultiHeadAttention and GPT
options, and the cached decode path."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import gpt
from dlx.nn import attention as attn

B, H, D = 2, 2, 4


def _qkv(length, seed=0):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  shape = (B, length, H, D)
  return tuple(jax.random.normal(k, shape) for k in (k1, k2, k3))


@functools.partial(jax.jit, static_argnums=(3,))
def _full(q, k, v, window):
  mask = attn.local_window_mask(q.shape[1], window, causal=True)
  return attn.scaled_dot_product_attention(q, k, v, mask, return_weights=True)


@functools.partial(jax.jit, static_argnums=(3,))
def _blockwise(q, k, v, window):
  return attn.blockwise_local_attention(q, k, v, window, return_weights=True)


# T a multiple of the window, T not a multiple (padding), one block, window >= T.
CASES = [(16, 4), (13, 4), (7, 3), (5, 5), (4, 8), (9, 1)]


@pytest.mark.parametrize("length,window", CASES)
def test_blockwise_equals_full_masked_attention(length, window):
  q, k, v = _qkv(length)
  out, weights = _blockwise(q, k, v, window)
  ref_out, ref_weights = _full(q, k, v, window)
  np.testing.assert_allclose(out, ref_out, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(weights, ref_weights, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length,window", [(16, 4), (13, 4), (7, 3)])
def test_blockwise_gradients_equal_full(length, window):
  q, k, v = _qkv(length, seed=1)
  target = jax.random.normal(jax.random.key(2), q.shape)

  def loss(fn, q, k, v):
    return jnp.sum(fn(q, k, v, window)[0] * target)

  grads = jax.jit(jax.grad(functools.partial(loss, _blockwise), argnums=(0, 1, 2)))(q, k, v)
  ref = jax.jit(jax.grad(functools.partial(loss, _full), argnums=(0, 1, 2)))(q, k, v)
  for g, r in zip(grads, ref):
    np.testing.assert_allclose(g, r, atol=1e-5, rtol=1e-5)


def test_blockwise_scores_grow_as_t_times_window():
  """The largest intermediate is (B, H, T/w, w, 2w), not (B, H, T, T)."""
  q, k, v = _qkv(64)
  jaxpr = jax.make_jaxpr(lambda q, k, v: attn.blockwise_local_attention(q, k, v, 8))(q, k, v)
  sizes = [np.prod(var.aval.shape) for eqn in jaxpr.eqns for var in eqn.outvars if var.aval.shape]
  assert max(sizes) == B * H * 64 * 2 * 8


def test_multi_head_attention_window_option():
  x = jax.random.normal(jax.random.key(3), (B, 11, 8))
  full = attn.MultiHeadAttention(num_heads=2, qkv_features=8)
  local = attn.MultiHeadAttention(num_heads=2, qkv_features=8, attention_window=3)
  params = full.init(jax.random.key(4), x)
  mask = attn.local_window_mask(11, 3, causal=True)
  np.testing.assert_allclose(
    local.apply(params, x), full.apply(params, x, mask=mask), atol=1e-5, rtol=1e-5
  )
  with pytest.raises(ValueError, match="mask=None"):
    local.apply(params, x, mask=mask)
  with pytest.raises(ValueError, match="self-attention"):
    local.apply(params, x, x)


def _gpt(window):
  return gpt.GPT(
    vocab_size=11, max_length=16, num_layers=1, num_heads=2, features=8, attention_window=window
  )


def test_gpt_attention_window_default_is_unchanged_and_windowed_differs():
  tokens = jax.random.randint(jax.random.key(5), (B, 16), 0, 11)
  params = _gpt(None).init(jax.random.key(6), tokens)
  full = _gpt(None).apply(params, tokens)
  wide = _gpt(16).apply(params, tokens)  # every earlier position is inside the window
  narrow = _gpt(3).apply(params, tokens)
  np.testing.assert_allclose(wide, full, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(narrow[:, :4], full[:, :4], atol=1e-5, rtol=1e-5)
  assert not np.allclose(narrow[:, 4:], full[:, 4:], atol=1e-3)


@pytest.mark.slow  # 6 s of compiling; the windowed GPT's forward pass is tested fast
def test_gpt_windowed_cached_generation_matches_full_recompute():
  """The decode path's windowed cache mask gives the blockwise model's logits."""
  model = _gpt(3)
  prompt = jax.random.randint(jax.random.key(7), (B, 5), 0, 11)
  params = model.init(jax.random.key(8), prompt)["params"]
  rng = jax.random.key(9)
  tokens, logits = gpt.generate(model, params, prompt, 8, rng, temperature=0, return_logits=True)
  ref_tokens, ref_logits = gpt.generate_naive(
    model, params, prompt, 8, rng, temperature=0, return_logits=True
  )
  np.testing.assert_array_equal(tokens, ref_tokens)
  np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-4)


def test_blockwise_rejects_bad_window():
  q, k, v = _qkv(4)
  with pytest.raises(ValueError, match="window"):
    attn.blockwise_local_attention(q, k, v, 0)
