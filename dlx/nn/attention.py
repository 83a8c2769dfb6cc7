"""Scaled dot-product and multi-head attention (docs/curriculum.md#e6).

Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V (docs/curriculum.md#e6): the
scores of one query against every key are scaled by sqrt(d_k), turned into
weights by a softmax over the keys, and the output is the weighted sum of the
values. Multi-head attention projects the inputs into `num_heads` smaller
query/key/value spaces, attends in each, concatenates the heads and projects
back with an output matrix.

Layout: queries, keys and values are (..., T, heads, head_dim), Flax's layout
(`...` is usually the batch). Attention weights are (..., heads, T_q, T_k),
PyTorch's layout. Masks are boolean, True = may attend, and broadcast to
(..., heads, T_q, T_k):

  causal_mask(T)             (T, T)        decoder ("masked") self-attention.
  padding_mask(tokens)       (B, 1, 1, T)  hides padded keys.
  local_window_mask(T, w)    (T, T)        truncated self-attention.
  combine_masks(a, b, ...)   logical and; None when every mask is None.

Truncated attention that saves compute (docs/curriculum.md#e6):
`blockwise_local_attention` computes causal sliding-window attention (the same
function as full attention under local_window_mask(T, w, causal=True)) with
scores of shape (..., heads, T/w, w, 2w) instead of (..., heads, T, T), so its
cost grows as T x w. MultiHeadAttention(attention_window=w) uses it.
"""

from typing import ClassVar, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.kernels import matmul as kernels_matmul
from dlx.kernels import softmax as kernels_softmax
from dlx.nn.dense import Dense


def causal_mask(length: int):
  """(length, length) mask: query i attends to keys j <= i."""
  return jnp.tril(jnp.ones((length, length), dtype=bool))


def padding_mask(tokens_or_lengths, pad_id: int = 0, length: Optional[int] = None):
  """(B, 1, 1, T) key mask that hides padding.

  Args:
    tokens_or_lengths: (B, T) int tokens, where `pad_id` marks padding, or
      (B,) int lengths of left-aligned sequences.
    pad_id: padding token (tokens input only).
    length: T, needed for lengths input.
  """
  x = jnp.asarray(tokens_or_lengths)
  if x.ndim == 2:
    keep = x != pad_id
  elif x.ndim == 1:
    if length is None:
      raise ValueError("padding_mask with (B,) lengths needs `length`.")
    keep = jnp.arange(length)[None, :] < x[:, None]
  else:
    raise ValueError(f"expected (B, T) tokens or (B,) lengths, got {x.shape}")
  return keep[:, None, None, :]


def local_window_mask(length: int, window: int, causal: bool = False):
  """(length, length) truncated-attention mask: keys at most `window` away.

  Symmetric: |i - j| <= window. Causal: 0 <= i - j <= window.
  """
  if window < 0:
    raise ValueError(f"window must be >= 0, got {window}")
  offset = jnp.arange(length)[:, None] - jnp.arange(length)[None, :]  # i - j
  if causal:
    return (offset >= 0) & (offset <= window)
  return jnp.abs(offset) <= window


def combine_masks(*masks):
  """Logical and of the masks that are not None (broadcasting); None if none."""
  masks = [m for m in masks if m is not None]
  if not masks:
    return None
  out = jnp.asarray(masks[0], bool)
  for m in masks[1:]:
    out = jnp.logical_and(out, m)
  return out


def _attention_weights(scores, mask, dropout_rng, dropout_rate):
  """(weights, the weights the values are averaged with): softmax over the last axis of
  the scores where `mask` allows (masked weights exactly 0, so an all-masked row is 0, not
  NaN), then inverted dropout when `dropout_rng` is given."""
  if mask is not None:
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  # dlx.kernels.softmax: oneDNN's on its route (docs/cpu_kernels.md), else jax.nn.softmax.
  weights = kernels_softmax.softmax(scores.astype(jnp.float32)).astype(scores.dtype)
  if mask is not None:
    weights = jnp.where(mask, weights, 0.0)
  used = weights
  if dropout_rng is not None and dropout_rate > 0.0:
    keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, weights.shape)
    used = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
  return weights, used


def scaled_dot_product_attention(
  query,
  key,
  value,
  mask=None,
  *,
  return_weights: bool = False,
  dropout_rng=None,
  dropout_rate: float = 0.0,
):
  """softmax(Q K^T / sqrt(d_k)) V over (..., T, heads, head_dim) inputs.

  Masked scores are set to the lowest float before the softmax and their
  weights to exactly 0 after it, so a query whose keys are all masked gets
  zero weights and a zero output (PyTorch would give NaN).

  Args:
    query: (..., T_q, heads, d_k).
    key: (..., T_k, heads, d_k).
    value: (..., T_k, heads, d_v).
    mask: optional bool, True = attend, broadcastable to (..., heads, T_q, T_k).
    return_weights: also return the weights.
    dropout_rng: PRNG key for dropout on the weights (none when None).
    dropout_rate: probability of dropping a weight (inverted dropout).

  Returns:
    (..., T_q, heads, d_v) output, and (..., heads, T_q, T_k) weights when
    `return_weights`.
  """
  depth = query.shape[-1]
  # Heads before positions for both products: XLA:CPU's batched matmuls want their batch
  # axes leading (the forward ran 3.4x faster, 26 -> 7.6 ms for (32, 128, 4, 64) inputs;
  # forward + backward 41 -> 39 ms; benchmarks/README.md).
  # Both products go through dlx.kernels.matmul: oneDNN's on its route (docs/cpu_kernels.md).
  query, key, value = (jnp.swapaxes(x, -2, -3) for x in (query, key, value))
  scores = kernels_matmul.matmul(query, key, transpose_b=True) / jnp.sqrt(
    jnp.asarray(depth, query.dtype)
  )
  weights, used = _attention_weights(scores, mask, dropout_rng, dropout_rate)
  out = jnp.swapaxes(kernels_matmul.matmul(used, value), -2, -3)
  return (out, weights) if return_weights else out


def _blocks(x, window):
  """(..., T, h, d) -> (..., T/w, w, h, d), zero-padding T up to a multiple of w."""
  length = x.shape[-3]
  padded = -(-length // window) * window
  pad = [(0, 0)] * x.ndim
  pad[-3] = (0, padded - length)
  x = jnp.pad(x, pad)
  return x.reshape(x.shape[:-3] + (padded // window, window) + x.shape[-2:])


def _with_previous_block(x):
  """(..., n, w, h, d) -> (..., n, 2w, h, d): block b's keys after block b-1's (zeros for b=0)."""
  previous = jnp.concatenate([jnp.zeros_like(x[..., :1, :, :, :]), x[..., :-1, :, :, :]], axis=-4)
  return jnp.concatenate([previous, x], axis=-3)


def blockwise_local_mask(num_blocks: int, window: int):
  """(num_blocks, w, 2w) mask of `blockwise_local_attention`'s scores.

  Query r of block b is position b*w + r; key c of its (previous, own) pair is
  position (b-1)*w + c, so i - j = w + r - c. Kept: 0 <= i - j <= w (the
  causal window of local_window_mask) and j >= 0 (block 0 has no previous one).
  """
  r = jnp.arange(window)[:, None]
  c = jnp.arange(2 * window)[None, :]
  offset = window + r - c  # i - j
  band = (offset >= 0) & (offset <= window)
  exists = jnp.arange(num_blocks)[:, None, None] * window + c[None] - window >= 0
  return band[None] & exists


def blocked_weights_to_dense(weights, length: int):
  """(..., heads, n, w, 2w) blockwise weights -> (..., heads, T, T), for inspection only.

  Builds the T x T matrix the blockwise computation avoids: use it for maps and tests.
  """
  num_blocks, window = weights.shape[-3], weights.shape[-2]

  def place(block, b):  # (..., w, 2w) -> (..., w, (n + 1) w), keys shifted by one block.
    rows = jnp.zeros(block.shape[:-1] + ((num_blocks + 1) * window,), block.dtype)
    start = (0,) * (block.ndim - 1) + (b * window,)
    return jax.lax.dynamic_update_slice(rows, block, start)

  moved = jnp.moveaxis(weights, -3, 0)  # (n, ..., w, 2w)
  rows = jax.vmap(place)(moved, jnp.arange(num_blocks))  # (n, ..., w, (n + 1) w)
  rows = jnp.moveaxis(rows, 0, -3)
  dense = rows.reshape(rows.shape[:-3] + (num_blocks * window, (num_blocks + 1) * window))
  return dense[..., :length, window : window + length]


def blockwise_local_attention(
  query,
  key,
  value,
  window: int,
  *,
  return_weights: bool = False,
  dropout_rng=None,
  dropout_rate: float = 0.0,
):
  """Causal sliding-window self-attention at a cost that grows as T x window.

  Query i attends to keys i - window .. i, which is scaled_dot_product_attention
  with mask local_window_mask(T, window, causal=True). The sequence is cut into
  blocks of `window` positions (T is zero-padded up to a multiple); every key a
  query of block b may see lies in block b or b-1, so each block of queries is
  scored against those 2 * window keys only: (..., heads, T/w, w, 2w) scores
  instead of (..., heads, T, T).

  Args:
    query, key, value: (..., T, heads, d) (self-attention: the same T).
    window: keys at most this many positions back are seen (>= 1).
    return_weights: also return the dense (..., heads, T, T) weights, built for
      inspection (under jit they cost nothing when unused).
    dropout_rng, dropout_rate: dropout on the weights, as in
      scaled_dot_product_attention.

  Returns:
    (..., T, heads, d_v), and the weights when `return_weights`.
  """
  if window < 1:
    raise ValueError(f"window must be >= 1, got {window}")
  length = query.shape[-3]
  if key.shape[-3] != length or value.shape[-3] != length:
    raise ValueError("blockwise_local_attention is self-attention: query, key, value share T")
  q = _blocks(query, window)  # (..., n, w, h, d)
  k = _with_previous_block(_blocks(key, window))  # (..., n, 2w, h, d)
  v = _with_previous_block(_blocks(value, window))
  num_blocks = q.shape[-4]
  mask = blockwise_local_mask(num_blocks, window)  # (n, w, 2w), broadcast over heads
  scores = jnp.einsum("...nqhd,...nkhd->...hnqk", q, k) / jnp.sqrt(
    jnp.asarray(query.shape[-1], query.dtype)
  )
  weights, used = _attention_weights(scores, mask, dropout_rng, dropout_rate)
  out = jnp.einsum("...hnqk,...nkhd->...nqhd", used, v)
  out = out.reshape(out.shape[:-4] + (-1,) + out.shape[-2:])[..., :length, :, :]
  if return_weights:
    return out, blocked_weights_to_dense(weights, length)
  return out


class MultiHeadAttention(nn.Module):
  """Multi-head attention: concat_h(Attention(x Wq_h, y Wk_h, y Wv_h)) Wo.

  Call as `mha(x)` for self-attention or `mha(x, y)` for cross-attention
  (queries from x, keys and values from y, e.g. the encoder output).
  Inputs are (B, T, features); the output is (B, T_q, out_features), with
  out_features defaulting to the query features. The weights are plain Dense
  layers named query/key/value/out with kernels (in, qkv_features) and
  (qkv_features, out): head h uses columns [h * d, (h + 1) * d), the same
  split as torch.nn.MultiheadAttention.

  Decode mode (`decode=True`, self-attention only) keeps a key/value cache in
  the 'cache' collection for autoregressive generation. `init` (or an `apply`
  with mutable=['cache'] whose variables have no cache yet) sizes the cache by
  the input length, the maximum length, and attends normally. Later calls
  with T new inputs (T = 1 per generated token, or a whole prompt) write
  their keys/values at positions index..index+T-1 and attend to every cached
  position <= their own; `mask`, if given, must broadcast to
  (B, heads, T, max_length) and is combined with that.

  `attention_window=w` (self-attention only) makes it causal sliding-window
  attention, query i seeing keys i - w .. i: `blockwise_local_attention`
  without a mask argument (it is causal by construction; `mask` must be None),
  and in decode mode the cache's mask restricted to the same window. The
  default None is plain attention, unchanged.
  """

  # Logical axes of the parameters, for tensor parallelism (dlx/training/sharding.py):
  # query/key/value split their columns by head, `out` its rows (Megatron's split).
  LOGICAL_AXES: ClassVar[dict] = {
    **{f"{n}/kernel": ("embed", "heads") for n in ("query", "key", "value")},
    **{f"{n}/bias": ("heads",) for n in ("query", "key", "value")},
    "out/kernel": ("heads", "embed"),
    "out/bias": ("embed",),
  }

  num_heads: int
  qkv_features: int
  out_features: Optional[int] = None
  dropout_rate: float = 0.0
  use_bias: bool = True
  decode: bool = False
  kernel_init: nn.initializers.Initializer = nn.initializers.xavier_uniform()
  attention_window: Optional[int] = None

  @nn.compact
  def __call__(
    self, inputs_q, inputs_kv=None, mask=None, *, train: bool = False, return_weights: bool = False
  ):
    if self.qkv_features % self.num_heads:
      raise ValueError(
        f"qkv_features={self.qkv_features} is not divisible by num_heads={self.num_heads}"
      )
    self_attention = inputs_kv is None
    if self_attention:
      inputs_kv = inputs_q
    elif self.decode:
      raise ValueError(
        "decode=True caches self-attention only; use a decode=False module for cross-attention."
      )
    elif self.attention_window is not None:
      raise ValueError("attention_window is for self-attention only.")
    head_dim = self.qkv_features // self.num_heads
    dense = lambda n, name: Dense(
      n, use_bias=self.use_bias, kernel_init=self.kernel_init, name=name
    )
    split = lambda x: x.reshape(x.shape[:-1] + (self.num_heads, head_dim))
    query = split(dense(self.qkv_features, "query")(inputs_q))
    key = split(dense(self.qkv_features, "key")(inputs_kv))
    value = split(dense(self.qkv_features, "value")(inputs_kv))

    if self.decode:
      key, value, mask = self._use_cache(key, value, mask, self.attention_window)

    dropout_rng = None
    if train and self.dropout_rate > 0.0:
      dropout_rng = self.make_rng("dropout")
    if self.attention_window is not None and not self.decode:
      if mask is not None:
        raise ValueError("attention_window attention is causal by itself; pass mask=None.")
      out, weights = blockwise_local_attention(
        query,
        key,
        value,
        self.attention_window,
        return_weights=True,
        dropout_rng=dropout_rng,
        dropout_rate=self.dropout_rate,
      )
    else:
      out, weights = scaled_dot_product_attention(
        query,
        key,
        value,
        mask,
        return_weights=True,
        dropout_rng=dropout_rng,
        dropout_rate=self.dropout_rate,
      )
    out = out.reshape(out.shape[:-2] + (self.qkv_features,))
    out = dense(self.out_features or inputs_q.shape[-1], "out")(out)
    return (out, weights) if return_weights else out

  def _use_cache(self, key, value, mask, window=None):
    """Writes the new keys/values into the cache; returns the cached ones.

    `window`: queries also see only keys at most that many positions back."""
    initialized = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
    cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, dtype=jnp.int32))
    if not initialized:  # Sizing call: attend over the input as given.
      if window is not None:
        mask = combine_masks(mask, local_window_mask(key.shape[1], window, causal=True))
      return key, value, mask
    batch, length = key.shape[0], key.shape[1]
    max_length = cached_key.value.shape[1]
    index = cache_index.value
    start = (0, index, 0, 0)
    cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, key, start)
    cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, value, start)
    cache_index.value = index + length
    # Query t (at absolute position index + t) sees cached keys j <= index + t.
    query_pos = index + jnp.arange(length)
    visible = jnp.arange(max_length)[None, :] <= query_pos[:, None]  # (T, max_len)
    if window is not None:
      visible = visible & (jnp.arange(max_length)[None, :] >= query_pos[:, None] - window)
    mask = combine_masks(jnp.broadcast_to(visible, (batch, 1, length, max_length)), mask)
    return cached_key.value, cached_value.value, mask
