"""dlx.interop's CLIP loader and exporter against Hugging Face transformers: a seeded
random CLIPModel (every parameter perturbed, so a swapped norm, tower or transposed
matrix shows) saved with save_pretrained -> from_hf_clip -> the same image and text
embeddings and logits_per_image as torch, under both of HF's end-token rules;
to_hf_clip -> from_pretrained loads every tensor unchanged. The error cases need
safetensors only; the torch tests skip without torch and transformers. Tiny models only.
"""

import importlib.util
import json

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import interop
from dlx.interop import formats
from dlx.interop import hf_clip
from dlx.interop import safetensors_io
from dlx.models import clip

pytestmark = pytest.mark.skipif(
  importlib.util.find_spec("safetensors") is None,
  reason="dlx.interop needs safetensors (pip install 'dlx[interop]')",
)

# Text and image widths differ so that a tower's weights in the other's place show.
VISION = dict(
  hidden_size=32,
  intermediate_size=37,
  num_hidden_layers=2,
  num_attention_heads=4,
  image_size=32,
  patch_size=8,
  layer_norm_eps=1e-6,
)
TEXT = dict(
  hidden_size=40,
  intermediate_size=48,
  num_hidden_layers=2,
  num_attention_heads=4,
  vocab_size=99,
  max_position_embeddings=16,
  eos_token_id=5,  # Neither 2 (HF's legacy rule) nor the largest id.
  bos_token_id=4,
  pad_token_id=0,
)
PROJECTION, IMAGES, TEXTS = 24, 3, 4


def _torch_and_transformers():
  torch = pytest.importorskip("torch", reason="the parity tests need torch")
  transformers = pytest.importorskip("transformers", reason="the parity tests need transformers")
  return torch, transformers


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
  """(CLIPModel in eval mode, the directory save_pretrained wrote it to)."""
  torch, transformers = _torch_and_transformers()
  config = transformers.CLIPConfig(
    text_config=TEXT, vision_config=VISION, projection_dim=PROJECTION
  )
  torch.manual_seed(0)
  model = transformers.CLIPModel(config).eval()
  with torch.no_grad():  # HF starts biases at 0 and norms at 1; make every tensor distinct.
    for parameter in model.parameters():
      parameter.add_(0.1 * torch.randn_like(parameter))
  directory = tmp_path_factory.mktemp("hf_clip")
  model.save_pretrained(directory)
  assert (directory / "model.safetensors").is_file()
  return model, directory


@pytest.fixture(scope="module")
def imported(hf_model):
  return interop.from_hf_clip(hf_model[1])


def _inputs(seed=0):
  """NCHW pixel values and (TEXTS, 16) token ids with an end token in every row: at
  different places, twice in row 1 (the first counts), and other tokens after it."""
  rng = np.random.default_rng(seed)
  pixels = rng.normal(size=(IMAGES, 3, 32, 32)).astype(np.float32)
  eos, length = TEXT["eos_token_id"], TEXT["max_position_embeddings"]
  tokens = rng.integers(eos + 1, TEXT["vocab_size"], (TEXTS, length)).astype(np.int32)
  for row, at in enumerate((length - 1, 3, 7, 0)):
    tokens[row, at] = eos
  tokens[1, 10] = eos
  return pixels, tokens


def _dlx_outputs(model, variables, pixels, tokens):
  def run(variables, images, tokens):
    outputs = model.apply(variables, {"image": images, "text": tokens})
    return outputs["image"], outputs["text"], clip.logits_per_image(outputs)

  images = jnp.asarray(pixels.transpose(0, 2, 3, 1))  # NCHW -> NHWC
  return [np.asarray(x) for x in jax.jit(run)(variables, images, jnp.asarray(tokens))]


def _assert_close(ours, theirs, name):
  assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
  relative = np.abs(ours - theirs).max() / np.abs(theirs).max()
  assert relative < 1e-4, (name, relative)


@pytest.mark.torch
def test_embeddings_and_logits_match_torch(hf_model, imported):
  torch, _ = _torch_and_transformers()
  model, variables = imported
  assert (model.image_tower, model.pool, model.eos_id, model.pad_id) == ("vit", "eos", 5, None)
  assert (model.text_features, model.image_features, model.embed_dim) == (40, 32, PROJECTION)
  assert (model.image_layer_norm_epsilon, model.text_layer_norm_epsilon) == (1e-6, 1e-5)
  assert model.image_activation == model.text_activation == "quick_gelu"
  pixels, tokens = _inputs()
  ours = _dlx_outputs(model, variables, pixels, tokens)
  with torch.no_grad():
    out = hf_model[0](
      input_ids=torch.from_numpy(tokens).long(), pixel_values=torch.from_numpy(pixels)
    )
  theirs = [out.image_embeds, out.text_embeds, out.logits_per_image]
  for name, a, b in zip(("image_embeds", "text_embeds", "logits_per_image"), ours, theirs):
    _assert_close(a, b.numpy(), name)
  assert ours[2].shape == (IMAGES, TEXTS)


@pytest.mark.torch
def test_eos_token_id_2_reads_the_highest_token_as_hf_does(hf_model, tmp_path):
  torch, transformers = _torch_and_transformers()
  directory = _copy_with(hf_model[1], tmp_path, lambda t: t)
  config = json.loads((directory / "config.json").read_text())
  config["text_config"]["eos_token_id"] = hf_clip.LEGACY_EOS
  (directory / "config.json").write_text(json.dumps(config))
  model, variables = interop.from_hf_clip(directory)
  assert (model.pool, model.eos_id) == ("argmax", None)
  _, tokens = _inputs(seed=1)
  tokens[:, 0] = hf_clip.LEGACY_EOS  # The argmax rule ignores it: not the largest id.
  ours = jax.jit(model.apply)(variables, {"text": jnp.asarray(tokens)})["text"]
  legacy = transformers.CLIPModel.from_pretrained(directory).eval()
  with torch.no_grad():
    theirs = legacy.get_text_features(input_ids=torch.from_numpy(tokens).long())
  theirs = getattr(theirs, "pooler_output", theirs).numpy()
  theirs = theirs / np.linalg.norm(theirs, axis=-1, keepdims=True)
  _assert_close(np.asarray(ours), theirs, "text_embeds")


@pytest.mark.torch
def test_export_loads_in_transformers_unchanged(hf_model, imported, tmp_path):
  torch, transformers = _torch_and_transformers()
  interop.to_hf_clip(*imported, tmp_path)
  loaded, info = transformers.CLIPModel.from_pretrained(tmp_path, output_loading_info=True)
  assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
  original, exported = hf_model[0].state_dict(), loaded.state_dict()
  assert sorted(exported) == sorted(original)
  different = [k for k in original if not torch.equal(original[k], exported[k])]
  assert not different, different
  for section in ("text_config", "vision_config"):
    mine, theirs = getattr(loaded.config, section), getattr(hf_model[0].config, section)
    fields = TEXT if section == "text_config" else VISION
    for field in set(fields) - {"bos_token_id", "pad_token_id"}:
      assert getattr(mine, field) == getattr(theirs, field), (section, field)
    assert mine.hidden_act == "quick_gelu"
  assert loaded.config.projection_dim == PROJECTION


# ------------------------------------------------------- safetensors only (no torch)

SMALL = dict(
  vocab_size=20,
  max_length=6,
  embed_dim=5,
  image_hidden=12,
  text_layers=1,
  text_heads=2,
  text_features=8,
  text_hidden=10,
  pool="eos",
  eos_id=3,
  pad_id=None,
  max_logit_scale=None,
  image_tower="vit",
  patch_size=4,
  image_size=8,
  image_layers=1,
  image_heads=2,
  image_features=6,
)


@pytest.fixture(scope="module")
def dlx_checkpoint(tmp_path_factory):
  """A directory to_hf_clip wrote from random dlx parameters (NumPy, no init to compile)
  of the shapes the weight map gives, and those parameters."""
  model = clip.CLIP(**SMALL)
  rng = np.random.default_rng(0)
  flat = {
    path: rng.normal(size=hf_clip._dlx_shape(layout, shape)).astype(np.float32)
    for _, path, shape, layout in hf_clip.weight_map(model)
  }
  params = traverse_util.unflatten_dict(flat, sep="/")
  directory = tmp_path_factory.mktemp("dlx_clip")
  interop.to_hf_clip(model, {"params": params}, directory)
  return directory, params


def _copy_with(source, destination, edit):
  """Copies a checkpoint directory, passing its tensors through `edit(dict)`."""
  destination.mkdir(exist_ok=True)
  (destination / "config.json").write_text((source / "config.json").read_text())
  tensors = safetensors_io.read(source / "model.safetensors")
  safetensors_io.write(destination / "model.safetensors", edit(dict(tensors)))
  return destination


def _edit_config(directory, edit):
  config = json.loads((directory / "config.json").read_text())
  edit(config)
  (directory / "config.json").write_text(json.dumps(config))


def test_round_trip_without_torch(dlx_checkpoint):
  directory, params = dlx_checkpoint
  model, variables = interop.from_hf_clip(directory)
  assert model == clip.CLIP(**{**SMALL, "init_temperature": model.init_temperature})
  flat_a = jax.tree_util.tree_leaves_with_path(variables["params"])
  flat_b = jax.tree_util.tree_leaves_with_path(params)
  assert [k for k, _ in flat_a] == [k for k, _ in flat_b]
  for (path, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
  config = json.loads((directory / "config.json").read_text())
  assert config["text_config"]["eos_token_id"] == 3
  assert config["vision_config"]["image_size"] == 8
  assert config["text_config"]["bos_token_id"] is None  # Not OpenAI's vocabulary.


def test_misshaped_key_names_the_key_and_both_shapes(dlx_checkpoint, tmp_path):
  key = "vision_model.encoder.layers.0.mlp.fc1.weight"

  def cut_a_row(tensors):
    tensors[key] = tensors[key][:-1]
    return tensors

  broken = _copy_with(dlx_checkpoint[0], tmp_path, cut_a_row)
  with pytest.raises(safetensors_io.CheckpointError) as error:
    interop.from_hf_clip(broken)
  message = str(error.value)
  assert "\n" not in message
  assert key in message and "(11, 6)" in message and "(12, 6)" in message, message


def test_missing_and_unknown_keys_are_named(dlx_checkpoint, tmp_path):
  key = "text_model.encoder.layers.0.self_attn.k_proj.bias"
  missing = lambda t: {k: v for k, v in t.items() if k != key}
  with pytest.raises(safetensors_io.CheckpointError, match=f"no tensor {key} .*text 1 layers"):
    interop.from_hf_clip(_copy_with(dlx_checkpoint[0], tmp_path / "missing", missing))
  extra = lambda t: {**t, "text_model.encoder.layers.1.mlp.fc1.bias": np.ones(10, np.float32)}
  with pytest.raises(safetensors_io.CheckpointError, match="no place for: .*layers.1.mlp"):
    interop.from_hf_clip(_copy_with(dlx_checkpoint[0], tmp_path / "extra", extra))
  buffers = lambda t: {**t, "vision_model.embeddings.position_ids": np.arange(5)[None]}
  interop.from_hf_clip(_copy_with(dlx_checkpoint[0], tmp_path / "buffers", buffers))


@pytest.mark.parametrize(
  "section,field,value,match",
  [
    ("vision_config", "hidden_act", "relu", "vision_config.hidden_act='relu'; .*'quick_gelu'"),
    ("text_config", "num_attention_heads", 3, "hidden_size=8; .*multiple of"),
    ("vision_config", "image_size", [8, 8], "image_size=\\[8, 8\\]; .*positive integer"),
    ("text_config", "eos_token_id", [3, 4], "eos_token_id=\\[3, 4\\]; .*one token id"),
    (None, "model_type", "siglip", "model_type='siglip'"),
  ],
)
def test_config_dlx_cannot_compute_is_one_line(
  dlx_checkpoint, tmp_path, section, field, value, match
):
  directory = _copy_with(dlx_checkpoint[0], tmp_path, lambda t: t)

  def edit(config):
    (config[section] if section else config)[field] = value

  _edit_config(directory, edit)
  with pytest.raises(safetensors_io.CheckpointError, match=match) as error:
    interop.from_hf_clip(directory)
  assert "\n" not in str(error.value)


def test_gelu_configs_map_to_dlx_activations(dlx_checkpoint, tmp_path):
  directory = _copy_with(dlx_checkpoint[0], tmp_path, lambda t: t)

  def edit(config):
    config["text_config"]["hidden_act"] = "gelu"
    config["vision_config"]["hidden_act"] = "gelu_new"

  _edit_config(directory, edit)
  model, _ = interop.from_hf_clip(directory)
  assert (model.text_activation, model.image_activation) == ("gelu_exact", "gelu")
  (directory / "config.json").unlink()
  with pytest.raises(safetensors_io.CheckpointNotFoundError, match="config.json"):
    interop.from_hf_clip(directory)


def test_export_refuses_what_hf_does_not_compute(dlx_checkpoint, tmp_path):
  params = dlx_checkpoint[1]
  cases = [
    ({"image_tower": "cnn"}, "image_tower='cnn'"),
    ({"pool": "end", "pad_id": 0}, "pool='end'"),
    ({"text_activation": "relu"}, "text_activation='relu'"),
    ({"eos_id": 2}, "reads eos_token_id 2 as pool='argmax'"),
    ({"image_size": 16}, "image/position_embedding/embedding has shape \\(5, 6\\).* \\(17, 6\\)"),
  ]
  for change, match in cases:
    with pytest.raises(safetensors_io.CheckpointError, match=match):
      interop.to_hf_clip(clip.CLIP(**{**SMALL, **change}), {"params": params}, tmp_path)
  clipped = clip.CLIP(**{**SMALL, "max_logit_scale": 100.0})
  outside = {**params, "log_logit_scale": np.float32(5.0)}
  with pytest.raises(safetensors_io.CheckpointError, match="outside the model's clip"):
    interop.to_hf_clip(clipped, {"params": outside}, tmp_path)
  inside = {**params, "log_logit_scale": np.float32(2.0)}
  interop.to_hf_clip(clipped, {"params": inside}, tmp_path / "inside")  # exp(2) either way


def test_registered_as_a_source_and_an_export(dlx_checkpoint, tmp_path):
  directory, params = dlx_checkpoint
  variables = formats.SOURCES["hf-clip"].load(str(directory))
  np.testing.assert_array_equal(variables["params"]["log_logit_scale"], params["log_logit_scale"])
  assert formats.EXPORTS["hf-clip"].out == "DIR"
  formats.EXPORTS["hf-clip"].write(clip.CLIP(**SMALL), {"params": params}, tmp_path, {})
  assert (tmp_path / "model.safetensors").is_file()
