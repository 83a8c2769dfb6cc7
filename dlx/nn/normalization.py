"""Local response normalization (Krizhevsky, Sutskever and Hinton, 2012), and a layer
norm with flax's parameters computed by dlx.kernels (oneDNN on its route)."""

import flax.linen as nn
import jax.numpy as jnp

from dlx.kernels import layer_norm as kernels_layer_norm


def local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
  """Normalises each channel by the energy of its neighbouring channels.

  AlexNet, section 3.3: with a_i the activity of channel i at one position,

    b_i = a_i / (k + alpha * sum_{j=i-size//2}^{i+(size-1)//2} a_j^2) ** beta,

  where channels outside [0, C) count as zero. The defaults are the paper's
  (n=5, alpha=1e-4, beta=0.75, k=2). As in the paper, alpha multiplies the
  plain sum; PyTorch's nn.LocalResponseNorm divides alpha by `size` (it
  averages), so `torch.nn.LocalResponseNorm(size, alpha=alpha * size, beta, k)`
  gives the same result. For an even `size` the window is the one PyTorch
  uses (size//2 channels before i, size//2 - 1 after).

  Args:
    x: channels-last array (..., C), e.g. NHWC.
    size: number of channels in the window (n in the paper).
    alpha: scale of the sum of squares.
    beta: exponent.
    k: additive constant that keeps the denominator away from zero.

  Returns:
    Array with the shape and dtype of `x`; the sums of squares and the division are
    float32 for a bfloat16 / float16 `x` (the band product takes `x`'s dtype and
    accumulates in float32), the statistics of a norm in mixed precision
    (docs/curriculum.md#a10).
  """
  if size < 1:
    raise ValueError(f"size must be >= 1, got {size}")
  squares = jnp.square(x)
  # Sliding sum over channels as a matmul with a 0/1 band matrix: band[j, i] = 1 when
  # channel j is in channel i's window (channels outside [0, C) simply do not exist).
  # Much faster on CPU than shifted slices, and lax.reduce_window's gradient fails
  # under jit in jax 0.10.
  channels = x.shape[-1]
  offset = jnp.arange(channels)[:, None] - jnp.arange(channels)[None, :]  # j - i
  band = ((offset >= -(size // 2)) & (offset <= (size - 1) // 2)).astype(x.dtype)
  sums = jnp.matmul(squares, band, preferred_element_type=jnp.promote_types(x.dtype, jnp.float32))
  return (x / (k + alpha * sums) ** beta).astype(x.dtype)


class LocalResponseNorm(nn.Module):
  """Parameter-free module form of `local_response_norm` (channels-last)."""

  size: int = 5
  alpha: float = 1e-4
  beta: float = 0.75
  k: float = 2.0

  def __call__(self, x):
    return local_response_norm(x, self.size, self.alpha, self.beta, self.k)


class LayerNorm(nn.Module):
  """flax's nn.LayerNorm over the last axis with a scale and a bias (the same parameters,
  names and initialisers: checkpoints move between the two), computed by
  dlx.kernels.layer_norm: oneDNN on the `--config.cpu_kernels` route, XLA otherwise. The
  Transformer layers build it on the oneDNN route (dlx.nn.transformer)."""

  epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    return kernels_layer_norm.layer_norm(x, scale, bias, self.epsilon)
