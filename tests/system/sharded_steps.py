"""Run by tests/system/test_sharding.py in a process with forced CPU devices: trains an
experiment's step on several meshes from the same start and prints, as one JSON line,
each mesh's losses and the bytes its devices hold.

  python -m tests.system.sharded_steps NAME[:ARG] STEPS MESH [MESH ...] [--config.F=V ...]
  python -m tests.system.sharded_steps --restore DIR NAME[:ARG] MESH MESH [--config.F=V ...]

MESH is data,fsdp,tensor (e.g. 1,8,1), over the first data*fsdp*tensor devices.
--restore: saves a checkpoint of the state trained 2 steps on the first mesh into DIR and
restores it onto the second; prints whether every array came back identical, and the
restored arrays' per-device bytes."""

import ast
import json
import math
import sys

import jax
import numpy as np

from dlx import config as config_lib
from dlx import experiment as experiment_lib
from dlx import train
from dlx.training import checkpoint
from dlx.training import parallel
from dlx.training import sharding


def _config(spec, overrides):
  name, _, arg = spec.partition(":")
  experiment = experiment_lib.load(name)
  config = experiment.get_config(arg or None)
  config.experiment = name
  for override in overrides:
    field, _, value = override.removeprefix("--config.").partition("=")
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass  # a string
    config_lib.override(config, **{field: value})
  return experiment, config


def _small_leaf_bytes(params, fsdp):
  """Bytes of the leaves FSDP leaves whole: too small, or no dimension fsdp divides."""
  total = 0
  for leaf in jax.tree.leaves(params):
    too_small = math.prod(leaf.shape) < sharding.FSDP_MIN_ELEMENTS
    if too_small or not any(d % fsdp == 0 for d in leaf.shape):
      total += leaf.nbytes
  return int(total)


def _build(spec, mesh, overrides):
  experiment, config = _config(spec, overrides)
  data, fsdp, tensor = (int(v) for v in mesh.split(","))
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = data, fsdp, tensor
  devices = jax.devices()[: data * fsdp * tensor]
  built = train.mesh_train_step(experiment, config, devices, mock_examples=4 * config.batch_size)
  return config, fsdp, built


def run(spec, steps, meshes, overrides):
  out = {}
  for mesh in meshes:
    config, fsdp, built = _build(spec, mesh, overrides)
    state = built.init(jax.random.PRNGKey(config.seed))
    losses = []
    for _ in range(steps):
      batch = parallel.global_batch(next(built.batches), built.mesh)
      state, metrics = built.train(state, batch)
      losses.append(float(metrics["loss"]))
    held = sharding.describe(state, built.mesh)
    held["small_leaf_bytes"] = _small_leaf_bytes(state.params, fsdp)
    held["small_opt_state_bytes"] = _small_leaf_bytes(state.opt_state, fsdp)
    held["losses"] = losses
    held["params_checksum"] = float(
      sum(np.sum(np.asarray(x, np.float64)) for x in jax.tree.leaves(state.params))
    )
    out[mesh] = held
  return out


def restore(directory, spec, saved_on, restored_on, overrides):
  config, _, built = _build(spec, saved_on, overrides)
  state = built.init(jax.random.PRNGKey(config.seed))
  for _ in range(2):
    state, _ = built.train(state, parallel.global_batch(next(built.batches), built.mesh))
  ckpt = checkpoint.Checkpointer(directory, asynchronous=False)
  ckpt.save(2, state, {})
  ckpt.close()
  _, _, other = _build(spec, restored_on, overrides)
  target = sharding.with_shardings(other.abstract_state, other.state_sharding)
  restored, _ = checkpoint.Checkpointer(directory).restore_latest(target)
  same = jax.tree.map(
    lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))),
    state.checkpointed(),
    restored.checkpointed(),
  )
  placed = jax.tree.map(lambda a, s: a.sharding == s, restored, other.state_sharding)
  return {
    "identical": all(jax.tree.leaves(same)),
    "placed_as_target": all(jax.tree.leaves(placed)),
    "saved": sharding.describe(state, built.mesh),
    "restored": sharding.describe(restored, other.mesh),
  }


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if not a.startswith("--config.")]
  overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
  if args[0] == "--restore":
    print(json.dumps(restore(*args[1:5], overrides)))
  else:
    print(json.dumps(run(args[0], int(args[1]), args[2:], overrides)))
