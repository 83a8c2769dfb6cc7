"""Tests for dlx.nn.transformer and the GPT, Transformer and ViT models:
layers against PyTorch with copied weights, causality, padding invariance,
the GPT key/value cache against full re-runs, sampling rules, shapes.
Tiny models only.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.models import gpt as gpt_lib
from dlx.models import transformer as seq2seq
from dlx.models.vit import ViT
from dlx.nn import attention as attn
from dlx.nn import transformer as tfm

B, T, S, F, HEADS, HIDDEN = 2, 5, 6, 8, 2, 16


def _normal(seed, shape):
  return jax.random.normal(jax.random.key(seed), shape)


def _init(module, *args, seed=0):
  """Variables of `module` (eager init: its small ops are cached across tests)."""
  return module.init(jax.random.key(seed), *args)


def _init_apply(module, *args):
  """Params and apply(params, *args) for `module`.

  Eager on purpose: after an eager init with the same shapes every primitive
  is already compiled, which beats compiling a jitted apply for tiny models.
  """
  params = _init(module, *args)["params"]
  return params, lambda p, *a: module.apply({"params": p}, *a)


# ----------------------------------------------------------------- embeddings


def test_sinusoidal_positions():
  pe = np.asarray(tfm.sinusoidal_positions(7, F))
  assert pe.shape == (7, F)
  p, i = np.arange(7)[:, None], np.arange(F // 2)[None, :]
  angle = p / 10000.0 ** (2 * i / F)  # PE(p, 2i) = sin(p / 10000^(2i/d)).
  np.testing.assert_allclose(pe[:, : F // 2], np.sin(angle), atol=1e-5)
  np.testing.assert_allclose(pe[:, F // 2 :], np.cos(angle), atol=1e-5)


def test_token_embedding_attend_is_transposed_embedding():
  module = tfm.TokenEmbedding(vocab_size=11, features=F, scale=True)
  tokens = jnp.array([[1, 2, 3]])
  variables = module.init(jax.random.key(0), tokens)
  table = variables["params"]["embed"]["embedding"]
  np.testing.assert_allclose(module.apply(variables, tokens), table[tokens] * np.sqrt(F), rtol=1e-6)
  x = _normal(1, (2, F))
  np.testing.assert_allclose(
    module.apply(variables, x, method="attend"), x @ table.T, rtol=1e-5, atol=1e-6
  )


def test_learned_positional_embedding():
  module = tfm.LearnedPositionalEmbedding(max_length=10, features=F)
  variables = module.init(jax.random.key(0), jnp.arange(4))
  assert variables["params"]["embedding"].shape == (10, F)
  out = module.apply(variables, jnp.array([2, 3]))
  np.testing.assert_array_equal(out, variables["params"]["embedding"][2:4])


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_shape(activation):
  x = _normal(0, (B, T, F))
  params, apply = _init_apply(tfm.FeedForward(HIDDEN, activation=activation), x)
  assert params["hidden"]["kernel"].shape == (F, HIDDEN)
  assert apply(params, x).shape == (B, T, F)
  with pytest.raises(ValueError, match="activation"):
    tfm.FeedForward(HIDDEN, activation="tanh").init(jax.random.key(0), x)


# -------------------------------------------------------------------- layers


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_layer_and_stack_shapes(norm):
  x, memory = _normal(0, (B, T, F)), _normal(1, (B, S, F))
  encoder_layer = tfm.EncoderLayer(HEADS, F, HIDDEN, norm=norm)
  variables = _init(encoder_layer, x)
  out, weights = encoder_layer.apply(variables, x, return_attention=True)
  assert out.shape == (B, T, F) and weights.shape == (B, HEADS, T, T)

  decoder_layer = tfm.DecoderLayer(HEADS, F, HIDDEN, norm=norm)
  variables = _init(decoder_layer, x, memory)
  out, weights = decoder_layer.apply(
    variables, x, memory, attn.causal_mask(T), return_attention=True
  )
  assert out.shape == (B, T, F)
  assert weights["self"].shape == (B, HEADS, T, T)
  assert weights["cross"].shape == (B, HEADS, T, S)
  assert "cross_attention" in variables["params"]

  encoder = tfm.Encoder(2, HEADS, F, HIDDEN, norm=norm)
  variables = _init(encoder, x)
  assert encoder.apply(variables, x).shape == (B, T, F)
  assert ("final_norm" in variables["params"]) == (norm == "pre")
  decoder = tfm.Decoder(2, HEADS, F, HIDDEN, norm=norm)
  variables = _init(decoder, x, memory)
  out, weights = decoder.apply(variables, x, memory, return_attention=True)
  assert out.shape == (B, T, F) and len(weights) == 2


def test_invalid_norm():
  with pytest.raises(ValueError, match="norm"):
    tfm.EncoderLayer(HEADS, F, HIDDEN, norm="sandwich").init(jax.random.key(0), jnp.ones((B, T, F)))


def _torch_state(torch, params, names):
  """Maps our layer params to a torch Transformer*Layer state dict."""
  p = jax.tree_util.tree_map(lambda x: torch.from_numpy(np.array(x)), params)
  state = {}
  for ours, theirs in names.items():
    if ours.endswith("attention"):
      qkv = [p[ours][n] for n in ("query", "key", "value")]
      state[f"{theirs}.in_proj_weight"] = torch.cat([w["kernel"].T for w in qkv])
      state[f"{theirs}.in_proj_bias"] = torch.cat([w["bias"] for w in qkv])
      state[f"{theirs}.out_proj.weight"] = p[ours]["out"]["kernel"].T
      state[f"{theirs}.out_proj.bias"] = p[ours]["out"]["bias"]
    elif ours.endswith("norm"):
      state[f"{theirs}.weight"] = p[ours]["scale"]
      state[f"{theirs}.bias"] = p[ours]["bias"]
  for ours, theirs in (("hidden", "linear1"), ("output", "linear2")):
    state[f"{theirs}.weight"] = p["feed_forward"][ours]["kernel"].T
    state[f"{theirs}.bias"] = p["feed_forward"][ours]["bias"]
  return state


@pytest.mark.torch
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_encoder_layer_matches_torch(norm):
  torch = pytest.importorskip("torch")
  x = _normal(0, (B, T, F))
  mask = attn.causal_mask(T)
  layer = tfm.EncoderLayer(HEADS, F, HIDDEN, norm=norm)
  params = _init(layer, x, mask, seed=1)["params"]
  ours = layer.apply({"params": params}, x, mask)

  theirs = torch.nn.TransformerEncoderLayer(
    F, HEADS, HIDDEN, dropout=0.0, batch_first=True, norm_first=norm == "pre"
  )
  theirs.load_state_dict(
    _torch_state(
      torch,
      params,
      {"self_attention": "self_attn", "attention_norm": "norm1", "feed_forward_norm": "norm2"},
    )
  )
  with torch.no_grad():
    expected = theirs.eval()(
      torch.from_numpy(np.array(x)), src_mask=torch.from_numpy(~np.array(mask))
    )
  np.testing.assert_allclose(ours, expected.numpy(), atol=1e-5)


@pytest.mark.torch
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_decoder_layer_matches_torch(norm):
  torch = pytest.importorskip("torch")
  x, memory = _normal(0, (B, T, F)), _normal(1, (B, S, F))
  self_mask = attn.causal_mask(T)
  cross_mask = attn.padding_mask(jnp.array([S, 3]), length=S)
  layer = tfm.DecoderLayer(HEADS, F, HIDDEN, norm=norm)
  params = _init(layer, x, memory, seed=1)["params"]
  ours = layer.apply({"params": params}, x, memory, self_mask, cross_mask)

  theirs = torch.nn.TransformerDecoderLayer(
    F, HEADS, HIDDEN, dropout=0.0, batch_first=True, norm_first=norm == "pre"
  )
  theirs.load_state_dict(
    _torch_state(
      torch,
      params,
      {
        "self_attention": "self_attn",
        "cross_attention": "multihead_attn",
        "self_attention_norm": "norm1",
        "cross_attention_norm": "norm2",
        "feed_forward_norm": "norm3",
      },
    )
  )
  with torch.no_grad():
    expected = theirs.eval()(
      torch.from_numpy(np.array(x)),
      torch.from_numpy(np.array(memory)),
      tgt_mask=torch.from_numpy(~np.array(self_mask)),
      memory_key_padding_mask=torch.from_numpy(~np.array(cross_mask[:, 0, 0])),
    )
  np.testing.assert_allclose(ours, expected.numpy(), atol=1e-5)


# ----------------------------------------------------------------------- GPT

VOCAB, MAX_LENGTH = 13, 12


@pytest.fixture(scope="module")
def gpt():
  model = gpt_lib.GPT(VOCAB, MAX_LENGTH, num_layers=2, num_heads=HEADS, features=F)
  tokens = jax.random.randint(jax.random.key(0), (B, MAX_LENGTH), 0, VOCAB)
  params = _init(model, tokens, seed=1)["params"]
  apply = lambda p, x: model.apply({"params": p}, x)  # Eager: see _init_apply.
  return model, params, apply, tokens


def test_gpt_shapes_and_causality(gpt):
  model, params, apply, tokens = gpt
  logits = apply(params, tokens)
  assert logits.shape == (B, MAX_LENGTH, VOCAB)
  t = 4
  changed = tokens.at[:, t + 1 :].set((tokens[:, t + 1 :] + 1) % VOCAB)
  new_logits = apply(params, changed)
  np.testing.assert_allclose(new_logits[:, : t + 1], logits[:, : t + 1], atol=1e-6)
  assert not np.allclose(new_logits[:, t + 1 :], logits[:, t + 1 :])
  with pytest.raises(ValueError, match="max_length"):
    model.apply({"params": params}, jnp.zeros((1, MAX_LENGTH + 1), jnp.int32))


def test_gpt_weight_tying(gpt):
  model, params, _, _ = gpt
  shapes = [x.shape for x in jax.tree_util.tree_leaves(params)]
  assert (F, VOCAB) not in shapes
  vocab_sized = [s for s in shapes if VOCAB in s]
  assert sorted(vocab_sized) == [(VOCAB,), (VOCAB, F)]  # Output bias, embedding.
  assert params["token_embedding"]["embed"]["embedding"].shape == (VOCAB, F)


def test_dropout_only_in_training(gpt):
  model, params, apply, tokens = gpt
  # Evaluation ignores the rate (and needs no rng)...
  np.testing.assert_allclose(
    model.clone(dropout_rate=0.5).apply({"params": params}, tokens),
    apply(params, tokens),
    atol=1e-6,
  )
  # ... training draws a new mask per rng (one small layer keeps this cheap).
  layer = tfm.EncoderLayer(HEADS, F, HIDDEN, dropout_rate=0.5)
  x = _normal(0, (1, 3, F))
  variables = _init(layer, x)
  train = jax.jit(lambda rng: layer.apply(variables, x, train=True, rngs={"dropout": rng}))
  assert not np.allclose(train(jax.random.key(1)), train(jax.random.key(2)))


PROMPT_LENGTH, NEW_TOKENS = 3, 7


@functools.cache
def _generation_setup():
  model = gpt_lib.GPT(VOCAB, MAX_LENGTH, num_layers=2, num_heads=HEADS, features=F)
  prompt = jax.random.randint(jax.random.key(0), (B, PROMPT_LENGTH), 0, VOCAB)
  return model, _init(model, prompt, seed=1)["params"], prompt


@functools.cache
def _generated(sampler, temperature, top_k):
  """(tokens, logits) of a GPT run of `sampler`, cached across tests."""
  model, params, prompt = _generation_setup()
  fn = {"cached": gpt_lib.generate, "naive": gpt_lib.generate_naive}[sampler]
  tokens, logits = fn(
    model,
    params,
    prompt,
    NEW_TOKENS,
    jax.random.key(5),
    temperature=temperature,
    top_k=top_k,
    return_logits=True,
  )
  assert tokens.shape == (B, PROMPT_LENGTH + NEW_TOKENS)
  assert logits.shape == (B, NEW_TOKENS, VOCAB)
  np.testing.assert_array_equal(tokens[:, :PROMPT_LENGTH], prompt)
  return np.asarray(tokens), np.asarray(logits)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_kv_cache_generation_matches_full_rerun(temperature):
  cached_tokens, cached_logits = _generated("cached", temperature, None)
  naive_tokens, naive_logits = _generated("naive", temperature, None)
  np.testing.assert_array_equal(cached_tokens, naive_tokens)
  np.testing.assert_allclose(cached_logits, naive_logits, atol=1e-5)


def test_greedy_rules():
  greedy_tokens, logits = _generated("cached", 0.0, None)
  np.testing.assert_array_equal(greedy_tokens[:, PROMPT_LENGTH:], logits.argmax(-1))
  np.testing.assert_array_equal(_generated("cached", 1.0, 1)[0], greedy_tokens)
  np.testing.assert_array_equal(_generated("cached", 1e-4, None)[0], greedy_tokens)
  # Sampling at temperature 1 picks something else somewhere (fixed seed).
  assert not np.array_equal(_generated("cached", 1.0, None)[0], greedy_tokens)


def test_top_k_restricts_samples():
  k = 3
  tokens, logits = _generated("cached", 2.0, k)
  new = tokens[:, PROMPT_LENGTH:]
  top = np.argsort(-logits, axis=-1)[..., :k]
  assert np.all((top == new[..., None]).any(-1))


def test_sample_next_top_k_statistics():
  logits = jnp.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
  rngs = jax.random.split(jax.random.key(0), 400)
  samples = jax.jit(jax.vmap(lambda r: gpt_lib.sample_next(logits, r, 1.0, 2)))(rngs)
  assert set(np.unique(samples)) == {3, 4}


def test_generate_errors(gpt):
  model, params, _, _ = gpt
  prompt = jnp.zeros((1, 4), jnp.int32)
  with pytest.raises(ValueError, match="max_length"):
    gpt_lib.generate(model, params, prompt, MAX_LENGTH, jax.random.key(0))
  with pytest.raises(ValueError, match="temperature"):
    gpt_lib.generate(model, params, prompt, 2, jax.random.key(0), temperature=-1.0)


# ------------------------------------------------------- Transformer (seq2seq)

SRC_VOCAB, TGT_VOCAB, BOS = 11, 9, 1


@pytest.fixture(scope="module")
def seq2seq_model():
  model = seq2seq.Transformer(
    SRC_VOCAB,
    max_length=10,
    num_layers=2,
    num_heads=HEADS,
    features=F,
    hidden=HIDDEN,
    target_vocab_size=TGT_VOCAB,
  )
  source = jnp.array([[3, 4, 5, 6, 0, 0], [7, 8, 2, 0, 0, 0]], jnp.int32)
  target_in = jnp.array([[BOS, 2, 3, 4, 5], [BOS, 6, 7, 8, 2]], jnp.int32)
  inputs = {"source": source, "target_in": target_in}
  params = _init(model, inputs)["params"]
  apply = lambda p, x: model.apply({"params": p}, x)  # Eager: see _init_apply.
  return model, params, apply, inputs


def test_seq2seq_shapes_and_attention_weights(seq2seq_model):
  model, params, apply, inputs = seq2seq_model
  logits = apply(params, inputs)
  assert logits.shape == (B, T, TGT_VOCAB)
  same, attention = model.apply({"params": params}, inputs, return_attention=True)
  np.testing.assert_allclose(same, logits, atol=1e-6)
  assert len(attention["cross"]) == 2
  assert attention["encoder"][0].shape == (B, HEADS, S, S)
  assert attention["decoder_self"][0].shape == (B, HEADS, T, T)
  cross = np.asarray(attention["cross"][-1])
  assert cross.shape == (B, HEADS, T, S)
  np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-5)
  source_pad = np.asarray(inputs["source"] == 0)[:, None, None, :]
  assert np.all(np.broadcast_to(source_pad, cross.shape) <= (cross == 0))


def test_seq2seq_decoder_is_causal(seq2seq_model):
  _, params, apply, inputs = seq2seq_model
  logits = apply(params, inputs)
  t = 2
  target_in = inputs["target_in"]
  changed = target_in.at[:, t + 1 :].set((target_in[:, t + 1 :] + 3) % TGT_VOCAB)
  new_logits = apply(params, {**inputs, "target_in": changed})
  np.testing.assert_allclose(new_logits[:, : t + 1], logits[:, : t + 1], atol=1e-5)
  assert not np.allclose(new_logits[:, t + 1 :], logits[:, t + 1 :])


def test_seq2seq_padding_does_not_change_outputs(seq2seq_model):
  model, params, apply, inputs = seq2seq_model
  logits = apply(params, inputs)
  # Less source padding (S = 4) and more target padding (T = 7).
  fewer_source_pads = inputs["source"][:, :4]
  more_target_pads = jnp.pad(inputs["target_in"], ((0, 0), (0, 2)))
  new_logits = model.apply(
    {"params": params}, {"source": fewer_source_pads, "target_in": more_target_pads}
  )
  np.testing.assert_allclose(new_logits[:, :T], logits, atol=1e-5)
  # A changed token in a real source position does change them.
  changed = inputs["source"].at[0, 0].set(9)
  assert not np.allclose(apply(params, {**inputs, "source": changed})[0], logits[0])


def test_greedy_decode_agrees_with_teacher_forcing(seq2seq_model):
  model, params, _, inputs = seq2seq_model
  length = 6
  tokens = seq2seq.greedy_decode(model, params, inputs["source"], length, BOS)
  assert tokens.shape == (B, length) and tokens.dtype == jnp.int32
  target_in = jnp.concatenate([jnp.full((B, 1), BOS, jnp.int32), tokens[:, :-1]], axis=1)
  logits = model.apply({"params": params}, {"source": inputs["source"], "target_in": target_in})
  # Positions after a generated pad token see it masked in both runs.
  np.testing.assert_array_equal(logits.argmax(-1), tokens)
  with pytest.raises(ValueError, match="bos_id"):
    seq2seq.greedy_decode(model, params, inputs["source"], length, 0)


def test_seq2seq_pre_norm_shapes():
  model = seq2seq.Transformer(SRC_VOCAB, 10, 1, HEADS, F, HIDDEN, norm="pre")
  inputs = {"source": jnp.ones((B, S), jnp.int32), "target_in": jnp.ones((B, T), jnp.int32)}
  params, apply = _init_apply(model, inputs)
  assert apply(params, inputs).shape == (B, T, SRC_VOCAB)
  assert "final_norm" in params["encoder"] and "final_norm" in params["decoder"]


# ----------------------------------------------------------------------- ViT


def test_vit_shapes_and_class_token():
  model = ViT(num_classes=3, patch_size=4, num_layers=1, num_heads=HEADS, features=F, hidden=HIDDEN)
  images = _normal(0, (B, 8, 12, 3))
  params = _init(model, images)["params"]
  assert params["patch_embedding"]["kernel"].shape == (4, 4, 3, F)
  assert params["class_token"].shape == (1, 1, F)
  num_tokens = 1 + (8 // 4) * (12 // 4)
  assert params["position_embedding"]["embedding"].shape == (num_tokens, F)
  logits, state = model.apply({"params": params}, images, mutable=["intermediates"])
  assert logits.shape == (B, 3)
  (tokens,) = state["intermediates"]["tokens"]
  assert tokens.shape == (B, num_tokens, F)
  head = params["head"]
  np.testing.assert_allclose(logits, tokens[:, 0] @ head["kernel"] + head["bias"], atol=1e-5)


def test_vit_rejects_bad_patch_size():
  model = ViT(num_classes=3, patch_size=5, num_layers=1, num_heads=HEADS, features=F, hidden=HIDDEN)
  with pytest.raises(ValueError, match="not divisible by patch_size 5"):
    model.init(jax.random.key(0), jnp.ones((1, 8, 8, 3)))
