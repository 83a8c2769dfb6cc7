"""The generic training loop: init or restore, train, final evaluation.

    results = dlx.train.train_and_evaluate(config, workdir, data_dir=...)

It holds no per-experiment case: the experiment (dlx/experiment.py) supplies the model,
the loss, the data and, where training has several players, its own step; set-level
metrics, runs to start from and frozen teachers come through the same protocol.
"""

import dataclasses
import glob
import os
import time
from typing import Any, Callable, Optional

from dlx import optional_deps

optional_deps.require("the trainer (dlx.train)", *optional_deps.TRAINER)

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import errors
from dlx import experiment as experiment_lib
from dlx.data import core as data_core
from dlx.data import pipeline
from dlx.data import tfds_data
from dlx.kernels import onednn
from dlx.kernels import route as kernels_route
from dlx.training import checkpoint
from dlx.training import metric_writers as metrics_lib
from dlx.training import optim
from dlx.training import precision
from dlx.training import preemption
from dlx.training import provenance
from dlx.training import relaunch
from dlx.training import runner as runner_lib
from dlx.training import warm_start
from dlx.training import workdir_lock
from dlx.viz import plots

_EVAL_RNG_SALT = 0x5EED
_REPORT_RNG_SALT = 0x7E9  # the final_report hook's key, apart from eval and training
_EVALUATE_RNG_SALT = 0xE7A  # the set-level evaluate hook's key
FINAL_SPLITS = ("test", "validation", "train")
# The step's building blocks live in dlx/training/runner.py; these names stay here.
total_steps = runner_lib.total_steps
init_optimizer_state = runner_lib.init_optimizer_state
create_init_fn = runner_lib.create_init_fn
compiler_options = config_lib.compiler_options


def mesh_train_step(experiment, config, devices=None, **kwargs):
  """runner.mesh_train_step for an Experiment, a name or a path."""
  experiment = _resolve_experiment(experiment, config)
  return runner_lib.mesh_train_step(experiment, config, devices, **kwargs)


def lower_train_step(experiment, config, devices, **kwargs):
  """runner.lower_train_step for an Experiment, a name or a path."""
  experiment = _resolve_experiment(experiment, config)
  return runner_lib.lower_train_step(experiment, config, devices, **kwargs)


def evaluate(runner, state, split, config, *, num_examples=None, seed=0):
  """Mean of every per-example metric over a split (or its first `num_examples`)."""
  totals, count = None, 0.0
  rng = jax.random.fold_in(jax.random.PRNGKey(seed), _EVAL_RNG_SALT)
  batches = pipeline.eval_batches(
    split,
    config.eval_batch_size,
    num_examples=num_examples,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  for i, batch in enumerate(pipeline.prefetch(batches, runner.put_batch)):
    sums, n = runner.eval_step(state, batch, jax.random.fold_in(rng, i))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    count = count + n
  totals, count = jax.device_get((totals, count))
  return {k: float(v) / float(count) for k, v in totals.items()}


def _due(step: int, every: int, total: int) -> bool:
  """Whether an every-N-steps action runs after `step`: each N steps, and at the end."""
  return step % every == 0 or step == total


@dataclasses.dataclass
class BestTracker:
  """The best validation value so far, evaluations since it improved, and whether
  early stopping ended the run. Saved in every checkpoint's meta."""

  metric: str
  mode: str
  patience: int
  best: Optional[float] = None
  bad_evals: int = 0
  stopped: bool = False

  def update(self, value: float) -> bool:
    """Records a validation value; True if it is a new best."""
    improved = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
    if improved:
      self.best, self.bad_evals = value, 0
    else:
      self.bad_evals += 1
    self.stopped = 0 < self.patience <= self.bad_evals
    return improved

  def meta(self) -> dict:
    return {"best": self.best, "bad_evals": self.bad_evals, "stopped": self.stopped}

  def restore(self, meta: dict):
    self.best, self.bad_evals = meta["best"], meta["bad_evals"]
    self.stopped = meta["stopped"]


@jax.jit
def _first_nonfinite(losses):
  """Index of the first non-finite loss of a list of scalars, or -1."""
  bad = ~jnp.isfinite(jnp.stack([jnp.asarray(x, jnp.float32) for x in losses]))
  return jnp.where(jnp.any(bad), jnp.argmax(bad), -1)


@jax.jit
def _all_finite(tree):
  # One compiled reduction: op by op, every parameter shape would compile a kernel.
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


class FiniteGuard:
  """Stops the run at the first non-finite loss, naming the step and the last good
  checkpoint. The losses are held on the device and checked in one reduction at each log
  point, evaluation and checkpoint (never a checkpoint after a bad step), not fetched one
  step at a time: a fetch a step costs a sync and a transfer a step, which small models
  feel (`benchmarks/train_loop.py`)."""

  def __init__(self, last_checkpoint: int | None):
    self.last_checkpoint = last_checkpoint
    self._pending = []  # (step, loss on the device)

  def push(self, step: int, metrics):
    self._pending.append((step, metrics["loss"]))

  def check(self):
    if not self._pending:
      return
    steps, losses = zip(*self._pending)
    self._pending = []
    first_bad = int(_first_nonfinite(list(losses)))
    if first_bad >= 0:
      loss = float(losses[first_bad])
      raise errors.NonFiniteLossError(
        f"loss is {loss} at step {steps[first_bad]}; training stopped and {self._kept()}. "
        "Lower --config.optimizer.learning_rate or set --config.optimizer.grad_clip_norm"
      )

  def check_params(self, state, step: int):
    if not bool(jax.device_get(_all_finite(state.params))):
      raise errors.NonFiniteLossError(
        f"parameters became non-finite by step {step}; {self._kept()}. Lower the "
        "learning rate or clip gradients"
      )

  def _kept(self) -> str:
    if self.last_checkpoint:
      return f"the last good checkpoint (step {self.last_checkpoint}) is kept"
    return "no checkpoint was written before it"


@dataclasses.dataclass
class _Run:
  """Everything the loop's parts share, built once by `_setup`."""

  experiment: experiment_lib.Experiment
  config: Any
  workdir: str
  dataset: Any  # dlx.data.Dataset or dlx.data.Stream
  model: Any
  runner: runner_lib.Runner
  init_fn: Callable
  logical: dict  # {parameter path: logical axis names} (tensor parallelism)
  num_steps: int
  per_epoch: Optional[int]  # None for a stream
  optimizer: Any  # an optax transformation, or a dict of them (one per player)
  schedule: Optional[Callable]  # the learning rate to log (default optimizer only)
  teacher: Optional[experiment_lib.FrozenModel]
  predict: Callable
  ckpt: checkpoint.Checkpointer
  writer: metrics_lib.MetricWriter
  tracker: BestTracker
  guard: FiniteGuard = None
  data_state: Optional[dict] = None  # the grain loader's state to resume from
  # (step, metrics) of the latest validation: the final evaluation reuses it when it
  # scored the final state, instead of evaluating the same split twice.
  last_validation: Optional[tuple] = None

  @property
  def input_pipeline(self) -> str:
    return self.config.get("input_pipeline", "memory")

  @property
  def eval_every(self) -> int:
    return self.config.eval_every_steps or self.per_epoch

  def context(self, state, step: int, rng) -> experiment_lib.RunContext:
    """What a hook reads. Every process must build it (a multi-process run gathers the
    arrays split across processes), even where only process 0 runs the hook."""
    host = self.runner.local_state(self.runner.host_state(state))
    return experiment_lib.RunContext(
      experiment=self.experiment,
      config=self.config,
      workdir=self.workdir,
      model=self.model,
      variables=host.variables(),
      opt_state=host.opt_state,
      dataset=self.dataset,
      rng=rng,
      step=step,
      teacher=self.teacher,
      predict=self.predict,
    )


def _setup(experiment, config, workdir, data_dir) -> _Run:
  # First, so that a chosen tracker whose package is missing stops the run at once.
  writer = metrics_lib.MetricWriter(workdir, config, experiment.name)
  grain = config.get("input_pipeline", "memory") == "grain"
  # With grain, a train split prepared as ArrayRecord streams from disk (a LazySplit).
  with tfds_data.mocked(config.tfds_mock_examples), tfds_data.streaming(grain):
    dataset = experiment.get_dataset(config, data_dir)
  if not isinstance(dataset, (data_core.Dataset, data_core.Stream)):
    raise errors.UserError(
      f"{experiment.name}: get_dataset returned "
      f"{type(dataset).__name__}; return a dlx.data.Dataset or Stream"
    )
  logging.info("data: %s", dataset)
  model = precision.apply_policy(experiment.get_model(config), config.get("dtype", "float32"))
  stream = isinstance(dataset, data_core.Stream)
  if stream and grain:
    raise errors.ConfigError(
      "--config.input_pipeline=grain: this experiment's training data is a Stream, whose "
      "batches it makes itself from (seed, step); drop the flag (streams need no loader)"
    )
  per_epoch = None if stream else pipeline.steps_per_epoch(dataset.train, config.batch_size)
  if config.eval_every_steps == 0 and stream:
    raise errors.ConfigError(
      "--config.eval_every_steps=0 means once per epoch, and a "
      "stream has no epochs; set it to a number of steps"
    )
  num_steps = total_steps(config, per_epoch)
  # An evaluation-only run (0 steps) still builds its optimizer, for the state's layout.
  optimizer = experiment.make_optimizer(config, max(num_steps, 1))
  schedule = (
    None
    if experiment.custom_optimizer
    else optim.create_schedule(config.optimizer, max(num_steps, 1))
  )
  teacher = warm_start.load_frozen(config.teacher) if config.teacher else None
  if teacher is not None:
    logging.info(
      "teacher: %s (%s, step %d)", teacher.workdir, teacher.experiment.name, teacher.step
    )

  train_step, eval_step = runner_lib.make_steps(experiment, config, model, optimizer, teacher)
  runner = runner_lib.Runner(config, train_step, eval_step)
  sample_inputs = runner_lib.sample_inputs(dataset)
  init_fn = create_init_fn(model, optimizer, sample_inputs, config.seed)
  predict = jax.jit(
    lambda variables, inputs: model.apply(variables, inputs, train=False),
    compiler_options=compiler_options(config),
  )
  return _Run(
    experiment=experiment,
    config=config,
    workdir=workdir,
    dataset=dataset,
    model=model,
    runner=runner,
    init_fn=init_fn,
    logical=runner_lib.logical_axes(config, model, sample_inputs),
    num_steps=num_steps,
    per_epoch=per_epoch,
    optimizer=optimizer,
    schedule=schedule,
    teacher=teacher,
    predict=predict,
    ckpt=checkpoint.Checkpointer(
      workdir,
      keep=config.keep_checkpoints,
      best_metric=config.best_metric,
      best_mode=config.best_mode,
      asynchronous=config.get("checkpoint_async", True),
    ),
    writer=writer,
    tracker=BestTracker(config.best_metric, config.best_mode, config.early_stopping_patience),
  )


def _init_or_restore(run: _Run):
  """The newest checkpoint of this workdir; else a fresh state (from `init_from`'s run
  when set). Returns the state, placed for the parallel mode."""
  init_rng = jax.random.PRNGKey(run.config.seed)
  abstract = jax.eval_shape(run.init_fn, init_rng)
  if run.teacher is not None:
    frozen = {"teacher": run.teacher.variables}
    abstract = abstract.replace(frozen=jax.eval_shape(lambda v: v, frozen))
  run.runner.place(abstract, run.logical)
  restored = run.ckpt.restore_latest(run.runner.restore_target(abstract))
  if restored is not None:
    state, meta = restored
    run.tracker.restore(meta)
    run.data_state = _saved_data_state(run, meta, int(state.step))
    logging.info("resuming from step %d in %s", int(state.step), run.workdir)
  else:
    # Created where it lives: a model sharded over the mesh is never whole on one device.
    placed = None if run.runner.pmap else run.runner.state_sharding.replace(frozen={})
    state = jax.jit(
      run.init_fn, out_shardings=placed, compiler_options=compiler_options(run.config)
    )(init_rng)
    if run.config.init_from:
      state, source_step = warm_start.init_from(state, run.config)
      # Optimizer state starts fresh, built for the restored parameters.
      state = state.replace(opt_state=init_optimizer_state(run.optimizer, state.params))
      logging.info(
        "initialised from %s (step %d)%s",
        run.config.init_from,
        source_step,
        f", sub-trees {run.config.init_from_keys}" if run.config.init_from_keys else "",
      )
  start_step = int(state.step)
  if jax.process_index() == 0:  # rows logged after this step would appear twice
    metrics_lib.keep_rows_up_to(run.workdir, start_step)
  run.guard = FiniteGuard(start_step if restored is not None else None)
  num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
  logging.info(
    "model: %s with %d parameters; %d steps%s on %d device(s), %s",
    precision.model_name(run.model),
    num_params,
    run.num_steps,
    f" ({run.per_epoch} per epoch)" if run.per_epoch else "",
    jax.device_count(),
    run.config.parallel,
  )
  if run.teacher is not None:
    state = state.replace(frozen={"teacher": run.teacher.variables})
  state = run.runner.put_state(state)
  held = run.runner.describe(state)
  logging.info(
    "sharding: mesh %s; parameters %s in all, %s per device; optimizer state %s per device",
    " ".join(f"{axis}={size}" for axis, size in held["mesh"].items()),
    _mib(held["param_bytes_total"]),
    _mib(held["param_bytes_per_device"]),
    _mib(held["opt_state_bytes_per_device"]),
  )
  return state, start_step, num_params


def _mib(nbytes: int) -> str:
  return f"{nbytes / 2**20:.2f} MiB"


def _saved_data_state(run: _Run, meta: dict, step: int) -> Optional[dict]:
  """The data position a checkpoint saved: None for the memory pipeline and streams (the
  step is their position), the grain loader's state for grain."""
  saved = meta.get("input_pipeline", "memory")
  if isinstance(run.dataset, data_core.Stream) or step == 0:
    return None
  if saved != run.input_pipeline or (saved == "grain" and "data_state" not in meta):
    raise errors.ConfigError(
      f"--config.input_pipeline={run.input_pipeline}: the checkpoint at step {step} in "
      f"{run.workdir} was written by the {saved} pipeline; relaunch with "
      f"--config.input_pipeline={saved}, or use a new --workdir"
    )
  return meta.get("data_state")


def _checkpoint_meta(run: _Run, data_state) -> dict:
  meta = {**run.tracker.meta(), "input_pipeline": run.input_pipeline}
  if data_state is not None:
    meta["data_state"] = data_state
  return meta


def _train_batches(run: _Run, start_step: int):
  """(batch, data state) pairs from `start_step` on; the state is the grain loader's once
  it has given that batch (None for the memory pipeline and streams)."""
  kw = dict(
    seed=run.config.seed,
    start_step=start_step,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  if isinstance(run.dataset, data_core.Stream):
    batches = pipeline.stream_batches(run.dataset.batch, run.config.batch_size, **kw)
  elif run.input_pipeline == "grain":
    from dlx.data import grain_pipeline  # pylint: disable=g-import-not-at-top

    return grain_pipeline.train_batches(
      run.dataset.train,
      run.config.batch_size,
      state=run.data_state,
      worker_count=run.config.get("grain_workers", 0),
      **kw,
    )
  else:
    batches = pipeline.train_batches(run.dataset.train, run.config.batch_size, **kw)
  return ((batch, None) for batch in batches)


def _evaluation_data(run: _Run, split: str):
  return experiment_lib.eval_split(run.dataset, split, run.config)


def _evaluate_split(run: _Run, state, split: str, step: int) -> dict:
  """Per-example means over the split, plus the experiment's set-level metrics."""
  values = evaluate(
    run.runner, state, _evaluation_data(run, split), run.config, seed=run.config.seed
  )
  if run.experiment.evaluate is not None:
    rng = jax.random.fold_in(jax.random.PRNGKey(run.config.seed), _EVALUATE_RNG_SALT)
    extra = run.experiment.evaluate(run.context(state, step, jax.random.fold_in(rng, step)), split)
    clash = sorted(set(extra) & set(values))
    if clash:
      raise errors.UserError(
        f"{run.experiment.name}: evaluate returned {', '.join(clash)}, "
        "which the loss already reports; rename them"
      )
    values.update({k: float(v) for k, v in extra.items()})
  return values


def _validate(run: _Run, state, step: int):
  values = _evaluate_split(run, state, "validation", step)
  run.last_validation = (step, values)
  run.writer.write(step, "validation", values)
  logging.info("validation at step %d: %s", step, metrics_lib.format_metrics(values))
  metric = run.config.best_metric
  if not metric:
    return
  if metric not in values:
    raise errors.ConfigError(
      f"--config.best_metric={metric!r} is not a validation metric; "
      f"choose one of {', '.join(sorted(values))} (or '' for none)"
    )
  if run.tracker.update(values[metric]):
    run.ckpt.save_best(step, _checkpointable(run, state), run.tracker.meta(), values)
  if run.tracker.stopped:
    logging.info(
      "early stopping at step %d: validation %s has not improved for %d evaluations (best %.4g)",
      step,
      metric,
      run.tracker.bad_evals,
      run.tracker.best,
    )


def _checkpointable(run: _Run, state):
  return run.runner.host_state(state.replace(frozen={}))  # checkpoints hold no teacher


def _visualize(run: _Run, state, step: int):
  if run.experiment.visualize is None:
    return
  batch = data_core.take(run.dataset.test, slice(0, 64))
  rng = jax.random.fold_in(jax.random.PRNGKey(run.config.seed), step)
  images = run.experiment.visualize(run.context(state, step, rng), batch)
  if jax.process_index() == 0:
    for name, grid in images.items():
      plots.save_image_grid(np.asarray(grid), os.path.join(run.workdir, f"{name}_{step}.png"))


def _train_loop(run: _Run, state, start_step: int, signals: preemption.StopSignals):
  """Trains from `start_step`. `signals` were installed before the run's setup, so a
  SIGTERM or SIGINT that came during setup or restore stops the run after its first step
  here; they are restored when the loop ends (the final evaluation has the defaults)."""
  config, guard = run.config, run.guard
  if start_step >= run.num_steps or run.tracker.stopped:
    signals.restore()
    return state  # a finished run, relaunched: start no input pipeline (grain's workers)
  progress = metrics_lib.Progress(run.num_steps, start_step, main_metric=config.best_metric)
  # The prefetch thread reads ahead; each batch travels with the data state right after it,
  # so a checkpoint saves the position after the last batch trained on, not the last read.
  put = lambda item: (run.runner.put_batch(item[0]), item[1])
  batches = pipeline.prefetch(_train_batches(run, start_step), put)
  history, step, data_state = [], start_step, run.data_state
  # SIGTERM or SIGINT: finish this step, save it, raise errors.Preempted (no final evaluation).
  try:
    while step < run.num_steps and not run.tracker.stopped:
      batch, data_state = next(batches)
      state, metrics = run.runner.train_step(state, batch)
      guard.push(step, metrics)
      history.append(metrics)
      step += 1
      if _due(step, config.log_every_steps, run.num_steps):
        guard.check()
        train_metrics = metrics_lib.mean_of(history)
        if run.schedule is not None:
          train_metrics["learning_rate"] = float(run.schedule(step - 1))
        history = []
        run.writer.write(step, "train", train_metrics)
        logging.info("%s", progress.line(step, train_metrics))
      if _due(step, run.eval_every, run.num_steps):
        guard.check()
        _validate(run, state, step)
      if (
        config.sample_every_steps
        and step % config.sample_every_steps == 0
        and step != run.num_steps
      ):
        _visualize(run, state, step)
      stopping = signals.should_stop(step)  # all processes agree on the same step
      due = _due(step, config.checkpoint_every_steps, run.num_steps)
      if due or run.tracker.stopped or stopping:
        guard.check()
        guard.check_params(state, step)
        run.ckpt.save(step, _checkpointable(run, state), _checkpoint_meta(run, data_state))
        guard.last_checkpoint = step
      if stopping:
        raise errors.Preempted(signals.stop_signal, step)
  finally:
    signals.restore()
    batches.close()  # stops the prefetch thread (it may be waiting to hand over a batch)
  return state


def _final_evaluation(
  run: _Run, state, final_step: int, num_params: int, train_time: float
) -> dict:
  config = run.config
  results = {
    "experiment": config.experiment,
    "step": final_step,
    "stopped_early": bool(run.tracker.stopped),
    "train_time_s": round(train_time, 2),
    "num_parameters": num_params,
    "sharding": run.runner.describe(state),
    "cpu_kernels": kernels_route.current(),  # the convolutions that ran: onednn or xla
  }
  for split in FINAL_SPLITS:
    if split == "validation" and run.last_validation and run.last_validation[0] == final_step:
      results[split] = run.last_validation[1]
    else:
      results[split] = _evaluate_split(run, state, split, final_step)
    run.writer.write(final_step, f"final_{split}", results[split])
  results["generalization_gap"] = results["test"]["loss"] - results["train"]["loss"]
  logging.info("test at step %d: %s", final_step, metrics_lib.format_metrics(results["test"]))
  _visualize(run, state, final_step)
  if run.experiment.final_report is not None:
    rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), _REPORT_RNG_SALT)
    context = run.context(state, final_step, rng)
  if run.experiment.final_report is not None and jax.process_index() == 0:
    report = run.experiment.final_report(context)
    if report:
      results["report"] = report
      logging.info("report: %s", report)
  return results


def _resolve_experiment(experiment, config) -> experiment_lib.Experiment:
  if isinstance(experiment, experiment_lib.Experiment):
    return experiment
  return experiment_lib.load(experiment or config.experiment)


def train_and_evaluate(
  config, workdir: str, *, data_dir: str | None = None, experiment=None
) -> dict:
  """Trains `config`'s experiment in `workdir` (resuming if it holds checkpoints),
  evaluates on the test split and returns (and writes) results.json's contents.

  experiment: an `Experiment`, a name or path, or None for `config.experiment`."""
  experiment = _resolve_experiment(experiment, config)
  config_lib.validate(config, jax.device_count())
  experiment_lib.check_starts_from(experiment, config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  # One run per workdir: a second launch stops here, before it writes anything.
  # The convolution route is process-wide and read while tracing: set for the whole run.
  with workdir_lock.hold(workdir), kernels_route.use(_convolution_route(config)):
    return _train_in_workdir(experiment, config, workdir, data_dir)


def _convolution_route(config) -> str:
  """`--config.cpu_kernels` resolved for this backend and device count (a bad setting is
  a one-line error here, before anything is written)."""
  setting = config.get("cpu_kernels", "auto")
  return kernels_route.resolve(setting, jax.default_backend(), jax.device_count())


def _log_convolution_route(config):
  """Says once which kernels run; after the setup and restore, so that a run that
  stops on an error before them prints only the error's line."""
  setting, backend = config.get("cpu_kernels", "auto"), jax.default_backend()
  if kernels_route.current() == "onednn":
    threads = onednn.default_threads()
    logging.info(
      "convolutions, matrix products, GELU, layer norm, softmax: oneDNN %s "
      "(dlx extension, %d threads)",
      onednn.version(),
      threads,
    )
    return
  if setting == "auto" and backend == "cpu" and onednn.missing():
    logging.info("dlx's oneDNN extension is %s; XLA's kernels are used", onednn.missing())
  logging.info(
    "convolutions, matrix products, GELU, layer norm, softmax: XLA's "
    "(--config.cpu_kernels=%s, %s, %d devices)",
    setting,
    backend,
    jax.device_count(),
  )


def _train_in_workdir(experiment, config, workdir: str, data_dir) -> dict:
  """`train_and_evaluate` from its first write to the workdir on, under the workdir's lock."""
  finished = _check_relaunch(config, workdir)
  if finished is not None:
    return finished

  signals = preemption.StopSignals().install()  # from here on a signal stops cleanly
  interrupted = False  # a second Ctrl-C: closing must not hide it
  try:
    run = _setup(experiment, config, workdir, data_dir)
  except BaseException:
    signals.restore()
    raise
  try:
    state, start_step, num_params = _init_or_restore(run)
    _log_convolution_route(config)
    # What produced this launch; after the restore, since a workdir none restores stays untouched.
    if jax.process_index() == 0:
      provenance.record(
        workdir,
        experiment_name=experiment.name,
        experiment_path=experiment.path,
        start_step=start_step,
      )
    start_time = time.perf_counter()
    state = _train_loop(run, state, start_step, signals)
    train_time = time.perf_counter() - start_time
    # The last step is saved (a report may read it back): a signal from here on stops the
    # run at once.
    run.ckpt.wait_until_saved()
    final_step = int(jax.device_get(run.runner.host_state(state).step))
    with preemption.StopAtOnce(final_step):
      results = _final_evaluation(run, state, final_step, num_params, train_time)
  except BaseException as e:
    interrupted = isinstance(e, KeyboardInterrupt)
    run.writer.close()  # a finished run's writer closes after its results, below
    raise
  finally:
    signals.restore()
    run.ckpt.close(interrupted=interrupted)
  results["provenance"] = provenance.FILE
  if jax.process_index() == 0:
    relaunch.write_json_atomic(
      os.path.join(workdir, "results.json"), results, indent=2, sort_keys=True
    )
    try:  # a figure never fails a finished run
      plots.plot_loss_curves(
        metrics_lib.read_metrics(workdir), os.path.join(workdir, "loss_curve.png")
      )
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("loss_curve.png not drawn (%s: %s)", type(e).__name__, e)
  _send_results(run, results)
  return results


def _send_results(run: _Run, results: dict):
  """The results and the workdir's figures (loss_curve.png is drawn by now) to the
  trackers of `config.loggers`; then the writer closes, the run finished."""
  try:
    run.writer.write_results(results)
    run.writer.write_images(sorted(glob.glob(os.path.join(glob.escape(run.workdir), "*.png"))))
  finally:
    run.writer.close()


def _check_relaunch(config, workdir) -> Optional[dict]:
  """A relaunch into `workdir` must describe the same run (dlx/training/relaunch.py):
  a change of what it computes is refused; allowed changes are recorded, and a
  results.json they make stale is kept as results_step<N>.json. Writes config.json.
  Returns the results of a finished run relaunched unchanged (nothing to do), else None."""
  config_json = config.to_json_best_effort(indent=2, sort_keys=True)
  allowed = relaunch.check(workdir, config_json)
  results_file = os.path.join(workdir, "results.json")
  saved = relaunch.read_json(results_file)
  if saved is not None and not allowed:
    logging.info(
      "%s holds a finished run (step %s); its results.json is kept. To train further, "
      "relaunch with a larger --config.num_train_steps; for a new run, a new --workdir",
      workdir,
      saved.get("step"),
    )
    return saved
  if jax.process_index() == 0:
    if allowed:
      relaunch.record(workdir, allowed, relaunch.latest_checkpoint_step(workdir))
      logging.info("relaunch changes %s", ", ".join(f"{f}: {a!r} -> {b!r}" for f, a, b in allowed))
      if saved is not None:
        os.replace(results_file, os.path.join(workdir, f"results_step{saved.get('step')}.json"))
    relaunch.write_json_atomic(os.path.join(workdir, relaunch.CONFIG_FILE), config_json)
  return None
