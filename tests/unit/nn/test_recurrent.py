"""Tests for dlx.nn.recurrent, dlx.models.rnn_lm and dlx.models.seq2seq.

Cells are checked against NumPy transcriptions of the course's gate equations
(docs/curriculum.md#e9; using the cells' own params, drawn at random) and against PyTorch with
copied weights; the wrappers against shape, direction and padding
invariants; the decoders' step-by-step paths against the parallel passes.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import rnn_lm
from dlx.models import seq2seq
from dlx.nn import recurrent

B, T, D, H = 2, 5, 3, 4
TORCH_REASON = "PyTorch is the reference; install torch to compare with it"
CELLS = {
  "rnn": lambda: recurrent.SimpleRNNCell(H),
  "lstm": lambda: recurrent.LSTMCell(H),
  "gru": lambda: recurrent.GRUCell(H),
  "gru_reset_after": lambda: recurrent.GRUCell(H, reset_after=True),
}


def import_torch():
  return pytest.importorskip("torch", reason=TORCH_REASON)


def random_variables(module, *args, seed=0, scale=0.5, **kwargs):
  """Variables shaped like `module.init`'s, drawn from N(0, scale^2).

  Shapes come from jax.eval_shape, so nothing is compiled (compiling the
  initialisers costs seconds on CPU), and biases are non-zero too.
  """
  shapes = jax.eval_shape(functools.partial(module.init, **kwargs), jax.random.key(0), *args)
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
    lambda s: jnp.asarray(rng.normal(0.0, scale, s.shape), s.dtype), shapes
  )


def inputs(shape, seed=0):
  return jnp.asarray(np.random.default_rng(100 + seed).normal(size=shape), jnp.float32)


# NumPy transcriptions of the course's equations (docs/curriculum.md#e9): W_g . [h, x] + b_g.


def sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


def dense(p, v):
  return v @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"])


def np_step(name, p, carry, x):
  """One step of cell `name`; returns (carry, output)."""
  if name == "rnn":
    h = np.tanh(dense(p["hidden"], np.concatenate([carry, x], -1)))
    return h, h
  if name == "lstm":
    c, h = carry
    hx = np.concatenate([h, x], -1)
    f = sigmoid(dense(p["forget"], hx))
    i = sigmoid(dense(p["input"], hx))
    c_tilde = np.tanh(dense(p["candidate"], hx))
    o = sigmoid(dense(p["output"], hx))
    c = f * c + i * c_tilde
    h = o * np.tanh(c)
    return (c, h), h
  h = carry
  hx = np.concatenate([h, x], -1)
  z = sigmoid(dense(p["update"], hx))
  r = sigmoid(dense(p["reset"], hx))
  if name == "gru":
    h_tilde = np.tanh(dense(p["candidate"], np.concatenate([r * h, x], -1)))
  else:
    h_tilde = np.tanh(dense(p["candidate_input"], x) + r * dense(p["candidate_hidden"], h))
  h = (1 - z) * h + z * h_tilde
  return h, h


def init_cell(name):
  cell = CELLS[name]()
  carry = cell.initialize_carry(jax.random.key(0), (B, D))
  return cell, random_variables(cell, carry, jnp.zeros((B, D)))["params"]


def assert_close(a, b, atol=1e-5):
  jax.tree_util.tree_map(
    lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=atol, rtol=1e-5),
    a,
    b,
  )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_matches_the_course_equations(name):
  cell, params = init_cell(name)
  xs = inputs((B, T, D))
  carry = jax.tree_util.tree_map(
    lambda a: a + inputs(a.shape, seed=2), cell.initialize_carry(jax.random.key(0), (B, D))
  )
  # One step.
  new_carry, out = cell.apply({"params": params}, carry, xs[:, 0])
  np_carry, np_out = np_step(
    name, params, jax.tree_util.tree_map(np.asarray, carry), np.asarray(xs[:, 0], np.float64)
  )
  assert_close(out, np_out)
  assert_close(new_carry, np_carry)
  # Five steps scanned by flax.linen.RNN.
  rnn = nn.RNN(CELLS[name]())
  final, outs = rnn.apply({"params": {"cell": params}}, xs, initial_carry=carry, return_carry=True)
  np_carry = jax.tree_util.tree_map(np.asarray, carry)
  np_outs = []
  for t in range(T):
    np_carry, o = np_step(name, params, np_carry, np.asarray(xs[:, t]))
    np_outs.append(o)
  assert outs.shape == (B, T, H)
  assert_close(outs, np.stack(np_outs, 1))
  assert_close(final, np_carry)


def test_lstm_forget_bias_initialisation():
  cell = recurrent.LSTMCell(H, forget_bias=2.0)
  params = cell.init(jax.random.key(0), cell.initialize_carry(None, (B, D)), jnp.zeros((B, D)))[
    "params"
  ]
  np.testing.assert_array_equal(params["forget"]["bias"], 2.0)
  np.testing.assert_array_equal(params["input"]["bias"], 0.0)


# PyTorch parity with copied weights.


def torch_gate_params(torch_module, suffix, gates, negate=()):
  """Our {name: {'kernel', 'bias'}} from torch weight_ih/hh (gate-stacked)."""
  get = lambda n: getattr(torch_module, n + suffix).detach().numpy()
  w_ih, w_hh = get("weight_ih"), get("weight_hh")
  b = get("bias_ih") + get("bias_hh")
  hidden = w_hh.shape[1]
  out = {}
  for k, name in enumerate(gates):
    if name is None:
      continue
    rows = slice(k * hidden, (k + 1) * hidden)
    sign = -1.0 if name in negate else 1.0
    out[name] = {
      "kernel": sign * np.concatenate([w_hh[rows].T, w_ih[rows].T], 0),
      "bias": sign * b[rows],
    }
  return out


LSTM_GATES = ("input", "forget", "candidate", "output")  # torch: i, f, g, o.


def torch_gru_params(torch_module, suffix=""):
  """Torch GRU (r, z, n) -> our reset_after GRU; z' = 1 - z flips sign."""
  params = torch_gate_params(torch_module, suffix, ("reset", "update", None), negate=("update",))
  get = lambda n: getattr(torch_module, n + suffix).detach().numpy()
  n = slice(2 * H, 3 * H)
  params["candidate_input"] = {"kernel": get("weight_ih")[n].T, "bias": get("bias_ih")[n]}
  params["candidate_hidden"] = {"kernel": get("weight_hh")[n].T, "bias": get("bias_hh")[n]}
  return params


@pytest.mark.torch
@pytest.mark.parametrize("name", ["rnn", "lstm", "gru_reset_after"])
def test_cell_matches_torch(name):
  torch = import_torch()
  torch.manual_seed(0)
  x = np.asarray(inputs((B, D)))
  h = np.asarray(inputs((B, H), seed=1))
  c = np.asarray(inputs((B, H), seed=2))
  tx, th, tc = (torch.tensor(a) for a in (x, h, c))
  if name == "rnn":
    theirs = torch.nn.RNNCell(D, H)
    params = torch_gate_params(theirs, "", ("hidden",))
    expected, carry = theirs(tx, th).detach().numpy(), h
  elif name == "lstm":
    theirs = torch.nn.LSTMCell(D, H)
    params = torch_gate_params(theirs, "", LSTM_GATES)
    h1, c1 = (a.detach().numpy() for a in theirs(tx, (th, tc)))
    expected, carry = (c1, h1), (c, h)
  else:
    theirs = torch.nn.GRUCell(D, H)
    params = torch_gru_params(theirs)
    expected, carry = theirs(tx, th).detach().numpy(), h
  new_carry, _ = CELLS[name]().apply({"params": params}, carry, x)
  assert_close(new_carry, expected)


@pytest.mark.torch
@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "gru"])
def test_stacked_bidirectional_matches_torch(cell_type):
  torch = import_torch()
  torch.manual_seed(0)
  layers = 2
  x = np.asarray(inputs((B, T, D)))
  if cell_type == "rnn":
    theirs = torch.nn.RNN(
      D, H, num_layers=layers, nonlinearity="tanh", bidirectional=True, batch_first=True
    )
    convert = lambda s: torch_gate_params(theirs, s, ("hidden",))
    out, h_n = theirs(torch.tensor(x))
    h_n = h_n.detach().numpy()
    final = lambda k: h_n[k]
  elif cell_type == "lstm":
    theirs = torch.nn.LSTM(D, H, num_layers=layers, bidirectional=True, batch_first=True)
    convert = lambda s: torch_gate_params(theirs, s, LSTM_GATES)
    out, (h_n, c_n) = theirs(torch.tensor(x))
    h_n, c_n = h_n.detach().numpy(), c_n.detach().numpy()
    final = lambda k: (c_n[k], h_n[k])
  else:
    theirs = torch.nn.GRU(D, H, num_layers=layers, bidirectional=True, batch_first=True)
    convert = lambda s: torch_gru_params(theirs, s)
    out, h_n = theirs(torch.tensor(x))
    h_n = h_n.detach().numpy()
    final = lambda k: h_n[k]
  params = {
    f"layer_{item}": {
      "forward_rnn": {"cell": convert(f"_l{item}")},
      "backward_rnn": {"cell": convert(f"_l{item}_reverse")},
    }
    for item in range(layers)
  }
  ours = recurrent.Recurrent(H, cell_type, num_layers=layers, bidirectional=True, reset_after=True)
  outputs, carries = ours.apply({"params": params}, x)
  assert_close(outputs, out.detach().numpy())
  for item in range(layers):
    assert_close(carries[item], (final(2 * item), final(2 * item + 1)))


@pytest.mark.torch
def test_elman_language_model_matches_torch():
  """RNNLanguageModel(cell_type='rnn') (lstm_shakespeare_char:rnn) is torch's
  Embedding -> nn.RNN(tanh, 2 layers) -> Linear with the same weights, and carrying the
  state over a split sequence gives the same logits as one pass."""
  torch = import_torch()
  torch.manual_seed(0)
  vocab, layers = 11, 2
  embed = torch.nn.Embedding(vocab, H)
  rnn = torch.nn.RNN(H, H, num_layers=layers, nonlinearity="tanh", batch_first=True)
  linear = torch.nn.Linear(H, vocab)
  tokens = np.random.default_rng(0).integers(0, vocab, (B, T)).astype(np.int64)
  with torch.no_grad():
    out, h_n = rnn(embed(torch.tensor(tokens)))
    expected = linear(out).numpy()
  params = {
    "embed": {"embedding": embed.weight.detach().numpy()},
    "rnn": {
      f"layer_{k}": {"cell": torch_gate_params(rnn, f"_l{k}", ("hidden",))} for k in range(layers)
    },
    "output": {"kernel": linear.weight.detach().numpy().T, "bias": linear.bias.detach().numpy()},
  }
  model = rnn_lm.RNNLanguageModel(vocab, H, num_layers=layers, cell_type="rnn")
  logits, carries = model.apply({"params": params}, tokens.astype(np.int32), return_carry=True)
  assert_close(logits, expected)
  assert_close(carries, tuple(h_n.numpy()))
  head, carry = model.apply({"params": params}, tokens[:, :2].astype(np.int32), return_carry=True)
  tail = model.apply({"params": params}, tokens[:, 2:].astype(np.int32), carry=carry)
  assert_close(np.concatenate([head, tail], 1), expected)


# Wrapper shapes, direction and padding.


@pytest.mark.parametrize("cell_type,bidirectional", [("rnn", True), ("lstm", False), ("gru", True)])
def test_recurrent_shapes(cell_type, bidirectional):
  model = recurrent.Recurrent(
    H, cell_type, num_layers=2, bidirectional=bidirectional, dropout_rate=0.5
  )
  x = inputs((B, T, D))
  variables = random_variables(model, x)
  outputs, carries = jax.jit(model.apply, static_argnames="train")(
    variables, x, train=True, rngs={"dropout": jax.random.key(1)}
  )
  assert outputs.shape == (B, T, 2 * H if bidirectional else H)
  assert len(carries) == 2
  carry_shapes = {jnp.shape(a) for a in jax.tree_util.tree_leaves(carries)}
  assert carry_shapes == {(B, H)}


def test_bidirectional_directions():
  model = recurrent.Recurrent(H, "gru", bidirectional=True)
  x = inputs((B, T, D))
  variables = random_variables(model, x)
  apply = jax.jit(lambda x: model.apply(variables, x)[0])
  out = apply(x)
  moved = apply(x.at[:, -1].add(1.0))
  # Forward half at t=0 has only seen x_0; backward half has seen all of x.
  np.testing.assert_array_equal(out[:, 0, :H], moved[:, 0, :H])
  assert np.abs(out[:, 0, H:] - moved[:, 0, H:]).min() > 1e-6
  # The backward half at the last step has only seen x_{T-1}.
  same_last = apply(x.at[:, 0].add(1.0))
  np.testing.assert_array_equal(out[:, -1, H:], same_last[:, -1, H:])


def test_seq_lengths_ignore_padding():
  # Bidirectional covers both: the forward half must ignore the padding
  # after the sequence, the backward half must start at its last real step.
  model = recurrent.Recurrent(H, "lstm", num_layers=2, bidirectional=True)
  short = 3
  x = inputs((B, T, D))
  variables = random_variables(model, x)
  apply = jax.jit(model.apply)
  # Row 0 is padded after `short` steps (with large garbage), row 1 is full.
  padded = x.at[0, short:].set(inputs((T - short, D), seed=5) * 10)
  out, carries = apply(variables, padded, seq_lengths=jnp.array([short, T]))
  short_out, short_carries = apply(variables, x[:, :short])
  full_out, full_carries = apply(variables, x)
  row = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i], tree)
  assert_close(out[0, :short], short_out[0])
  assert_close(row(carries, 0), row(short_carries, 0))
  assert_close(out[1], full_out[1])
  assert_close(row(carries, 1), row(full_carries, 1))


# Language model.


@pytest.mark.parametrize("cell_type,tie", [("lstm", False), ("gru", True)])
def test_lm_generate_carries_state(cell_type, tie):
  model = rnn_lm.RNNLanguageModel(
    11, 8, num_layers=2, cell_type=cell_type, tie_weights=tie, dropout_rate=0.1
  )
  apply = jax.jit(model.apply)
  prompt = jnp.array([[1, 2, 3], [4, 5, 6]], jnp.int32)
  params = random_variables(model, prompt)["params"]
  tokens, logits = rnn_lm.generate(
    model, params, prompt, 4, jax.random.key(1), temperature=0.8, top_k=5, return_logits=True
  )
  assert tokens.shape == (2, 7) and logits.shape == (2, 4, 11)
  np.testing.assert_array_equal(tokens[:, :3], prompt)
  # Carried-state logits equal a full re-run over the prefix.
  full = apply({"params": params}, tokens[:, :-1])
  assert full.shape == (2, 6, 11)
  np.testing.assert_allclose(logits, full[:, 2:], atol=1e-5)
  if cell_type == "lstm":  # Greedy picks the argmax (one config is enough).
    greedy, greedy_logits = rnn_lm.generate(
      model, params, prompt, 4, jax.random.key(2), temperature=0, return_logits=True
    )
    np.testing.assert_array_equal(greedy[:, 3:], greedy_logits.argmax(-1))
  else:  # Dropout path (train=True) runs and keeps the shape.
    dropped = model.apply(
      {"params": params}, prompt, train=True, rngs={"dropout": jax.random.key(4)}
    )
    assert dropped.shape == (2, 3, 11)


# Attention and seq2seq.


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_attention_weights_are_masked_softmax(kind):
  attention = recurrent.make_attention(kind, H)
  query, memory = inputs((B, H)), inputs((B, T, 2 * H), seed=1)
  mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)

  def run(module):
    keys = module.project_memory(memory)
    return module(query, keys, memory, mask)

  variables = random_variables(attention, method=run)
  context, weights = attention.apply(variables, method=run)
  np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(weights[0, 3:], 0.0)
  assert np.all(weights[mask] > 0)
  np.testing.assert_allclose(context, np.einsum("bs,bse->be", weights, memory), atol=1e-6)


def np_masked_softmax(scores, mask):
  scores = np.where(mask, scores, -np.inf)
  e = np.exp(scores - scores.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_attention_scores_match_numpy(kind):
  """The scores, written out in NumPy (float64) from the module's own params:
  Luong 'general' s^T W h_j (W: F x E, here the memory projection's kernel transposed),
  Bahdanau v^T tanh(W1 s + W2 h_j); weights the masked softmax, context sum_j a_j h_j."""
  E = 2 * H
  attention = recurrent.make_attention(kind, H)
  query, memory = inputs((B, H)), inputs((B, T, E), seed=1)
  mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)

  def run(module):
    return module(query, module.project_memory(memory), memory, mask)

  variables = random_variables(attention, method=run)
  context, weights = attention.apply(variables, method=run)
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
  s, h = np.asarray(query, np.float64), np.asarray(memory, np.float64)
  if kind == "luong":
    w = p["memory_dense"]["kernel"].T  # (F, E): score = s^T W h_j
    scores = np.array([[s[b] @ w @ h[b, j] for j in range(T)] for b in range(B)])
  else:
    w1, w2 = p["query_dense"]["kernel"], p["memory_dense"]["kernel"]
    v = p["score_dense"]["kernel"][:, 0]
    scores = np.array([[v @ np.tanh(s[b] @ w1 + h[b, j] @ w2) for j in range(T)] for b in range(B)])
  expected = np_masked_softmax(scores, np.asarray(mask))
  np.testing.assert_allclose(weights, expected, atol=1e-6)
  np.testing.assert_allclose(context, np.einsum("bs,bse->be", expected, h), atol=1e-5)


def test_luong_score_by_hand():
  """A 2-wide query against three 2-wide memory vectors, W = [[1, 2], [0, 1]]:
  W h = (1, 0), (2, 1), (3, 1) -> scores s . W h with s = (1, -1): 1, 1, 2."""
  attention = recurrent.LuongAttention(2)
  params = {"memory_dense": {"kernel": np.array([[1.0, 0.0], [2.0, 1.0]])}}  # kernel = W^T
  memory = jnp.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
  query = jnp.array([[1.0, -1.0]])

  def run(module):
    return module(query, module.project_memory(memory), memory)

  _, weights = attention.apply({"params": params}, method=run)
  e = np.exp([1.0, 1.0, 2.0])
  np.testing.assert_allclose(weights[0], e / e.sum(), atol=1e-6)


SEQ2SEQ_CONFIGS = [
  dict(cell_type="gru", attention="bahdanau", bidirectional_encoder=True),
  dict(cell_type="lstm", attention="luong", bidirectional_encoder=False, num_layers=2),
]


@pytest.mark.parametrize(
  "config", SEQ2SEQ_CONFIGS, ids=lambda c: f"{c['cell_type']}-{c['attention']}"
)
def test_seq2seq_attention_and_greedy_decode(config):
  src_vocab, tgt_vocab, bos = 10, 9, 1
  model = seq2seq.Seq2Seq(src_vocab, tgt_vocab, 8, **config)
  source = jnp.array([[3, 4, 5, 6], [7, 8, 0, 0]], jnp.int32)
  target_in = jnp.array([[bos, 2, 3], [bos, 4, 5]], jnp.int32)
  batch = {"source": source, "target_in": target_in}
  params = random_variables(model, batch)["params"]
  apply = jax.jit(functools.partial(model.apply, return_attention=True))
  logits, weights = apply({"params": params}, batch)
  assert logits.shape == (2, 3, tgt_vocab)
  assert weights.shape == (2, 3, 4)
  np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(weights[1, :, 2:], 0.0)
  # Extra padding columns change nothing.
  padded = dict(batch, source=jnp.pad(source, ((0, 0), (0, 2))))
  padded_logits, _ = apply({"params": params}, padded)
  np.testing.assert_allclose(padded_logits, logits, atol=1e-5)
  # Step-by-step decoding equals the teacher-forced pass on the same tokens.
  tokens, attn, step_logits = seq2seq.greedy_decode(
    model, params, source, 4, bos, return_logits=True
  )
  assert tokens.shape == (2, 4) and attn.shape == (2, 4, 4)
  forced = {
    "source": source,
    "target_in": jnp.concatenate([jnp.full((2, 1), bos, jnp.int32), tokens[:, :-1]], 1),
  }
  forced_logits, forced_attn = apply({"params": params}, forced)
  np.testing.assert_allclose(step_logits, forced_logits, atol=1e-5)
  np.testing.assert_allclose(attn, forced_attn, atol=1e-6)
  np.testing.assert_array_equal(tokens, forced_logits.argmax(-1))
