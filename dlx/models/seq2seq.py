"""RNN encoder-decoder with Bahdanau or Luong attention (teacher forcing)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.models.rnn_lm import as_variables
from dlx.nn import recurrent
from dlx.nn.dense import Dense


class Seq2Seq(nn.Module):
  """Encoder RNN over the source, attentive decoder RNN over the target.

  Encoder: embedding -> `Recurrent` (bidirectional by default, memory h_j of
  width 2F). Source pad id 0 is masked out of the attention; padding must be
  at the end (right-padded) and every source needs one real token. The
  decoder's initial carry of layer l is the encoder's final carry of layer l,
  through tanh(W [h_fwd; h_bwd] + b) when the encoder is bidirectional (the
  LSTM cell state goes through its own linear bridge, without tanh).

  One decoder step, with y_{t-1} the previous target token and s the top
  decoder layer's hidden state:
    'bahdanau' (Bahdanau et al., 2015): c_t = attend(s_{t-1});
        s_t = RNN(s_{t-1}, [emb(y_{t-1}); c_t]).
    'luong' (Luong et al., 2015, 'general' score, input feeding):
        s_t = RNN(s_{t-1}, [emb(y_{t-1}); s~_{t-1}]); c_t = attend(s_t).
    Both: s~_t = tanh(W_c [s_t; c_t]); logits_t = W_s s~_t.
  `attend` is `BahdanauAttention` (v^T tanh(W1 s + W2 h_j)) or
  `LuongAttention` (s^T W h_j), a masked softmax over source positions j.

  `__call__({'source': (B, S), 'target_in': (B, T)}, train=False,
  return_attention=False)` returns logits (B, T, target_vocab) (and the
  attention weights (B, T, S) with return_attention=True), where target_in
  is BOS + target[:-1] (teacher forcing). The step itself is `decode_step`,
  which `greedy_decode` runs one token at a time.
  """

  source_vocab: int
  target_vocab: int
  features: int
  cell_type: str = "gru"
  attention: str = "bahdanau"
  bidirectional_encoder: bool = True
  num_layers: int = 1
  pad_id: int = 0

  def setup(self):
    f = self.features
    self.source_embed = nn.Embed(self.source_vocab, f)
    self.target_embed = nn.Embed(self.target_vocab, f)
    self.encoder = recurrent.Recurrent(
      f, self.cell_type, num_layers=self.num_layers, bidirectional=self.bidirectional_encoder
    )
    if self.bidirectional_encoder:
      self.bridge_hidden = [Dense(f) for _ in range(self.num_layers)]
      if self.cell_type == "lstm":
        self.bridge_cell = [Dense(f) for _ in range(self.num_layers)]
    self.decoder_cells = [recurrent.make_cell(self.cell_type, f) for _ in range(self.num_layers)]
    self.attention_layer = recurrent.make_attention(self.attention, f)
    self.combine = Dense(f)  # W_c
    self.output = Dense(self.target_vocab)  # W_s

  def _bridge(self, layer, carry, dtype):
    """Decoder initial carry of `layer` from the encoder's final carry; the products
    in `dtype` (the embeddings', bf16 in mixed precision), the carry in its own."""
    if not self.bidirectional_encoder:
      return carry
    fwd, bwd = carry
    joined = lambda a, b: jnp.concatenate([a, b], -1).astype(dtype)
    if self.cell_type == "lstm":
      c = self.bridge_cell[layer](joined(fwd[0], bwd[0])).astype(fwd[0].dtype)
      h = jnp.tanh(self.bridge_hidden[layer](joined(fwd[1], bwd[1]))).astype(fwd[1].dtype)
      return c, h
    return jnp.tanh(self.bridge_hidden[layer](joined(fwd, bwd))).astype(fwd.dtype)

  def encode(self, source):
    """Returns (memory, initial decoder state) for source (B, S) int32.

    memory = {'values': h_j (B, S, E), 'keys': projected h_j, 'mask': (B, S)
    bool}; state = (per-layer carries, s~ (B, F) zeros).
    """
    mask = source != self.pad_id
    outputs, carries = self.encoder(self.source_embed(source), seq_lengths=mask.sum(-1))
    memory = {
      "values": outputs,
      "keys": self.attention_layer.project_memory(outputs),
      "mask": mask,
    }
    carries = tuple(self._bridge(layer, c, outputs.dtype) for layer, c in enumerate(carries))
    feed = jnp.zeros((source.shape[0], self.features), outputs.dtype)
    return memory, (carries, feed)

  def _attend(self, query, memory):
    return self.attention_layer(query, memory["keys"], memory["values"], memory["mask"])

  def decode_step(self, state, token, memory):
    """One decoder step: (state, token (B,)) -> (state, (logits, weights))."""
    carries, feed = state
    x = self.target_embed(token)
    if self.attention == "bahdanau":
      query = recurrent.hidden_of(carries[-1]).astype(x.dtype)
      context, weights = self._attend(query, memory)
      x = jnp.concatenate([x, context], -1)
    else:
      x = jnp.concatenate([x, feed], -1)
    new_carries = []
    for cell, carry in zip(self.decoder_cells, carries):
      carry, x = cell(carry, x)
      new_carries.append(carry)
    if self.attention == "luong":
      context, weights = self._attend(x, memory)
    attentional = jnp.tanh(self.combine(jnp.concatenate([x, context], -1)))
    logits = self.output(attentional)
    # The scan's carry keeps its dtypes (in mixed precision: float32 cells, bf16 feed).
    new_carries = jax.tree.map(lambda new, old: new.astype(old.dtype), tuple(new_carries), carries)
    return (new_carries, attentional.astype(feed.dtype)), (logits, weights)

  def __call__(self, inputs, train: bool = False, return_attention: bool = False):
    del train  # No stochastic layers.
    memory, state = self.encode(inputs["source"])

    def body(module, state, token, memory):
      return module.decode_step(state, token, memory)

    scan = nn.scan(
      body,
      variable_broadcast="params",
      split_rngs={"params": False},
      in_axes=(1, nn.broadcast),
      out_axes=1,
    )
    _, (logits, weights) = scan(self, state, inputs["target_in"], memory)
    return (logits, weights) if return_attention else logits


@functools.partial(jax.jit, static_argnames=("model", "max_length"))
def _greedy_decode(model, variables, source, max_length, bos_id):
  memory, state = model.apply(variables, source, method=Seq2Seq.encode)

  def step(carry, _):
    state, token = carry
    state, (logits, weights) = model.apply(
      variables, state, token, memory, method=Seq2Seq.decode_step
    )
    token = jnp.argmax(logits, -1).astype(jnp.int32)
    return (state, token), (token, weights, logits)

  bos = jnp.full((source.shape[0],), bos_id, jnp.int32)
  _, outs = jax.lax.scan(step, (state, bos), None, length=max_length)
  return tuple(jnp.swapaxes(o, 0, 1) for o in outs)


def greedy_decode(model, params, source, max_length, bos_id, return_logits=False):
  """Greedy step-by-step decoding starting from `bos_id`.

  Returns (tokens (B, max_length) int32, attention (B, max_length, S)), and
  the logits (B, max_length, V) too with return_logits=True. Tokens after an
  EOS are not masked; cut them downstream.
  """
  tokens, weights, logits = _greedy_decode(
    model, as_variables(params), jnp.asarray(source, jnp.int32), max_length, bos_id
  )
  return (tokens, weights, logits) if return_logits else (tokens, weights)
