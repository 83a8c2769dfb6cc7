"""PCA and k-means (docs/curriculum.md#h1): a dataset of principal coordinates fitted on
the train split, and the report: explained variance, k-means purity on the coordinates
and on the raw pixels beside scikit-learn's KMeans, and pca_kmeans.png. The PCA and
k-means themselves are dlx.ops.clustering's.
"""

import os

import jax
import numpy as np

from dlx.ops import clustering
from dlx.viz import plots

PLOT = "pca_kmeans.png"


def pca_dataset(dataset, num_components: int):
  """`dataset` with flattened 'pixels' kept and 'inputs' replaced by their first
  `num_components` principal coordinates, the components and mean fitted on the train
  split alone (validation and test are projected, never fitted)."""
  flat = lambda split: np.asarray(split["inputs"], np.float32).reshape(len(split["inputs"]), -1)
  train_pixels = flat(dataset.train)
  components, _ = clustering.pca(train_pixels, num_components)
  mean = train_pixels.mean(0)

  def project(split):
    pixels = flat(split)
    inputs = np.asarray(clustering.pca_transform(pixels, components, mean), np.float32)
    return {**split, "inputs": inputs, "pixels": pixels}

  return dataset.map(project)


def _kmeans_purity(train_x, test_x, train_labels, test_labels, k, restarts, rng):
  """(train assignments, {train and test purity, inertia}) of the best of `restarts`
  k-means runs on train_x (dlx.ops.clustering.kmeans_restarts); test points go to their
  nearest centroid."""
  inertia, assignments, test_assignments = clustering.kmeans_restarts(
    train_x, k, rng, restarts, test_x
  )
  return np.asarray(assignments), {
    "train_purity": clustering.cluster_purity(assignments, train_labels),
    "test_purity": clustering.cluster_purity(test_assignments, test_labels),
    "inertia": inertia,
  }


def final_report(ctx):
  """The explained variance of every principal component of the train pixels; k-means on
  the principal coordinates and on the raw pixels (best of `restarts`; test points go to
  their nearest train centroid), with cluster purity against the labels and
  scikit-learn's KMeans (as many restarts) beside it;
  pca_kmeans.png: the first two coordinates coloured by class and by cluster, and the
  cumulative explained variance."""
  from sklearn import cluster  # pylint: disable=g-import-not-at-top

  k, restarts, seed = ctx.config.kmeans.k, ctx.config.kmeans.restarts, ctx.config.seed
  train, test = ctx.dataset.train, ctx.dataset.test
  pixels = train["pixels"]
  _, variance = clustering.pca(pixels, min(pixels.shape))
  ratio = np.asarray(jax.jit(clustering.explained_variance_ratio)(pixels, variance))
  cumulative = np.cumsum(ratio)
  labels, test_labels = train["targets"], test["targets"]
  rng = jax.random.PRNGKey(seed)
  assignments, on_pca = _kmeans_purity(
    train["inputs"], test["inputs"], labels, test_labels, k, restarts, rng
  )
  _, on_pixels = _kmeans_purity(pixels, test["pixels"], labels, test_labels, k, restarts, rng)
  reference = cluster.KMeans(k, n_init=restarts, random_state=seed).fit(train["inputs"])
  num_components = train["inputs"].shape[1]
  plots.plot_pca_clusters(
    train["inputs"][:, :2],
    {"true class": labels, f"k-means cluster (k={k}, {num_components} components)": assignments},
    ratio,
    os.path.join(ctx.workdir, PLOT),
  )
  return {
    "explained_variance_ratio": ratio[:num_components].tolist(),
    "explained_variance_first_2": float(cumulative[1]),
    f"explained_variance_first_{num_components}": float(cumulative[num_components - 1]),
    "components_for_90_percent": int(np.searchsorted(cumulative, 0.9) + 1),
    "kmeans_pca": on_pca,
    "kmeans_pixels": on_pixels,
    "sklearn_kmeans_pca": {
      "train_purity": clustering.cluster_purity(reference.labels_, labels),
      "inertia": float(reference.inertia_),
    },
    "plot": PLOT,
  }
