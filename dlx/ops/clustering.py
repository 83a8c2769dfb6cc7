"""K-means and PCA (docs/curriculum.md#h1), in JAX so that both jit and run on features
computed on the accelerator (e.g. clustering or projecting a model's embeddings).

K-means alternates assigning each point to its nearest centroid and moving each centroid
to the mean of its points (Lloyd's algorithm), from k-means++ seeding (the best of several
seedings: `kmeans_restarts`). PCA takes the top right-singular vectors of the centred
data, the top eigenvectors of its covariance.
"""

import functools
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

from dlx import errors

INITS = ("k-means++", "random")


def _check_data(x):
  if jnp.ndim(x) != 2 or x.shape[0] < 1:
    raise errors.ConfigError(f"x must be a non-empty (n, d) array of points, got {jnp.shape(x)}")


def _check_k(x, k):
  _check_data(x)
  if not 1 <= k <= x.shape[0]:
    raise errors.ConfigError(f"k must be in [1, {x.shape[0]}] (the number of points), got {k}")


def squared_distances(x: jax.Array, centroids: jax.Array) -> jax.Array:
  """(n, k) squared Euclidean distances, as |x|^2 - 2 x.c + |c|^2 (no (n, k, d) array)."""
  cross = x @ centroids.T
  squared = jnp.sum(x**2, 1)[:, None] - 2 * cross + jnp.sum(centroids**2, 1)[None, :]
  return jnp.maximum(squared, 0.0)  # rounding can make it slightly negative


def kmeans_plus_plus(x: jax.Array, k: int, rng: jax.Array) -> jax.Array:
  """(k, d) initial centroids by D^2 sampling (Arthur and Vassilvitskii, 2007).

  The first centroid is a uniformly drawn point; each next one is a point drawn with
  probability proportional to its squared distance to the nearest centroid so far, which
  spreads the seeds over the clusters. (scikit-learn's default is a greedy variant that
  tries 2 + log k candidates per step; this is the plain one.)
  """
  x = jnp.asarray(x)
  _check_k(x, k)
  return _kmeans_plus_plus(x, k, rng)


@functools.partial(jax.jit, static_argnums=1)
def _kmeans_plus_plus(x, k, rng):
  keys = jax.random.split(rng, k)
  first = x[jax.random.randint(keys[0], (), 0, x.shape[0])]
  centroids = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
  nearest = jnp.sum((x - first) ** 2, 1)

  def add_centroid(i, carry):
    centroids, nearest = carry
    # All points on a centroid already (fewer distinct points than k): draw uniformly.
    logits = jnp.where(nearest.sum() > 0, jnp.log(nearest), 0.0)
    chosen = x[jax.random.categorical(keys[i], logits)]
    nearest = jnp.minimum(nearest, jnp.sum((x - chosen) ** 2, 1))
    return centroids.at[i].set(chosen), nearest

  centroids, _ = jax.lax.fori_loop(1, k, add_centroid, (centroids, nearest))
  return centroids


def _lloyd(x, centroids, num_iters, threshold):
  """Lloyd iterations until the total squared centroid shift is <= threshold."""
  k = centroids.shape[0]

  def update(state):
    i, centroids, _ = state
    assignments = jnp.argmin(squared_distances(x, centroids), 1)
    members = jax.nn.one_hot(assignments, k, dtype=x.dtype)  # (n, k)
    counts = members.sum(0)
    means = (members.T @ x) / jnp.maximum(counts, 1)[:, None]
    # An empty cluster keeps its centroid (it may win points back later).
    new = jnp.where(counts[:, None] > 0, means, centroids)
    return i + 1, new, jnp.sum((new - centroids) ** 2)

  def not_done(state):
    i, _, shift = state
    return (i < num_iters) & (shift > threshold)

  init = (jnp.zeros((), jnp.int32), centroids, jnp.full((), jnp.inf, x.dtype))
  _, centroids, _ = jax.lax.while_loop(not_done, update, init)
  return centroids


def kmeans(
  x: jax.Array,
  k: int,
  rng: jax.Array,
  *,
  num_iters: int = 300,
  init: Union[str, jax.Array] = "k-means++",
  tol: float = 1e-4,
) -> tuple[jax.Array, jax.Array]:
  """Lloyd's k-means: (centroids (k, d), assignments (n,) int).

  Stops after `num_iters` iterations or once the summed squared centroid movement is at
  most tol * (mean per-feature variance of x), scikit-learn's relative tolerance; tol=0
  runs until no point changes cluster. Assignments are to the returned centroids. An empty
  cluster keeps its previous centroid (scikit-learn instead moves it to a far point); with
  k-means++ seeds this is rare. Jits with k, num_iters, tol and a string init static
  (the work is jitted inside already).

  Args:
    x: (n, d) points.
    k: number of clusters, 1 <= k <= n.
    rng: PRNG key for the seeding (unused when init is an array).
    num_iters: the most Lloyd iterations.
    init: 'k-means++', 'random' (k distinct points drawn uniformly) or a (k, d) array of
      initial centroids.
    tol: relative tolerance on the centroid movement, >= 0.
  """
  x = jnp.asarray(x)
  _check_k(x, k)
  if num_iters < 1:
    raise errors.ConfigError(f"num_iters must be >= 1, got {num_iters}")
  if tol < 0:
    raise errors.ConfigError(f"tol must be >= 0, got {tol}")
  if isinstance(init, str):
    if init not in INITS:
      raise errors.ConfigError(f"init must be one of {INITS} or a (k, d) array, got {init!r}")
    return _kmeans(x, rng, None, k=k, num_iters=num_iters, init=init, tol=tol)
  centroids = jnp.asarray(init, x.dtype)
  if centroids.shape != (k, x.shape[1]):
    raise errors.ConfigError(
      f"init centroids must have shape (k, d) = {(k, x.shape[1])}, got {centroids.shape}"
    )
  return _kmeans(x, None, centroids, k=k, num_iters=num_iters, init=None, tol=tol)


@functools.partial(jax.jit, static_argnames=("k", "num_iters", "init", "tol"))
def _kmeans(x, rng, centroids, *, k, num_iters, init, tol):
  if init == "k-means++":
    centroids = _kmeans_plus_plus(x, k, rng)
  elif init == "random":
    centroids = x[jax.random.choice(rng, x.shape[0], (k,), replace=False)]
  threshold = tol * jnp.mean(jnp.var(x, 0))
  centroids = _lloyd(x, centroids, num_iters, threshold)
  return centroids, jnp.argmin(squared_distances(x, centroids), 1)


def kmeans_inertia(x: jax.Array, centroids: jax.Array, assignments=None) -> jax.Array:
  """Sum of squared distances from each point to its centroid (the k-means objective).

  assignments: (n,) cluster of each point; None assigns each to its nearest centroid.
  """
  if assignments is None:
    assignments = jnp.argmin(squared_distances(x, centroids), 1)
  return jnp.sum((x - centroids[assignments]) ** 2)


@jax.jit  # one compiled call per shape: op by op, every op would compile apart
def _inertia_and_nearest(x, queries, centroids, assignments):
  nearest = jnp.argmin(squared_distances(queries, centroids), 1)
  return kmeans_inertia(x, centroids, assignments), nearest


def kmeans_restarts(
  x: jax.Array, k: int, rng: jax.Array, restarts: int, queries: jax.Array
) -> tuple[float, jax.Array, jax.Array]:
  """(inertia, assignments (n,), query assignments (m,)) of the best of `restarts` k-means
  runs on x, each from the k-means++ seeding of one of jax.random.split(rng, restarts):
  Lloyd's iterations find a local minimum, so the lowest inertia is kept (the first on a
  tie). `queries` (m, d) go to the nearest of the kept centroids (e.g. test points, the
  centroids fitted on the train points alone)."""
  if restarts < 1:
    raise errors.ConfigError(f"restarts must be >= 1, got {restarts}")
  best = None
  for key in jax.random.split(rng, restarts):
    centroids, assignments = kmeans(x, k, key)
    inertia, nearest = _inertia_and_nearest(x, queries, centroids, assignments)
    if best is None or float(inertia) < best[0]:
      best = (float(inertia), assignments, nearest)
  return best


@functools.partial(jax.jit, static_argnames="n_components")
def _pca(x, n_components):
  centred = x - x.mean(0)
  _, singular_values, vt = jnp.linalg.svd(centred, full_matrices=False)
  components = vt[:n_components]
  # SVD signs are arbitrary: make each component's largest-magnitude entry positive
  # (scikit-learn's convention too), so results are reproducible.
  biggest = jnp.take_along_axis(components, jnp.argmax(jnp.abs(components), 1)[:, None], 1)
  components = components * jnp.where(biggest < 0, -1.0, 1.0)
  return components, singular_values[:n_components] ** 2 / (x.shape[0] - 1)


def pca(x: jax.Array, n_components: int) -> tuple[jax.Array, jax.Array]:
  """(components (n_components, d), explained_variance (n_components,)) of x.

  Components are the unit rows of V^T from the SVD of the centred data (the eigenvectors
  of the covariance), by decreasing variance; explained_variance is the variance along
  each, singular value^2 / (n - 1), as scikit-learn defines it. Project with
  `pca_transform(x, components, mean)` using the training data's mean.
  """
  x = jnp.asarray(x)
  _check_data(x)
  if x.shape[0] < 2:
    raise errors.ConfigError(f"PCA needs at least 2 points, got {x.shape[0]}")
  if not 1 <= n_components <= min(x.shape):
    raise errors.ConfigError(
      f"n_components must be in [1, min(n, d) = {min(x.shape)}], got {n_components}"
    )
  return _pca(x, n_components=n_components)


def pca_transform(x: jax.Array, components: jax.Array, mean: jax.Array) -> jax.Array:
  """(n, n_components) coordinates of x along the components, after subtracting `mean`
  (the mean of the data the components were fitted on)."""
  return (x - mean) @ components.T


def explained_variance_ratio(x: jax.Array, explained_variance: jax.Array) -> jax.Array:
  """The fraction of x's total variance (sum of per-feature variances, ddof=1) that each
  component explains."""
  return explained_variance / jnp.sum(jnp.var(x, 0, ddof=1))


def cluster_purity(assignments, labels) -> float:
  """Fraction of points whose label is the most common label of their cluster.

  1 means every cluster holds one class; it does not penalise splitting a class over
  many clusters (k = n gives 1), so compare it at a fixed k.
  """
  assignments, labels = np.asarray(assignments).ravel(), np.asarray(labels).ravel()
  if assignments.shape != labels.shape or assignments.size == 0:
    raise errors.ConfigError(
      f"assignments and labels must be equal-length and non-empty, got {assignments.shape} "
      f"and {labels.shape}"
    )
  _, cluster = np.unique(assignments, return_inverse=True)
  _, label = np.unique(labels, return_inverse=True)
  counts = np.zeros((cluster.max() + 1, label.max() + 1), np.int64)
  np.add.at(counts, (cluster, label), 1)
  return float(counts.max(1).sum() / assignments.size)
