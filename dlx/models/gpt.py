"""GPT: a decoder-only, causal Transformer language model (docs/curriculum.md#f14).

A pure autoregressive model that consists of a succession of causal
self-attention blocks. Here, as in GPT-2: token embedding + learned
positions -> dropout -> `num_layers` pre-norm blocks (masked self-attention,
GELU FFN with 4 * features hidden units) -> final LayerNorm -> logits
h @ E^T, with the output projection tied to the token embedding E (plus a
learned output bias; `output_bias=False` drops it, which is GPT-2 exactly:
dlx/interop/hf_gpt2.py loads and saves Hugging Face GPT-2 weights).

Sampling (`generate`): the next-token distribution is softmax(logits / T).
Temperature T -> 0 tends to greedy argmax decoding, T = 1 samples the model's
distribution, larger T flattens it. Top-k keeps only the k most likely tokens
(the rest get probability 0) before sampling; top_k=1 is greedy.
"""

import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.nn.attention import causal_mask
from dlx.nn.transformer import Decoder
from dlx.nn.transformer import LearnedPositionalEmbedding
from dlx.nn.transformer import TokenEmbedding


class GPT(nn.Module):
  """tokens (B, T) int32 -> logits (B, T, vocab_size); T <= max_length.

  `attention_window=w`: each position attends to the w before it and itself only,
  computed blockwise (dlx.nn.attention.blockwise_local_attention).

  With `decode=True` the attention layers keep a key/value cache in the
  'cache' collection and the model remembers how many positions it has seen
  ('cache'/'position'), so each call continues the sequence: see `generate`.
  """

  vocab_size: int
  max_length: int
  num_layers: int
  num_heads: int
  features: int
  dropout_rate: float = 0.0
  decode: bool = False
  # GPT-2 has none; True (dlx's original model) keeps existing runs and checkpoints as they were.
  output_bias: bool = True
  # Causal sliding-window attention over this many previous positions, computed blockwise at
  # T x window cost (docs/curriculum.md#e6); None: full causal attention.
  attention_window: Optional[int] = None

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    length = tokens.shape[1]
    if length > self.max_length:
      raise ValueError(f"sequence length {length} > max_length {self.max_length}")
    embed = TokenEmbedding(
      self.vocab_size,
      self.features,
      embedding_init=nn.initializers.normal(0.02),
      name="token_embedding",
    )
    positions = jnp.arange(length)
    # The blockwise path is causal by itself and takes no T x T mask.
    mask = causal_mask(length) if self.attention_window is None or self.decode else None
    if self.decode:
      initialized = self.has_variable("cache", "position")
      start = self.variable("cache", "position", lambda: jnp.array(0, jnp.int32))
      if initialized:  # Continue after the cached positions.
        positions = positions + start.value
        start.value = start.value + length
        mask = None  # The attention cache applies causality itself.
    x = embed(tokens) + LearnedPositionalEmbedding(
      self.max_length, self.features, name="position_embedding"
    )(positions)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    x = Decoder(
      self.num_layers,
      self.num_heads,
      self.features,
      hidden=4 * self.features,
      dropout_rate=self.dropout_rate,
      norm="pre",
      activation="gelu",
      decode=self.decode,
      attention_window=self.attention_window,
      name="decoder",
    )(x, self_mask=mask, train=train)
    logits = embed.attend(x)
    if not self.output_bias:
      return logits
    bias = self.param("output_bias", nn.initializers.zeros, (self.vocab_size,))
    return logits + bias


def sample_next(logits, rng, temperature=1.0, top_k=None):
  """Samples (B,) int32 tokens from (B, vocab) logits.

  Draws from softmax(logits / temperature) restricted to logits >= the k-th
  largest one (ties at the k-th value are kept). temperature 0 or top_k=1 is
  greedy (argmax). temperature and top_k may be traced values, so changing
  them does not recompile.
  """
  vocab = logits.shape[-1]
  k = vocab if top_k is None else jnp.clip(top_k, 1, vocab)
  kth_largest = jnp.take(jnp.sort(logits, axis=-1), vocab - k, axis=-1)[..., None]
  scaled = logits / jnp.maximum(temperature, 1e-6)
  scaled = jnp.where(logits >= kth_largest, scaled, -jnp.inf)
  sampled = jax.random.categorical(rng, scaled, axis=-1)
  greedy = jnp.argmax(logits, axis=-1)
  return jnp.where((temperature == 0) | (k == 1), greedy, sampled).astype(jnp.int32)


def _check_sampling(model, prompt, num_new_tokens, temperature, top_k):
  if num_new_tokens < 1:
    raise ValueError(f"num_new_tokens must be >= 1, got {num_new_tokens}")
  total = prompt.shape[1] + num_new_tokens
  if total > model.max_length:
    raise ValueError(
      f"prompt ({prompt.shape[1]}) + num_new_tokens "
      f"({num_new_tokens}) = {total} > max_length {model.max_length}"
    )
  if temperature < 0:
    raise ValueError(f"temperature must be >= 0, got {temperature}")
  if top_k is not None and top_k < 1:
    raise ValueError(f"top_k must be >= 1, got {top_k}")
  return (
    jnp.asarray(temperature, jnp.float32),
    jnp.asarray(model.vocab_size if top_k is None else top_k, jnp.int32),
  )


@functools.partial(jax.jit, static_argnums=(0, 3))
def _generate_cached(model, params, prompt, num_new_tokens, rng, temperature, top_k):
  model = model.clone(decode=True)
  batch, prompt_length = prompt.shape
  # An empty cache sized for the whole output (shapes only, nothing computed;
  # every cache entry starts at zero), then one pass over the prompt fills it.
  sizing = jnp.zeros((batch, prompt_length + num_new_tokens), jnp.int32)
  shapes = jax.eval_shape(lambda: model.apply({"params": params}, sizing, mutable=["cache"])[1])
  cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["cache"])
  logits, variables = model.apply({"params": params, "cache": cache}, prompt, mutable=["cache"])
  logits = logits[:, -1]
  first = sample_next(logits, jax.random.fold_in(rng, 0), temperature, top_k)

  def step(carry, i):
    cache, token = carry
    logits, variables = model.apply(
      {"params": params, "cache": cache}, token[:, None], mutable=["cache"]
    )
    logits = logits[:, 0]
    token = sample_next(logits, jax.random.fold_in(rng, i), temperature, top_k)
    return (variables["cache"], token), (token, logits)

  (_, _), (tokens, step_logits) = jax.lax.scan(
    step, (variables["cache"], first), jnp.arange(1, num_new_tokens)
  )
  tokens = jnp.concatenate([first[:, None], tokens.T], axis=1)
  all_logits = jnp.concatenate([logits[:, None], step_logits.transpose(1, 0, 2)], axis=1)
  return jnp.concatenate([prompt, tokens], axis=1), all_logits


def generate(
  model: GPT,
  params,
  prompt,
  num_new_tokens: int,
  rng,
  temperature: float = 1.0,
  top_k: Optional[int] = None,
  return_logits: bool = False,
):
  """Autoregressive sampling with the key/value cache, jitted.

  One forward pass over the prompt fills the cache; then a `lax.scan` feeds
  one token per step. Step i samples with jax.random.fold_in(rng, i).

  Args:
    model: a GPT (decode=False is fine: a decode copy is made).
    params: its 'params'.
    prompt: (B, T0) int32, T0 >= 1; T0 + num_new_tokens <= max_length.
    num_new_tokens: N >= 1 tokens to append.
    rng: PRNG key.
    temperature: softmax temperature; 0 is greedy.
    top_k: sample among the k most likely tokens only; 1 is greedy.
    return_logits: also return the (B, N, vocab) logits each new token was
      drawn from.

  Returns:
    (B, T0 + N) int32 prompt + new tokens, and the logits if asked.
  """
  prompt = jnp.asarray(prompt, jnp.int32)
  temperature, top_k = _check_sampling(model, prompt, num_new_tokens, temperature, top_k)
  tokens, logits = _generate_cached(model, params, prompt, num_new_tokens, rng, temperature, top_k)
  return (tokens, logits) if return_logits else tokens


@functools.partial(jax.jit, static_argnums=(0, 3))
def _generate_naive(model, params, prompt, num_new_tokens, rng, temperature, top_k):
  model = model.clone(decode=False)
  batch, prompt_length = prompt.shape
  buffer = jnp.zeros((batch, prompt_length + num_new_tokens), jnp.int32)
  buffer = buffer.at[:, :prompt_length].set(prompt)

  def step(buffer, i):
    # Full forward pass; positions after the current one are masked causally.
    logits = model.apply({"params": params}, buffer)
    logits = jax.lax.dynamic_index_in_dim(logits, prompt_length + i - 1, axis=1, keepdims=False)
    token = sample_next(logits, jax.random.fold_in(rng, i), temperature, top_k)
    buffer = jax.lax.dynamic_update_index_in_dim(buffer, token, prompt_length + i, axis=1)
    return buffer, logits

  buffer, logits = jax.lax.scan(step, buffer, jnp.arange(num_new_tokens))
  return buffer, logits.transpose(1, 0, 2)


def generate_naive(
  model: GPT,
  params,
  prompt,
  num_new_tokens: int,
  rng,
  temperature: float = 1.0,
  top_k: Optional[int] = None,
  return_logits: bool = False,
):
  """Same contract as `generate` but re-runs the full model at every step.

  No cache: a reference for tests. The sequence lives in a fixed
  (B, T0 + N) buffer, so only the logits at the last filled position are read.
  """
  prompt = jnp.asarray(prompt, jnp.int32)
  temperature, top_k = _check_sampling(model, prompt, num_new_tokens, temperature, top_k)
  tokens, logits = _generate_naive(model, params, prompt, num_new_tokens, rng, temperature, top_k)
  return (tokens, logits) if return_logits else tokens
