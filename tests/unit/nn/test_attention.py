"""Tests for dlx.nn.attention: values against PyTorch, mask semantics, the
key/value cache. Tiny shapes; JAX layout (B, T, heads, d), PyTorch's
F.scaled_dot_product_attention layout (B, heads, T, d).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.nn import attention as attn

B, T, S, H, D = 2, 5, 4, 3, 4  # batch, query length, key length, heads, head dim.
E = H * D


# One compile per call signature instead of one per eager primitive.
sdpa = jax.jit(
  attn.scaled_dot_product_attention, static_argnames=("return_weights", "dropout_rate")
)


def _qkv(key_length=T, seed=0):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  q = jax.random.normal(k1, (B, T, H, D))
  k = jax.random.normal(k2, (B, key_length, H, D))
  v = jax.random.normal(k3, (B, key_length, H, D))
  return q, k, v


def _random_mask(seed=1):
  """(B, H, T, S) bool mask with at least one True per query row."""
  mask = jax.random.bernoulli(jax.random.key(seed), 0.5, (B, H, T, S))
  return mask.at[..., 0].set(True)


def _to_torch_layout(x):
  return np.array(x).transpose(0, 2, 1, 3)  # (B, T, H, D) -> (B, H, T, D).


# ------------------------------------------------------------------- masks


def test_causal_mask():
  np.testing.assert_array_equal(attn.causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])


def test_padding_mask_tokens_and_lengths_agree():
  tokens = jnp.array([[5, 3, 0, 0], [2, 0, 0, 0]])
  from_tokens = attn.padding_mask(tokens)
  from_lengths = attn.padding_mask(jnp.array([2, 1]), length=4)
  assert from_tokens.shape == (2, 1, 1, 4)
  np.testing.assert_array_equal(from_tokens, from_lengths)
  np.testing.assert_array_equal(from_tokens[:, 0, 0], [[1, 1, 0, 0], [1, 0, 0, 0]])
  with pytest.raises(ValueError, match="length"):
    attn.padding_mask(jnp.array([2, 1]))


def test_local_window_mask():
  symmetric = np.asarray(attn.local_window_mask(5, 1))
  causal = np.asarray(attn.local_window_mask(5, 1, causal=True))
  i, j = np.indices((5, 5))
  np.testing.assert_array_equal(symmetric, np.abs(i - j) <= 1)
  np.testing.assert_array_equal(causal, (i - j >= 0) & (i - j <= 1))
  # A window as long as the sequence is plain (causal) full attention.
  np.testing.assert_array_equal(attn.local_window_mask(5, 4, causal=True), attn.causal_mask(5))


def test_combine_masks():
  assert attn.combine_masks(None, None) is None
  combined = attn.combine_masks(attn.causal_mask(3), None, jnp.array([True, True, False]))
  np.testing.assert_array_equal(combined, [[1, 0, 0], [1, 1, 0], [1, 1, 0]])


# ------------------------------------------------- scaled dot-product attention


def test_weights_sum_to_one_and_are_zero_where_masked():
  q, k, v = _qkv(key_length=T)
  mask = attn.combine_masks(
    attn.local_window_mask(T, 1), attn.padding_mask(jnp.array([T, 4]), length=T)
  )
  out, weights = sdpa(q, k, v, mask, return_weights=True)
  assert out.shape == (B, T, H, D) and weights.shape == (B, H, T, T)
  np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
  full_mask = np.broadcast_to(np.asarray(mask), weights.shape)
  assert np.all(np.asarray(weights)[~full_mask] == 0.0)
  # Outside the window (|i - j| > 1) nothing is attended.
  i, j = np.indices((T, T))
  assert np.all(np.asarray(weights)[..., np.abs(i - j) > 1] == 0.0)


def test_fully_masked_row_gives_zero_output():
  q, k, v = _qkv(key_length=S)
  mask = jnp.ones((T, S), bool).at[0].set(False)
  out, weights = sdpa(q, k, v, mask, return_weights=True)
  assert np.all(np.isfinite(out))
  np.testing.assert_array_equal(weights[:, :, 0], 0.0)
  np.testing.assert_array_equal(out[:, 0], 0.0)


def test_attention_dropout():
  q, k, v = _qkv(key_length=S)
  plain = sdpa(q, k, v)
  same = sdpa(q, k, v, dropout_rate=0.5)  # No rng.
  dropped = sdpa(q, k, v, dropout_rng=jax.random.key(0), dropout_rate=0.5)
  np.testing.assert_array_equal(plain, same)
  assert not np.allclose(plain, dropped)


@pytest.mark.torch
@pytest.mark.parametrize("mask_kind", ["none", "random", "causal"])
def test_sdpa_matches_torch(mask_kind):
  torch = pytest.importorskip("torch")
  key_length = T if mask_kind == "causal" else S
  q, k, v = _qkv(key_length)
  mask = {"none": None, "random": _random_mask(), "causal": attn.causal_mask(T)}[mask_kind]
  ours = sdpa(q, k, v, mask)
  tq, tk, tv = (torch.from_numpy(_to_torch_layout(x)) for x in (q, k, v))
  if mask_kind == "causal":
    theirs = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
  else:
    tmask = None if mask is None else torch.from_numpy(np.array(mask))
    theirs = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask)
  np.testing.assert_allclose(_to_torch_layout(ours), theirs.numpy(), atol=1e-5)


# ----------------------------------------------------------- MultiHeadAttention


def torch_mha_from_params(torch, params, num_heads):
  """A torch.nn.MultiheadAttention holding `params` of our MultiHeadAttention."""
  p = jax.tree_util.tree_map(lambda x: torch.from_numpy(np.array(x)), params)
  embed_dim = p["query"]["kernel"].shape[0]
  mha = torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
  with torch.no_grad():
    mha.in_proj_weight.copy_(torch.cat([p[n]["kernel"].T for n in ("query", "key", "value")], 0))
    mha.in_proj_bias.copy_(torch.cat([p[n]["bias"] for n in ("query", "key", "value")]))
    mha.out_proj.weight.copy_(p["out"]["kernel"].T)
    mha.out_proj.bias.copy_(p["out"]["bias"])
  return mha.eval()


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["self_causal_padding", "cross_padding"])
def test_multi_head_attention_matches_torch(kind):
  torch = pytest.importorskip("torch")
  k1, k2, k3 = jax.random.split(jax.random.key(2), 3)
  x = jax.random.normal(k1, (B, T, E))
  lengths = jnp.array([T, 3]) if kind.startswith("self") else jnp.array([S, 2])
  module = attn.MultiHeadAttention(num_heads=H, qkv_features=E)
  if kind.startswith("self"):
    y, key_length = None, T
    mask = attn.combine_masks(attn.causal_mask(T), attn.padding_mask(lengths, length=T))
  else:
    y, key_length = jax.random.normal(k2, (B, S, E)), S
    mask = attn.padding_mask(lengths, length=S)
  params = module.init(k3, x, y, mask)["params"]
  out, weights = module.apply({"params": params}, x, y, mask, return_weights=True)
  assert out.shape == (B, T, E) and weights.shape == (B, H, T, key_length)

  mha = torch_mha_from_params(torch, params, H)
  tx = torch.from_numpy(np.array(x))
  ty = tx if y is None else torch.from_numpy(np.array(y))
  key_padding = torch.from_numpy(~np.array(attn.padding_mask(lengths, length=key_length))[:, 0, 0])
  attn_mask = None
  if kind.startswith("self"):
    attn_mask = torch.from_numpy(~np.array(attn.causal_mask(T)))  # True = hide.
  with torch.no_grad():
    t_out, t_weights = mha(
      tx,
      ty,
      ty,
      key_padding_mask=key_padding,
      attn_mask=attn_mask,
      need_weights=True,
      average_attn_weights=False,
    )
  np.testing.assert_allclose(out, t_out.numpy(), atol=1e-5)
  np.testing.assert_allclose(weights, t_weights.numpy(), atol=1e-6)


def test_kv_cache_matches_full_causal_attention():
  x = jax.random.normal(jax.random.key(3), (B, T, E))
  full = attn.MultiHeadAttention(num_heads=H, qkv_features=E)
  params = full.init(jax.random.key(4), x)["params"]
  expected = full.apply({"params": params}, x, mask=attn.causal_mask(T))

  cached = attn.MultiHeadAttention(num_heads=H, qkv_features=E, decode=True)
  _, variables = cached.apply({"params": params}, x, mutable=["cache"])  # Size.
  assert variables["cache"]["cached_key"].shape == (B, T, H, D)
  step = jax.jit(
    lambda cache, xt: cached.apply({"params": params, "cache": cache}, xt, mutable=["cache"])
  )
  # A 2-token prefill, then one token at a time.
  cache = variables["cache"]
  outs = []
  for start, stop in [(0, 2)] + [(t, t + 1) for t in range(2, T)]:
    out, variables = step(cache, x[:, start:stop])
    cache = variables["cache"]
    outs.append(out)
  assert int(cache["cache_index"]) == T
  np.testing.assert_allclose(jnp.concatenate(outs, 1), expected, atol=1e-5)


def test_decode_rejects_cross_attention():
  x = jnp.ones((B, 1, E))
  with pytest.raises(ValueError, match="self-attention"):
    attn.MultiHeadAttention(H, E, decode=True).init(jax.random.key(0), x, x)


def test_mha_head_divisibility_error():
  with pytest.raises(ValueError, match="divisible"):
    attn.MultiHeadAttention(5, E).init(jax.random.key(0), jnp.ones((B, T, E)))
