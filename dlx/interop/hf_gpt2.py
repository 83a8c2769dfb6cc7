"""Hugging Face GPT-2 checkpoints in and out of dlx's GPT (`dlx.models.gpt.GPT`).

  from_hf_gpt2(directory) -> (model, variables)   model.apply(variables, tokens) -> logits
  to_hf_gpt2(model, variables, directory)         GPT2LMHeadModel.from_pretrained(directory)

A directory is what `GPT2LMHeadModel.save_pretrained` writes: `config.json` and
`model.safetensors` (or its shards and `model.safetensors.index.json`). No torch is
needed: the weights are read and written as NumPy arrays (dlx/interop/safetensors_io.py).

dlx's GPT with `output_bias=False` computes GPT-2 exactly: tied input/output embedding,
learned positions, pre-LN blocks and a final LayerNorm (eps 1e-5), tanh-approximated GELU
("gelu_new"), biased attention and 4x MLP. The weights map one to one:

  [transformer.]wte.weight               token_embedding/embed/embedding
  [transformer.]wpe.weight               position_embedding/embedding
  [transformer.]h.{i}.ln_1               decoder/layer_{i}/self_attention_norm
  [transformer.]h.{i}.attn.c_attn        decoder/layer_{i}/self_attention/{query,key,value}
  [transformer.]h.{i}.attn.c_proj        decoder/layer_{i}/self_attention/out
  [transformer.]h.{i}.ln_2               decoder/layer_{i}/feed_forward_norm
  [transformer.]h.{i}.mlp.c_fc           decoder/layer_{i}/feed_forward/hidden
  [transformer.]h.{i}.mlp.c_proj         decoder/layer_{i}/feed_forward/output
  [transformer.]ln_f                     decoder/final_norm

HF's Conv1D stores its weight as (in, out), Flax's Dense kernel layout, so no matrix is
transposed. The fused c_attn (in, 3 * features) is split into its query, key and value
column blocks (head h owns columns [h * d, (h + 1) * d) of each, in both libraries).
LayerNorm weights are Flax's `scale`. `lm_head.weight`, when a file holds it, must equal
`wte.weight` (GPT-2 ties them); the `attn.bias` / `attn.masked_bias` causal-mask buffers
of older checkpoints are not weights and are skipped. Parameters are float32.
"""

import json
import pathlib

from flax import traverse_util
import jax
import numpy as np

from dlx.interop import safetensors_io
from dlx.interop.safetensors_io import CheckpointError
from dlx.interop.safetensors_io import CheckpointNotFoundError
from dlx.models.gpt import GPT
from dlx.nn.transformer import LAYER_NORM_EPSILON

CONFIG = "config.json"
PREFIX = "transformer."
# Older checkpoints store the causal mask as buffers; they carry no learned numbers.
_BUFFERS = (".attn.bias", ".attn.masked_bias")
# HF's names for GELU with the tanh approximation, which flax.linen.gelu computes.
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")
# config.json fields whose other values change what GPT-2 computes: field -> (the value
# dlx's GPT computes, the default when the field is absent).
_FIXED = {
  "scale_attn_weights": (True, True),
  "scale_attn_by_inverse_layer_idx": (False, False),
  "add_cross_attention": (False, False),
  "tie_word_embeddings": (True, True),
}


def from_hf_gpt2(directory, *, dropout_rate: float | None = None):
  """(GPT, {'params': ...}) from a Hugging Face GPT-2 directory; any size.

  n_layer, n_head, n_embd, n_positions and vocab_size come from config.json;
  `dropout_rate` defaults to its resid_pdrop (used only with train=True).
  `model.apply(variables, tokens)` returns (N, T, vocab_size) logits.
  """
  directory = pathlib.Path(directory)
  config = _read_config(directory)
  model = _model_from_config(config, dropout_rate)
  tensors, source = safetensors_io.read_checkpoint(directory)
  tensors = _strip_prefix(tensors)
  context = _describe(model)
  _check_lm_head(tensors, directory / source)
  expected = hf_shapes(model)
  for key, shape in expected.items():
    full = PREFIX + key
    if key not in tensors:
      raise CheckpointError(f"{directory / source}: no tensor {full} ({context})")
    if tuple(tensors[key].shape) != shape:
      raise CheckpointError(
        f"{directory / source}: {full} has shape {tuple(tensors[key].shape)}, "
        f"config.json ({context}) needs {shape}"
      )
  unknown = sorted(k for k in tensors if k not in expected and not k.endswith(_BUFFERS))
  if unknown:
    raise CheckpointError(
      f"{directory / source}: tensors GPT-2 has no place for: {', '.join(unknown[:5])}"
      + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    )
  return model, {"params": _params_from_hf(tensors, model)}


def to_hf_gpt2(model: GPT, variables, directory):
  """Writes config.json and model.safetensors that GPT2LMHeadModel.from_pretrained loads.

  The model's output bias, if it has one, must be zero: GPT-2 has none.
  """
  if not isinstance(model, GPT):
    raise CheckpointError(f"to_hf_gpt2 exports dlx.models.gpt.GPT, got {type(model).__name__}")
  params = variables["params"] if "params" in variables else variables
  flat = {"/".join(path): np.asarray(x) for path, x in traverse_util.flatten_dict(params).items()}
  bias = flat.pop("output_bias", None)
  if bias is not None and np.any(bias != 0):
    raise CheckpointError(
      f"GPT-2 has no output bias and this model's is nonzero (max |b| = "
      f"{np.max(np.abs(bias)):.3g}); train it with GPT(..., output_bias=False) to export it"
    )
  expected = dlx_shapes(model)
  for path, shape in expected.items():
    if path not in flat:
      raise CheckpointError(f"variables have no params/{path} ({_describe(model)})")
    if flat[path].shape != shape:
      raise CheckpointError(
        f"params/{path} has shape {flat[path].shape}, the model ({_describe(model)}) needs {shape}"
      )
  tensors = {PREFIX + k: v for k, v in _hf_from_params(flat, model).items()}
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  safetensors_io.write(directory / safetensors_io.WEIGHTS, tensors, metadata={"format": "pt"})
  (directory / CONFIG).write_text(json.dumps(hf_config(model), indent=2, sort_keys=True) + "\n")


def hf_config(model: GPT) -> dict:
  """The config.json of `model` as a GPT2LMHeadModel."""
  rate = float(model.dropout_rate)
  # GPT-2's tokenizer ends with <|endoftext|> (50256), its bos and eos; other vocabularies
  # have no such token.
  special = 50256 if model.vocab_size == 50257 else None
  return {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "vocab_size": model.vocab_size,
    "n_positions": model.max_length,
    "n_embd": model.features,
    "n_layer": model.num_layers,
    "n_head": model.num_heads,
    "n_inner": None,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": LAYER_NORM_EPSILON,
    "resid_pdrop": rate,
    "embd_pdrop": rate,
    "attn_pdrop": rate,
    "initializer_range": 0.02,
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "reorder_and_upcast_attn": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
    "use_cache": True,
    "bos_token_id": special,
    "eos_token_id": special,
    "dtype": "float32",
  }


def hf_shapes(model: GPT) -> dict[str, tuple]:
  """HF tensor name (without 'transformer.') -> shape, for `model`'s sizes."""
  f, v = model.features, model.vocab_size
  shapes = {"wte.weight": (v, f), "wpe.weight": (model.max_length, f)}
  for i in range(model.num_layers):
    for name, shape in (
      ("ln_1.weight", (f,)),
      ("ln_1.bias", (f,)),
      ("attn.c_attn.weight", (f, 3 * f)),
      ("attn.c_attn.bias", (3 * f,)),
      ("attn.c_proj.weight", (f, f)),
      ("attn.c_proj.bias", (f,)),
      ("ln_2.weight", (f,)),
      ("ln_2.bias", (f,)),
      ("mlp.c_fc.weight", (f, 4 * f)),
      ("mlp.c_fc.bias", (4 * f,)),
      ("mlp.c_proj.weight", (4 * f, f)),
      ("mlp.c_proj.bias", (f,)),
    ):
      shapes[f"h.{i}.{name}"] = shape
  shapes.update({"ln_f.weight": (f,), "ln_f.bias": (f,)})
  return shapes


def dlx_shapes(model: GPT) -> dict[str, tuple]:
  """dlx parameter path ('decoder/layer_0/...') -> shape, without the output bias."""
  f, v = model.features, model.vocab_size
  shapes = {
    "token_embedding/embed/embedding": (v, f),
    "position_embedding/embedding": (model.max_length, f),
  }
  for i in range(model.num_layers):
    layer = f"decoder/layer_{i}"
    for norm in ("self_attention_norm", "feed_forward_norm"):
      shapes.update({f"{layer}/{norm}/scale": (f,), f"{layer}/{norm}/bias": (f,)})
    for name in ("query", "key", "value", "out"):
      shapes.update({f"{layer}/self_attention/{name}/kernel": (f, f)})
      shapes.update({f"{layer}/self_attention/{name}/bias": (f,)})
    shapes.update({f"{layer}/feed_forward/hidden/kernel": (f, 4 * f)})
    shapes.update({f"{layer}/feed_forward/hidden/bias": (4 * f,)})
    shapes.update({f"{layer}/feed_forward/output/kernel": (4 * f, f)})
    shapes.update({f"{layer}/feed_forward/output/bias": (f,)})
  shapes.update({"decoder/final_norm/scale": (f,), "decoder/final_norm/bias": (f,)})
  return shapes


# HF name inside a block -> dlx path inside a layer (c_attn is split separately).
_BLOCK = {
  "ln_1.weight": "self_attention_norm/scale",
  "ln_1.bias": "self_attention_norm/bias",
  "attn.c_proj.weight": "self_attention/out/kernel",
  "attn.c_proj.bias": "self_attention/out/bias",
  "ln_2.weight": "feed_forward_norm/scale",
  "ln_2.bias": "feed_forward_norm/bias",
  "mlp.c_fc.weight": "feed_forward/hidden/kernel",
  "mlp.c_fc.bias": "feed_forward/hidden/bias",
  "mlp.c_proj.weight": "feed_forward/output/kernel",
  "mlp.c_proj.bias": "feed_forward/output/bias",
}
_TOP = {
  "wte.weight": "token_embedding/embed/embedding",
  "wpe.weight": "position_embedding/embedding",
  "ln_f.weight": "decoder/final_norm/scale",
  "ln_f.bias": "decoder/final_norm/bias",
}
_QKV = ("query", "key", "value")


def _on_device(array):
  """A float32 jax.Array of `array`, copied before returning: the NumPy array can then be
  freed at once, so host memory holds the file and one tensor's copy, never two files."""
  return jax.block_until_ready(jax.device_put(np.asarray(array, np.float32)))


def _params_from_hf(tensors: dict, model: GPT) -> dict:
  """dlx params from shape-checked HF tensors (prefix stripped), popped one at a time."""
  take = lambda key: _on_device(tensors.pop(key))
  flat = {path: take(key) for key, path in _TOP.items()}
  f = model.features
  for i in range(model.num_layers):
    layer = f"decoder/layer_{i}"
    for key, path in _BLOCK.items():
      flat[f"{layer}/{path}"] = take(f"h.{i}.{key}")
    weight = tensors.pop(f"h.{i}.attn.c_attn.weight")
    bias = tensors.pop(f"h.{i}.attn.c_attn.bias")
    for j, name in enumerate(_QKV):
      columns = slice(j * f, (j + 1) * f)
      flat[f"{layer}/self_attention/{name}/kernel"] = _on_device(weight[:, columns])
      flat[f"{layer}/self_attention/{name}/bias"] = _on_device(bias[columns])
  return traverse_util.unflatten_dict(flat, sep="/")


def _hf_from_params(flat: dict, model: GPT) -> dict:
  """HF tensors (no prefix) from shape-checked dlx params flattened by '/'."""
  as_f32 = lambda x: np.asarray(x, np.float32)
  tensors = {key: as_f32(flat[path]) for key, path in _TOP.items()}
  for i in range(model.num_layers):
    layer = f"decoder/layer_{i}"
    for key, path in _BLOCK.items():
      tensors[f"h.{i}.{key}"] = as_f32(flat[f"{layer}/{path}"])
    attention = f"{layer}/self_attention"
    tensors[f"h.{i}.attn.c_attn.weight"] = np.concatenate(
      [as_f32(flat[f"{attention}/{name}/kernel"]) for name in _QKV], axis=1
    )
    tensors[f"h.{i}.attn.c_attn.bias"] = np.concatenate(
      [as_f32(flat[f"{attention}/{name}/bias"]) for name in _QKV]
    )
  return tensors


def _read_config(directory: pathlib.Path) -> dict:
  path = directory / CONFIG
  if not path.is_file():
    raise CheckpointNotFoundError(f"{path}: no such file (a GPT-2 directory holds {CONFIG})")
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: not JSON ({e})") from None


def _model_from_config(config: dict, dropout_rate: float | None) -> GPT:
  """The GPT that config.json describes, or one line naming the field dlx cannot compute."""

  def bad(field, value, wanted):
    return CheckpointError(f"{CONFIG}: {field}={value!r}; dlx's GPT-2 computes {wanted}")

  if config.get("model_type", "gpt2") != "gpt2":
    raise bad("model_type", config.get("model_type"), "'gpt2'")
  for field in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
    if not isinstance(config.get(field), int) or config[field] < 1:
      raise bad(field, config.get(field), "a positive integer")
  features, heads = config["n_embd"], config["n_head"]
  if features % heads:
    raise bad("n_embd", features, f"a multiple of n_head={heads}")
  activation = config.get("activation_function", "gelu_new")
  if activation not in _TANH_GELUS:
    raise bad("activation_function", activation, " or ".join(map(repr, _TANH_GELUS)))
  epsilon = config.get("layer_norm_epsilon", LAYER_NORM_EPSILON)
  if epsilon != LAYER_NORM_EPSILON:
    raise bad("layer_norm_epsilon", epsilon, LAYER_NORM_EPSILON)
  if config.get("n_inner") not in (None, 4 * features):
    raise bad("n_inner", config["n_inner"], f"None or 4 * n_embd = {4 * features}")
  for field, (wanted, default) in _FIXED.items():
    if config.get(field, default) != wanted:
      raise bad(field, config[field], wanted)
  if dropout_rate is None:
    dropout_rate = float(config.get("resid_pdrop", 0.1))
  return GPT(
    vocab_size=config["vocab_size"],
    max_length=config["n_positions"],
    num_layers=config["n_layer"],
    num_heads=heads,
    features=features,
    dropout_rate=dropout_rate,
    output_bias=False,
  )


def _strip_prefix(tensors: dict) -> dict:
  """GPT2LMHeadModel names its tensors 'transformer.h.0...', GPT2Model 'h.0...'."""
  return {k[len(PREFIX) :] if k.startswith(PREFIX) else k: v for k, v in tensors.items()}


def _check_lm_head(tensors: dict, source: pathlib.Path):
  head = tensors.pop("lm_head.weight", None)
  embedding = tensors.get("wte.weight")
  if head is None or embedding is None:
    return
  if head.shape != embedding.shape or not np.array_equal(head, embedding):
    raise CheckpointError(
      f"{source}: lm_head.weight {tuple(head.shape)} differs from {PREFIX}wte.weight "
      f"{tuple(embedding.shape)}; dlx's GPT ties the output layer to the token embedding"
    )


def _describe(model: GPT) -> str:
  return (
    f"n_layer={model.num_layers}, n_head={model.num_heads}, n_embd={model.features}, "
    f"n_positions={model.max_length}, vocab_size={model.vocab_size}"
  )
