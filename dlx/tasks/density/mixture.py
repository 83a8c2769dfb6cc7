"""Gaussian mixtures fitted by gradient descent (docs/curriculum.md#f22): 2-D point
clouds (two_moons, spirals) and the negative log-likelihood as the loss; the report fits
the same mixture by EM (dlx/ops/mixture.py) and by scikit-learn's GaussianMixture,
compares test log-likelihoods, and draws density.png (log-density contours of all three
over the points)."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlx import data
from dlx import errors
from dlx import viz
from dlx.data import core
from dlx.ops import mixture

PLOT = "density.png"
DATASETS = ("two_moons", "spirals")


def get_dataset(config, data_dir):
  """config.data.name's points (two_moons or spirals), with config.data's other fields."""
  del data_dir
  fields = config.data.to_dict()
  name = fields.pop("name")
  if name not in DATASETS:
    raise errors.ConfigError(f"--config.data.name={name!r}: choose one of {', '.join(DATASETS)}")
  return data.load(name, seed=config.seed, **fields)


def loss(log_density, batch):
  """Per-point negative log-likelihood (the loss) and log-likelihood, in nats."""
  del batch
  return {"loss": -log_density, "log_likelihood": log_density}


@jax.jit
def _log_density(weights, means, covariances, x):
  """(N,) log density of x under a mixture given as (weights, means, covariances)."""
  precision = mixture.precision_cholesky_from_covariances(covariances)
  return mixture.log_density(x, jnp.log(weights), means, precision)


def _as_f32(*arrays):
  return tuple(np.asarray(a, np.float32) for a in arrays)


def _mean_log_likelihood(weights, means, covariances, x):
  return float(jnp.mean(_log_density(*_as_f32(weights, means, covariances, x))))


def _em(x, k, seed, num_steps):
  """EM from k distinct training points as means (scikit-learn's 'random_from_data'),
  equal weights, and isotropic covariances of the data's mean variance / k (each
  component starts about as wide as its share of the cloud)."""
  x = np.asarray(x, np.float32)
  means = x[np.random.default_rng(seed).choice(len(x), k, replace=False)]
  covariances = np.tile(np.eye(x.shape[1]) * np.var(x, 0).mean() / k, (k, 1, 1))
  return mixture.em_fit(x, *_as_f32(np.ones(k) / k, means, covariances), num_steps)


def _sklearn(x, k, seed, n_init):
  from sklearn import mixture as sk_mixture  # pylint: disable=g-import-not-at-top

  return sk_mixture.GaussianMixture(
    k, covariance_type="full", n_init=n_init, random_state=seed, max_iter=1000
  ).fit(np.asarray(x, np.float64))


def final_report(ctx):
  """Test and train mean log-likelihoods of the mixture fitted by gradient descent, by
  EM (dlx/ops/mixture.py, from random training points) and by scikit-learn's
  GaussianMixture (same K, full covariances, k-means start), and density.png."""
  config = ctx.config
  train = jnp.asarray(ctx.dataset.train["inputs"])
  test = jnp.asarray(ctx.dataset.test["inputs"])
  k = config.model.num_components
  gd = ctx.model.apply(ctx.variables, method="mixture_parameters")
  *em, history = _em(train, k, config.seed, config.em_steps)
  history = np.asarray(history)
  sk = _sklearn(train, k, config.seed, config.sklearn_n_init)
  fits = {
    "gradient descent": gd,
    "EM": em,
    "scikit-learn": (sk.weights_, sk.means_, sk.covariances_),
  }
  scores = {
    name: {
      split: _mean_log_likelihood(*params, x) for split, x in (("train", train), ("test", test))
    }
    for name, params in fits.items()
  }
  plot_densities(fits, np.asarray(train), os.path.join(ctx.workdir, PLOT), scores)
  gd_test, sk_test = scores["gradient descent"]["test"], scores["scikit-learn"]["test"]
  return {
    "dataset": config.data.name,
    "num_components": k,
    "covariance_type": "full",
    "test_log_likelihood": gd_test,
    "train_log_likelihood": scores["gradient descent"]["train"],
    "em_test_log_likelihood": scores["EM"]["test"],
    "em_train_log_likelihood": scores["EM"]["train"],
    "em_never_decreased": bool(np.all(np.diff(history) >= -1e-5)),
    "sklearn_test_log_likelihood": sk_test,
    "sklearn_train_log_likelihood": float(sk.score(np.asarray(train, np.float64))),
    "sklearn_n_init": config.sklearn_n_init,
    "gap_to_sklearn": gd_test - sk_test,
    "density_plot": PLOT,
    "num_test": core.num_examples(ctx.dataset.test),
  }


def plot_densities(fits, train_points, path, scores):
  """One panel per fit ({name: (weights, means, covariances)}): filled log-density
  contours over the training points, component means marked, test log-likelihood in
  the title."""
  plt = viz.pyplot()

  low, high = train_points.min(0), train_points.max(0)
  margin = 0.15 * (high - low)
  gx, gy = np.meshgrid(
    np.linspace(low[0] - margin[0], high[0] + margin[0], 200),
    np.linspace(low[1] - margin[1], high[1] + margin[1], 200),
  )
  grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
  fig, axes = plt.subplots(1, len(fits), figsize=(4.8 * len(fits), 4.2), squeeze=False)
  for ax, (name, (weights, means, covariances)) in zip(axes[0], fits.items()):
    log_p = _log_density(*_as_f32(weights, means, covariances, grid))
    z = np.maximum(np.asarray(log_p).reshape(gx.shape), -8.0)
    filled = ax.contourf(gx, gy, z, levels=20, cmap="viridis")
    ax.scatter(train_points[:, 0], train_points[:, 1], s=1, c="white", alpha=0.25)
    means = np.asarray(means)
    ax.scatter(means[:, 0], means[:, 1], marker="x", c="red", s=30)
    ax.set_title(f"{name}: test log-lik {scores[name]['test']:.3f}", fontsize=10)
    fig.colorbar(filled, ax=ax, fraction=0.046, label="log density (clipped at -8)")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
