"""RNADE, the real-valued NADE (Uria, Murray & Larochelle, 2013; docs/curriculum.md#f22).

NADE's factorisation p(x) = prod_d p(x_d | x_<d) with a mixture of K Gaussians as each
conditional, so the density of continuous data is exact:

    a_d = c + W[:, :d] x_<d                       shared running sum, as NADE's
    h_d = act(rho_d a_d)                          rho_d: one scale per dimension
    p(x_d | x_<d) = sum_k pi_dk N(x_d; mu_dk, sigma_dk^2)
    pi_d = softmax(V_pi[d] h_d + b_pi[d]), mu_d = V_mu[d] h_d + b_mu[d],
    sigma_d = exp(V_sigma[d] h_d + b_sigma[d])

Every a_d is an exclusive cumulative sum over d of x_j W[:, j] (O(NDH) memory, which
is small for the 64 pixels of 8x8 digits; the binary NADE in dlx/models/nade.py scans
instead because MNIST's 784 would not be). Sampling is ancestral: one dimension at a
time, a component drawn from pi_d, then x_d from its Gaussian.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
ACTIVATIONS = {"relu": nn.relu, "sigmoid": nn.sigmoid}


def mixture_log_density(x, logits, means, log_scales):
  """log sum_k softmax(logits)_k N(x; means_k, exp(log_scales_k)^2), over the last axis.
  x (...), the others (..., K) -> (...)."""
  z = (x[..., None] - means) * jnp.exp(-log_scales)
  log_normal = -0.5 * z**2 - log_scales - _HALF_LOG_2PI
  return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + log_normal, axis=-1)


class RNADE(nn.Module):
  """x (N, ...) flattened to (N, D) -> (N, D) conditional log-densities log p(x_d | x_<d)
  in nats; their sum over d is log p(x)."""

  dim: int
  hidden: int = 100
  num_components: int = 10
  activation: str = "relu"
  init_scale: float = 0.05

  def setup(self):
    d, h, k = self.dim, self.hidden, self.num_components
    normal = nn.initializers.normal(self.init_scale)
    self.W = self.param("W", normal, (h, d))
    self.c = self.param("c", nn.initializers.zeros, (h,))
    self.rho = self.param("rho", nn.initializers.ones, (d,))
    self.V = self.param("V", normal, (3, d, h, k))  # weights of pi, mu and log sigma
    # Component means start spread over [0, 1] (the data's range here) and
    # sigma at exp(-2) ~ 0.14, so the first steps already separate the components.
    self.b_logits = self.param("b_logits", nn.initializers.zeros, (d, k))
    self.b_means = self.param(
      "b_means", lambda rng, s: jax.random.uniform(rng, s, minval=0.0, maxval=1.0), (d, k)
    )
    self.b_log_scales = self.param("b_log_scales", nn.initializers.constant(-2.0), (d, k))

  def hidden_units(self, x):
    """(N, D, H) h_d for every dimension d: a_d is the sum over j < d of x_j W[:, j]."""
    terms = x[:, :, None] * self.W.T[None]  # (N, D, H)
    a = self.c + jnp.cumsum(terms, axis=1) - terms  # exclusive: x_d itself left out
    return ACTIVATIONS[self.activation](self.rho[:, None] * a)

  def _mixture(self, h, d=None):
    """(logits, means, log_scales) from h (..., H) of dimension d (all: h (N, D, H))."""
    if d is None:
      out = jnp.einsum("ndh,edhk->endk", h, self.V)
      biases = (self.b_logits, self.b_means, self.b_log_scales)
    else:
      out = jnp.einsum("nh,ehk->enk", h, self.V[:, d])
      biases = (self.b_logits[d], self.b_means[d], self.b_log_scales[d])
    return tuple(o + b for o, b in zip(out, biases))

  def conditionals(self, x):
    """Every conditional's mixture: (logits, means, log_scales), each (N, D, K)."""
    x = x.reshape((x.shape[0], -1)).astype(self.W.dtype)
    return self._mixture(self.hidden_units(x))

  def __call__(self, x, train: bool = False):
    del train  # no dropout or batch statistics
    x = x.reshape((x.shape[0], -1)).astype(self.W.dtype)
    return mixture_log_density(x, *self._mixture(self.hidden_units(x)))

  def log_prob(self, x):
    """(N,) exact log p(x) in nats."""
    return jnp.sum(self(x), axis=-1)

  def sample(self, rng, num: int):
    """(num, D) ancestral samples: x_1, then x_2 given x_1, ..., one dimension a step."""
    act = ACTIVATIONS[self.activation]
    keys = jax.random.split(rng, self.dim)

    def step(a, inputs):
      d, key = inputs
      logits, means, log_scales = self._mixture(act(self.rho[d] * a), d)
      pick, noise = jax.random.split(key)
      k = jax.random.categorical(pick, logits, axis=-1)  # (num,)
      mean = jnp.take_along_axis(means, k[:, None], 1)[:, 0]
      scale = jnp.exp(jnp.take_along_axis(log_scales, k[:, None], 1)[:, 0])
      x_d = mean + scale * jax.random.normal(noise, (num,), a.dtype)
      return a + x_d[:, None] * self.W[:, d], x_d

    a0 = jnp.broadcast_to(self.c, (num, self.hidden))
    _, xs = jax.lax.scan(step, a0, (jnp.arange(self.dim), keys))
    return xs.T
