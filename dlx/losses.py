"""Losses as pure functions of arrays.

Like optax, every loss returns UNREDUCED values: one per element for the
element-wise losses (mse, mae, huber, smooth_l1, clipped_mse,
sigmoid_binary_cross_entropy, binary_cross_entropy, gaussian_nll), one per
example otherwise (the class / feature / non-batch axes are summed or averaged
as each docstring says). The caller reduces, e.g. `jnp.mean(loss)` or
`weighted(loss, weights)`. The exceptions are `weighted` (a reduction) and the
parameter penalties (one scalar per pytree).

All functions are jit-, vmap- and grad-safe. Python-valued switches
(`likelihood`, `non_saturating`, `num_boxes`, `num_classes`, `critic_fn`) must
be static under `jax.jit` (close over them or mark them static). Numerics:
log-sum-exp / logits forms, `where`-guarded logs and square roots so neither
values nor gradients become NaN at 0, 1 or extreme logits.

Shapes: `...` is any batch shape; `C` classes; `B` batch.
"""

import math
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx import errors

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
PyTree = Any
# A parameter mask: a pytree of bools (same structure as, or a prefix of, the
# params) or a callable(path, leaf) -> bool. True means "penalise this leaf".
Mask = Optional[Union[PyTree, Callable[[Any, Array], bool]]]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# PyTorch's binary_cross_entropy clamps each log term at -100.
_LOG_FLOOR = -100.0
# PyTorch's gaussian_nll_loss clamps the variance at this eps.
_VARIANCE_EPS = 1e-6


def _safe_log(x, floor=_LOG_FLOOR):
  """max(log x, floor); value and gradient finite at x = 0."""
  positive = x > 0
  # The inner where keeps log's gradient (1/x) away from x = 0.
  log_x = jnp.log(jnp.where(positive, x, 1.0))
  return jnp.where(positive, jnp.maximum(log_x, floor), floor)


def _abs(x):
  # |x| with subgradient sign(x) = 0 at x = 0 (jnp.abs' gradient there is 1),
  # matching PyTorch and giving L1 penalties no push at exactly 0.
  return jnp.sign(x) * x


def _safe_norm(x, axis):
  """||x||_2 over `axis`, with gradient 0 (not NaN) at x = 0."""
  squared = jnp.sum(jnp.square(x), axis=axis)
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def _masked_mean(values, weights, axis=None):
  """sum(w v) / sum(w) over `axis`, skipping w == 0; 0 if sum(w) == 0."""
  values = jnp.asarray(values)
  weights = jnp.broadcast_to(jnp.asarray(weights), values.shape)
  weights = weights.astype(values.dtype)
  keep = weights != 0
  # Zero the skipped values first: 0 * NaN would still be NaN.
  safe_values = jnp.where(keep, values, 0.0)
  total = jnp.sum(safe_values * weights, axis=axis)
  count = jnp.sum(weights, axis=axis)
  nonzero = count != 0
  return jnp.where(nonzero, total / jnp.where(nonzero, count, 1.0), 0.0)


def _non_batch_axes(x):
  return tuple(range(1, jnp.ndim(x)))


# ----------------------------------------------------------------- regression


def mse(predictions: ArrayLike, targets: ArrayLike) -> Array:
  """Squared error (y^ - y)^2, element-wise. Shapes: (...), (...) -> (...)."""
  return jnp.square(jnp.asarray(predictions) - targets)


def mae(predictions: ArrayLike, targets: ArrayLike) -> Array:
  """Absolute error |y^ - y|, element-wise. Shapes: (...), (...) -> (...)."""
  return _abs(jnp.asarray(predictions) - targets)


def huber(predictions: ArrayLike, targets: ArrayLike, delta: float = 1.0) -> Array:
  """Huber loss, element-wise; r = y^ - y.

    0.5 r^2                  if |r| <= delta
    delta (|r| - 0.5 delta)  otherwise

  Shapes: (...), (...) -> (...). Matches `torch.nn.functional.huber_loss`.
  """
  abs_r = jnp.abs(jnp.asarray(predictions) - targets)
  # Split |r| into a quadratic part (<= delta) and a linear rest: this is the
  # piecewise formula without evaluating both branches.
  quadratic = jnp.minimum(abs_r, delta)
  linear = abs_r - quadratic
  return 0.5 * jnp.square(quadratic) + delta * linear


def smooth_l1(predictions: ArrayLike, targets: ArrayLike, beta: float = 1.0) -> Array:
  """Smooth L1, element-wise; r = |y^ - y|.

    0.5 r^2 / beta   if r < beta
    r - 0.5 beta     otherwise

  Equals huber(delta=beta) / beta for beta > 0 and mae for beta = 0.
  Shapes: (...), (...) -> (...). Matches `torch.nn.functional.smooth_l1_loss`.
  """
  abs_r = jnp.abs(jnp.asarray(predictions) - targets)
  quadratic = jnp.minimum(abs_r, beta)
  # beta = 0 makes the quadratic part 0; guard its 0 / 0.
  safe_beta = jnp.where(beta > 0, beta, 1.0)
  return 0.5 * jnp.square(quadratic) / safe_beta + (abs_r - quadratic)


def clipped_mse(predictions: ArrayLike, targets: ArrayLike, clip: float) -> Array:
  """min((y^ - y)^2, clip), element-wise (gradient 0 past the clip).

  Shapes: (...), (...) -> (...).
  """
  return jnp.minimum(mse(predictions, targets), clip)


def weighted(losses: ArrayLike, weights: ArrayLike) -> Array:
  """Weighted mean sum(w l) / sum(w) -> scalar.

  `weights` broadcasts against `losses` (e.g. a (B,) mask for (B,) losses).
  Entries with w == 0 are skipped entirely, so a NaN / inf loss there does not
  poison the result; all-zero weights give 0.
  """
  return _masked_mean(losses, weights)


# ------------------------------------------------------------- classification


def sigmoid_binary_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> Array:
  """Binary cross-entropy from LOGITS x, element-wise; labels z in [0, 1].

    -z log sigmoid(x) - (1 - z) log(1 - sigmoid(x))
      = z softplus(-x) + (1 - z) softplus(x)

  Shapes: (...), (...) -> (...). Matches
  `torch.nn.functional.binary_cross_entropy_with_logits`.
  """
  logits = jnp.asarray(logits)
  return -(labels * jax.nn.log_sigmoid(logits) + (1.0 - labels) * jax.nn.log_sigmoid(-logits))


def binary_cross_entropy(probabilities: ArrayLike, labels: ArrayLike) -> Array:
  """Binary cross-entropy from PROBABILITIES p, element-wise; z in [0, 1].

    -z log p - (1 - z) log(1 - p),  each log clamped at -100 (as PyTorch)

  Finite (<= 100 per term) with finite gradients at p = 0 and p = 1.
  Prefer `sigmoid_binary_cross_entropy` when logits are available.
  Shapes: (...), (...) -> (...).
  """
  p = jnp.asarray(probabilities)
  return -(labels * _safe_log(p) + (1.0 - labels) * _safe_log(1.0 - p))


def softmax_cross_entropy(
  logits: ArrayLike, labels: ArrayLike, label_smoothing: float = 0.0
) -> Array:
  """Cross-entropy -sum_c t_c log softmax(x)_c from LOGITS, per example.

  labels: integer class ids (...,) when labels.ndim == logits.ndim - 1, else
  one-hot / soft targets (..., C). With smoothing s the target becomes
  t = (1 - s) t + s / C (as `torch.nn.functional.cross_entropy`).
  Shapes: logits (..., C) -> (...).
  """
  logits = jnp.asarray(logits)
  labels = jnp.asarray(labels)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  num_classes = logits.shape[-1]
  if labels.ndim == logits.ndim - 1:
    nll = -jnp.take_along_axis(log_probs, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    # The uniform part of the smoothed target: -sum_c log p_c / C.
    uniform = -jnp.mean(log_probs, axis=-1)
    return (1.0 - label_smoothing) * nll + label_smoothing * uniform
  if labels.ndim != logits.ndim:
    raise ValueError(
      f"labels must have shape {logits.shape[:-1]} (class ids) or "
      f"{logits.shape} (one-hot / soft), got {labels.shape}"
    )
  targets = (1.0 - label_smoothing) * labels + label_smoothing / num_classes
  # 0 * log p = 0 even where p underflows (e.g. -inf masked logits).
  terms = jnp.where(targets != 0, targets * log_probs, 0.0)
  return -jnp.sum(terms, axis=-1)


def sequence_cross_entropy(logits: ArrayLike, targets: ArrayLike, mask: ArrayLike) -> Array:
  """Per-sequence mean token cross-entropy over unmasked tokens.

    sum_t m_t CE(x_t, y_t) / sum_t m_t   (0 for an all-masked sequence)

  Shapes: logits (B, T, V), targets (B, T) int, mask (B, T) bool / {0, 1}
  -> (B,).
  """
  token_losses = softmax_cross_entropy(logits, targets)
  return _masked_mean(token_losses, mask, axis=-1)


# ------------------------------------------------------------ segmentation


def pixel_cross_entropy(
  logits: ArrayLike, labels: ArrayLike, class_weights: Optional[ArrayLike] = None
) -> Array:
  """Per-image softmax cross-entropy over pixels (docs/curriculum.md#f9).

    sum_p w[y_p] CE(x_p, y_p) / sum_p w[y_p]

  w = 1 without `class_weights`: the mean over pixels. Weights (C,) raise rare classes'
  share and are normalised by their sum, per image, as PyTorch's
  `cross_entropy(weight=...)` normalises per batch.
  Shapes: logits (B, ..., C), labels (B, ...) int -> (B,).
  """
  ce = softmax_cross_entropy(logits, labels)
  axes = _non_batch_axes(ce)
  if class_weights is None:
    return jnp.mean(ce, axis=axes)
  weights = jnp.asarray(class_weights, ce.dtype)[jnp.asarray(labels).astype(jnp.int32)]
  return _masked_mean(ce, weights, axis=axes)


def _soft_overlaps(logits, labels):
  # Per image and class: soft intersection I, predicted mass P, true pixel count G.
  logits = jnp.asarray(logits)
  probs = jax.nn.softmax(logits, axis=-1)
  truth = jax.nn.one_hot(jnp.asarray(labels).astype(jnp.int32), logits.shape[-1], dtype=probs.dtype)
  axes = tuple(range(1, probs.ndim - 1))
  return jnp.sum(probs * truth, axes), jnp.sum(probs, axes), jnp.sum(truth, axes)


def soft_dice_loss(logits: ArrayLike, labels: ArrayLike, smooth: float = 1.0) -> Array:
  """Multi-class soft Dice loss per image (Milletari et al. 2016, "V-Net").

    1 - mean_c (2 I_c + s) / (P_c + G_c + s)

  with softmax probabilities p: I_c = sum_p p_c [y_p = c], P_c = sum_p p_c, G_c = the
  class's true pixel count. It scores overlap, not pixels, so a small class weighs as
  much as the background. A class absent from the image and not predicted scores s / s
  = 1 (no loss); predicting it costs. s > 0 keeps every term defined.
  Shapes: logits (B, ..., C), labels (B, ...) int -> (B,).
  """
  inter, pred, true = _soft_overlaps(logits, labels)
  return 1.0 - jnp.mean((2.0 * inter + smooth) / (pred + true + smooth), axis=-1)


def soft_jaccard_loss(logits: ArrayLike, labels: ArrayLike, smooth: float = 1.0) -> Array:
  """Multi-class soft Jaccard (IoU) loss per image: 1 - mean_c (I_c + s) /
  (P_c + G_c - I_c + s), with I, P, G and s as in `soft_dice_loss`.
  Shapes: logits (B, ..., C), labels (B, ...) int -> (B,).
  """
  inter, pred, true = _soft_overlaps(logits, labels)
  return 1.0 - jnp.mean((inter + smooth) / (pred + true - inter + smooth), axis=-1)


# ------------------------------------------------------------ divergences


def kl_divergence(p: ArrayLike, q: ArrayLike) -> Array:
  """KL(p || q) = sum_c p_c log(p_c / q_c) over the last axis; 0 log 0 = 0.

  p, q are probability vectors; q_c = 0 where p_c > 0 gives inf.
  Shapes: (..., C), (..., C) -> (...).
  """
  p = jnp.asarray(p)
  q = jnp.asarray(q)
  positive = p > 0
  # Mask both logs where p = 0 so their gradients stay finite there too.
  safe_p = jnp.where(positive, p, 1.0)
  safe_q = jnp.where(positive, q, 1.0)
  terms = jnp.where(positive, p * (jnp.log(safe_p) - jnp.log(safe_q)), 0.0)
  return jnp.sum(terms, axis=-1)


def js_divergence(p: ArrayLike, q: ArrayLike) -> Array:
  """Jensen-Shannon 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2.

  Symmetric, in [0, log 2] (log 2 for disjoint supports).
  Shapes: (..., C), (..., C) -> (...).
  """
  m = 0.5 * (jnp.asarray(p) + jnp.asarray(q))
  return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def gaussian_kl(mean: ArrayLike, log_variance: ArrayLike) -> Array:
  """KL(N(mean, exp(log_variance)) || N(0, I)), diagonal, over the last axis.

    -0.5 sum_k (1 + log var_k - mean_k^2 - var_k)

  Shapes: (..., K), (..., K) -> (...).
  """
  mean = jnp.asarray(mean)
  log_variance = jnp.asarray(log_variance)
  return -0.5 * jnp.sum(1.0 + log_variance - jnp.square(mean) - jnp.exp(log_variance), axis=-1)


def gaussian_nll(mean: ArrayLike, targets: ArrayLike, variance: ArrayLike) -> Array:
  """Gaussian negative log-likelihood -log N(y; mean, variance), element-wise.

    0.5 (log var + (y - mean)^2 / var + log 2 pi),  var clamped at 1e-6

  Matches `torch.nn.functional.gaussian_nll_loss(full=True,
  reduction='none')` (except the gradient below the clamp, which is 0 here).
  Shapes: (...), (...), (...) broadcastable -> (...).
  """
  variance = jnp.maximum(jnp.asarray(variance), _VARIANCE_EPS)
  squared = jnp.square(jnp.asarray(targets) - mean)
  return 0.5 * (jnp.log(variance) + squared / variance) + _HALF_LOG_2PI


# ------------------------------------------------------ parameter penalties


def exclude_biases(path, leaf) -> bool:
  """A `mask` callable: penalise every leaf except those named 'bias'.

  Norm scales are kept; to skip every 1-D leaf use
  `lambda path, leaf: jnp.ndim(leaf) > 1`.
  """
  del leaf  # Only the name matters.
  if not path:
    return True
  last = path[-1]
  name = getattr(last, "key", getattr(last, "name", None))
  return name != "bias"


def _penalty(leaf_fn, params, mask):
  if mask is None:
    return sum((jnp.sum(leaf_fn(x)) for x in jax.tree.leaves(params)), start=jnp.zeros(()))
  if callable(mask):
    mask = jax.tree_util.tree_map_with_path(mask, params)

  def part(keep, subtree):
    # `mask` may be a prefix of `params`: a mask leaf covers a whole subtree.
    total = sum((jnp.sum(leaf_fn(x)) for x in jax.tree.leaves(subtree)), start=jnp.zeros(()))
    if isinstance(keep, (bool, np.bool_)):
      return total if keep else jnp.zeros(())  # Static: no work when skipped.
    return jnp.where(keep, total, 0.0)

  return sum(jax.tree.leaves(jax.tree.map(part, mask, params)), start=jnp.zeros(()))


def l1_penalty(params: PyTree, mask: Mask = None) -> Array:
  """sum |w| over the (masked) leaves of a parameter pytree -> scalar.

  mask: None (all leaves), a pytree of bools (same structure or a prefix), or
  a callable(path, leaf) -> bool such as `exclude_biases`. True = penalise.
  """
  return _penalty(_abs, params, mask)


def l2_penalty(params: PyTree, mask: Mask = None) -> Array:
  """0.5 sum w^2 over the (masked) leaves -> scalar (gradient = w).

  The 0.5 convention makes strength * l2_penalty equivalent to weight decay
  with rate `strength`. `mask` as in `l1_penalty`.
  """
  return _penalty(lambda x: 0.5 * jnp.square(x), params, mask)


def penalty_transform(
  kind: str, strength: float, mask: Mask = None
) -> optax.GradientTransformation:
  """Adds strength * grad(l1_penalty or l2_penalty)(params) to the updates.

  kind 'l1' adds strength * sign(w), 'l2' adds strength * w. Put it BEFORE the
  optimizer, e.g. `optax.chain(penalty_transform('l1', 1e-4), optax.adam(lr))`,
  so it acts like adding the penalty to the loss. Needs `params` in update().
  """
  if kind not in ("l1", "l2"):
    raise errors.ConfigError(f"penalty kind must be 'l1' or 'l2', got {kind!r}")
  penalty_fn = l1_penalty if kind == "l1" else l2_penalty

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("penalty_transform needs params: call update(g, s, params)")
    grads = jax.grad(lambda p: penalty_fn(p, mask))(params)
    updates = jax.tree.map(lambda u, g: u + strength * g.astype(u.dtype), updates, grads)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def clip_params(params: PyTree, clip: float) -> PyTree:
  """Clips every leaf to [-clip, clip] (WGAN weight clipping).

  optax transformations act on updates, not params, so the step applies this
  after the update: `params = clip_params(optax.apply_updates(params, u), c)`.
  """
  return jax.tree.map(lambda w: jnp.clip(w, -clip, clip), params)


# ------------------------------------------------------- metric learning


def contrastive(
  embeddings_a: ArrayLike, embeddings_b: ArrayLike, same: ArrayLike, margin: float = 1.0
) -> Array:
  """Hadsell-Chopra-LeCun contrastive loss per pair; d = ||a - b||_2.

    same * d^2 / 2 + (1 - same) * max(0, margin - d)^2 / 2

  Shapes: (..., D), (..., D), same (...) bool / {0, 1} -> (...).
  """
  diff = jnp.asarray(embeddings_a) - jnp.asarray(embeddings_b)
  squared = jnp.sum(jnp.square(diff), axis=-1)
  distance = _safe_norm(diff, axis=-1)
  same = jnp.asarray(same).astype(squared.dtype)
  hinge = jnp.maximum(margin - distance, 0.0)
  return 0.5 * (same * squared + (1.0 - same) * jnp.square(hinge))


def clip_contrastive(
  image_embeddings: ArrayLike, text_embeddings: ArrayLike, temperature: ArrayLike
) -> Array:
  """Symmetric InfoNCE (CLIP) per example; pair i is (image i, text i).

    a, b = L2-normalised embeddings;  logits = a b^T / T   (B, B)
    loss_i = 0.5 (CE(logits[i, :], i) + CE(logits[:, i], i))

  Shapes: (B, D), (B, D), scalar T -> (B,).
  """

  def normalise(x):
    x = jnp.asarray(x)
    squared = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(squared, 1e-12))

  logits = normalise(image_embeddings) @ normalise(text_embeddings).T
  logits = logits / temperature
  labels = jnp.arange(logits.shape[0])
  image_to_text = softmax_cross_entropy(logits, labels)
  text_to_image = softmax_cross_entropy(logits.T, labels)
  return 0.5 * (image_to_text + text_to_image)


# -------------------------------------------------- generative models


def elbo(
  reconstruction: ArrayLike,
  targets: ArrayLike,
  mean: ArrayLike,
  log_variance: ArrayLike,
  beta: float = 1.0,
  likelihood: str = "bernoulli",
) -> Array:
  """Negative ELBO per example, in nats (the VAE loss to minimise).

    -ELBO = sum_{non-batch axes} NLL(targets | reconstruction)
            + beta * KL(N(mean, exp(log_variance)) || N(0, I))

  likelihood='bernoulli': `reconstruction` are LOGITS (targets in [0, 1]).
  likelihood='gaussian': `reconstruction` is the mean of a unit-variance
  Gaussian; the NLL includes 0.5 log 2 pi, so it is a true NLL.
  The KL is summed over all non-batch latent axes.
  Shapes: reconstruction / targets (B, ...), mean / log_variance (B, ...)
  -> (B,).
  """
  if likelihood == "bernoulli":
    nll = sigmoid_binary_cross_entropy(reconstruction, targets)
  elif likelihood == "gaussian":
    residual = jnp.asarray(targets) - reconstruction
    nll = 0.5 * jnp.square(residual) + _HALF_LOG_2PI
  else:
    raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
  nll = jnp.sum(nll, axis=_non_batch_axes(nll))
  mean = jnp.asarray(mean)
  batch = mean.shape[0]
  kl = gaussian_kl(mean.reshape(batch, -1), jnp.asarray(log_variance).reshape(batch, -1))
  return nll + beta * kl


def gan_discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> Array:
  """Minimax GAN discriminator loss from LOGITS, per example.

    -log D(x) - log(1 - D(G(z))) = softplus(-real) + softplus(fake)

  Shapes: (...), (...) -> (...).
  """
  return jax.nn.softplus(-jnp.asarray(real_logits)) + jax.nn.softplus(jnp.asarray(fake_logits))


def gan_generator_loss(fake_logits: ArrayLike, non_saturating: bool = True) -> Array:
  """GAN generator loss from LOGITS of D on fakes, per example.

    non-saturating: -log D(G(z)) = softplus(-fake)
    saturating:     log(1 - D(G(z))) = -softplus(fake)  (gradient -> 0 as
                    D(G(z)) -> 0, i.e. exactly when the generator is bad)

  Shapes: (...) -> (...).
  """
  fake_logits = jnp.asarray(fake_logits)
  if non_saturating:
    return jax.nn.softplus(-fake_logits)
  return -jax.nn.softplus(fake_logits)


def wgan_critic_loss(real_scores: ArrayLike, fake_scores: ArrayLike) -> Array:
  """WGAN critic loss f(G(z)) - f(x), per example. (B,), (B,) -> (B,)."""
  return jnp.asarray(fake_scores) - jnp.asarray(real_scores)


def wgan_generator_loss(fake_scores: ArrayLike) -> Array:
  """WGAN generator loss -f(G(z)), per example. Shapes: (B,) -> (B,)."""
  return -jnp.asarray(fake_scores)


def gradient_penalty(
  critic_fn: Callable[[Array], Array], real: ArrayLike, fake: ArrayLike, rng: Array
) -> Array:
  """WGAN-GP penalty (||grad_x f(x^)||_2 - 1)^2 per example.

  x^ = eps real + (1 - eps) fake with eps ~ U(0, 1) per example; the gradient
  is that of sum_b f(x^)_b, so row b is grad f(x^_b) for a per-example critic.
  The caller multiplies by lambda (10 in the paper) and adds to the critic loss.
  Shapes: critic_fn (B, ...) -> (B,); real, fake (B, ...) -> (B,).
  """
  real = jnp.asarray(real)
  fake = jnp.asarray(fake)
  eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
  eps = jax.random.uniform(rng, eps_shape, dtype=real.dtype)
  interpolated = eps * real + (1.0 - eps) * fake
  grads = jax.grad(lambda x: jnp.sum(critic_fn(x)))(interpolated)
  norms = _safe_norm(grads, axis=_non_batch_axes(grads))
  return jnp.square(norms - 1.0)


def diffusion_noise_mse(predicted_noise: ArrayLike, noise: ArrayLike) -> Array:
  """DDPM simple objective: mean over non-batch axes of (eps^ - eps)^2.

  Shapes: (B, ...), (B, ...) -> (B,).
  """
  squared = mse(predicted_noise, noise)
  return jnp.mean(squared, axis=_non_batch_axes(squared))


# ------------------------------------------------------------- detection


def _signed_sqrt(x, eps=1e-6):
  # sqrt with a bounded gradient (<= 1 / (2 sqrt(eps))) that also accepts the
  # negative widths an untrained head predicts.
  return jnp.sign(x) * jnp.sqrt(jnp.abs(x) + eps)


def _cell_iou(boxes, target, grid_size):
  """IoU of [x, y, w, h] boxes in the same cell (x, y cell-relative)."""

  def corners(b):
    # Centres in image units; the shared cell offset cancels in the IoU.
    cx, cy = b[..., 0] / grid_size, b[..., 1] / grid_size
    w, h = jnp.maximum(b[..., 2], 0.0), jnp.maximum(b[..., 3], 0.0)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, w * h

  ax0, ay0, ax1, ay1, area_a = corners(boxes)
  bx0, by0, bx1, by1, area_b = corners(target)
  inter_w = jnp.maximum(jnp.minimum(ax1, bx1) - jnp.maximum(ax0, bx0), 0.0)
  inter_h = jnp.maximum(jnp.minimum(ay1, by1) - jnp.maximum(ay0, by0), 0.0)
  inter = inter_w * inter_h
  union = area_a + area_b - inter
  return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def yolo_v1_loss(
  predictions: ArrayLike,
  targets: ArrayLike,
  num_boxes: int = 2,
  num_classes: int = 20,
  lambda_coord: float = 5.0,
  lambda_noobj: float = 0.5,
) -> Array:
  """YOLOv1 sum-squared loss per image (Redmon et al., 2016).

  Layout: predictions (N, S, S, B*5 + C) = B boxes [x, y, w, h, conf] then C
  class scores; targets (N, S, S, 5 + C) = [x, y, w, h, obj, classes...], with
  x, y the centre offset within the cell and w, h relative to the image.
  In a cell with an object the responsible box j* is the one with the highest
  IoU with the target (ties: the first); 1^obj_ij = obj_i [j = j*] and
  1^noobj_ij = 1 - 1^obj_ij (so the other box in an object cell is also
  pushed to confidence 0, as in the paper):

    lambda_coord sum 1^obj_ij [(x - x^)^2 + (y - y^)^2
                               + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
    + sum 1^obj_ij (C_ij - 1)^2 + lambda_noobj sum 1^noobj_ij C_ij^2
    + sum_i obj_i sum_c (p_i(c) - p^_i(c))^2

  The confidence target is 1 (not the IoU as in the paper's text). sqrt is
  sign(w) sqrt(|w| + 1e-6) for finite gradients. Returns (N,).
  """
  predictions = jnp.asarray(predictions)
  targets = jnp.asarray(targets)
  if predictions.shape[-1] != num_boxes * 5 + num_classes:
    raise ValueError(
      f"predictions must end in num_boxes * 5 + num_classes = "
      f"{num_boxes * 5 + num_classes}, got {predictions.shape}"
    )
  if targets.shape[-1] != 5 + num_classes:
    raise ValueError(
      f"targets must end in 5 + num_classes = {5 + num_classes}, got {targets.shape}"
    )
  grid_size = predictions.shape[-2]
  boxes = predictions[..., : num_boxes * 5].reshape(
    predictions.shape[:-1] + (num_boxes, 5)
  )  # (N, S, S, B, 5)
  target_box = targets[..., None, :4]  # (N, S, S, 1, 4)
  obj = targets[..., 4]  # (N, S, S)

  # Responsibility is a discrete choice: no gradient through the IoU.
  iou = jax.lax.stop_gradient(_cell_iou(boxes[..., :4], target_box, grid_size))
  best = jax.nn.one_hot(jnp.argmax(iou, axis=-1), num_boxes, dtype=boxes.dtype)
  responsible = best * obj[..., None]  # (N, S, S, B)

  xy = jnp.sum(jnp.square(boxes[..., :2] - target_box[..., :2]), axis=-1)
  wh = jnp.sum(
    jnp.square(_signed_sqrt(boxes[..., 2:4]) - _signed_sqrt(target_box[..., 2:4])), axis=-1
  )
  confidence = boxes[..., 4]
  box_terms = (
    lambda_coord * responsible * (xy + wh)
    + responsible * jnp.square(confidence - 1.0)
    + lambda_noobj * (1.0 - responsible) * jnp.square(confidence)
  )
  class_error = jnp.sum(jnp.square(predictions[..., num_boxes * 5 :] - targets[..., 5:]), axis=-1)
  return jnp.sum(box_terms, axis=(-3, -2, -1)) + jnp.sum(obj * class_error, axis=(-2, -1))


# ---------------------------------------------------------- distillation


def distillation_loss(
  student_logits: ArrayLike,
  teacher_logits: ArrayLike,
  labels: ArrayLike,
  temperature: float,
  alpha: float,
) -> Array:
  """Knowledge distillation (Hinton et al., 2015), per example.

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
    + (1 - alpha) * CE(student, labels)

  alpha weighs the soft (teacher) term; T^2 keeps its gradient scale
  independent of T. labels: class ids (...,) or one-hot (..., C).
  Shapes: logits (..., C) -> (...).
  """
  student_log_probs = jax.nn.log_softmax(jnp.asarray(student_logits) / temperature, axis=-1)
  teacher_log_probs = jax.nn.log_softmax(jnp.asarray(teacher_logits) / temperature, axis=-1)
  teacher_probs = jnp.exp(teacher_log_probs)
  # Log-space KL: no log(0) even where the teacher's softmax underflows.
  soft = jnp.sum(teacher_probs * (teacher_log_probs - student_log_probs), axis=-1)
  hard = softmax_cross_entropy(student_logits, labels)
  return alpha * temperature**2 * soft + (1.0 - alpha) * hard
