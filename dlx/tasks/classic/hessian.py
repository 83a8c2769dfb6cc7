"""The Hessian spectrum of a training loss (docs/curriculum.md#c6): extreme eigenvalues
and spectral density on a fixed batch, at the fresh initialisation of the config's seed
and at the trained weights, with hessian_spectrum.png. The Lanczos estimates are
dlx.ops.hessian's.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx import config as config_lib
from dlx.data import core
from dlx.ops import hessian as hessian_lib
from dlx.training import warm_start
from dlx.viz import plots

PLOT = "hessian_spectrum.png"


def configure(config):
  """An evaluation-only run (no training steps; a smoke run keeps its few steps and
  analyses its own weights), plus config.hessian: the fixed batch (the first `examples`
  training examples), k extreme eigenvalues at each end from `num_iters` Lanczos steps,
  and the density from `density_probes` runs of `density_iters` steps on a grid of
  `grid_points` over the extreme range. Each step costs one Hessian-vector product on the
  batch (about two gradients)."""
  if not config.smoke:
    config.num_train_steps = 0
  config.hessian = config_lib.model_config(
    examples=1000, k=5, num_iters=30, density_iters=30, density_probes=1, grid_points=400
  )
  if config.smoke:
    config.hessian.update(examples=32, k=2, num_iters=6, density_iters=6)
  return config


def fresh_init(model, sample_inputs, seed: int):
  """The variables the trainer initialises a run of `seed` with (dlx.train.create_init_fn
  splits PRNGKey(seed) into the params, dropout and sample keys)."""
  params_rng, dropout_rng, sample_rng = jax.random.split(jax.random.PRNGKey(seed), 3)
  rngs = {"params": params_rng, "dropout": dropout_rng, "sample": sample_rng}
  return dict(jax.jit(lambda rngs, x: model.init(rngs, x, train=False))(rngs, sample_inputs))


def batch_objective(model, loss_fn):
  """objective(params, variables, batch): the mean 'loss' over `batch` in eval mode, the
  other collections of `variables` fixed."""

  def objective(params, variables, batch):
    outputs = model.apply({**variables, "params": params}, batch["inputs"], train=False)
    return jnp.mean(loss_fn(outputs, batch)["loss"])

  return objective


def spectrum(objective, variables, batch, rng, settings, loss_and_grad_norm=None):
  """({loss, grad_norm, top, bottom}, (grid, density)) of the Hessian of
  objective(., variables, batch) at variables['params'], by
  dlx.ops.hessian.extremes_and_density with config.hessian's `settings`.
  `loss_and_grad_norm`: a jitted (params, variables, batch) -> (loss, gradient norm),
  shared between calls so that it compiles once."""
  batch = jax.tree.map(jnp.asarray, batch)
  params = variables["params"]
  # objective(params, variables, batch) with the rest as arguments: one compiled
  # Hessian-vector product serves both estimates and both points (init and trained).
  top, bottom, grid, density = hessian_lib.extremes_and_density(
    objective,
    params,
    settings.k,
    rng,
    grid_points=settings.grid_points,
    num_iters=settings.num_iters,
    density_iters=settings.density_iters,
    density_probes=settings.density_probes,
    args=(variables, batch),
  )
  loss, grad_norm = (loss_and_grad_norm or _loss_and_grad_norm(objective))(params, variables, batch)
  summary = {
    "loss": float(loss),
    "grad_norm": float(grad_norm),
    "top": top.tolist(),
    "bottom": bottom.tolist(),
  }
  # Gaps, not a floor, where the density is nothing (a log axis has no 0).
  density[density < 1e-9 * density.max()] = np.nan
  return summary, (grid, density)


def _loss_and_grad_norm(objective):
  def loss_and_grad_norm(params, variables, batch):
    loss, grads = jax.value_and_grad(objective)(params, variables, batch)
    return loss, optax.global_norm(grads)

  return jax.jit(loss_and_grad_norm)  # jitted: op by op, every op would compile apart


def final_report(ctx):
  """Top-k and bottom-k Hessian eigenvalues of the training loss on a fixed batch, at the
  fresh initialisation of the config's seed and at the run's weights, with their spectral
  densities in hessian_spectrum.png."""
  settings = ctx.config.hessian
  train = ctx.dataset.train
  batch = core.take(train, slice(0, min(settings.examples, core.num_examples(train))))
  loss_fn = ctx.experiment.get_loss(ctx.config)
  points = {
    "init": fresh_init(ctx.model, batch["inputs"][:2], ctx.config.seed),
    "trained": ctx.variables,
  }
  if ctx.config.init_from:
    trained = (
      f"{ctx.config.init_from} (step {warm_start.locate(ctx.config.init_from, 'init_from')[1]})"
    )
  else:  # a smoke run: its own weights stand in
    trained = f"this run (step {ctx.step})"
  report, panels = {"examples": core.num_examples(batch), "trained_from": trained}, []
  objective = batch_objective(ctx.model, loss_fn)
  loss_and_grad_norm = _loss_and_grad_norm(objective)
  for i, (name, variables) in enumerate(points.items()):
    summary, (grid, density) = spectrum(
      objective, variables, batch, jax.random.fold_in(ctx.rng, i), settings, loss_and_grad_norm
    )
    report[name] = summary
    where = "at initialisation" if name == "init" else "trained"
    panels.append(
      {
        "curves": {"density": (grid, density)},
        "xlabel": "Hessian eigenvalue",
        "title": f"{where}: loss {summary['loss']:.3g}, top {summary['top'][0]:.3g}, "
        f"bottom {summary['bottom'][0]:.3g}",
      }
    )
  report["top_ratio"] = report["trained"]["top"][0] / report["init"]["top"][0]
  plots.plot_curve_panels(
    panels,
    os.path.join(ctx.workdir, PLOT),
    ylabel="spectral density",
    title=f"{ctx.config.experiment}: training-loss Hessian on {report['examples']} examples",
    yscale="log",
  )
  report["plot"] = PLOT
  return report
