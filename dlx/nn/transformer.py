"""Transformer building blocks (docs/curriculum.md#e5, #e7).

Embeddings (docs/curriculum.md#e5): a token embedding turns ids into vectors
and a positional encoding is added to them, because self-attention itself
ignores order. Positions are either learned (GPT, ViT) or the fixed sinusoids
of Vaswani et al. 2017.

Blocks (docs/curriculum.md#e7, "Add & Layer Normalization", "Feedforward
Network"): every sub-layer (attention or the position-wise FFN) is wrapped in a
residual connection and a layer norm. Two orderings are supported:

  norm='post'  x = LayerNorm(x + Dropout(Sublayer(x)))   Vaswani et al. 2017.
  norm='pre'   x = x + Dropout(Sublayer(LayerNorm(x)))   GPT-2, ViT; the
               stack then ends with one more LayerNorm.

Layer norms use epsilon 1e-5 (PyTorch's default), so the layers can be checked
against torch.nn.TransformerEncoderLayer with copied weights; the encoder's
`layer_norm_epsilon` changes it (torchvision's ViT: 1e-6). Activations: 'relu', 'gelu'
(Flax's default tanh approximation, GPT-2's) and 'gelu_exact' (the erf form, PyTorch's
nn.GELU(), torchvision's ViT).
'quick_gelu' is x * sigmoid(1.702 x), OpenAI CLIP's (Hugging Face's CLIPModel).
"""

import functools
from typing import ClassVar, Optional

import flax.linen as nn
import jax.numpy as jnp

from dlx.kernels import gelu as kernels_gelu
from dlx.kernels import route as kernels_route
from dlx.nn import normalization
from dlx.nn.attention import MultiHeadAttention
from dlx.nn.dense import Dense
from dlx.nn.embeddings import sinusoidal_embedding

LAYER_NORM_EPSILON = 1e-5
ACTIVATIONS = {
  "relu": nn.relu,
  # nn.gelu's function, through dlx.kernels.gelu: oneDNN's on its route (docs/cpu_kernels.md).
  "gelu": kernels_gelu.gelu,
  "gelu_exact": functools.partial(kernels_gelu.gelu, approximate=False),
  "quick_gelu": lambda x: x * nn.sigmoid(1.702 * x),
}


def _layer_norm(name, epsilon: float = LAYER_NORM_EPSILON):
  # oneDNN's layer norm on its route (the same parameters as flax's; docs/cpu_kernels.md).
  if kernels_route.current() == "onednn":
    return normalization.LayerNorm(epsilon=epsilon, name=name)
  return nn.LayerNorm(epsilon=epsilon, name=name)


def _check_norm(norm):
  if norm not in ("pre", "post"):
    raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")


def sinusoidal_positions(length: int, features: int):
  """(length, features) fixed positional encoding of Vaswani et al. 2017.

  PE(p, i) = sin(p / 10000^(2i/d)) and cos(p / 10000^(2i/d)). The sines fill
  the first half of the columns and the cosines the second half
  (dlx.nn.embeddings.sinusoidal_embedding), a fixed permutation of the paper's
  interleaved columns, which makes no difference to a model that adds them.
  """
  return sinusoidal_embedding(jnp.arange(length), features)


class TokenEmbedding(nn.Module):
  """Token ids (...,) int -> (..., features) vectors; `attend` for tied outputs.

  `scale=True` multiplies the vectors by sqrt(features), as in Vaswani et al.
  The default init is N(0, 1 / features).
  """

  vocab_size: int
  features: int
  scale: bool = False
  embedding_init: Optional[nn.initializers.Initializer] = None

  def setup(self):
    init = self.embedding_init or nn.initializers.normal(self.features**-0.5)
    self.embed = nn.Embed(self.vocab_size, self.features, embedding_init=init)

  def __call__(self, tokens):
    x = self.embed(tokens)
    return x * jnp.sqrt(float(self.features)) if self.scale else x

  def attend(self, x):
    """Logits x @ E^T over the vocabulary (weight tying: no output matrix)."""
    return self.embed.attend(x)


class LearnedPositionalEmbedding(nn.Module):
  """Learned table of `max_length` position vectors; call with int positions."""

  max_length: int
  features: int
  embedding_init: nn.initializers.Initializer = nn.initializers.normal(0.02)

  @nn.compact
  def __call__(self, positions):
    table = self.param("embedding", self.embedding_init, (self.max_length, self.features))
    return jnp.take(table, positions, axis=0)


class FeedForward(nn.Module):
  """Position-wise FFN: Dense(hidden) -> activation -> dropout -> Dense(d).

  FFN(x) = max(0, x W1 + b1) W2 + b2 (Vaswani et al., ReLU) or with GELU
  (GPT, ViT). The same weights apply to every position independently.
  """

  # Tensor parallelism (dlx/training/sharding.py): hidden units split column-wise in
  # `hidden`, row-wise in `output`.
  LOGICAL_AXES: ClassVar[dict] = {
    "hidden/kernel": ("embed", "mlp"),
    "hidden/bias": ("mlp",),
    "output/kernel": ("mlp", "embed"),
    "output/bias": ("embed",),
  }

  hidden: int
  dropout_rate: float = 0.0
  activation: str = "relu"

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
    features = x.shape[-1]
    x = Dense(self.hidden, name="hidden")(x)
    x = ACTIVATIONS[self.activation](x)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    return Dense(features, name="output")(x)


def _sublayer(
  x,
  sublayer,
  norm: str,
  norm_name: str,
  dropout_rate: float,
  train: bool,
  epsilon: float = LAYER_NORM_EPSILON,
):
  """Residual sub-layer with add & norm; call inside a compact method.

  `sublayer(h)` returns (features, attention weights or None).
  pre:  x + Dropout(sublayer(LayerNorm(x))).
  post: LayerNorm(x + Dropout(sublayer(x))).
  """
  h = _layer_norm(norm_name, epsilon)(x) if norm == "pre" else x
  out, weights = sublayer(h)
  x = x + nn.Dropout(dropout_rate)(out, deterministic=not train)
  if norm == "post":
    x = _layer_norm(norm_name, epsilon)(x)
  return x, weights


class EncoderLayer(nn.Module):
  """Self-attention + FFN, each with add & norm. (B, T, features) -> same.

  Call: layer(x, mask=None, train=False, return_attention=False); with
  return_attention it returns (x, weights (B, heads, T, T)).
  """

  num_heads: int
  features: int
  hidden: int
  dropout_rate: float = 0.0
  norm: str = "post"
  activation: str = "relu"
  layer_norm_epsilon: float = LAYER_NORM_EPSILON

  @nn.compact
  def __call__(self, x, mask=None, train: bool = False, return_attention: bool = False):
    _check_norm(self.norm)
    attention = MultiHeadAttention(
      self.num_heads, self.features, dropout_rate=self.dropout_rate, name="self_attention"
    )
    ffn = FeedForward(self.hidden, self.dropout_rate, self.activation, name="feed_forward")
    x, weights = _sublayer(
      x,
      lambda h: attention(h, mask=mask, train=train, return_weights=True),
      self.norm,
      "attention_norm",
      self.dropout_rate,
      train,
      self.layer_norm_epsilon,
    )
    x, _ = _sublayer(
      x,
      lambda h: (ffn(h, train=train), None),
      self.norm,
      "feed_forward_norm",
      self.dropout_rate,
      train,
      self.layer_norm_epsilon,
    )
    return (x, weights) if return_attention else x


class DecoderLayer(nn.Module):
  """Masked self-attention + cross-attention + FFN, each with add & norm.

  Call: layer(x, memory=None, self_mask=None, cross_mask=None, train=False,
  return_attention=False). `memory` is the encoder output (B, S, features);
  without it the cross-attention is skipped, which gives the GPT block.
  `self_mask` is usually causal_mask(T) (combined with target padding);
  `cross_mask` usually padding_mask(source). With return_attention it returns
  (x, {'self': (B, heads, T, T), 'cross': (B, heads, T, S) or None}).
  `decode=True` caches the self-attention keys/values (see
  MultiHeadAttention); then self_mask must broadcast to (B, heads, T,
  max_length) or be None. `attention_window=w` makes the self-attention causal
  sliding-window attention at T x w cost (docs/curriculum.md#e6); self_mask
  must then be None (outside decode mode).
  """

  num_heads: int
  features: int
  hidden: int
  dropout_rate: float = 0.0
  norm: str = "post"
  activation: str = "relu"
  decode: bool = False
  attention_window: Optional[int] = None

  @nn.compact
  def __call__(
    self,
    x,
    memory=None,
    self_mask=None,
    cross_mask=None,
    train: bool = False,
    return_attention: bool = False,
  ):
    _check_norm(self.norm)
    self_attention = MultiHeadAttention(
      self.num_heads,
      self.features,
      dropout_rate=self.dropout_rate,
      decode=self.decode,
      attention_window=self.attention_window,
      name="self_attention",
    )
    ffn = FeedForward(self.hidden, self.dropout_rate, self.activation, name="feed_forward")
    x, self_weights = _sublayer(
      x,
      lambda h: self_attention(h, mask=self_mask, train=train, return_weights=True),
      self.norm,
      "self_attention_norm",
      self.dropout_rate,
      train,
    )
    cross_weights = None
    if memory is not None:
      cross_attention = MultiHeadAttention(
        self.num_heads, self.features, dropout_rate=self.dropout_rate, name="cross_attention"
      )
      x, cross_weights = _sublayer(
        x,
        lambda h: cross_attention(h, memory, mask=cross_mask, train=train, return_weights=True),
        self.norm,
        "cross_attention_norm",
        self.dropout_rate,
        train,
      )
    x, _ = _sublayer(
      x,
      lambda h: (ffn(h, train=train), None),
      self.norm,
      "feed_forward_norm",
      self.dropout_rate,
      train,
    )
    if return_attention:
      return x, {"self": self_weights, "cross": cross_weights}
    return x


class Encoder(nn.Module):
  """`num_layers` EncoderLayers on embedded inputs (B, T, features).

  Pre-norm stacks end with a LayerNorm ('final_norm'). With return_attention
  returns (x, tuple of per-layer self-attention weights (B, heads, T, T)).
  """

  num_layers: int
  num_heads: int
  features: int
  hidden: int
  dropout_rate: float = 0.0
  norm: str = "post"
  activation: str = "relu"
  layer_norm_epsilon: float = LAYER_NORM_EPSILON

  @nn.compact
  def __call__(self, x, mask=None, train: bool = False, return_attention: bool = False):
    weights = []
    for i in range(self.num_layers):
      x, w = EncoderLayer(
        self.num_heads,
        self.features,
        self.hidden,
        self.dropout_rate,
        self.norm,
        self.activation,
        self.layer_norm_epsilon,
        name=f"layer_{i}",
      )(x, mask, train, return_attention=True)
      weights.append(w)
    if self.norm == "pre":
      x = _layer_norm("final_norm", self.layer_norm_epsilon)(x)
    return (x, tuple(weights)) if return_attention else x


class Decoder(nn.Module):
  """`num_layers` DecoderLayers on embedded targets (B, T, features).

  Pre-norm stacks end with a LayerNorm ('final_norm'). With return_attention
  returns (x, tuple of per-layer {'self': ..., 'cross': ...} weight dicts).
  `attention_window`: see DecoderLayer.
  """

  num_layers: int
  num_heads: int
  features: int
  hidden: int
  dropout_rate: float = 0.0
  norm: str = "post"
  activation: str = "relu"
  decode: bool = False
  attention_window: Optional[int] = None

  @nn.compact
  def __call__(
    self,
    x,
    memory=None,
    self_mask=None,
    cross_mask=None,
    train: bool = False,
    return_attention: bool = False,
  ):
    weights = []
    for i in range(self.num_layers):
      x, w = DecoderLayer(
        self.num_heads,
        self.features,
        self.hidden,
        self.dropout_rate,
        self.norm,
        self.activation,
        self.decode,
        attention_window=self.attention_window,
        name=f"layer_{i}",
      )(x, memory, self_mask, cross_mask, train, return_attention=True)
      weights.append(w)
    if self.norm == "pre":
      x = _layer_norm("final_norm")(x)
    return (x, tuple(weights)) if return_attention else x
