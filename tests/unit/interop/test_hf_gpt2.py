"""dlx.interop's GPT-2 loader and exporter against Hugging Face transformers: a seeded
random GPT2LMHeadModel (every parameter perturbed, so a swapped layer norm or a
transposed matrix shows) saved with save_pretrained -> from_hf_gpt2 -> the same logits
and greedy continuations as torch; to_hf_gpt2 -> from_pretrained loads every tensor
unchanged. The error cases need safetensors only; torch and transformers tests skip
without them. Tiny models only.
"""

import importlib.util
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import interop
from dlx.interop import hf_gpt2
from dlx.interop import safetensors_io
from dlx.models import gpt as gpt_lib

pytestmark = pytest.mark.skipif(
  importlib.util.find_spec("safetensors") is None,
  reason="dlx.interop needs safetensors (pip install 'dlx[interop]')",
)

LAYERS, HEADS, FEATURES, POSITIONS, VOCAB = 2, 4, 64, 64, 101
PROMPT, NEW_TOKENS = 8, 20


def _torch_and_transformers():
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  return torch, transformers


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
  """(GPT2LMHeadModel in eval mode, the directory save_pretrained wrote it to)."""
  torch, transformers = _torch_and_transformers()
  config = transformers.GPT2Config(
    n_layer=LAYERS,
    n_head=HEADS,
    n_embd=FEATURES,
    n_positions=POSITIONS,
    vocab_size=VOCAB,
    bos_token_id=None,  # GPT-2's 50256 is outside this vocabulary.
    eos_token_id=None,
  )
  torch.manual_seed(0)
  model = transformers.GPT2LMHeadModel(config).eval()
  with torch.no_grad():  # HF starts biases at 0 and norms at 1; make every tensor distinct.
    for parameter in model.parameters():
      parameter.add_(0.1 * torch.randn_like(parameter))
  directory = tmp_path_factory.mktemp("hf_gpt2")
  model.save_pretrained(directory)
  assert (directory / "model.safetensors").is_file()
  return model, directory


@pytest.fixture(scope="module")
def imported(hf_model):
  return interop.from_hf_gpt2(hf_model[1])


def _tokens(shape, seed=0):
  return np.random.default_rng(seed).integers(0, VOCAB, shape).astype(np.int32)


@pytest.mark.torch
def test_logits_match_torch(hf_model, imported):
  torch, _ = _torch_and_transformers()
  model, variables = imported
  assert (model.num_layers, model.num_heads, model.features) == (LAYERS, HEADS, FEATURES)
  assert (model.max_length, model.vocab_size, model.output_bias) == (POSITIONS, VOCAB, False)
  tokens = _tokens((3, POSITIONS))
  ours = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(tokens)))
  with torch.no_grad():
    theirs = hf_model[0](torch.from_numpy(tokens).long()).logits.numpy()
  assert ours.shape == theirs.shape == (3, POSITIONS, VOCAB)
  relative = np.abs(ours - theirs).max() / np.abs(theirs).max()
  assert relative < 1e-4, relative


@pytest.mark.torch
def test_export_loads_in_transformers_unchanged(hf_model, imported, tmp_path):
  torch, transformers = _torch_and_transformers()
  interop.to_hf_gpt2(*imported, tmp_path)
  loaded, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
  assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
  original, exported = hf_model[0].state_dict(), loaded.state_dict()
  assert sorted(exported) == sorted(original)
  different = [k for k in original if not torch.equal(original[k], exported[k])]
  assert not different, different
  for field in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "layer_norm_epsilon"):
    assert getattr(loaded.config, field) == getattr(hf_model[0].config, field), field
  assert loaded.config.activation_function == "gelu_new"


@pytest.mark.torch
def test_greedy_generation_matches_transformers(hf_model, imported):
  torch, _ = _torch_and_transformers()
  model, variables = imported
  prompt = _tokens((1, PROMPT), seed=1)
  ours = gpt_lib.generate(
    model, variables["params"], prompt, NEW_TOKENS, jax.random.key(0), temperature=0.0
  )
  with torch.no_grad():
    theirs = hf_model[0].generate(
      torch.from_numpy(prompt).long(),
      attention_mask=torch.ones((1, PROMPT), dtype=torch.long),
      do_sample=False,
      max_new_tokens=NEW_TOKENS,
    )
  assert theirs.shape == (1, PROMPT + NEW_TOKENS)
  np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


# ------------------------------------------------------- safetensors only (no torch)


@pytest.fixture(scope="module")
def dlx_checkpoint(tmp_path_factory):
  """A directory to_hf_gpt2 wrote from a randomly initialised dlx GPT, and its params."""
  model = gpt_lib.GPT(VOCAB, 16, num_layers=1, num_heads=2, features=8, output_bias=False)
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]
  directory = tmp_path_factory.mktemp("dlx_gpt2")
  interop.to_hf_gpt2(model, {"params": params}, directory)
  return directory, params


def _copy_with(source, destination, edit):
  """Copies a checkpoint directory, passing its tensors through `edit(dict)`."""
  destination.mkdir(exist_ok=True)
  (destination / "config.json").write_text((source / "config.json").read_text())
  tensors = safetensors_io.read(source / "model.safetensors")
  safetensors_io.write(destination / "model.safetensors", edit(dict(tensors)))
  return destination


def _assert_same_params(a, b):
  flat_a, flat_b = (jax.tree_util.tree_leaves_with_path(p) for p in (a, b))
  assert [k for k, _ in flat_a] == [k for k, _ in flat_b]
  for (path, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def test_round_trip_without_torch(dlx_checkpoint):
  directory, params = dlx_checkpoint
  model, variables = interop.from_hf_gpt2(directory)
  _assert_same_params(variables["params"], params)
  config = json.loads((directory / "config.json").read_text())
  assert (config["n_layer"], config["n_embd"], config["n_positions"]) == (1, 8, 16)
  assert config["bos_token_id"] is None  # Not GPT-2's vocabulary: no <|endoftext|>.


def test_gpt2model_names_buffers_and_shards_load_the_same(dlx_checkpoint, tmp_path):
  directory, params = dlx_checkpoint
  prefix = hf_gpt2.PREFIX

  def bare_names_with_buffers(tensors):  # GPT2Model's names; old mask buffers.
    out = {k.removeprefix(prefix): v for k, v in tensors.items()}
    out["h.0.attn.bias"] = np.tril(np.ones((1, 1, 16, 16), np.float32))
    out["lm_head.weight"] = out["wte.weight"]
    return out

  bare = _copy_with(directory, tmp_path / "bare", bare_names_with_buffers)
  _assert_same_params(interop.from_hf_gpt2(bare)[1]["params"], params)

  sharded = tmp_path / "sharded"
  sharded.mkdir()
  (sharded / "config.json").write_text((directory / "config.json").read_text())
  tensors = safetensors_io.read(directory / "model.safetensors")
  names = sorted(tensors)
  weight_map = {}
  for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
    shard = f"model-0000{i + 1}-of-00002.safetensors"
    safetensors_io.write(sharded / shard, {k: tensors[k] for k in part})
    weight_map.update(dict.fromkeys(part, shard))
  (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
  _assert_same_params(interop.from_hf_gpt2(sharded)[1]["params"], params)


def test_misshaped_key_names_the_key_and_both_shapes(dlx_checkpoint, tmp_path):
  key = "transformer.h.0.attn.c_attn.weight"

  def cut_a_column(tensors):
    tensors[key] = tensors[key][:, :-1]
    return tensors

  broken = _copy_with(dlx_checkpoint[0], tmp_path, cut_a_column)
  with pytest.raises(safetensors_io.CheckpointError) as error:
    interop.from_hf_gpt2(broken)
  message = str(error.value)
  assert "\n" not in message
  assert key in message and "(8, 23)" in message and "(8, 24)" in message, message


def test_missing_key_is_named(dlx_checkpoint, tmp_path):
  key = "transformer.h.0.ln_2.bias"
  broken = _copy_with(
    dlx_checkpoint[0], tmp_path, lambda t: {k: v for k, v in t.items() if k != key}
  )
  with pytest.raises(safetensors_io.CheckpointError, match=f"no tensor {key} .*n_layer=1"):
    interop.from_hf_gpt2(broken)


def test_untied_lm_head_and_unknown_tensors_are_refused(dlx_checkpoint, tmp_path):
  untied = lambda t: {**t, "lm_head.weight": t["transformer.wte.weight"] + 1}
  with pytest.raises(safetensors_io.CheckpointError, match="lm_head.weight .* differs"):
    interop.from_hf_gpt2(_copy_with(dlx_checkpoint[0], tmp_path / "untied", untied))
  extra = lambda t: {**t, "transformer.h.0.attn.q_norm.weight": np.ones(8, np.float32)}
  with pytest.raises(safetensors_io.CheckpointError, match="no place for: .*q_norm"):
    interop.from_hf_gpt2(_copy_with(dlx_checkpoint[0], tmp_path / "extra", extra))


def test_config_dlx_cannot_compute_is_one_line(dlx_checkpoint, tmp_path):
  directory = _copy_with(dlx_checkpoint[0], tmp_path, lambda t: t)
  config = json.loads((directory / "config.json").read_text())
  (directory / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
  with pytest.raises(safetensors_io.CheckpointError, match="activation_function='relu'"):
    interop.from_hf_gpt2(directory)
  (directory / "config.json").unlink()
  with pytest.raises(safetensors_io.CheckpointNotFoundError, match="config.json"):
    interop.from_hf_gpt2(directory)


def test_export_refuses_a_learned_output_bias(dlx_checkpoint, tmp_path):
  model = gpt_lib.GPT(VOCAB, 16, num_layers=1, num_heads=2, features=8)  # output_bias=True
  params = {**dlx_checkpoint[1], "output_bias": jnp.zeros(VOCAB)}  # As initialised.
  interop.to_hf_gpt2(model, {"params": params}, tmp_path / "zero")  # Still 0: exportable.
  params = {**params, "output_bias": params["output_bias"] + 0.5}
  with pytest.raises(safetensors_io.CheckpointError, match="output_bias=False"):
    interop.to_hf_gpt2(model, {"params": params}, tmp_path / "learned")


def test_without_safetensors_the_error_names_the_extra(dlx_checkpoint, monkeypatch):
  monkeypatch.setitem(sys.modules, "safetensors", None)  # Python's way to block an import.
  monkeypatch.delitem(sys.modules, "safetensors.numpy", raising=False)
  with pytest.raises(ImportError, match=r"dlx\[interop\]"):
    interop.from_hf_gpt2(dlx_checkpoint[0])
