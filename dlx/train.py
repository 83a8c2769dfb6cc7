"""The generic training loop: init or resume, step, log, evaluate, checkpoint, stop.

    results = dlx.train.train_and_evaluate(config, workdir, data_dir=...)

It holds no per-experiment case: the experiment module (dlx/experiment.py) supplies the
model, the loss, the data and, where training has several players, its own step.
"""

import functools
import json
import math
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from dlx import checkpoint
from dlx import config as config_lib
from dlx import errors
from dlx import experiment as experiment_lib
from dlx import metrics as metrics_lib
from dlx import optim
from dlx import parallel
from dlx import plots
from dlx import steps
from dlx.data import core as data_core
from dlx.data import pipeline
from dlx.state import TrainState

_EVAL_RNG_SALT = 0x5EED
_REPORT_RNG_SALT = 0x7E9  # the final_report hook's key, apart from eval and training


def total_steps(config, steps_per_epoch: int) -> int:
  if config.num_train_steps > 0:
    return int(config.num_train_steps)
  return max(1, int(math.ceil(config.num_epochs * steps_per_epoch)))


def make_optimizer(experiment, config, num_steps):
  if hasattr(experiment, "make_optimizer"):
    return experiment.make_optimizer(config, num_steps)
  return optim.create_optimizer(config.optimizer, num_steps)


def make_augment(experiment, config):
  """The experiment's `get_augment(config)` if it has one, else one built from the
  config's `augment` block (dlx/augment.py), else None."""
  if hasattr(experiment, "get_augment"):
    return experiment.get_augment(config)
  if "augment" in config:
    from dlx import augment  # pylint: disable=g-import-not-at-top
    return augment.make_augment(config.augment)
  return None


def init_optimizer_state(optimizer, params):
  """One optimizer, or a dict of them keyed by top-level parameter group."""
  if isinstance(optimizer, dict):
    return {name: tx.init(params[name]) for name, tx in optimizer.items()}
  return optimizer.init(params)


def create_init_fn(model, optimizer, sample_inputs, seed: int):
  """A pure function rng -> TrainState (jit it, or eval_shape it for restoring)."""

  def init(rng):
    params_rng, dropout_rng, sample_rng = jax.random.split(rng, 3)
    variables = dict(model.init(
        {"params": params_rng, "dropout": dropout_rng, "sample": sample_rng},
        sample_inputs, train=False))
    params = variables.pop("params")
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=init_optimizer_state(optimizer, params),
                      model_state=variables,
                      rng=jax.random.fold_in(jax.random.PRNGKey(seed), 1))

  return init


class _Runner:
  """Places state and batches for the chosen parallel mode and compiles the steps."""

  def __init__(self, config, train_step, eval_step):
    self.pmap = config.parallel == "pmap"
    if self.pmap:
      self._train = jax.pmap(train_step, axis_name="batch", donate_argnums=0)
      self._eval = jax.pmap(eval_step, axis_name="batch", in_axes=(0, 0, None))
    else:
      mesh = parallel.create_mesh()
      self.mesh = mesh
      repl, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
      self._train = jax.jit(train_step, donate_argnums=0, in_shardings=(repl, data),
                            out_shardings=(repl, repl))
      self._eval = jax.jit(eval_step, in_shardings=(repl, data, repl),
                           out_shardings=repl)

  def put_state(self, state):
    if self.pmap:
      return parallel.replicate(state)
    return jax.device_put(state, parallel.replicated(self.mesh))

  def host_state(self, state):
    """The state as one (unreplicated) copy, for checkpoints and hooks."""
    return parallel.unreplicate(state) if self.pmap else state

  def put_batch(self, batch):
    if self.pmap:
      return parallel.pmap_batch(batch)
    return parallel.global_batch(batch, self.mesh)

  def train_step(self, state, batch):
    state, metrics = self._train(state, batch)
    return state, (parallel.unreplicate(metrics) if self.pmap else metrics)

  def eval_step(self, state, batch, rng):
    out = self._eval(state, batch, rng)
    return parallel.unreplicate(out) if self.pmap else out


def evaluate(runner, state, split, config, *, num_examples=None, seed=0):
  """Mean of every per-example metric over a split (or its first `num_examples`)."""
  totals, count = None, 0.0
  rng = jax.random.fold_in(jax.random.PRNGKey(seed), _EVAL_RNG_SALT)
  batches = pipeline.eval_batches(split, config.eval_batch_size, num_examples=num_examples,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count())
  for i, batch in enumerate(pipeline.prefetch(batches, runner.put_batch)):
    sums, n = runner.eval_step(state, batch, jax.random.fold_in(rng, i))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    count = count + n
  totals, count = jax.device_get((totals, count))
  return {k: float(v) / float(count) for k, v in totals.items()}


def _check_finite(step, metrics, last_checkpoint):
  loss = float(metrics["loss"])
  if not math.isfinite(loss):
    where = (f"the last good checkpoint (step {last_checkpoint}) is kept"
             if last_checkpoint else "no checkpoint was written before it")
    raise errors.NonFiniteLossError(
        f"loss is {loss} at step {step}; training stopped and {where}. Lower "
        "--config.optimizer.learning_rate or set --config.optimizer.grad_clip_norm")


def _params_finite(state):
  leaves = jax.tree.leaves(state.params)
  return bool(jax.device_get(jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))))


def _visualize(experiment, model, state, dataset, config, workdir, step):
  if not hasattr(experiment, "visualize"):
    return
  batch = data_core.take(dataset.test, slice(0, 64))
  rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), step)
  images = experiment.visualize(model, state.variables(), batch, rng, config)
  if jax.process_index() == 0:
    for name, grid in images.items():
      plots.save_image_grid(np.asarray(grid), os.path.join(workdir, f"{name}_{step}.png"))


def _improved(value, best, mode):
  return best is None or (value < best if mode == "min" else value > best)


def train_and_evaluate(config, workdir: str, *, data_dir: str | None = None,
                       experiment=None) -> dict:
  """Trains `config`'s experiment in `workdir` (resuming if it holds checkpoints),
  evaluates on the test split and returns (and writes) results.json's contents."""
  if experiment is None:
    experiment = experiment_lib.load(config.experiment)
  config_lib.validate(config, jax.device_count())
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))

  dataset = experiment.get_dataset(config, data_dir)
  logging.info("data: %s", dataset)
  model = experiment.get_model(config)
  per_epoch = pipeline.steps_per_epoch(dataset.train, config.batch_size)
  num_steps = total_steps(config, per_epoch)
  optimizer = make_optimizer(experiment, config, num_steps)
  schedule = (None if hasattr(experiment, "make_optimizer")
              else optim.create_schedule(config.optimizer, num_steps))

  loss_fn = experiment_lib.loss_fn(experiment, config)
  if hasattr(experiment, "make_train_step"):
    make_step = functools.partial(experiment.make_train_step, model, optimizer, config)
  else:
    make_step = functools.partial(steps.make_train_step, model, optimizer, loss_fn,
                                  augment=make_augment(experiment, config),
                                  weight_noise=config.get("weight_noise", 0.0))
  axis_name = "batch" if config.parallel == "pmap" else None
  runner = _Runner(config, make_step(axis_name=axis_name),
                   steps.make_eval_step(model, loss_fn, axis_name=axis_name))

  init_fn = create_init_fn(model, optimizer, data_core.take(dataset.train, slice(0, 2))["inputs"],
                           config.seed)
  init_rng = jax.random.PRNGKey(config.seed)
  ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints,
                                 best_metric=config.best_metric, best_mode=config.best_mode)
  restored = ckpt.restore_latest(jax.eval_shape(init_fn, init_rng))
  if restored is not None:
    state, meta = restored
    logging.info("resuming from step %d in %s", int(state.step), workdir)
  else:
    state, meta = jax.jit(init_fn)(init_rng), {"best": None, "bad_evals": 0, "stopped": False}
  start_step = int(state.step)
  num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
  logging.info("model: %s with %d parameters; %d steps (%d per epoch) on %d device(s), %s",
               type(model).__name__, num_params, num_steps, per_epoch, jax.device_count(),
               config.parallel)

  eval_every = config.eval_every_steps or per_epoch
  eval_limit = config.eval_examples or None  # 0 = the whole split
  writer = metrics_lib.MetricWriter(workdir)
  progress = metrics_lib.Progress(num_steps, start_step)
  state = runner.put_state(state)
  last_checkpoint = start_step if restored is not None else None
  start_time = time.perf_counter()
  try:
    batches = pipeline.train_batches(
        dataset.train, config.batch_size, seed=config.seed, start_step=start_step,
        process_index=jax.process_index(), process_count=jax.process_count())
    stream = pipeline.prefetch(batches, runner.put_batch)
    history, pending = [], None
    step = start_step
    while step < num_steps and not meta["stopped"]:
      state, metrics = runner.train_step(state, next(stream))
      # Check the previous step's loss while this one runs (keeps dispatch asynchronous).
      if pending is not None:
        _check_finite(*pending, last_checkpoint)
      pending = (step, metrics)
      history.append(metrics)
      step += 1
      at_end = step == num_steps
      if step % config.log_every_steps == 0 or at_end:
        _check_finite(*pending, last_checkpoint)
        train_metrics = metrics_lib.mean_of(history)
        if schedule is not None:
          train_metrics["learning_rate"] = float(schedule(step - 1))
        history = []
        writer.write(step, "train", train_metrics)
        logging.info("%s", progress.line(step, train_metrics))
      if step % eval_every == 0 or at_end:
        val = evaluate(runner, state, dataset.validation, config,
                       num_examples=eval_limit, seed=config.seed)
        writer.write(step, "validation", val)
        logging.info("validation at step %d: %s", step, metrics_lib.format_metrics(val))
        if config.best_metric:
          if config.best_metric not in val:
            raise errors.ConfigError(
                f"--config.best_metric={config.best_metric!r} is not a validation metric; "
                f"choose one of {', '.join(sorted(val))} (or '' for none)")
          value = val[config.best_metric]
          if _improved(value, meta["best"], config.best_mode):
            meta.update(best=value, bad_evals=0)
            ckpt.save_best(step, runner.host_state(state), meta, val)
          else:
            meta["bad_evals"] += 1
          if 0 < config.early_stopping_patience <= meta["bad_evals"]:
            logging.info("early stopping at step %d: validation %s has not improved for %d "
                         "evaluations (best %.4g)", step, config.best_metric,
                         meta["bad_evals"], meta["best"])
            meta["stopped"] = True
      if (config.sample_every_steps and step % config.sample_every_steps == 0
          and not at_end):
        _visualize(experiment, model, runner.host_state(state), dataset, config, workdir, step)
      if step % config.checkpoint_every_steps == 0 or at_end or meta["stopped"]:
        _check_finite(*pending, last_checkpoint)
        if not _params_finite(state):
          raise errors.NonFiniteLossError(
              f"parameters became non-finite by step {step}; the last good checkpoint "
              f"(step {last_checkpoint}) is kept. Lower the learning rate or clip gradients")
        ckpt.save(step, runner.host_state(state), meta)
        last_checkpoint = step
    stream.close()  # stops the prefetch thread (it may be waiting to hand over a batch)
    train_time = time.perf_counter() - start_time

    final_step = int(jax.device_get(runner.host_state(state).step))
    results = {"experiment": config.experiment, "step": final_step,
               "stopped_early": bool(meta["stopped"]),
               "train_time_s": round(train_time, 2), "num_parameters": num_params}
    for split, limit in (("test", eval_limit), ("validation", eval_limit),
                         ("train", config.train_eval_examples or None)):
      results[split] = evaluate(runner, state, dataset.split(split), config,
                                num_examples=limit, seed=config.seed)
      writer.write(final_step, f"final_{split}", results[split])
    results["generalization_gap"] = results["test"]["loss"] - results["train"]["loss"]
    logging.info("test at step %d: %s", final_step, metrics_lib.format_metrics(results["test"]))
    _visualize(experiment, model, runner.host_state(state), dataset, config, workdir,
               final_step)
    if hasattr(experiment, "final_report") and jax.process_index() == 0:
      rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), _REPORT_RNG_SALT)
      report = experiment.final_report(model, runner.host_state(state).variables(), dataset,
                                       config, workdir, rng)
      if report:
        results["report"] = report
        logging.info("report: %s", report)
  finally:
    writer.close()
    ckpt.close()
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2, sort_keys=True)
    plots.plot_loss_curves(os.path.join(workdir, "metrics.jsonl"),
                           os.path.join(workdir, "loss_curve.png"))
  return results
