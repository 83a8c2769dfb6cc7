"""Hugging Face CLIP checkpoints (`CLIPModel`, ViT image tower) in and out of dlx's CLIP.

  from_hf_clip(directory) -> (model, variables)   model.apply(variables, {'image': images,
                                                  'text': tokens}) -> unit embeddings, scale
  to_hf_clip(model, variables, directory)         CLIPModel.from_pretrained(directory)

A directory is what `CLIPModel.save_pretrained` writes: `config.json` and
`model.safetensors` (or its shards and `model.safetensors.index.json`), read and written
as NumPy arrays without torch (dlx/interop/safetensors_io.py).

The model is `dlx.models.clip.CLIP` with image_tower='vit', pad_id=None,
max_logit_scale=None, pool 'eos' at text_config.eos_token_id (or 'argmax' when that id
is 2: HF's rule for configs written before its fix, where the end token is the largest
id) and the activations and LayerNorm epsilons of config.json. Images are channels last,
(N, H, W, C) = pixel_values.transpose(0, 2, 3, 1), already normalized (HF's image
processor does that, not the model). `dlx.models.clip.logits_per_image(outputs)` is HF's
logits_per_image. The weights map one to one ({t} = text, {v} = image, layer i):

  logit_scale                                  log_logit_scale
  text_projection.weight (D, Ft)               text/projection/kernel (Ft, D)
  visual_projection.weight (D, Fv)             image/projection/kernel (Fv, D)
  text_model.embeddings.token_embedding        text/token_embedding/embed/embedding
  text_model.embeddings.position_embedding     text/position_embedding/embedding
  text_model.final_layer_norm                  text/encoder/final_norm
  vision_model.embeddings.class_embedding      image/class_embedding
  vision_model.embeddings.patch_embedding      image/patch_embedding/kernel (p, p, C, Fv)
  vision_model.embeddings.position_embedding   image/position_embedding/embedding
  vision_model.pre_layrnorm                    image/pre_norm
  vision_model.post_layernorm                  image/encoder/final_norm
  {t,v}_model.encoder.layers.{i}.layer_norm1   {t,v}/encoder/layer_{i}/attention_norm
    .self_attn.{q,k,v,out}_proj                  .../self_attention/{query,key,value,out}
    .layer_norm2                                 .../feed_forward_norm
    .mlp.fc1, .mlp.fc2                           .../feed_forward/hidden, output

Linear weights (out, in) are transposed to Dense kernels (in, out), the patch conv's
(O, I, kh, kw) to (kh, kw, I, O), LayerNorm weights are Flax's `scale`; nothing else
changes, so the round trip is exact. The `position_ids` buffers of older checkpoints are
not weights and are skipped. Parameters are float32.
"""

import json
import math
import pathlib

from flax import traverse_util
import jax
import numpy as np

from dlx.interop import safetensors_io
from dlx.interop.safetensors_io import CheckpointError
from dlx.interop.safetensors_io import CheckpointNotFoundError
from dlx.models.clip import CLIP
from dlx.models.clip import EOS_POOLS

CONFIG = "config.json"
# HF's hidden_act -> dlx's activation; dlx's -> what it exports as.
_ACTIVATIONS = {
  "quick_gelu": "quick_gelu",
  "gelu": "gelu_exact",
  "gelu_new": "gelu",
  "gelu_pytorch_tanh": "gelu",
}
_HF_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu_exact": "gelu", "gelu": "gelu_new"}
# HF reads text_config.eos_token_id == 2 as "pool at the highest token id".
LEGACY_EOS = 2
# Non-persistent index buffers that older checkpoints saved.
_BUFFERS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")
# CLIPConfig's defaults for fields a config.json may leave out (configuration_clip.py).
_TEXT_DEFAULTS = {
  "vocab_size": 49408,
  "hidden_size": 512,
  "intermediate_size": 2048,
  "num_hidden_layers": 12,
  "num_attention_heads": 8,
  "max_position_embeddings": 77,
  "hidden_act": "quick_gelu",
  "layer_norm_eps": 1e-5,
  "eos_token_id": 49407,
}
_VISION_DEFAULTS = {
  "hidden_size": 768,
  "intermediate_size": 3072,
  "num_hidden_layers": 12,
  "num_attention_heads": 12,
  "num_channels": 3,
  "image_size": 224,
  "patch_size": 32,
  "hidden_act": "quick_gelu",
  "layer_norm_eps": 1e-5,
}
# OpenAI's BPE vocabulary: its special ids go into an exported config.json.
_OPENAI_VOCAB, _OPENAI_SPECIAL = 49408, {"bos_token_id": 49406, "pad_token_id": 1}


def from_hf_clip(directory, *, dropout_rate: float = 0.0):
  """(CLIP, {'params': ...}) from a Hugging Face CLIPModel directory; any size.

  Every size comes from config.json; `dropout_rate` is used only with train=True.
  """
  directory = pathlib.Path(directory)
  config = _read_config(directory)
  model = _model_from_config(config, dropout_rate)
  tensors, source = safetensors_io.read_checkpoint(directory)
  for key in _BUFFERS:
    tensors.pop(key, None)
  entries = weight_map(model, _num_channels(config))
  for key, _, shape, _ in entries:
    if key not in tensors:
      raise CheckpointError(f"{directory / source}: no tensor {key} ({_describe(model)})")
    if tuple(tensors[key].shape) != shape:
      raise CheckpointError(
        f"{directory / source}: {key} has shape {tuple(tensors[key].shape)}, "
        f"config.json ({_describe(model)}) needs {shape}"
      )
  unknown = sorted(set(tensors) - {key for key, *_ in entries})
  if unknown:
    raise CheckpointError(
      f"{directory / source}: tensors CLIPModel has no place for: {', '.join(unknown[:5])}"
      + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    )
  flat = {}
  for key, path, _, layout in entries:  # Popped one by one: one file in memory, not two.
    x = _to_dlx(layout, np.asarray(tensors.pop(key), np.float32))
    flat[path] = jax.block_until_ready(jax.device_put(x))
  return model, {"params": traverse_util.unflatten_dict(flat, sep="/")}


def to_hf_clip(model: CLIP, variables, directory):
  """Writes config.json and model.safetensors that CLIPModel.from_pretrained loads.

  The model must be what HF computes: image_tower='vit', causal text read with pool
  'eos' or 'argmax', activations HF names, and a log scale inside any clip it has. With
  a `pad_id` the model hides padding, which HF does when given the attention mask
  (tokens != pad_id); with pad_id=None it equals HF without one.
  """
  _check_exportable(model)
  params = variables["params"] if "params" in variables else variables
  flat = {"/".join(path): np.asarray(x) for path, x in traverse_util.flatten_dict(params).items()}
  kernel = flat.get("image/patch_embedding/kernel")
  channels = kernel.shape[2] if kernel is not None and kernel.ndim == 4 else 3
  table = flat.get("image/position_embedding/embedding")
  if table is None:
    raise CheckpointError("variables have no params/image/position_embedding/embedding")
  side = model.image_size or _side_from_positions(model, table)
  entries = weight_map(model, channels, side)
  for _, path, shape, layout in entries:
    wanted = _dlx_shape(layout, shape)
    if path not in flat:
      raise CheckpointError(f"variables have no params/{path} ({_describe(model, side)})")
    if flat[path].shape != wanted:
      raise CheckpointError(
        f"params/{path} has shape {flat[path].shape}, the model ({_describe(model, side)}) "
        f"needs {wanted}"
      )
  extra = sorted(set(flat) - {path for _, path, *_ in entries})
  if extra:
    raise CheckpointError(f"CLIPModel has no place for params/{extra[0]} ({len(extra)} such)")
  log_scale = float(flat["log_logit_scale"])
  if model.max_logit_scale is not None and not 0 <= log_scale <= math.log(model.max_logit_scale):
    raise CheckpointError(
      f"log_logit_scale={log_scale:.4g} lies outside the model's clip [0, "
      f"log({model.max_logit_scale:g})], which HF's CLIPModel does not apply; its scores "
      f"would differ"
    )
  tensors = {
    key: _to_hf(layout, np.asarray(flat[path], np.float32)) for key, path, _, layout in entries
  }
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  safetensors_io.write(directory / safetensors_io.WEIGHTS, tensors, metadata={"format": "pt"})
  config = hf_config(model, channels, side)
  (directory / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def hf_config(model: CLIP, num_channels: int = 3, image_size: int | None = None) -> dict:
  """The config.json of `model` as a CLIPModel."""
  eos = LEGACY_EOS if model.pool == "argmax" else model.eos_id
  special = _OPENAI_SPECIAL if model.vocab_size == _OPENAI_VOCAB else {}
  common = {
    "attention_dropout": float(model.dropout_rate),
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "projection_dim": model.embed_dim,
  }
  text = {
    "model_type": "clip_text_model",
    "vocab_size": model.vocab_size,
    "hidden_size": model.text_features,
    "intermediate_size": model.text_hidden,
    "num_hidden_layers": model.text_layers,
    "num_attention_heads": model.text_heads,
    "max_position_embeddings": model.max_length,
    "hidden_act": _HF_ACTIVATIONS[model.text_activation],
    "layer_norm_eps": model.text_layer_norm_epsilon,
    "bos_token_id": special.get("bos_token_id"),
    "eos_token_id": eos,
    "pad_token_id": special.get("pad_token_id"),
    **common,
  }
  vision = {
    "model_type": "clip_vision_model",
    "hidden_size": model.image_features,
    "intermediate_size": model.image_hidden,
    "num_hidden_layers": model.image_layers,
    "num_attention_heads": model.image_heads,
    "num_channels": num_channels,
    "image_size": image_size or model.image_size,
    "patch_size": model.patch_size,
    "hidden_act": _HF_ACTIVATIONS[model.image_activation],
    "layer_norm_eps": model.image_layer_norm_epsilon,
    **common,
  }
  return {
    "architectures": ["CLIPModel"],
    "model_type": "clip",
    "projection_dim": model.embed_dim,
    "logit_scale_init_value": math.log(1.0 / model.init_temperature),
    "initializer_factor": 1.0,
    "text_config": text,
    "vision_config": vision,
    "dtype": "float32",
  }


def weight_map(model: CLIP, num_channels: int = 3, image_size: int | None = None) -> list:
  """[(HF key, dlx path under params, HF shape, layout)] for `model`'s sizes; layout is
  'same', 'linear' ((out, in) <-> (in, out)) or 'conv' ((O, I, kh, kw) <-> (kh, kw, I, O))."""
  d, ft, fv, p = model.embed_dim, model.text_features, model.image_features, model.patch_size
  patches = ((image_size or model.image_size) // p) ** 2
  entries = [
    ("logit_scale", "log_logit_scale", (), "same"),
    ("text_projection.weight", "text/projection/kernel", (d, ft), "linear"),
    ("visual_projection.weight", "image/projection/kernel", (d, fv), "linear"),
  ]
  embeddings = "text_model.embeddings"
  entries += [
    (
      f"{embeddings}.token_embedding.weight",
      "text/token_embedding/embed/embedding",
      (model.vocab_size, ft),
      "same",
    ),
    (
      f"{embeddings}.position_embedding.weight",
      "text/position_embedding/embedding",
      (model.max_length, ft),
      "same",
    ),
  ]
  entries += _encoder(
    "text_model.encoder", "text/encoder", model.text_layers, ft, model.text_hidden
  )
  entries += _layer_norm("text_model.final_layer_norm", "text/encoder/final_norm", ft)
  embeddings = "vision_model.embeddings"
  entries += [
    (f"{embeddings}.class_embedding", "image/class_embedding", (fv,), "same"),
    (
      f"{embeddings}.patch_embedding.weight",
      "image/patch_embedding/kernel",
      (fv, num_channels, p, p),
      "conv",
    ),
    (
      f"{embeddings}.position_embedding.weight",
      "image/position_embedding/embedding",
      (patches + 1, fv),
      "same",
    ),
  ]
  entries += _layer_norm("vision_model.pre_layrnorm", "image/pre_norm", fv)
  entries += _encoder(
    "vision_model.encoder", "image/encoder", model.image_layers, fv, model.image_hidden
  )
  entries += _layer_norm("vision_model.post_layernorm", "image/encoder/final_norm", fv)
  return entries


def _layer_norm(hf: str, dlx: str, features: int) -> list:
  return [
    (f"{hf}.weight", f"{dlx}/scale", (features,), "same"),
    (f"{hf}.bias", f"{dlx}/bias", (features,), "same"),
  ]


def _linear(hf: str, dlx: str, features_in: int, features_out: int) -> list:
  return [
    (f"{hf}.weight", f"{dlx}/kernel", (features_out, features_in), "linear"),
    (f"{hf}.bias", f"{dlx}/bias", (features_out,), "same"),
  ]


def _encoder(hf: str, dlx: str, layers: int, features: int, hidden: int) -> list:
  entries = []
  for i in range(layers):
    t, d = f"{hf}.layers.{i}", f"{dlx}/layer_{i}"
    entries += _layer_norm(f"{t}.layer_norm1", f"{d}/attention_norm", features)
    for hf_name, dlx_name in (("q", "query"), ("k", "key"), ("v", "value"), ("out", "out")):
      entries += _linear(
        f"{t}.self_attn.{hf_name}_proj", f"{d}/self_attention/{dlx_name}", features, features
      )
    entries += _layer_norm(f"{t}.layer_norm2", f"{d}/feed_forward_norm", features)
    entries += _linear(f"{t}.mlp.fc1", f"{d}/feed_forward/hidden", features, hidden)
    entries += _linear(f"{t}.mlp.fc2", f"{d}/feed_forward/output", hidden, features)
  return entries


def _to_dlx(layout: str, x: np.ndarray) -> np.ndarray:
  if layout == "linear":
    return np.ascontiguousarray(x.T)
  if layout == "conv":
    return np.ascontiguousarray(x.transpose(2, 3, 1, 0))
  return x


def _to_hf(layout: str, x: np.ndarray) -> np.ndarray:
  if layout == "linear":
    return np.ascontiguousarray(x.T)
  if layout == "conv":
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1))
  return x


def _dlx_shape(layout: str, shape: tuple) -> tuple:
  if layout == "linear":
    return shape[::-1]
  if layout == "conv":
    return (shape[2], shape[3], shape[1], shape[0])
  return shape


def _check_exportable(model):
  """One line for a dlx CLIP that HF's CLIPModel does not compute."""
  if not isinstance(model, CLIP):
    raise CheckpointError(f"to_hf_clip exports dlx.models.clip.CLIP, got {type(model).__name__}")
  wanted = "; HF's CLIPModel needs"
  if model.image_tower != "vit":
    raise CheckpointError(
      f"this CLIP's image_tower={model.image_tower!r}{wanted} image_tower='vit'"
    )
  if model.pool not in EOS_POOLS or not model.causal:
    raise CheckpointError(
      f"this CLIP reads its text with pool={model.pool!r}, causal={model.causal}{wanted} "
      f"pool='eos' or 'argmax' and causal=True"
    )
  if model.pool == "eos" and model.eos_id is None:
    raise CheckpointError(f"pool='eos' with eos_id=None{wanted} the end token's id")
  if model.pool == "eos" and model.eos_id == LEGACY_EOS:
    raise CheckpointError(
      f"pool='eos' with eos_id={LEGACY_EOS}: HF's CLIPModel reads eos_token_id "
      f"{LEGACY_EOS} as pool='argmax'"
    )
  for tower in ("text", "image"):
    activation = getattr(model, f"{tower}_activation")
    if activation not in _HF_ACTIVATIONS:
      raise CheckpointError(
        f"this CLIP's {tower}_activation={activation!r}{wanted} one of "
        f"{', '.join(map(repr, _HF_ACTIVATIONS))}"
      )


def _side_from_positions(model: CLIP, table) -> int:
  """The square image side a ViT position table of 1 + (side / p)^2 rows implies."""
  rows = table.shape[0] if table is not None and table.ndim == 2 else 0
  per_side = math.isqrt(max(rows - 1, 0))
  if rows < 2 or per_side**2 != rows - 1:
    raise CheckpointError(
      f"params/image/position_embedding/embedding has {rows} rows, not 1 + (image_size / "
      f"{model.patch_size})^2 for a square image; set the model's image_size"
    )
  return per_side * model.patch_size


def _read_config(directory: pathlib.Path) -> dict:
  path = directory / CONFIG
  if not path.is_file():
    raise CheckpointNotFoundError(f"{path}: no such file (a CLIP directory holds {CONFIG})")
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: not JSON ({e})") from None


def _num_channels(config: dict) -> int:
  return (config.get("vision_config") or {}).get("num_channels", 3)


def _model_from_config(config: dict, dropout_rate: float) -> CLIP:
  """The CLIP that config.json describes, or one line naming the field dlx cannot compute."""

  def bad(field, value, wanted):
    return CheckpointError(f"{CONFIG}: {field}={value!r}; dlx's CLIP computes {wanted}")

  if config.get("model_type", "clip") != "clip":
    raise bad("model_type", config.get("model_type"), "'clip' (a CLIPModel's config.json)")
  sections = {}
  for name, defaults in (("text_config", _TEXT_DEFAULTS), ("vision_config", _VISION_DEFAULTS)):
    given = config.get(name) or {}
    if not isinstance(given, dict):
      raise bad(name, given, "a JSON object")
    section = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    positive = [k for k, v in defaults.items() if isinstance(v, int) and k != "eos_token_id"]
    for field in positive:
      value = section[field]
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad(f"{name}.{field}", value, "a positive integer")
    if section["hidden_size"] % section["num_attention_heads"]:
      raise bad(
        f"{name}.hidden_size",
        section["hidden_size"],
        f"a multiple of num_attention_heads={section['num_attention_heads']}",
      )
    if section["hidden_act"] not in _ACTIVATIONS:
      raise bad(f"{name}.hidden_act", section["hidden_act"], " or ".join(map(repr, _ACTIVATIONS)))
    epsilon = section["layer_norm_eps"]
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or epsilon <= 0:
      raise bad(f"{name}.layer_norm_eps", epsilon, "a positive number")
    sections[name] = section
  text, vision = sections["text_config"], sections["vision_config"]
  if vision["image_size"] % vision["patch_size"]:
    raise bad(
      "vision_config.image_size",
      vision["image_size"],
      f"a multiple of patch_size={vision['patch_size']}",
    )
  eos = text["eos_token_id"]
  if not isinstance(eos, int) or isinstance(eos, bool) or eos < 0:
    raise bad("text_config.eos_token_id", eos, "one token id (it reads the text there)")
  projection = config.get("projection_dim", 512)
  if not isinstance(projection, int) or isinstance(projection, bool) or projection < 1:
    raise bad("projection_dim", projection, "a positive integer")
  log_scale = config.get("logit_scale_init_value", 2.6592)
  return CLIP(
    vocab_size=text["vocab_size"],
    max_length=text["max_position_embeddings"],
    embed_dim=projection,
    image_hidden=vision["intermediate_size"],
    text_layers=text["num_hidden_layers"],
    text_heads=text["num_attention_heads"],
    text_features=text["hidden_size"],
    text_hidden=text["intermediate_size"],
    dropout_rate=dropout_rate,
    causal=True,
    pool="argmax" if eos == LEGACY_EOS else "eos",
    init_temperature=math.exp(-float(log_scale)),
    max_logit_scale=None,
    image_tower="vit",
    patch_size=vision["patch_size"],
    image_size=vision["image_size"],
    image_layers=vision["num_hidden_layers"],
    image_heads=vision["num_attention_heads"],
    image_features=vision["hidden_size"],
    image_activation=_ACTIVATIONS[vision["hidden_act"]],
    image_layer_norm_epsilon=float(vision["layer_norm_eps"]),
    text_activation=_ACTIVATIONS[text["hidden_act"]],
    text_layer_norm_epsilon=float(text["layer_norm_eps"]),
    pad_id=None,
    eos_id=None if eos == LEGACY_EOS else eos,
  )


def _describe(model: CLIP, image_size: int | None = None) -> str:
  return (
    f"text {model.text_layers} layers x {model.text_features} dims, {model.text_heads} heads, "
    f"MLP {model.text_hidden}, vocab {model.vocab_size}, {model.max_length} positions; "
    f"image {model.image_layers} layers x {model.image_features} dims, {model.image_heads} "
    f"heads, MLP {model.image_hidden}, {image_size or model.image_size}px / "
    f"{model.patch_size}px patches; projection {model.embed_dim}"
  )
