"""CLIP (Radford et al. 2021; docs/curriculum.md#f16): an image tower and a text tower
trained so that an image and its caption land close together in one embedding space.

The image tower is a small CNN (conv-ReLU-maxpool blocks, then an MLP); the text tower is
a pre-norm Transformer encoder over word tokens, read out at the end token (the last
non-pad position, as CLIP reads its GPT at [EOS]) or averaged over the real tokens. Both
are projected to `embed_dim` and L2-normalised, so their dot product is a cosine. The
cosines are multiplied by a learned logit scale exp(s), s initialised to log(1 / 0.07)
and clipped to [0, log(max_logit_scale)] (CLIP clips at 100) so the softmax cannot grow
arbitrarily sharp.

Options (each defaulting to the model above) make it Hugging Face's `CLIPModel`, OpenAI
CLIP's ViT variant (dlx/interop/hf_clip.py loads and writes its weights):

  image_tower='vit'        ViTImageTower: patch conv without bias, class embedding, learned
                           positions, a LayerNorm before the pre-norm encoder, a LayerNorm
                           on the class token, projection without bias
  pool='argmax' / 'eos'    read the text at the highest token id (OpenAI's rule: the end
                           token is the largest id) or at the first `eos_id`
  pad_id=None              no padding mask: only the causal one (HF's CLIPModel)
  *_activation             'quick_gelu' is x * sigmoid(1.702 x), OpenAI's GELU
  *_layer_norm_epsilon     the towers' LayerNorm epsilon (default 1e-5, HF's too)
  max_logit_scale=None     exp(s) without the clip (HF's forward applies none)

Causal attention means no position sees a later one, so padding after the end token
cannot change the end token's vector: HF's optional attention mask changes nothing that
CLIPModel returns, and dlx's HF configuration needs none.
"""

import math
from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.attention import causal_mask
from dlx.nn.attention import combine_masks
from dlx.nn.attention import padding_mask
from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense
from dlx.nn.transformer import LAYER_NORM_EPSILON
from dlx.nn.transformer import Encoder
from dlx.nn.transformer import LearnedPositionalEmbedding
from dlx.nn.transformer import TokenEmbedding

POOLS = ("end", "mean")
# Readouts at the end token that need no padding id (Hugging Face's CLIPTextModel).
EOS_POOLS = ("argmax", "eos")
IMAGE_TOWERS = ("cnn", "vit")


def l2_normalize(x, eps: float = 1e-12):
  """x / ||x||_2 along the last axis (in float32, whatever the compute dtype)."""
  x = x.astype(jnp.float32)
  return x / jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), eps))


def clipped_logit_scale(log_scale, max_logit_scale: Optional[float] = 100.0):
  """exp(s) with s clipped to [0, log(max_logit_scale)]: a temperature between
  1 / max_logit_scale and 1. Outside the range the gradient wrt s is 0.
  `max_logit_scale=None` is exp(s) unclipped."""
  if max_logit_scale is None:
    return jnp.exp(log_scale)
  return jnp.exp(jnp.clip(log_scale, 0.0, math.log(max_logit_scale)))


def logits_per_image(outputs):
  """(B_image, B_text) scaled cosines of CLIP's outputs: logit_scale * image @ text^T,
  Hugging Face's `logits_per_image` (its `logits_per_text` is the transpose)."""
  return outputs["logit_scale"] * outputs["image"] @ outputs["text"].T


class ImageTower(nn.Module):
  """(B, H, W, C) images -> (B, embed_dim): per width a 3x3 conv, ReLU and 2x2 max pool,
  then Dense(hidden)-ReLU-Dense(embed_dim)."""

  embed_dim: int
  widths: tuple = (32, 64)
  hidden: int = 128

  @nn.compact
  def __call__(self, images):
    if images.ndim != 4:
      raise ValueError(f"the image tower expects NHWC images, got shape {images.shape}")
    x = images
    for i, width in enumerate(self.widths):
      x = nn.relu(FlaxConv(width, (3, 3), name=f"conv_{i}")(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(Dense(self.hidden, name="hidden")(x))
    return Dense(self.embed_dim, name="projection")(x)


class ViTImageTower(nn.Module):
  """(B, H, W, C) images -> (B, embed_dim): CLIP's vision transformer.

  P x P patches embedded by a strided conv without bias, a learned class embedding
  prepended, learned positions added, a LayerNorm ('pre_norm'), a pre-norm encoder, and
  the class token projected without bias. The encoder's final LayerNorm acts on each
  token alone, so on the class token it is HF's post_layernorm. The position table's
  length, 1 + (H / P)(W / P), is fixed by `image_size` (square images) or, when that is
  None, by the images given at init.
  """

  embed_dim: int
  patch_size: int
  num_layers: int = 2
  num_heads: int = 4
  features: int = 64
  hidden: int = 128
  dropout_rate: float = 0.0
  activation: str = "quick_gelu"
  layer_norm_epsilon: float = LAYER_NORM_EPSILON
  image_size: Optional[int] = None

  @nn.compact
  def __call__(self, images, train: bool = False):
    if images.ndim != 4:
      raise ValueError(f"the image tower expects NHWC images, got shape {images.shape}")
    height, width = images.shape[1:3]
    side, p = self.image_size, self.patch_size
    if side is not None and (height, width) != (side, side):
      raise ValueError(f"the image tower takes {side}x{side} images, got {height}x{width}")
    if height % p or width % p:
      raise ValueError(f"image size {height}x{width} is not divisible by patch_size {p}")
    x = FlaxConv(
      self.features,
      (p, p),
      strides=(p, p),
      padding="VALID",
      use_bias=False,
      name="patch_embedding",
    )(images)
    batch = x.shape[0]
    x = x.reshape((batch, -1, self.features))  # Row-major patches, as torch's flatten.
    init = nn.initializers.normal(self.features**-0.5)
    class_embedding = self.param("class_embedding", init, (self.features,))
    x = jnp.concatenate([jnp.broadcast_to(class_embedding, (batch, 1, self.features)), x], 1)
    length = x.shape[1]
    x = x + LearnedPositionalEmbedding(length, self.features, name="position_embedding")(
      jnp.arange(length)
    )
    x = nn.LayerNorm(epsilon=self.layer_norm_epsilon, name="pre_norm")(x)
    x = Encoder(
      self.num_layers,
      self.num_heads,
      self.features,
      self.hidden,
      self.dropout_rate,
      norm="pre",
      activation=self.activation,
      layer_norm_epsilon=self.layer_norm_epsilon,
      name="encoder",
    )(x, train=train)
    return Dense(self.embed_dim, use_bias=False, name="projection")(x[:, 0])


class TextTower(nn.Module):
  """(B, T) int tokens, `pad_id` after the caption -> (B, embed_dim).

  Token embeddings plus learned positions, a pre-norm GELU encoder (causal like CLIP's
  GPT when `causal`, with padding hidden either way), then the end token's vector
  (pool='end': the last non-pad position) or the mean over non-pad positions
  (pool='mean'), projected without bias. pool='argmax' reads the position of the
  highest token id, pool='eos' the first position holding `eos_id` (position 0 when
  there is none, as Hugging Face's); `pad_id=None` hides no padding (these two pools
  only)."""

  vocab_size: int
  max_length: int
  embed_dim: int
  num_layers: int = 2
  num_heads: int = 4
  features: int = 64
  hidden: int = 128
  dropout_rate: float = 0.0
  causal: bool = True
  pool: str = "end"
  pad_id: Optional[int] = 0
  eos_id: Optional[int] = None
  activation: str = "gelu"
  layer_norm_epsilon: float = LAYER_NORM_EPSILON

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    if self.pool not in POOLS + EOS_POOLS:
      raise ValueError(f"pool must be one of {', '.join(POOLS + EOS_POOLS)}, got {self.pool!r}")
    if self.pad_id is None and self.pool in POOLS:
      raise ValueError(f"pool={self.pool!r} finds the caption by its padding; give a pad_id")
    if self.pool == "eos" and self.eos_id is None:
      raise ValueError("pool='eos' reads the text at eos_id; give one")
    if tokens.ndim != 2 or tokens.shape[1] > self.max_length:
      raise ValueError(f"expected (B, T <= {self.max_length}) tokens, got shape {tokens.shape}")
    length = tokens.shape[1]
    x = TokenEmbedding(self.vocab_size, self.features, name="token_embedding")(tokens)
    x = x + LearnedPositionalEmbedding(self.max_length, self.features, name="position_embedding")(
      jnp.arange(length)
    )
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    mask = None if self.pad_id is None else padding_mask(tokens, self.pad_id)
    if self.causal:
      mask = combine_masks(causal_mask(length), mask)
    x = Encoder(
      self.num_layers,
      self.num_heads,
      self.features,
      self.hidden,
      self.dropout_rate,
      norm="pre",
      activation=self.activation,
      layer_norm_epsilon=self.layer_norm_epsilon,
      name="encoder",
    )(x, mask, train)
    if self.pool in EOS_POOLS:
      # argmax returns the first maximum, as torch's does: HF's readout position.
      keys = tokens if self.pool == "argmax" else (tokens == self.eos_id).astype(jnp.int32)
      at = jnp.argmax(keys, axis=1)
      pooled = jnp.take_along_axis(x, at[:, None, None], axis=1)[:, 0]
      return Dense(self.embed_dim, use_bias=False, name="projection")(pooled)
    real = (tokens != self.pad_id).astype(x.dtype)  # (B, T)
    if self.pool == "end":
      last = jnp.maximum(jnp.sum(tokens != self.pad_id, axis=1) - 1, 0)
      pooled = jnp.take_along_axis(x, last[:, None, None], axis=1)[:, 0]
    else:
      pooled = jnp.sum(x * real[..., None], axis=1) / jnp.maximum(jnp.sum(real, 1), 1.0)[:, None]
    return Dense(self.embed_dim, use_bias=False, name="projection")(pooled)


class CLIP(nn.Module):
  """{'image': (B, H, W, C), 'text': (B, T) int} -> {'image': (B, D), 'text': (B', D),
  'logit_scale': ()}: unit-norm embeddings and exp of the clipped learned log scale.

  Initialise with both inputs; afterwards either may be left out (its embedding is then
  absent), so class prompts can be embedded alone. The two batches need not have the
  same size. `logits_per_image(outputs)` scales their cosines.

  image_tower='cnn' uses image_widths and image_hidden (its MLP); 'vit' uses patch_size,
  image_size, image_layers, image_heads, image_features and image_hidden (its MLP
  width). See the module docstring for the options that give Hugging Face's CLIPModel.
  """

  vocab_size: int
  max_length: int
  embed_dim: int = 64
  image_widths: tuple = (32, 64)
  image_hidden: int = 128
  text_layers: int = 2
  text_heads: int = 4
  text_features: int = 64
  text_hidden: int = 128
  dropout_rate: float = 0.0
  causal: bool = True
  pool: str = "end"
  init_temperature: float = 0.07
  max_logit_scale: Optional[float] = 100.0
  image_tower: str = "cnn"
  patch_size: int = 8
  image_size: Optional[int] = None
  image_layers: int = 2
  image_heads: int = 4
  image_features: int = 64
  image_activation: str = "quick_gelu"
  image_layer_norm_epsilon: float = LAYER_NORM_EPSILON
  text_activation: str = "gelu"
  text_layer_norm_epsilon: float = LAYER_NORM_EPSILON
  pad_id: Optional[int] = 0
  eos_id: Optional[int] = None

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    if not isinstance(inputs, dict) or not {"image", "text"} & set(inputs):
      raise ValueError("CLIP takes a dict with an 'image' and/or a 'text' entry")
    if self.image_tower not in IMAGE_TOWERS:
      raise ValueError(
        f"image_tower must be one of {', '.join(IMAGE_TOWERS)}, got {self.image_tower!r}"
      )
    log_scale = self.param(
      "log_logit_scale", nn.initializers.constant(math.log(1.0 / self.init_temperature)), ()
    )
    if self.image_tower == "vit":
      image_tower = ViTImageTower(
        self.embed_dim,
        self.patch_size,
        self.image_layers,
        self.image_heads,
        self.image_features,
        self.image_hidden,
        self.dropout_rate,
        self.image_activation,
        self.image_layer_norm_epsilon,
        self.image_size,
        name="image",
      )
      embed_image = lambda images: image_tower(images, train=train)
    else:
      embed_image = ImageTower(self.embed_dim, self.image_widths, self.image_hidden, name="image")
    text_tower = TextTower(
      self.vocab_size,
      self.max_length,
      self.embed_dim,
      self.text_layers,
      self.text_heads,
      self.text_features,
      self.text_hidden,
      self.dropout_rate,
      self.causal,
      self.pool,
      self.pad_id,
      self.eos_id,
      self.text_activation,
      self.text_layer_norm_epsilon,
      name="text",
    )
    outputs = {"logit_scale": clipped_logit_scale(log_scale, self.max_logit_scale)}
    if "image" in inputs:
      outputs["image"] = l2_normalize(embed_image(inputs["image"]))
    if "text" in inputs:
      outputs["text"] = l2_normalize(text_tower(inputs["text"], train=train))
    return outputs
