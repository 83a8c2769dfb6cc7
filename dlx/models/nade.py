"""NADE, the neural autoregressive density estimator (Larochelle & Murray, 2011).

p(x) = prod_d p(x_d | x_<d) over binary pixels in a fixed (raster) order, with

    h_d = sigmoid(c + W[:, :d] x_<d)          hidden units shared by every conditional
    p(x_d = 1 | x_<d) = sigmoid(b_d + V_d . h_d)

Tying W across the conditionals is what makes NADE cheap: a_d = c + W[:, :d] x_<d is a
running sum (a_{d+1} = a_d + x_d W[:, d]), so all D conditionals cost O(HD) together
instead of O(HD^2) for D separate networks. `conditional_logits` is that recursion as a
lax.scan, with the paper's O(HD) backward pass written out as a reverse scan (a custom
VJP): autodiff of the scan would store every h_d, (N, D, H) floats, and on a CPU the
hand-written pass is ~3x faster. The log-likelihood is exact; sampling is ancestral,
one pixel at a time (a scan that carries the running sum).
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _forward(W, c, V, b, x):
  """(logits (N, D), a_D (N, H)): the recursion, one scan step per pixel."""

  def step(a, inputs):
    w_d, v_d, x_d = inputs
    return a + x_d[:, None] * w_d, jax.nn.sigmoid(a) @ v_d

  a0 = jnp.broadcast_to(c, (x.shape[0], c.shape[0]))
  a_end, logits = jax.lax.scan(step, a0, (W.T, V, x.T))
  return logits.T + b, a_end


@jax.custom_vjp
def conditional_logits(W, c, V, b, x):
  """Logits of p(x_d = 1 | x_<d) for every pixel d, (N, D), from x (N, D) and the NADE
  parameters W (H, D), c (H,), V (D, H), b (D,)."""
  return _forward(W, c, V, b, x)[0]


def _conditional_logits_fwd(W, c, V, b, x):
  logits, a_end = _forward(W, c, V, b, x)
  return logits, (W, V, x, a_end)


def _conditional_logits_bwd(residuals, g):
  """Reverse scan from a_D, rebuilding a_d = a_{d+1} - x_d W[:, d] on the way down and
  carrying d loss / d a_{d+1} (every later conditional reads a_d through the sum)."""
  W, V, x, a_end = residuals

  def step(carry, inputs):
    a_next, da_next = carry
    w_d, v_d, x_d, g_d = inputs
    a = a_next - x_d[:, None] * w_d
    h = jax.nn.sigmoid(a)
    grads = (x_d @ da_next, g_d @ h, da_next @ w_d)  # dW[:, d], dV_d, dx_d
    da = da_next + g_d[:, None] * v_d * h * (1.0 - h)
    return (a, da), grads

  carry = (a_end, jnp.zeros_like(a_end))
  (_, da0), (dW, dV, dx) = jax.lax.scan(step, carry, (W.T, V, x.T, g.T), reverse=True)
  return dW.T, jnp.sum(da0, axis=0), dV, jnp.sum(g, axis=0), dx.T


conditional_logits.defvjp(_conditional_logits_fwd, _conditional_logits_bwd)


def bernoulli_log_prob(logits, x):
  """(N,) sum over the last axis of log Bernoulli(x | sigmoid(logits)), in nats."""
  return -jnp.sum(jnp.logaddexp(0.0, logits) - x * logits, axis=-1)


class NADE(nn.Module):
  """Binary NADE over images of `input_shape`; `__call__` returns the (N, D) logits of
  every conditional p(x_d = 1 | x_<d) for the given images, in one pass."""

  hidden: int = 500
  input_shape: Sequence[int] = (28, 28, 1)

  def setup(self):
    d = math.prod(self.input_shape)
    init = nn.initializers.normal(0.01)
    self.W = self.param("W", init, (self.hidden, d))  # input -> hidden, shared
    self.c = self.param("c", nn.initializers.zeros, (self.hidden,))
    self.V = self.param("V", init, (d, self.hidden))  # hidden -> pixel d, one row per pixel
    self.b = self.param("b", nn.initializers.zeros, (d,))

  def __call__(self, x, train: bool = False):
    del train  # no dropout or batch statistics
    x = x.reshape((x.shape[0], -1)).astype(self.W.dtype)
    return conditional_logits(self.W, self.c, self.V, self.b, x)

  def log_prob(self, x):
    """(N,) exact log p(x) in nats for binary images x (N, *input_shape)."""
    x = x.reshape((x.shape[0], -1)).astype(self.W.dtype)
    return bernoulli_log_prob(self(x), x)

  def sample(self, rng, num: int, given=None, num_given: int = 0):
    """(num, *input_shape) binary samples drawn pixel by pixel. With `given` (num, D or
    *input_shape) the first `num_given` pixels are copied from it (completions);
    `num_given` is one count or one per sample, (num,)."""
    d = self.W.shape[1]
    num_given = jnp.broadcast_to(jnp.asarray(num_given), (num,))
    if given is None:
      given = jnp.zeros((num, d), self.W.dtype)
    given = given.reshape((num, d)).astype(self.W.dtype)
    uniforms = jax.random.uniform(rng, (d, num), self.W.dtype)

    def step(a, inputs):
      w_d, v_d, b_d, u_d, given_d, index = inputs
      p = jax.nn.sigmoid(jax.nn.sigmoid(a) @ v_d + b_d)  # (num,)
      x_d = jnp.where(index < num_given, given_d, (u_d < p).astype(a.dtype))
      return a + x_d[:, None] * w_d, x_d

    a0 = jnp.broadcast_to(self.c, (num, self.hidden)).astype(self.W.dtype)
    inputs = (self.W.T, self.V, self.b, uniforms, given.T, jnp.arange(d))
    _, pixels = jax.lax.scan(step, a0, inputs)  # (D, num)
    return pixels.T.reshape((num, *self.input_shape))
