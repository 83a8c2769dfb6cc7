"""RNADE on dequantised 8x8 digits (docs/curriculum.md#f22): the data, the exact
negative log-likelihood as the loss, fresh dequantisation noise in every train batch,
ancestral samples, and the two baselines fitted to the same train split and scored on
the same test points: a full-covariance Gaussian (maximum likelihood, closed form) and
scikit-learn's GaussianMixture (components and covariance floor picked by validation).

Why these data: scikit-learn's digits ship with the package (no network), are real
images rather than a toy density, and at 64 dimensions both baselines fit exactly in
seconds, so RNADE is compared with the best each baseline can do, not a shortcut. A
pixel holds one of 17 grey levels; adding U(0, 1) noise and dividing by 17 gives
continuous values in [0, 1) whose density is that of the discrete data spread evenly
over each level's bin (Uria et al., 2013, dequantise the same way), so every model is
scored on the same continuous points and the numbers compare.
"""

import jax
import jax.numpy as jnp
import numpy as np

from dlx import data
from dlx.data import core

LEVELS = 17  # the digits' grey levels, 0..16
OUTPUTS = ("samples_{step}.png",)


def dequantise(levels, rng):
  """Continuous points in [0, 1)^D from integer levels: (level + U(0, 1)) / 17."""
  return ((levels + rng.uniform(size=levels.shape)) / LEVELS).astype(np.float32)


def get_dataset(config, data_dir):
  """The digits as 64 dequantised pixels per image; validation and test are dequantised
  once (seeded by config.seed), the train split keeps its integer `levels` so that every
  batch draws new noise (`get_augment`)."""
  del data_dir
  ds = data.load("digits", seed=config.seed)
  rng = np.random.default_rng(config.seed)

  def prepare(split):
    levels = np.rint(split["inputs"].reshape(len(split["inputs"]), -1) * (LEVELS - 1))
    return {"inputs": dequantise(levels, rng), "levels": levels.astype(np.float32)}

  train, validation, test = (prepare(s) for s in (ds.train, ds.validation, ds.test))
  return core.Dataset(train, validation, test, {**ds.info, "name": "dequantised_digits"})


def get_augment(config):
  """Redraws the train batch's dequantisation noise (off with config.fresh_noise=False):
  the model sees each image at new points of its bins, so it cannot learn the fixed
  noise of the 1,258 training images."""
  if not config.fresh_noise:
    return None

  def augment(rng, batch):
    u = jax.random.uniform(rng, batch["levels"].shape, batch["inputs"].dtype)
    return {**batch, "inputs": (batch["levels"] + u) / LEVELS}

  return augment


def loss(log_conditionals, batch):
  """Per-image -log p(x) in nats (the loss, also 'nll') from the (N, D) conditional
  log-densities; 'nll_per_dim' is the same divided by D."""
  del batch
  nll = -jnp.sum(log_conditionals, axis=-1)
  return {"loss": nll, "nll": nll, "nll_per_dim": nll / log_conditionals.shape[-1]}


def visualize(ctx, batch):
  """64 ancestral samples as 8x8 images (clipped to [0, 1])."""
  del batch
  drawn = ctx.model.apply(ctx.variables, ctx.rng, 64, method="sample")
  return {"samples": jnp.clip(drawn, 0.0, 1.0).reshape((64, 8, 8, 1))}


def gaussian_fit(x):
  """(mean, covariance) of the maximum-likelihood Gaussian (covariance divided by N)."""
  x = np.asarray(x, np.float64)
  mean = x.mean(0)
  centred = x - mean
  return mean, centred.T @ centred / len(x)


def gaussian_log_density(x, mean, covariance):
  """(N,) log N(x; mean, covariance) in float64, through the Cholesky factor."""
  x = np.asarray(x, np.float64)
  chol = np.linalg.cholesky(covariance)
  z = np.linalg.solve(chol, (x - mean).T)  # L z = x - mean
  log_det = 2.0 * np.sum(np.log(np.diag(chol)))
  return -0.5 * (np.sum(z**2, 0) + log_det + x.shape[1] * np.log(2.0 * np.pi))


def gmm_select(train, validation, components, reg_covars, seed, n_init=2):
  """scikit-learn GaussianMixture (full covariances) for every (K, reg_covar), the one
  with the best validation log-likelihood, and every candidate's validation score."""
  from sklearn import mixture  # pylint: disable=g-import-not-at-top

  best, scores = None, []
  for k in components:
    for reg in reg_covars:
      gmm = mixture.GaussianMixture(
        k, covariance_type="full", reg_covar=reg, n_init=n_init, max_iter=500, random_state=seed
      ).fit(np.asarray(train, np.float64))
      score = float(gmm.score(np.asarray(validation, np.float64)))
      scores.append({"components": k, "reg_covar": reg, "validation_nll": -score})
      if best is None or score > best[1]:
        best = (gmm, score)
  return best[0], scores


def final_report(ctx):
  """RNADE's test NLL beside the full-covariance Gaussian's and the selected
  GaussianMixture's, all in nats per image on the same dequantised test points."""
  config = ctx.config
  train, validation, test = (np.asarray(ctx.dataset.split(s)["inputs"]) for s in core.SPLITS)
  log_p = [np.asarray(o).sum(-1) for _, o in ctx.outputs(ctx.dataset.test)]
  rnade_nll = float(-np.mean(np.concatenate(log_p)))
  mean, covariance = gaussian_fit(train)
  gaussian_nll = float(-gaussian_log_density(test, mean, covariance).mean())
  gmm, scores = gmm_select(
    train,
    validation,
    tuple(config.gmm.components),
    tuple(config.gmm.reg_covars),
    config.seed,
    config.gmm.n_init,
  )
  gmm_nll = float(-gmm.score(np.asarray(test, np.float64)))
  best_baseline = min(gaussian_nll, gmm_nll)
  return {
    "rnade_nll": rnade_nll,
    "gaussian_nll": gaussian_nll,
    "gmm_nll": gmm_nll,
    "gmm_components": int(gmm.n_components),
    "gmm_reg_covar": float(gmm.reg_covar),
    "gmm_candidates": scores,
    "gain_over_best_baseline": best_baseline - rnade_nll,
    "beats_both": bool(rnade_nll < best_baseline),
    "num_test": len(test),
    "dim": int(test.shape[1]),
  }
