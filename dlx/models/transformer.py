"""Encoder-decoder Transformer for sequence-to-sequence tasks (docs/curriculum.md#f13).

Vaswani et al. 2017 (see also docs/curriculum.md#e7): the encoder embeds
the source tokens, adds positional encodings and refines them with
self-attention blocks; the decoder embeds the target tokens produced so far,
adds positional encodings and alternates causal self-attention, cross-attention
to the encoder output (queries from the decoder, keys and values from the
encoder) and the FFN; a final linear layer gives the next-token logits.

Embeddings are scaled by sqrt(features) and use the fixed sinusoidal
positions. Token id `pad_id` (0) is padding: padded source positions are
hidden from the encoder self-attention and the cross-attention, padded target
positions from the decoder self-attention.
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.nn.attention import causal_mask
from dlx.nn.attention import combine_masks
from dlx.nn.attention import padding_mask
from dlx.nn.dense import Dense
from dlx.nn.transformer import Decoder
from dlx.nn.transformer import Encoder
from dlx.nn.transformer import TokenEmbedding
from dlx.nn.transformer import sinusoidal_positions


class Transformer(nn.Module):
  """{'source': (B, S), 'target_in': (B, T)} int32 -> logits (B, T, vocab).

  Teacher forcing: target_in = [BOS] + target[:-1], and the logits at t
  predict target[t]. `vocab_size` is the source vocabulary, and the target
  one unless `target_vocab_size` is given. S, T <= max_length.

  Attention weights: `model.apply(variables, inputs, return_attention=True)`
  returns (logits, attention) with
    attention['encoder']:       tuple over layers of (B, heads, S, S),
    attention['decoder_self']:  tuple over layers of (B, heads, T, T),
    attention['cross']:         tuple over layers of (B, heads, T, S);
  e.g. attention['cross'][-1][0, h] is the last layer's target x source map
  for example 0, head h.
  """

  vocab_size: int
  max_length: int
  num_layers: int
  num_heads: int
  features: int
  hidden: int
  dropout_rate: float = 0.0
  norm: str = "post"
  target_vocab_size: Optional[int] = None
  pad_id: int = 0

  def setup(self):
    target_vocab = self.target_vocab_size or self.vocab_size
    init = nn.initializers.normal(self.features**-0.5)
    self.source_embedding = TokenEmbedding(
      self.vocab_size, self.features, scale=True, embedding_init=init
    )
    self.target_embedding = TokenEmbedding(
      target_vocab, self.features, scale=True, embedding_init=init
    )
    self.embedding_dropout = nn.Dropout(self.dropout_rate)
    self.encoder = Encoder(
      self.num_layers, self.num_heads, self.features, self.hidden, self.dropout_rate, self.norm
    )
    self.decoder = Decoder(
      self.num_layers, self.num_heads, self.features, self.hidden, self.dropout_rate, self.norm
    )
    self.output = Dense(target_vocab)

  def _embed(self, embedding, tokens, train):
    length = tokens.shape[1]
    if length > self.max_length:
      raise ValueError(f"sequence length {length} > max_length {self.max_length}")
    x = embedding(tokens)
    x = x + sinusoidal_positions(length, self.features).astype(x.dtype)
    return self.embedding_dropout(x, deterministic=not train)

  def encode(self, source, train: bool = False, return_attention: bool = False):
    """(B, S) source -> encoder output (B, S, features) [, weights]."""
    x = self._embed(self.source_embedding, source, train)
    mask = padding_mask(source, self.pad_id)
    return self.encoder(x, mask, train, return_attention=return_attention)

  def decode(self, target_in, memory, source, train: bool = False, return_attention: bool = False):
    """(B, T) target_in + encoder output -> logits (B, T, vocab) [, weights]."""
    x = self._embed(self.target_embedding, target_in, train)
    self_mask = combine_masks(causal_mask(target_in.shape[1]), padding_mask(target_in, self.pad_id))
    cross_mask = padding_mask(source, self.pad_id)
    out = self.decoder(x, memory, self_mask, cross_mask, train, return_attention=return_attention)
    if return_attention:
      x, weights = out
      return self.output(x), weights
    return self.output(out)

  def __call__(self, inputs, train: bool = False, return_attention: bool = False):
    source, target_in = inputs["source"], inputs["target_in"]
    if not return_attention:
      return self.decode(target_in, self.encode(source, train), source, train)
    memory, encoder_weights = self.encode(source, train, return_attention=True)
    logits, decoder_weights = self.decode(target_in, memory, source, train, return_attention=True)
    attention = {
      "encoder": encoder_weights,
      "decoder_self": tuple(w["self"] for w in decoder_weights),
      "cross": tuple(w["cross"] for w in decoder_weights),
    }
    return logits, attention


def greedy_decode(model: Transformer, params, source, max_length: int, bos_id: int):
  """Greedy decoding: (B, S) source -> (B, max_length) int32 tokens.

  The source is encoded once; the decoder is re-run on a fixed
  (B, max_length) buffer [BOS, y_0, y_1, ...] each step (no cache) and
  y_t = argmax of the logits at position t. The output holds y_0..y_{L-1}
  (no BOS). Tokens after an end-of-sequence token are not cut; bos_id must
  differ from the pad id. Jitted (one compile per shape).
  """
  if bos_id == model.pad_id:
    raise ValueError("bos_id must differ from the pad id")
  return _greedy_decode(model, params, jnp.asarray(source, jnp.int32), max_length, bos_id)


def _greedy_decode_impl(model, params, source, max_length, bos_id):
  variables = {"params": params}
  memory = model.apply(variables, source, method=Transformer.encode)
  batch = source.shape[0]
  target_in = jnp.zeros((batch, max_length), jnp.int32).at[:, 0].set(bos_id)
  tokens = jnp.zeros((batch, max_length), jnp.int32)

  def step(t, state):
    target_in, tokens = state
    logits = model.apply(variables, target_in, memory, source, method=Transformer.decode)
    token = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, t, 1, False), -1)
    token = token.astype(jnp.int32)
    tokens = jax.lax.dynamic_update_index_in_dim(tokens, token, t, 1)
    # The last step's write falls off the end (position max_length); skip it.
    next_in = jax.lax.dynamic_update_index_in_dim(
      target_in, token, jnp.minimum(t + 1, max_length - 1), 1
    )
    target_in = jnp.where(t + 1 < max_length, next_in, target_in)
    return target_in, tokens

  _, tokens = jax.lax.fori_loop(0, max_length, step, (target_in, tokens))
  return tokens


_greedy_decode = jax.jit(_greedy_decode_impl, static_argnums=(0, 3, 4))
