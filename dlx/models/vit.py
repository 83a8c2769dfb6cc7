"""Vision Transformer (Dosovitskiy et al. 2021; docs/curriculum.md#f15).

ViT cuts the image into patches instead of flattening it whole. Each P x P
patch is flattened and projected to `features` dims; a strided
convolution with kernel = stride = P does exactly that in one op. A learned
class token is prepended, learned position embeddings are added, a pre-norm
Transformer encoder (GELU FFN) mixes the N + 1 tokens, and a linear
classifier reads the final class-token vector.

torchvision's VisionTransformer is this model with `layer_norm_epsilon=1e-6` and
`activation='gelu_exact'` (PyTorch's nn.GELU() is the erf form; Flax's default is the
tanh approximation): the same conv patch embedding, class token, learned positions,
pre-norm blocks, final LayerNorm and linear head on the class token
(dlx.interop.from_torchvision loads its weights).
"""

import flax.linen as nn
import jax.numpy as jnp

from dlx.nn.conv import FlaxConv
from dlx.nn.dense import Dense
from dlx.nn.transformer import LAYER_NORM_EPSILON
from dlx.nn.transformer import Encoder
from dlx.nn.transformer import LearnedPositionalEmbedding


class ViT(nn.Module):
  """images (B, H, W, C) -> logits (B, num_classes).

  H and W must be multiples of patch_size; the number of position embeddings
  (N + 1 with N = HW / P^2) is fixed by the image size used at init. The
  encoded tokens (B, N + 1, features) after the final LayerNorm are sown as
  'intermediates'/'tokens'; the classifier uses token 0, the class token.
  """

  num_classes: int
  patch_size: int
  num_layers: int
  num_heads: int
  features: int
  hidden: int
  dropout_rate: float = 0.0
  layer_norm_epsilon: float = LAYER_NORM_EPSILON
  activation: str = "gelu"  # 'gelu_exact' for torchvision's weights

  @nn.compact
  def __call__(self, images, train: bool = False):
    if images.ndim != 4:
      raise ValueError(f"ViT expects NHWC images, got shape {images.shape}")
    height, width = images.shape[1:3]
    p = self.patch_size
    if height % p or width % p:
      raise ValueError(f"image size {height}x{width} is not divisible by patch_size {p}")
    x = FlaxConv(self.features, (p, p), strides=(p, p), padding="VALID", name="patch_embedding")(
      images
    )  # (B, H/P, W/P, features)
    batch = x.shape[0]
    x = x.reshape((batch, -1, self.features))  # (B, N, features), row-major.
    class_token = self.param("class_token", nn.initializers.zeros, (1, 1, self.features))
    x = jnp.concatenate([jnp.broadcast_to(class_token, (batch, 1, self.features)), x], axis=1)
    length = x.shape[1]
    x = x + LearnedPositionalEmbedding(length, self.features, name="position_embedding")(
      jnp.arange(length)
    )
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
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
    self.sow("intermediates", "tokens", x)
    return Dense(self.num_classes, name="head")(x[:, 0])
