"""The analysis experiments' shared parts: batch-size regimes (docs/curriculum.md#c4), the
Hessian spectrum (#c6), bagging (#d5), the perceptron, least squares and logistic
regression (#f1), PCA and k-means (#h1).

  batch regimes   the whole-train-split objective at every epoch, and one figure of every
                  run of a sweep that differs only in batch size
  hessian         extreme eigenvalues and spectral density at initialisation and trained
  bagging         bootstrap resamples as per-example multiplicities; ensemble reports
  perceptron      the learning rule as a custom step; updates counted in its state
  linear models   closed-form least squares and scikit-learn's logistic regression,
                  beside the trained linear layer
  pca / k-means   a dataset of principal coordinates; clustering purity and figures
"""

import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlx import config as config_lib
from dlx import errors
from dlx import losses
from dlx.data import core
from dlx.models import perceptron
from dlx.ops import clustering
from dlx.ops import hessian
from dlx.ops import resampling
from dlx.training import metric_writers
from dlx.training import optim
from dlx.training import parallel
from dlx.training import warm_start
from dlx.viz import plots


def _split_outputs(ctx, split) -> np.ndarray:
  """The model's eval-mode outputs on a whole split, as one host array."""
  return np.concatenate([np.asarray(outputs) for _, outputs in ctx.outputs(split)])


def _mean_loss(ctx, split) -> float:
  """The mean per-example 'loss' of the experiment's loss over a whole split."""
  loss_fn = ctx.experiment.get_loss(ctx.config)
  total = sum(float(np.sum(loss_fn(out, batch)["loss"])) for batch, out in ctx.outputs(split))
  return total / core.num_examples(split)


# ------------------------------------------------------------------ batch-size regimes

BATCH_REGIMES_PLOT = "batch_regimes.png"
# Config fields that may differ between runs compared as batch-size regimes.
_PER_RUN_FIELDS = ("batch_size", "log_every_steps", "checkpoint_every_steps")


def batch_regime_evaluate(ctx, split):
  """At every validation: the loss on the whole train split (what every batch size
  minimises, measured the same way for each), the epochs done and the seconds since the
  run started (its config.json was written: start-up and compilation included; a
  resumed run restarts the clock)."""
  if split != "validation":
    return {}
  train = ctx.dataset.train
  per_epoch = core.num_examples(train) // ctx.config.batch_size
  started = os.path.getmtime(os.path.join(ctx.workdir, "config.json"))
  return {
    "train_objective": _mean_loss(ctx, train),
    "epoch": ctx.step / per_epoch,
    "elapsed_s": time.time() - started,
  }


def _read_config(run_dir):
  with open(os.path.join(run_dir, "config.json")) as f:
    return json.load(f)


def batch_regime_runs(workdir) -> list[str]:
  """This run and the runs beside it (a sweep's other runs) whose configs differ from its
  own only in batch size and logging, sorted by batch size."""
  workdir = pathlib.Path(workdir)

  def key(config):
    return {k: v for k, v in config.items() if k not in _PER_RUN_FIELDS}

  own = key(_read_config(workdir))
  found = []
  for run in sorted(workdir.parent.iterdir()):
    if not (run / "config.json").is_file() or not (run / "metrics.jsonl").is_file():
      continue
    config = _read_config(run)
    if key(config) == own:
      found.append((config["batch_size"], str(run)))
  return [run for _, run in sorted(found)]


def batch_regime_curve(run_dir):
  """(batch size, epochs, training seconds, train objective) at each validation of a run.

  Training seconds leave out start-up and compilation, which would swamp the fast
  regimes: the first epoch (which holds the compilation) is counted as long as the
  second, so t_e = elapsed_e - elapsed_1 + (elapsed_2 - elapsed_1). Every epoch keeps
  its validation, the same work for every batch size."""
  rows = metric_writers.read_metrics(run_dir, "validation")
  rows = [r for r in rows if "train_objective" in r]
  epochs, elapsed, objective = (
    [r[k] for r in rows] for k in ("epoch", "elapsed_s", "train_objective")
  )
  if len(elapsed) > 1:
    offset = 2 * elapsed[0] - elapsed[1]
    elapsed = [t - offset for t in elapsed]
  return _read_config(run_dir)["batch_size"], epochs, elapsed, objective


def _regime_label(batch_size, train_size):
  if batch_size == 1:
    return "SGD (batch 1)"
  if batch_size == train_size:
    return f"GD (full batch, {batch_size})"
  return f"mini-batch {batch_size}"


def plot_batch_regimes(run_dirs, path, train_size, title=None):
  """One figure: the whole-train-split loss against epochs and against seconds, one line
  per run (a run's `batch_regime_evaluate` rows)."""
  by_epoch, by_time = {}, {}
  for run in run_dirs:
    batch_size, epochs, seconds, objective = batch_regime_curve(run)
    label = _regime_label(batch_size, train_size)
    by_epoch[label], by_time[label] = (epochs, objective), (seconds, objective)
  plots.plot_curve_panels(
    [
      {"curves": by_epoch, "xlabel": "epochs", "title": "per epoch (equal data)"},
      {
        "curves": by_time,
        "xlabel": "training seconds (compilation left out)",
        "xscale": "log",
        "title": "per wall-clock second",
      },
    ],
    path,
    ylabel="loss on the whole train split",
    title=title,
    yscale="log",
  )


def batch_regime_report(ctx):
  """This run's regime (updates per epoch, final train loss, seconds) and
  batch_regimes.png of this run beside every comparable finished run next to it: after a
  sweep over batch sizes, its last run draws them all."""
  train_size = core.num_examples(ctx.dataset.train)
  batch_size, _, seconds, objective = batch_regime_curve(ctx.workdir)
  compared = batch_regime_runs(ctx.workdir)
  plot_batch_regimes(
    compared,
    os.path.join(ctx.workdir, BATCH_REGIMES_PLOT),
    train_size,
    title=f"{ctx.config.experiment}: {train_size} training examples, "
    f"{ctx.config.optimizer.name} at lr {ctx.config.optimizer.learning_rate:g}",
  )
  return {
    "batch_size": batch_size,
    "updates_per_epoch": train_size // batch_size,
    "final_train_objective": objective[-1],
    "training_seconds": seconds[-1],
    "compared_runs": [os.path.basename(r) for r in compared],
    "plot": BATCH_REGIMES_PLOT,
  }


# ------------------------------------------------------------------ Hessian spectrum

HESSIAN_PLOT = "hessian_spectrum.png"


def hessian_config(config):
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


def hessian_spectrum(objective, variables, batch, rng, settings, loss_and_grad_norm=None):
  """({loss, grad_norm, top, bottom}, (grid, density)) of the Hessian of
  objective(., variables, batch) at variables['params']. `loss_and_grad_norm`: a jitted
  (params, variables, batch) -> (loss, gradient norm), shared between calls so that it
  compiles once."""
  batch = jax.tree.map(jnp.asarray, batch)
  params = variables["params"]
  extremes_rng, density_rng = jax.random.split(rng)
  # objective(params, variables, batch) with the rest as arguments: one compiled
  # Hessian-vector product serves both calls and both points (init and trained).
  eig = hessian.extreme_eigenvalues(
    objective,
    params,
    settings.k,
    extremes_rng,
    num_iters=settings.num_iters,
    args=(variables, batch),
  )
  top, bottom = np.asarray(eig.top, np.float64), np.asarray(eig.bottom, np.float64)
  margin = 0.05 * max(top[0] - bottom[0], 1e-6)
  grid = np.linspace(bottom[0] - margin, top[0] + margin, settings.grid_points)
  density = hessian.spectral_density(
    objective,
    params,
    density_rng,
    grid,
    num_iters=settings.density_iters,
    num_probes=settings.density_probes,
    args=(variables, batch),
  )
  loss, grad_norm = (loss_and_grad_norm or _loss_and_grad_norm(objective))(params, variables, batch)
  summary = {
    "loss": float(loss),
    "grad_norm": float(grad_norm),
    "top": top.tolist(),
    "bottom": bottom.tolist(),
  }
  density = np.asarray(density, np.float64)
  # Gaps, not a floor, where the density is nothing (a log axis has no 0).
  density[density < 1e-9 * density.max()] = np.nan
  return summary, (grid, density)


def _loss_and_grad_norm(objective):
  def loss_and_grad_norm(params, variables, batch):
    loss, grads = jax.value_and_grad(objective)(params, variables, batch)
    return loss, optax.global_norm(grads)

  return jax.jit(loss_and_grad_norm)  # jitted: op by op, every op would compile apart


def hessian_report(ctx):
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
    summary, (grid, density) = hessian_spectrum(
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
    os.path.join(ctx.workdir, HESSIAN_PLOT),
    ylabel="spectral density",
    title=f"{ctx.config.experiment}: training-loss Hessian on {report['examples']} examples",
    yscale="log",
  )
  report["plot"] = HESSIAN_PLOT
  return report


# ------------------------------------------------------------------ bagging


def bootstrap_weights(n: int, num_members: int, seed: int) -> np.ndarray:
  """(n, num_members) float32: how often each example appears in each member's
  bootstrap resample (dlx.ops.resampling.bootstrap_indices); 0 = out of bag."""
  rows = resampling.bootstrap_indices(n, num_members, seed)
  return np.stack([np.bincount(row, minlength=n) for row in rows], 1).astype(np.float32)


def with_bootstrap_weights(dataset, num_members: int, seed: int):
  """`dataset` with train['weights'], the members' bootstrap multiplicities.

  Training member m on its resample minimises (1/n) sum_j loss(x_idx_j) =
  (1/n) sum_i count_m(i) loss(x_i): the same objective as weighting every example of the
  original split by its count, so one shuffled pass over the split trains every member on
  its own resample in one batch (only the mini-batch noise differs)."""
  n = core.num_examples(dataset.train)
  train = {**dataset.train, "weights": bootstrap_weights(n, num_members, seed)}
  return core.Dataset(train, dataset.validation, dataset.test, dataset.info)


def bagging_loss(logits, batch):
  """Per-example loss of an ensemble's (N, M, C) logits: the members' cross-entropies
  weighted by batch['weights'] (N, M) (1 where absent: validation, test), averaged over
  members; with the accuracy and loss of the averaged probabilities and the mean member
  accuracy."""
  labels = batch["targets"]
  member_labels = jnp.broadcast_to(labels[:, None], logits.shape[:2])
  member_ce = losses.softmax_cross_entropy(logits, member_labels)
  weights = batch.get("weights", jnp.ones_like(member_ce))
  # log of the members' mean probability, computed in log space.
  log_mean = jax.nn.logsumexp(jax.nn.log_softmax(logits), axis=1) - jnp.log(logits.shape[1])
  return {
    "loss": jnp.mean(weights * member_ce, axis=1),
    "accuracy": (jnp.argmax(log_mean, -1) == labels).astype(jnp.float32),
    "member_accuracy": jnp.mean(jnp.argmax(logits, -1) == member_labels, axis=1),
    "ensemble_loss": -jnp.take_along_axis(log_mean, labels[:, None], 1)[:, 0],
  }


def _member_probabilities(ctx, split):
  """(M, N, C) class probabilities of every member on a whole split."""
  logits = _split_outputs(ctx, split)
  return np.transpose(np.asarray(jax.nn.softmax(logits)), (1, 0, 2))


def bagging_report(ctx):
  """Each member's and the ensemble's test accuracy (averaged probabilities, and the
  members' majority vote), the gain over the mean member, a bootstrap confidence interval
  of the ensemble's test accuracy, and the out-of-bag accuracy on the train split (each
  example scored by the members whose resample left it out)."""
  settings = ctx.config.bagging
  test = ctx.dataset.test
  probabilities = _member_probabilities(ctx, test)
  labels = np.asarray(test["targets"])
  members = (probabilities.argmax(2) == labels).mean(1)
  correct = resampling.bagging_predict(probabilities, "average") == labels
  vote = resampling.bagging_predict(probabilities, "vote") == labels
  interval = resampling.bootstrap_confidence_interval(
    correct.astype(np.float64),
    confidence=settings.confidence,
    num_resamples=settings.ci_resamples,
    seed=ctx.config.seed,
  )
  train = ctx.dataset.train
  out_of_bag = np.asarray(train["weights"]).T == 0  # (M, N)
  oob_probabilities = (_member_probabilities(ctx, train) * out_of_bag[..., None]).sum(0)
  scored = out_of_bag.any(0)
  oob_correct = oob_probabilities.argmax(1) == np.asarray(train["targets"])
  return {
    "num_members": len(members),
    "member_test_accuracy": members.tolist(),
    "mean_member_test_accuracy": float(members.mean()),
    "best_member_test_accuracy": float(members.max()),
    "ensemble_test_accuracy": float(correct.mean()),
    "vote_test_accuracy": float(vote.mean()),
    "ensemble_gain": float(correct.mean() - members.mean()),
    f"ensemble_ci{round(100 * settings.confidence)}": [interval.low, interval.high],
    "oob_accuracy": float(oob_correct[scored].mean()) if scored.any() else None,
    "oob_examples": int(scored.sum()),
  }


# ------------------------------------------------------------------ PCA and k-means

PCA_PLOT = "pca_kmeans.png"


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


@jax.jit  # one compiled call per shape: op by op, every op would compile apart
def _inertia_and_nearest(train_x, test_x, centroids, assignments):
  nearest = jnp.argmin(clustering.squared_distances(test_x, centroids), 1)
  return clustering.kmeans_inertia(train_x, centroids, assignments), nearest


def _kmeans_purity(train_x, test_x, train_labels, test_labels, k, restarts, rng):
  """k-means from `restarts` k-means++ seedings, the lowest inertia kept (Lloyd's
  iterations find a local minimum); test points go to their nearest centroid."""
  best = None
  for key in jax.random.split(rng, restarts):
    centroids, assignments = clustering.kmeans(train_x, k, key)
    inertia, nearest = _inertia_and_nearest(train_x, test_x, centroids, assignments)
    if best is None or float(inertia) < best[0]:
      best = (float(inertia), assignments, nearest)
  inertia, assignments, test_assignments = best
  return np.asarray(assignments), {
    "train_purity": clustering.cluster_purity(assignments, train_labels),
    "test_purity": clustering.cluster_purity(test_assignments, test_labels),
    "inertia": inertia,
  }


def pca_kmeans_report(ctx):
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
    os.path.join(ctx.workdir, PCA_PLOT),
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
    "plot": PCA_PLOT,
  }


# ------------------------------------------------------------------ perceptron


def perceptron_rule(learning_rate: float) -> optax.GradientTransformation:
  """The perceptron's update as an optax transformation: it scales the rule's direction
  sum (y - y_hat) x by the learning rate and counts, in its state, the steps that changed
  the parameters ('updates') and the last of them ('last_update', -1 before any)."""

  def init(params):
    del params
    zero = jnp.zeros((), jnp.int32)
    return {"steps": zero, "updates": zero, "last_update": zero - 1}

  def update(direction, state, params=None):
    del params
    changed = jnp.any(jnp.stack([jnp.any(d != 0) for d in jax.tree.leaves(direction)]))
    new_state = {
      "steps": state["steps"] + 1,
      "updates": state["updates"] + changed.astype(jnp.int32),
      "last_update": jnp.where(changed, state["steps"], state["last_update"]),
    }
    return jax.tree.map(lambda d: learning_rate * d, direction), new_state

  return optax.GradientTransformation(init, update)


def perceptron_loss(scores, batch):
  """The perceptron criterion max(0, -t s) with t = +-1 (0 when a point is on the right
  side; what the rule decreases), and the accuracy of step(s)."""
  labels = batch["targets"]
  signs = 2.0 * labels - 1.0
  return {
    "loss": jnp.maximum(0.0, -signs * scores),
    "accuracy": (perceptron.step(scores) == labels).astype(jnp.float32),
  }


def make_perceptron_step(model, optimizer, config, *, axis_name=None, teacher=None):
  """Rosenblatt's rule, no gradient: w += lr * sum (y - y_hat) x and b += lr * sum
  (y - y_hat) over the batch (batch 1: the classic online rule, which changes the
  parameters only on a mistake). The model is dlx.models.perceptron.Perceptron."""
  del config
  if teacher is not None:
    raise errors.ConfigError("the perceptron reads no teacher; unset --config.teacher")

  def train_step(state, batch):
    inputs = batch["inputs"].reshape((batch["inputs"].shape[0], -1))
    scores = model.apply({"params": state.params}, inputs)
    error = (batch["targets"] - perceptron.step(scores)).astype(inputs.dtype)
    direction = parallel.sum_over_devices(
      {"weights": inputs.T @ error, "bias": jnp.sum(error)}, axis_name
    )
    updates, opt_state = optimizer.update(direction, state.opt_state, state.params)
    values = {**perceptron_loss(scores, batch), "mistakes": (error != 0).astype(jnp.float32)}
    metrics = parallel.mean_over_devices({k: jnp.mean(v) for k, v in values.items()}, axis_name)
    new_state = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state
    )
    return new_state, metrics

  return train_step


def perceptron_report(ctx):
  """Updates made, the epoch of the last one, and whether the rule converged (every
  training point on the right side); the rule's counters come from the run's final
  checkpoint (they live in the optimizer state, not in the model)."""
  state, _ = warm_start.restore_state(f"{ctx.workdir}:latest", "workdir")
  counters = {k: int(v) for k, v in state["opt_state"].items()}
  train = ctx.dataset.train
  scores = _split_outputs(ctx, train)
  train_accuracy = float(np.mean(np.asarray(perceptron.step(scores)) == train["targets"]))
  per_epoch = core.num_examples(train) // ctx.config.batch_size
  converged = train_accuracy == 1.0
  return {
    "train_accuracy": train_accuracy,
    "converged": converged,
    "updates": counters["updates"],
    "steps": counters["steps"],
    "steps_per_epoch": per_epoch,
    "epochs_run": counters["steps"] / per_epoch,
    # The epoch (1-based) of the last update: from then on no point moved the weights.
    "epochs_to_convergence": counters["last_update"] // per_epoch + 1 if converged else None,
    "weights": np.asarray(ctx.variables["params"]["weights"]).tolist(),
    "bias": float(ctx.variables["params"]["bias"]),
  }


# ------------------------------------------------------------------ linear models


def linear_data(*, num_examples=1000, num_features=8, noise=0.1, seed=0):
  """y = x.w + b + N(0, noise^2) for x ~ N(0, I), with w ~ N(0, I) and b ~ N(0, 1) drawn
  by `seed` (kept in info as true_weights and true_bias); splits 60/20/20."""
  rng = np.random.default_rng(seed)
  weights, bias = rng.standard_normal(num_features), float(rng.standard_normal())
  x = rng.standard_normal((num_examples, num_features))
  y = x @ weights + bias + noise * rng.standard_normal(num_examples)
  return core.train_validation_test(
    x.astype(np.float32),
    y[:, None].astype(np.float32),
    validation_fraction=0.2,
    test_fraction=0.2,
    seed=seed,
    info=dict(name="linear", true_weights=weights.tolist(), true_bias=bias),
  )


def least_squares(x, y):
  """(weights (d,), bias) minimising sum (x.w + b - y)^2, by numpy.linalg.lstsq in float64."""
  design = np.concatenate([np.asarray(x, np.float64), np.ones((len(x), 1))], 1)
  solution = np.linalg.lstsq(design, np.asarray(y, np.float64).reshape(-1), rcond=None)[0]
  return solution[:-1], float(solution[-1])


def _linear_layer(ctx):
  """(kernel (d, k), bias (k,)) of a dlx.models.mlp.Linear."""
  layer = ctx.variables["params"]["Dense_0"]
  return np.asarray(layer["kernel"], np.float64), np.asarray(layer["bias"], np.float64)


def least_squares_report(ctx):
  """The closed-form solution (normal equations, by lstsq) beside the trained layer's
  weights and the true ones; their largest difference and each one's test MSE."""
  train, test = ctx.dataset.train, ctx.dataset.test
  closed_w, closed_b = least_squares(train["inputs"], train["targets"])
  kernel, bias = _linear_layer(ctx)
  trained_w, trained_b = kernel[:, 0], float(bias[0])
  x, y = np.asarray(test["inputs"], np.float64), np.asarray(test["targets"], np.float64)[:, 0]
  difference = float(np.max(np.abs(np.append(closed_w - trained_w, closed_b - trained_b))))
  report = {
    "closed_form": {"weights": closed_w.tolist(), "bias": closed_b},
    "gradient_descent": {"weights": trained_w.tolist(), "bias": trained_b},
    "max_parameter_difference": difference,
    "agree": difference <= ctx.config.tolerance,
    "closed_form_test_mse": float(np.mean((x @ closed_w + closed_b - y) ** 2)),
    "gradient_descent_test_mse": float(np.mean((x @ trained_w + trained_b - y) ** 2)),
  }
  if "true_weights" in ctx.dataset.info:
    true_w = np.asarray(ctx.dataset.info["true_weights"])
    report["true"] = {"weights": true_w.tolist(), "bias": ctx.dataset.info["true_bias"]}
    report["closed_form_error_to_true"] = float(
      np.max(np.abs(np.append(closed_w - true_w, closed_b - ctx.dataset.info["true_bias"])))
    )
  return report


def l2_optimizer(config, total_steps):
  """The config's optimizer after an L2 penalty of strength config.l2 on the kernels, not
  the biases: as if (l2 / 2) ||W||^2 were added to the mean loss, the penalty
  scikit-learn's LogisticRegression puts on its coefficients."""
  return optax.chain(
    losses.penalty_transform("l2", config.l2, mask=losses.exclude_biases),
    optim.create_optimizer(config.optimizer, total_steps),
  )


def sklearn_c(l2: float, num_examples: int, num_classes: int) -> float:
  """scikit-learn's C for the same objective as mean cross-entropy + (l2/2) ||W||^2 of a
  softmax layer. Multinomial: C sum CE + ||W||^2 / 2, so C = 1 / (l2 n). Two classes:
  scikit-learn fits one weight vector w = w_1 - w_0, and the smallest (l2/2) (|w_0|^2 +
  |w_1|^2) with that difference is (l2/4) |w|^2, so C = 2 / (l2 n)."""
  return (2.0 if num_classes == 2 else 1.0) / (l2 * num_examples)


def sklearn_logistic_report(ctx):
  """Test accuracy of the trained softmax layer beside scikit-learn's LogisticRegression
  (lbfgs) fitted to the same train split with the same L2 penalty, and how often the two
  predict the same class."""
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top

  train, test = ctx.dataset.train, ctx.dataset.test
  x = np.asarray(train["inputs"], np.float64).reshape(len(train["inputs"]), -1)
  num_classes = int(ctx.dataset.info.get("num_classes", np.max(train["targets"]) + 1))
  l2 = ctx.config.l2
  options = {"C": sklearn_c(l2, len(x), num_classes)} if l2 > 0 else {"penalty": None}
  reference = linear_model.LogisticRegression(max_iter=10_000, tol=1e-8, **options)
  reference.fit(x, train["targets"])
  logits = _split_outputs(ctx, test)
  ours = logits.argmax(1)
  theirs = reference.predict(np.asarray(test["inputs"], np.float64).reshape(len(ours), -1))
  labels = np.asarray(test["targets"])
  return {
    "test_accuracy": float(np.mean(ours == labels)),
    "sklearn_test_accuracy": float(np.mean(theirs == labels)),
    "accuracy_difference": float(np.mean(ours == labels) - np.mean(theirs == labels)),
    "prediction_agreement": float(np.mean(ours == theirs)),
    "sklearn_C": options.get("C"),
  }
