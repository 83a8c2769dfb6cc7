"""Tests for dlx/ops/clustering.py (docs/curriculum.md#h1): k-means and PCA against
scikit-learn in float64 (the `x64` fixture), k-means++ seeding against its D^2 sampling
probabilities, and cluster purity against hand counts and sklearn's contingency matrix.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import cluster as sk_cluster
from sklearn import datasets
from sklearn import decomposition
from sklearn.metrics import cluster as sk_metrics

from dlx import errors
from dlx.ops import clustering


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _key(seed):
  # 'rbg' keys: threefry kernels are slow to compile on this CPU.
  return jax.random.key(seed, impl="rbg")


def _overlapping_blobs():
  # Overlapping clusters, so Lloyd needs several iterations from a poor start.
  x, _ = datasets.make_blobs(400, n_features=3, centers=4, cluster_std=2.5, random_state=0)
  return x


def test_kmeans_matches_sklearn_from_the_same_initial_centroids(x64):
  x = _overlapping_blobs()
  init = x[:4]  # four arbitrary points: a poor start
  for tol in (0.0, 1e-4):
    reference = sk_cluster.KMeans(4, init=init, n_init=1, tol=tol, algorithm="lloyd").fit(x)
    centroids, assignments = clustering.kmeans(jnp.asarray(x), 4, None, init=init, tol=tol)
    np.testing.assert_array_equal(assignments, reference.labels_)
    np.testing.assert_allclose(centroids, reference.cluster_centers_, rtol=1e-10)
    inertia = clustering.kmeans_inertia(jnp.asarray(x), centroids, assignments)
    assert float(inertia) == pytest.approx(reference.inertia_, rel=1e-10)
  assert reference.n_iter_ > 3  # the comparison covers real iterations


def test_kmeans_plus_plus_finds_well_separated_blobs(x64):
  x, labels = datasets.make_blobs(
    300, n_features=2, centers=5, cluster_std=0.5, center_box=(-30, 30), random_state=1
  )
  reference = sk_cluster.KMeans(5, n_init=5, random_state=0).fit(x)
  centroids, assignments = clustering.kmeans(jnp.asarray(x), 5, _key(0))
  inertia = float(clustering.kmeans_inertia(jnp.asarray(x), centroids))
  assert inertia == pytest.approx(reference.inertia_, rel=1e-9)
  assert clustering.cluster_purity(assignments, labels) == 1.0
  assert sk_metrics.adjusted_rand_score(reference.labels_, np.asarray(assignments)) == 1.0


def test_kmeans_plus_plus_samples_proportionally_to_squared_distance():
  # Points 0, 1, 3 on a line. The first seed is uniform; the second is j with probability
  # d(i, j)^2 / sum_l d(i, l)^2 given first seed i, averaged over i.
  points = np.array([[0.0], [1.0], [3.0]], np.float32)
  d2 = (points - points.T) ** 2
  expected = (d2 / d2.sum(1, keepdims=True)).mean(0)  # [0.297, 0.136, 0.567]
  keys = jax.random.split(_key(1), 4000)
  seeds = jax.jit(jax.vmap(lambda key: clustering.kmeans_plus_plus(jnp.asarray(points), 2, key)))(
    keys
  )
  first, second = np.asarray(seeds[:, 0, 0]), np.asarray(seeds[:, 1, 0])
  assert np.all(first != second)
  frequency = np.array([np.mean(second == p) for p in points[:, 0]])
  np.testing.assert_allclose(frequency, expected, atol=4 * np.sqrt(0.25 / 4000))
  np.testing.assert_allclose([np.mean(first == p) for p in points[:, 0]], 1 / 3, atol=0.03)


def test_an_empty_cluster_keeps_its_centroid(x64):
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
  init = np.array([[0.0, 0.0], [5.0, 5.0], [100.0, 100.0]])
  centroids, assignments = clustering.kmeans(jnp.asarray(x), 3, None, init=init)
  np.testing.assert_allclose(centroids, [x[:20].mean(0), x[20:].mean(0), [100.0, 100.0]])
  np.testing.assert_array_equal(assignments, [0] * 20 + [1] * 20)


def test_kmeans_jits_with_random_init():
  x = jnp.asarray(_overlapping_blobs(), jnp.float32)
  run = jax.jit(functools.partial(clustering.kmeans, k=4, init="random", num_iters=50))
  centroids, assignments = run(x, rng=_key(2))
  eager_centroids, eager_assignments = clustering.kmeans(x, 4, _key(2), init="random", num_iters=50)
  np.testing.assert_allclose(centroids, eager_centroids, rtol=1e-5)
  np.testing.assert_array_equal(assignments, eager_assignments)
  # Lloyd's fixed point: every centroid is the mean of its points.
  x, centroids, assignments = np.asarray(x), np.asarray(centroids), np.asarray(assignments)
  for c in range(4):
    np.testing.assert_allclose(centroids[c], x[assignments == c].mean(0), rtol=1e-4, atol=1e-4)


def test_kmeans_restarts_keeps_the_lowest_inertia():
  x = jnp.asarray(_overlapping_blobs(), jnp.float32)
  inertia, assignments, query_assignments = clustering.kmeans_restarts(x, 4, _key(2), 3, x[:7])
  runs = [clustering.kmeans(x, 4, key) for key in jax.random.split(_key(2), 3)]
  inertias = [float(clustering.kmeans_inertia(x, c, a)) for c, a in runs]
  assert inertia == pytest.approx(min(inertias), rel=1e-6)
  best_centroids, best_assignments = runs[int(np.argmin(inertias))]
  np.testing.assert_array_equal(assignments, best_assignments)
  # Queries go to the nearest kept centroid: a training point to its own cluster.
  np.testing.assert_array_equal(query_assignments, best_assignments[:7])


def test_pca_matches_sklearn(x64):
  rng = np.random.default_rng(3)
  x = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6)) + rng.standard_normal(6)
  reference = decomposition.PCA(3, svd_solver="full").fit(x)
  components, variance = clustering.pca(jnp.asarray(x), 3)
  assert components.shape == (3, 6) and variance.shape == (3,)
  signs = np.sign(np.sum(np.asarray(components) * reference.components_, 1))
  np.testing.assert_allclose(components * signs[:, None], reference.components_, rtol=1e-10)
  np.testing.assert_allclose(variance, reference.explained_variance_, rtol=1e-10)
  np.testing.assert_allclose(
    clustering.explained_variance_ratio(jnp.asarray(x), variance),
    reference.explained_variance_ratio_,
    rtol=1e-10,
  )
  projected = clustering.pca_transform(jnp.asarray(x), components, x.mean(0))
  np.testing.assert_allclose(projected * signs, reference.transform(x), rtol=1e-9, atol=1e-12)
  # Same sign convention as sklearn (largest entry of each component positive).
  np.testing.assert_array_equal(signs, 1)
  jitted = jax.jit(clustering.pca, static_argnums=1)(jnp.asarray(x), 3)
  np.testing.assert_allclose(jitted[0], components, rtol=1e-12)


def test_cluster_purity():
  assignments = [0, 0, 0, 1, 1, 2, 2, 2, 2]
  labels = ["a", "a", "b", "b", "b", "a", "c", "c", "c"]
  # Cluster 0: 2 of 3 'a'; cluster 1: 2 of 2 'b'; cluster 2: 3 of 4 'c'.
  assert clustering.cluster_purity(assignments, labels) == pytest.approx(7 / 9)
  table = sk_metrics.contingency_matrix(labels, assignments)
  assert clustering.cluster_purity(assignments, labels) == pytest.approx(
    table.max(0).sum() / table.sum()
  )
  assert clustering.cluster_purity(np.arange(9), labels) == 1.0


@pytest.mark.parametrize(
  "call",
  [
    lambda x: clustering.kmeans(x, 0, None, init=x[:1]),
    lambda x: clustering.kmeans(x, 11, None, init="random"),
    lambda x: clustering.kmeans(x, 2, None, init="kmeans"),
    lambda x: clustering.kmeans(x, 2, None, init=x[:3]),
    lambda x: clustering.kmeans(x, 2, None, init=x[:2], tol=-1.0),
    lambda x: clustering.kmeans(x[0], 2, None),
    lambda x: clustering.pca(x, 4),
    lambda x: clustering.pca(x[:1], 1),
    lambda x: clustering.cluster_purity([0, 1], [0]),
    lambda x: clustering.kmeans_restarts(x, 2, _key(0), 0, x),
  ],
)
def test_bad_arguments_raise_config_error(call):
  with pytest.raises(errors.ConfigError):
    call(jnp.zeros((10, 3)))
