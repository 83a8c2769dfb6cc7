"""Heteroscedastic regression with the Gaussian negative log-likelihood
(docs/curriculum.md#b4): the network predicts a mean and a variance for every input and
is fitted by maximum likelihood, -log N(y; mu(x), sigma^2(x)) (dlx.losses.gaussian_nll).
With sigma fixed this would be the squared error; learning sigma(x) lets the model say
where it is unsure, and its intervals mu +- 1.645 sigma should then hold 90% of the test
targets everywhere, in the quiet region and in the noisy one.

The data: y = sin(2x) + 0.5x + s(x) eps, eps ~ N(0, 1), x ~ U(-3, 3), with the noise
scale s(x) = 0.05 + 0.15 |x| growing from 0.05 at the centre to 0.5 at the edges. The
report compares the model's intervals with those of one constant variance (the squared
error's assumption, fitted to the same means on the validation split), per region.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlx import losses
from dlx import viz
from dlx.data import core
from dlx.tasks.classic import common

Z_90 = 1.6448536269514722  # the standard normal's 95% quantile: mu +- Z_90 sigma holds 90%
MIN_VARIANCE = 1e-6
PLOT = "intervals.png"
NOISY = 1.5  # |x| beyond this is the noisy region of the report


def noise_scale(x):
  """The true noise standard deviation s(x) = 0.05 + 0.15 |x|."""
  return 0.05 + 0.15 * np.abs(x)


def true_mean(x):
  return np.sin(2 * x) + 0.5 * x


def get_dataset(config, data_dir):
  """`config.num_examples` points (x, y), split 60/20/20 by config.seed."""
  del data_dir
  rng = np.random.default_rng(config.seed)
  x = rng.uniform(-3, 3, size=(config.num_examples, 1))
  y = true_mean(x) + noise_scale(x) * rng.standard_normal(x.shape)
  return core.train_validation_test(
    x.astype(np.float32),
    y.astype(np.float32),
    validation_fraction=0.2,
    test_fraction=0.2,
    seed=config.seed,
    info=dict(name="heteroscedastic_regression"),
  )


def mean_and_variance(outputs):
  """(mean, variance) from the model's two outputs (N, 2): the variance is
  softplus(raw) + 1e-6, positive for any raw value, with a gradient everywhere."""
  return outputs[:, :1], jax.nn.softplus(outputs[:, 1:]) + MIN_VARIANCE


def covered(mean, variance, targets):
  """1 where the target lies inside the central 90% interval mu +- 1.645 sigma."""
  return (jnp.abs(targets - mean) <= Z_90 * jnp.sqrt(variance)).astype(jnp.float32)


def loss(outputs, batch):
  """Per-example Gaussian NLL (nats), with the squared error of the mean and whether
  the 90% interval covers the target (its mean over a split is the coverage)."""
  targets = batch["targets"]
  mean, variance = mean_and_variance(outputs)
  return {
    "loss": losses.gaussian_nll(mean, targets, variance)[:, 0],
    "mse": losses.mse(mean, targets)[:, 0],
    "coverage_90": covered(mean, variance, targets)[:, 0],
  }


def _coverage(mean, variance, targets, where):
  return float(np.mean(np.asarray(covered(mean, variance, targets))[where]))


def final_report(ctx):
  """Test coverage of the 90% intervals overall and in the quiet (|x| < 1.5) and noisy
  regions, for the learned variances, for one constant variance (the mean squared
  validation residual of the same means) and for the true mean and noise (what the
  finite test set gives a perfect model); the correlation of the predicted standard
  deviation with the true one; intervals.png."""
  test, validation = ctx.dataset.test, ctx.dataset.validation
  mean, variance = (np.asarray(a) for a in mean_and_variance(common.split_outputs(ctx, test)))
  val_mean, _ = mean_and_variance(common.split_outputs(ctx, validation))
  constant = float(np.mean((np.asarray(val_mean) - validation["targets"]) ** 2))
  x, y = test["inputs"], test["targets"]
  regions = {"all": np.ones(len(x), bool), "quiet": np.abs(x[:, 0]) < NOISY}
  regions["noisy"] = ~regions["quiet"]
  fits = {
    "learned": (mean, variance),
    "constant": (mean, np.full_like(mean, constant)),
    "true": (true_mean(x), noise_scale(x) ** 2),  # the data's own: sampling noise alone
  }
  report = {
    f"{name}_coverage_90": {
      region: _coverage(m, v, y, where[:, None]) for region, where in regions.items()
    }
    for name, (m, v) in fits.items()
  }
  sigma = np.sqrt(variance[:, 0])
  report.update(
    test_coverage_90=report["learned_coverage_90"]["all"],
    constant_variance=constant,
    std_correlation=float(np.corrcoef(sigma, noise_scale(x[:, 0]))[0, 1]),
    std_ratio_noisy_to_quiet=float(sigma[regions["noisy"]].mean() / sigma[regions["quiet"]].mean()),
    intervals_plot=PLOT,
  )
  plot_intervals(ctx, constant, os.path.join(ctx.workdir, PLOT))
  return report


def plot_intervals(ctx, constant, path):
  """The train points, the true 90% band, the learned one and the constant-variance one."""
  plt = viz.pyplot()
  grid = np.linspace(-3, 3, 400, dtype=np.float32)[:, None]
  outputs = np.concatenate([np.asarray(o) for _, o in ctx.outputs({"inputs": grid})])
  mean, variance = (np.asarray(a)[:, 0] for a in mean_and_variance(outputs))
  g = grid[:, 0]
  fig, ax = plt.subplots(figsize=(7, 4))
  train = ctx.dataset.train
  ax.scatter(train["inputs"][:, 0], train["targets"][:, 0], s=3, c="grey", alpha=0.4, label="train")
  half = Z_90 * noise_scale(g)
  ax.plot(g, true_mean(g) - half, "k--", lw=1, label="true 90% band")
  ax.plot(g, true_mean(g) + half, "k--", lw=1)
  half = Z_90 * np.sqrt(variance)
  ax.fill_between(g, mean - half, mean + half, color="tab:blue", alpha=0.3, label="learned 90%")
  ax.plot(g, mean, c="tab:blue", lw=1.5, label="predicted mean")
  half = Z_90 * np.sqrt(constant)
  ax.plot(g, mean - half, c="tab:red", lw=1, label="constant variance 90%")
  ax.plot(g, mean + half, c="tab:red", lw=1)
  ax.set_xlabel("x")
  ax.set_ylabel("y")
  ax.legend(fontsize=8, loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
