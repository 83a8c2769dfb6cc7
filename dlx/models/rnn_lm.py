"""Word/character-level RNN language model and incremental sampling."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.models.gpt import sample_next  # the same temperature / top-k rules as GPT
from dlx.nn import recurrent
from dlx.nn.dense import Dense


def as_variables(params):
  """Accepts either {'params': ...} variables or the bare params tree."""
  return params if "params" in params else {"params": params}


class RNNLanguageModel(nn.Module):
  """Embedding -> stacked RNN/LSTM/GRU -> Dense to the vocabulary.

  `__call__(tokens (B, T) int32, train=False)` returns next-token logits
  (B, T, vocab_size): logits[:, t] predicts tokens[:, t + 1]. Pass
  `carry=` (the per-layer carries from a previous call) to continue a
  sequence, and `return_carry=True` to get `(logits, carries)`; this is how
  `generate` feeds one token at a time without re-running the prefix.
  Dropout (train=True, rng 'dropout') is applied to the embeddings, between
  recurrent layers and before the output layer. `tie_weights` reuses the
  embedding matrix as the output projection (plus a bias), Press & Wolf 2017.
  """

  vocab_size: int
  features: int
  num_layers: int = 1
  cell_type: str = "lstm"
  dropout_rate: float = 0.0
  tie_weights: bool = False

  @nn.compact
  def __call__(self, tokens, train: bool = False, carry=None, return_carry: bool = False):
    embed = nn.Embed(self.vocab_size, self.features, name="embed")
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(embed(tokens))
    x, carries = recurrent.Recurrent(
      self.features,
      self.cell_type,
      num_layers=self.num_layers,
      dropout_rate=self.dropout_rate,
      name="rnn",
    )(x, initial_carry=carry, train=train)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    if self.tie_weights:
      bias = self.param("output_bias", nn.initializers.zeros, (self.vocab_size,))
      logits = embed.attend(x) + bias
    else:
      logits = Dense(self.vocab_size, name="output")(x)
    return (logits, carries) if return_carry else logits


@functools.partial(jax.jit, static_argnames=("model", "num_new_tokens", "top_k"))
def _generate(model, variables, prompt, rng, temperature, num_new_tokens, top_k):
  logits, carry = model.apply(variables, prompt, return_carry=True)

  def step(state, rng):
    carry, next_logits = state
    token = sample_next(next_logits, rng, temperature, top_k)
    logits, carry = model.apply(variables, token[:, None], carry=carry, return_carry=True)
    return (carry, logits[:, -1]), (token, next_logits)

  rngs = jax.random.split(rng, num_new_tokens)
  _, (tokens, step_logits) = jax.lax.scan(step, (carry, logits[:, -1]), rngs)
  return tokens.T, jnp.swapaxes(step_logits, 0, 1)


def generate(
  model, params, prompt, num_new_tokens, rng, temperature=1.0, top_k=None, return_logits=False
):
  """Samples `num_new_tokens` tokens after `prompt`, carrying the RNN state.

  The prompt (B, P) int32 (P >= 1) is run once; after that each new token is
  fed alone together with the carried state (no re-run of the prefix).
  temperature=0 means greedy argmax; `top_k` keeps the k largest logits.

  Returns:
    (B, P + num_new_tokens) int32 tokens (prompt first); with
    `return_logits=True` also the (B, num_new_tokens, V) logits each new
    token was sampled from.
  """
  tokens, logits = _generate(
    model,
    as_variables(params),
    jnp.asarray(prompt, jnp.int32),
    rng,
    jnp.float32(temperature),
    num_new_tokens,
    top_k,
  )
  tokens = jnp.concatenate([jnp.asarray(prompt, jnp.int32), tokens], axis=1)
  return (tokens, logits) if return_logits else tokens
