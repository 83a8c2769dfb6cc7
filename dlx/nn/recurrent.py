"""Recurrent cells, a stacked/bidirectional sequence wrapper, and attention.

Cells follow the course's gate equations (docs/curriculum.md#e9): every gate is
one dense layer over the concatenation [h_{t-1}, x_t], W_g . [h_{t-1}, x_t] + b_g.
Each gate has its own named `nn.Dense` (kernel shape (H + D, H)), so the
kernel rows [:H] act on h_{t-1} and rows [H:] act on x_t.

All cells use Flax's cell convention, `cell(carry, x) -> (new_carry, output)`
and `cell.initialize_carry(rng, input_shape)`, so they plug into
`flax.linen.RNN`. Carries: SimpleRNN and GRU carry h; LSTM carries (c, h), the
same order as `flax.linen.LSTMCell`.
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.nn.dense import Dense

Array = jax.Array

CELL_TYPES = ("rnn", "lstm", "gru")


def _zeros_carry(input_shape, features, dtype=jnp.float32):
  """Zero state of shape (*batch, features) for inputs of shape (*batch, D)."""
  return jnp.zeros(tuple(input_shape[:-1]) + (features,), dtype)


class SimpleRNNCell(nn.RNNCellBase):
  """Elman RNN: h_t = phi(W . [h_{t-1}, x_t] + b) (course: phi(W^T h + U^T x)).

  The course (docs/curriculum.md#e9) writes the update without a bias; we keep
  one (PyTorch's nn.RNNCell has b_ih + b_hh, which sum to our b). Carry and
  output are both h_t.
  """

  features: int
  activation: Callable[[Array], Array] = jnp.tanh

  @nn.compact
  def __call__(self, carry, x):
    # The product in the input's dtype (bf16 in mixed precision); the carry keeps its own.
    h = carry.astype(x.dtype)
    h = self.activation(Dense(self.features, name="hidden")(jnp.concatenate([h, x], -1)))
    return h.astype(carry.dtype), h

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    del rng
    return _zeros_carry(input_shape, self.features)

  @property
  def num_feature_axes(self) -> int:
    return 1


class LSTMCell(nn.RNNCellBase):
  """LSTM cell with the course's gates; every gate sees [h_{t-1}, x_t]:

    f_t = sigmoid(W_f . [h_{t-1}, x_t] + b_f)      forget gate
    i_t = sigmoid(W_i . [h_{t-1}, x_t] + b_i)      input gate
    C~_t = tanh(W_c . [h_{t-1}, x_t] + b_c)        candidate cell
    C_t = f_t * C_{t-1} + i_t * C~_t               cell-state update
    o_t = sigmoid(W_o . [h_{t-1}, x_t] + b_o)      output gate
    h_t = o_t * tanh(C_t)

  Dense layers are named 'forget', 'input', 'candidate' and 'output'. The
  carry is (C_t, h_t) and the output is h_t. `forget_bias` is the initial
  value of b_f (1.0 keeps the forget gate open early in training, Jozefowicz
  et al., 2015); it is an initialiser only, so the equations hold exactly for
  any trained params. This matches torch.nn.LSTMCell with b_f = b_if + b_hf.
  """

  features: int
  forget_bias: float = 1.0

  @nn.compact
  def __call__(self, carry, x):
    c, h = carry
    # Gates in the input's dtype (bf16 in mixed precision); the carry keeps its own.
    hx = jnp.concatenate([h.astype(x.dtype), x], -1)
    forget_bias_init = nn.initializers.constant(self.forget_bias)
    f = nn.sigmoid(Dense(self.features, bias_init=forget_bias_init, name="forget")(hx))
    i = nn.sigmoid(Dense(self.features, name="input")(hx))
    c_tilde = jnp.tanh(Dense(self.features, name="candidate")(hx))
    o = nn.sigmoid(Dense(self.features, name="output")(hx))
    c = (f * c + i * c_tilde).astype(c.dtype)
    h_new = o * jnp.tanh(c)
    return (c, h_new.astype(h.dtype)), h_new.astype(x.dtype)

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    del rng
    zeros = _zeros_carry(input_shape, self.features)
    return zeros, zeros

  @property
  def num_feature_axes(self) -> int:
    return 1


class GRUCell(nn.RNNCellBase):
  """GRU cell with the course's gates (biases added to every gate):

    z_t = sigmoid(W_z . [h_{t-1}, x_t] + b_z)      update gate ('update')
    r_t = sigmoid(W_r . [h_{t-1}, x_t] + b_r)      reset gate ('reset')
    h~_t = tanh(W . [r_t * h_{t-1}, x_t] + b)      candidate ('candidate')
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

  `reset_after=True` is the PyTorch/cuDNN variant, which resets after the
  hidden matmul and has two candidate layers ('candidate_input',
  'candidate_hidden'):  h~_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} +
  b_hn)). Note that PyTorch also names the gate the other way round,
  h_t = (1 - z') * n + z' * h_{t-1}, i.e. z' = 1 - z_t; so PyTorch's update
  weights and biases are the negatives of ours (1 - sigmoid(a) = sigmoid(-a)).
  """

  features: int
  reset_after: bool = False

  @nn.compact
  def __call__(self, carry, x):
    h = carry.astype(x.dtype)  # gates in the input's dtype (bf16 in mixed precision)
    hx = jnp.concatenate([h, x], -1)
    z = nn.sigmoid(Dense(self.features, name="update")(hx))
    r = nn.sigmoid(Dense(self.features, name="reset")(hx))
    if self.reset_after:
      h_tilde = jnp.tanh(
        Dense(self.features, name="candidate_input")(x)
        + r * Dense(self.features, name="candidate_hidden")(h)
      )
    else:
      h_tilde = jnp.tanh(Dense(self.features, name="candidate")(jnp.concatenate([r * h, x], -1)))
    h = (1.0 - z) * carry + z * h_tilde
    return h.astype(carry.dtype), h.astype(x.dtype)

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    del rng
    return _zeros_carry(input_shape, self.features)

  @property
  def num_feature_axes(self) -> int:
    return 1


def make_cell(cell_type: str, features: int, **kwargs):
  """Returns the cell for 'rnn', 'lstm' or 'gru' (kwargs go to the cell)."""
  cells = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}
  if cell_type not in cells:
    raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
  return cells[cell_type](features, **kwargs)


def hidden_of(carry):
  """The hidden state h of a cell's carry ((c, h) for LSTM, h otherwise)."""
  return carry[1] if isinstance(carry, tuple) else carry


class Recurrent(nn.Module):
  """Stacked, optionally bidirectional RNN/LSTM/GRU scanned over time.

  Layer l reads the outputs of layer l - 1 (dropout between layers when
  training, as in torch.nn.LSTM). A bidirectional layer runs a second cell
  right to left and concatenates both outputs, so it emits 2 * features.

  Call: `(outputs, carries) = Recurrent(...)(x, seq_lengths=None,
  initial_carry=None, train=False)` with x (B, T, D); outputs (B, T, F) or
  (B, T, 2F); carries is a tuple with one final carry per layer, each a
  (forward, backward) pair when bidirectional. With `seq_lengths` (B,) the
  final carry is taken at each sequence's last real step, and the backward
  pass starts there (padding stays at the end and never reaches real
  positions); outputs at padded positions are meaningless, and every
  length must be >= 1.

  Params: layer_{l}/cell/<gate> (unidirectional) or
  layer_{l}/{forward_rnn,backward_rnn}/cell/<gate> (bidirectional).
  """

  features: int
  cell_type: str = "lstm"
  num_layers: int = 1
  bidirectional: bool = False
  dropout_rate: float = 0.0
  reset_after: bool = False  # GRU only: the PyTorch candidate variant.

  def _cell(self):
    # parent=None leaves the cell unbound so that nn.RNN adopts it as 'cell'.
    kwargs = {"reset_after": True} if (self.cell_type == "gru" and self.reset_after) else {}
    return make_cell(self.cell_type, self.features, parent=None, **kwargs)

  @nn.compact
  def __call__(self, x, seq_lengths=None, initial_carry=None, train: bool = False):
    carries = []
    for layer in range(self.num_layers):
      if layer > 0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      if self.bidirectional:
        rnn = nn.Bidirectional(
          nn.RNN(self._cell(), parent=None),
          nn.RNN(self._cell(), parent=None),
          name=f"layer_{layer}",
        )
      else:
        rnn = nn.RNN(self._cell(), name=f"layer_{layer}")
      carry = None if initial_carry is None else initial_carry[layer]
      carry, x = rnn(x, initial_carry=carry, seq_lengths=seq_lengths, return_carry=True)
      carries.append(carry)
    return x, tuple(carries)


def _masked_softmax(scores, mask):
  """softmax over the last axis; positions where mask is False get weight 0."""
  if mask is None:
    return jax.nn.softmax(scores, axis=-1)
  scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  weights = jax.nn.softmax(scores, axis=-1)
  return jnp.where(mask, weights, 0.0)


class BahdanauAttention(nn.Module):
  """Additive attention: score(s, h_j) = v^T tanh(W1 s + W2 h_j).

  `project_memory(memory)` computes W2 h_j once per source; `__call__(query,
  keys, memory, mask)` returns (context (B, E), weights (B, S)) where
  weights = softmax_j(score) over the unmasked positions and context =
  sum_j weights_j h_j.
  """

  features: int

  def setup(self):
    self.query_dense = Dense(self.features, use_bias=False)  # W1
    self.memory_dense = Dense(self.features, use_bias=False)  # W2
    self.score_dense = Dense(1, use_bias=False)  # v

  def project_memory(self, memory):
    return self.memory_dense(memory)

  def __call__(self, query, keys, memory, mask=None):
    scores = self.score_dense(jnp.tanh(self.query_dense(query)[:, None, :] + keys))[..., 0]
    weights = _masked_softmax(scores, mask)
    return jnp.einsum("bs,bse->be", weights, memory), weights


class LuongAttention(nn.Module):
  """Multiplicative ('general') attention: score(s, h_j) = s^T W h_j.

  `features` is the query (decoder state) width. Same interface as
  `BahdanauAttention`: `project_memory` computes W h_j once per source.
  """

  features: int

  def setup(self):
    self.memory_dense = Dense(self.features, use_bias=False)  # W

  def project_memory(self, memory):
    return self.memory_dense(memory)

  def __call__(self, query, keys, memory, mask=None):
    scores = jnp.einsum("bf,bsf->bs", query, keys)
    weights = _masked_softmax(scores, mask)
    return jnp.einsum("bs,bse->be", weights, memory), weights


def make_attention(kind: str, features: int, name=None) -> Any:
  """'bahdanau' -> BahdanauAttention, 'luong' -> LuongAttention."""
  if kind == "bahdanau":
    return BahdanauAttention(features, name=name)
  if kind == "luong":
    return LuongAttention(features, name=name)
  raise ValueError(f"attention must be 'bahdanau' or 'luong', got {kind!r}")
