"""Compiling an experiment's steps for where they run: the trainer's runner (a mesh or
pmap), and the same step built outside the loop for a mesh of any devices (`mesh_train_step`;
`lower_train_step` lowers it for a TPU topology without one, dlx/tools/aot_check.py).
"""

import dataclasses
import itertools
import math
from typing import Any, Callable

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import errors
from dlx.data import core as data_core
from dlx.data import pipeline
from dlx.data import tfds_data
from dlx.training import checkpoint
from dlx.training import parallel
from dlx.training import precision
from dlx.training import sharding
from dlx.training import steps
from dlx.training import warm_start
from dlx.training.state import TrainState

compiler_options = config_lib.compiler_options


def total_steps(config, steps_per_epoch: int | None) -> int:
  if config.num_train_steps >= 0:  # 0: evaluate the initial state only
    return int(config.num_train_steps)
  if steps_per_epoch is None:
    raise errors.ConfigError(
      f"--config.num_epochs={config.num_epochs}: this experiment's training data is a "
      "stream with no epochs; set --config.num_train_steps"
    )
  return max(1, int(math.ceil(config.num_epochs * steps_per_epoch)))


def init_optimizer_state(optimizer, params):
  """One optimizer, or a dict of them keyed by top-level parameter group."""
  if isinstance(optimizer, dict):
    return {name: tx.init(params[name]) for name, tx in optimizer.items()}
  return optimizer.init(params)


def create_init_fn(model, optimizer, sample_inputs, seed: int):
  """A pure function rng -> TrainState (jit it, or eval_shape it for restoring)."""

  def init(rng):
    params_rng, dropout_rng, sample_rng = jax.random.split(rng, 3)
    variables = dict(
      model.init(
        {"params": params_rng, "dropout": dropout_rng, "sample": sample_rng},
        sample_inputs,
        train=False,
      )
    )
    params = variables.pop("params")
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=init_optimizer_state(optimizer, params),
      model_state=variables,
      rng=jax.random.fold_in(jax.random.PRNGKey(seed), 1),
    )

  return init


class Runner:
  """Places state and batches for the chosen parallel mode and compiles the steps. On the
  mesh, the steps compile once `place` knows where each array of the state lives."""

  def __init__(self, config, train_step, eval_step):
    self.pmap = config.parallel == "pmap"
    self.config = config
    self.mesh = self.state_sharding = None
    self._steps = (train_step, eval_step)
    if self.pmap:
      self._train = jax.pmap(train_step, axis_name="batch", donate_argnums=0)
      self._eval = jax.pmap(eval_step, axis_name="batch", in_axes=(0, 0, None))
    else:
      self.mesh = sharding.create_mesh(config)

  def place(self, abstract_state, logical=None):
    """Decides each state array's sharding (dlx/training/sharding.py) and compiles."""
    if self.pmap:
      return
    self.state_sharding = sharding.state_shardings(abstract_state, self.mesh, self.config, logical)
    self._train, self._eval = jit_steps(*self._steps, self.mesh, self.state_sharding, self.config)

  def restore_target(self, abstract_state):
    """What a checkpoint restores into: the shapes, placed as `place` decided (pmap:
    host arrays, which `put_state` copies to every device)."""
    if self.pmap:
      return checkpoint.host_target(abstract_state)
    return sharding.with_shardings(abstract_state, self.state_sharding)

  def put_state(self, state):
    if self.pmap:
      return parallel.replicate(state)
    return jax.device_put(state, self.state_sharding)

  def describe(self, state) -> dict:
    """results.json's `sharding`: the mesh and the bytes one device holds."""
    if self.pmap:  # one copy of the replicated state: each device holds all of it
      return sharding.describe(self.host_state(state), {"pmap": jax.local_device_count()})
    return sharding.describe(state, self.mesh)

  def host_state(self, state):
    """The state as one (unreplicated) copy, for checkpoints and hooks."""
    return parallel.unreplicate(state) if self.pmap else state

  def local_state(self, state):
    """`state` with every array whole in this process, for hooks that run on one
    process (a final report): arrays split across processes are gathered from all of
    them (every process must call this). One process: `state` itself."""
    if jax.process_count() == 1:
      return state

    def whole(x):
      if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return x
      if x.is_fully_replicated:
        return np.asarray(x)  # this process's copy
      return multihost_utils.process_allgather(x, tiled=True)

    return jax.tree.map(whole, state)

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


def jit_steps(train_step, eval_step, mesh, state_sharding, config):
  """The train and eval steps jitted for a mesh: the state placed by `state_sharding`,
  the batch split over the batch axes, metrics replicated."""
  repl, data = parallel.replicated(mesh), sharding.batch_sharding(mesh)
  options = compiler_options(config)
  train = jax.jit(
    train_step,
    donate_argnums=0,
    in_shardings=(state_sharding, data),
    out_shardings=(state_sharding, repl),
    compiler_options=options,
  )
  evaluate_ = jax.jit(
    eval_step,
    in_shardings=(state_sharding, data, repl),
    out_shardings=repl,
    compiler_options=options,
  )
  return train, evaluate_


def make_steps(experiment, config, model, optimizer, teacher):
  """(train step, eval step): the experiment's own step, else the generic one."""
  loss_fn = experiment.get_loss(config)
  axis_name = "batch" if config.parallel == "pmap" else None
  if experiment.make_train_step is not None:
    train_step = experiment.make_train_step(
      model, optimizer, config, axis_name=axis_name, teacher=teacher
    )
  else:
    train_step = steps.make_train_step(
      model,
      optimizer,
      loss_fn,
      axis_name,
      augment=experiment.get_augment(config),
      weight_noise=config.get("weight_noise", 0.0),
      teacher=teacher,
    )
  return train_step, steps.make_eval_step(model, loss_fn, axis_name=axis_name, teacher=teacher)


def sample_inputs(dataset):
  """Two examples' inputs: what the model is initialised (and traced) on."""
  sample = dataset.validation if isinstance(dataset, data_core.Stream) else dataset.train
  return data_core.take(sample, slice(0, 2))["inputs"]


def logical_axes(config, model, sample_inputs):
  """The parameters' logical axis names, traced only when tensor parallelism reads them."""
  if config.parallel != "mesh" or config.get("mesh", {}).get("tensor", 1) == 1:
    return {}
  rngs = {name: jax.random.PRNGKey(0) for name in ("params", "dropout", "sample")}
  return sharding.logical_axes(model, rngs, sample_inputs, train=False)


@dataclasses.dataclass
class MeshStep:
  """An experiment's train step compiled for a mesh, outside the loop (no workdir):
  what `lower_train_step` lowers for a TPU topology, and what tests and benchmarks run
  on forced CPU devices. `init(rng)` makes the state already placed; `batches` gives
  host batches (put them with `parallel.global_batch(batch, mesh)`)."""

  train: Callable  # jitted (state, batch) -> (state, metrics)
  init: Callable  # jitted rng -> state, placed by `state_sharding`
  batches: Any  # an iterator of host batches, from step 0
  mesh: Any
  state_sharding: Any
  abstract_state: Any
  abstract_batch: Any  # ShapeDtypeStructs carrying the batch's sharding


def mesh_train_step(experiment, config, devices=None, *, data_dir=None, mock_examples=0):
  """Builds `MeshStep` for `devices` (default: all) by the config's mesh and rules, the
  same way the trainer does. mock_examples > 0: tfds data becomes that many random
  examples (shapes are all a lowering needs)."""
  devices = jax.devices() if devices is None else list(devices)
  if config.parallel != "mesh":
    raise errors.ConfigError("--config.parallel=pmap: this needs the mesh (--config.parallel=mesh)")
  config_lib.validate(config, len(devices))
  with tfds_data.mocked(mock_examples or config.tfds_mock_examples):
    dataset = experiment.get_dataset(config, data_dir)
  model = precision.apply_policy(experiment.get_model(config), config.get("dtype", "float32"))
  stream = isinstance(dataset, data_core.Stream)
  per_epoch = None if stream else pipeline.steps_per_epoch(dataset.train, config.batch_size)
  optimizer = experiment.make_optimizer(config, max(total_steps(config, per_epoch), 1))
  teacher = warm_start.load_frozen(config.teacher) if config.teacher else None
  train_step, eval_step = make_steps(experiment, config, model, optimizer, teacher)
  inputs = sample_inputs(dataset)
  init_fn = create_init_fn(model, optimizer, inputs, config.seed)
  abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(config.seed))
  if teacher is not None:
    frozen = {"teacher": teacher.variables}
    init_fn = lambda rng, f=init_fn: f(rng).replace(frozen=frozen)
    abstract = abstract.replace(frozen=jax.eval_shape(lambda v: v, frozen))
  mesh = sharding.create_mesh(config, devices)
  state_sharding = sharding.state_shardings(
    abstract, mesh, config, logical_axes(config, model, inputs)
  )
  kw = dict(seed=config.seed, start_step=0, process_index=0, process_count=1)
  if stream:
    batches = pipeline.stream_batches(dataset.batch, config.batch_size, **kw)
  else:
    batches = pipeline.train_batches(dataset.train, config.batch_size, **kw)
  batches = iter(batches)
  first = next(batches)
  batch_sharding = sharding.batch_sharding(mesh)
  abstract_batch = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype, sharding=batch_sharding),
    first,
  )
  train, _ = jit_steps(train_step, eval_step, mesh, state_sharding, config)
  init = jax.jit(init_fn, out_shardings=state_sharding, compiler_options=compiler_options(config))
  return MeshStep(
    train=train,
    init=init,
    batches=itertools.chain([first], batches),
    mesh=mesh,
    state_sharding=state_sharding,
    abstract_state=abstract,
    abstract_batch=abstract_batch,
  )


def lower_train_step(experiment, config, devices, *, data_dir=None):
  """Lowers (does not run) the experiment's train step for `devices`, e.g. a TPU
  topology's (dlx/tools/aot_check.py): the config's mesh and sharding rules over them,
  the state and one global batch as shapes only (tfds data mocked, nothing placed).
  Returns (jax.stages.Lowered, info) with info's mesh sizes and the bytes the state's
  arrays take in all and on one device."""
  built = mesh_train_step(
    experiment, config, devices, data_dir=data_dir, mock_examples=2 * config.batch_size
  )
  abstract, placed = built.abstract_state, built.state_sharding
  lowered = built.train.lower(sharding.with_shardings(abstract, placed), built.abstract_batch)
  params = sharding.abstract_bytes_per_device(abstract.params, placed.params)
  opt = sharding.abstract_bytes_per_device(abstract.opt_state, placed.opt_state)
  info = {
    "mesh": sharding.sizes_of(built.mesh),
    "num_parameters": sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract.params)),
    "param_bytes_total": params[0],
    "param_bytes_per_device": params[1],
    "opt_state_bytes_total": opt[0],
    "opt_state_bytes_per_device": opt[1],
  }
  return lowered, info
