"""CLIP (Radford et al. 2021; docs/curriculum.md#f16): an image tower and a text tower
trained so that an image and its caption land close together in one embedding space.

The image tower is a small CNN (conv-ReLU-maxpool blocks, then an MLP); the text tower is
a pre-norm Transformer encoder over word tokens, read out at the end token (the last
non-pad position, as CLIP reads its GPT at [EOS]) or averaged over the real tokens. Both
are projected to `embed_dim` and L2-normalised, so their dot product is a cosine. The
cosines are multiplied by a learned logit scale exp(s), s initialised to log(1 / 0.07)
and clipped to [0, log(max_logit_scale)] (CLIP clips at 100) so the softmax cannot grow
arbitrarily sharp.
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.attention import causal_mask
from dlx.nn.attention import combine_masks
from dlx.nn.attention import padding_mask
from dlx.nn.transformer import Encoder
from dlx.nn.transformer import LearnedPositionalEmbedding
from dlx.nn.transformer import TokenEmbedding

POOLS = ("end", "mean")


def l2_normalize(x, eps: float = 1e-12):
  """x / ||x||_2 along the last axis (in float32, whatever the compute dtype)."""
  x = x.astype(jnp.float32)
  return x / jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), eps))


def clipped_logit_scale(log_scale, max_logit_scale: float = 100.0):
  """exp(s) with s clipped to [0, log(max_logit_scale)]: a temperature between
  1 / max_logit_scale and 1. Outside the range the gradient wrt s is 0."""
  return jnp.exp(jnp.clip(log_scale, 0.0, math.log(max_logit_scale)))


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
      x = nn.relu(nn.Conv(width, (3, 3), name=f"conv_{i}")(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.hidden, name="hidden")(x))
    return nn.Dense(self.embed_dim, name="projection")(x)


class TextTower(nn.Module):
  """(B, T) int tokens, `pad_id` after the caption -> (B, embed_dim).

  Token embeddings plus learned positions, a pre-norm GELU encoder (causal like CLIP's
  GPT when `causal`, with padding hidden either way), then the end token's vector
  (pool='end': the last non-pad position) or the mean over non-pad positions
  (pool='mean'), projected without bias."""

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
  pad_id: int = 0

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    if self.pool not in POOLS:
      raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
    if tokens.ndim != 2 or tokens.shape[1] > self.max_length:
      raise ValueError(f"expected (B, T <= {self.max_length}) tokens, got shape {tokens.shape}")
    length = tokens.shape[1]
    x = TokenEmbedding(self.vocab_size, self.features, name="token_embedding")(tokens)
    x = x + LearnedPositionalEmbedding(self.max_length, self.features, name="position_embedding")(
      jnp.arange(length)
    )
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    mask = padding_mask(tokens, self.pad_id)
    if self.causal:
      mask = combine_masks(causal_mask(length), mask)
    x = Encoder(
      self.num_layers,
      self.num_heads,
      self.features,
      self.hidden,
      self.dropout_rate,
      norm="pre",
      activation="gelu",
      name="encoder",
    )(x, mask, train)
    real = (tokens != self.pad_id).astype(x.dtype)  # (B, T)
    if self.pool == "end":
      last = jnp.maximum(jnp.sum(tokens != self.pad_id, axis=1) - 1, 0)
      pooled = jnp.take_along_axis(x, last[:, None, None], axis=1)[:, 0]
    else:
      pooled = jnp.sum(x * real[..., None], axis=1) / jnp.maximum(jnp.sum(real, 1), 1.0)[:, None]
    return nn.Dense(self.embed_dim, use_bias=False, name="projection")(pooled)


class CLIP(nn.Module):
  """{'image': (B, H, W, C), 'text': (B, T) int} -> {'image': (B, D), 'text': (B', D),
  'logit_scale': ()}: unit-norm embeddings and exp of the clipped learned log scale.

  Initialise with both inputs; afterwards either may be left out (its embedding is then
  absent), so class prompts can be embedded alone. The two batches need not have the
  same size."""

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
  max_logit_scale: float = 100.0

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    if not isinstance(inputs, dict) or not {"image", "text"} & set(inputs):
      raise ValueError("CLIP takes a dict with an 'image' and/or a 'text' entry")
    log_scale = self.param(
      "log_logit_scale", nn.initializers.constant(math.log(1.0 / self.init_temperature)), ()
    )
    image_tower = ImageTower(self.embed_dim, self.image_widths, self.image_hidden, name="image")
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
      name="text",
    )
    outputs = {"logit_scale": clipped_logit_scale(log_scale, self.max_logit_scale)}
    if "image" in inputs:
      outputs["image"] = l2_normalize(image_tower(inputs["image"]))
    if "text" in inputs:
      outputs["text"] = l2_normalize(text_tower(inputs["text"], train=train))
    return outputs
