"""Checkpoints with orbax: periodic save, keep-N, best-by-metric, restore-or-init.

Two managers share a workdir: `checkpoints/` keeps the newest N states (what a relaunch
resumes from) and `best_checkpoint/` keeps the one with the best validation metric.
Orbax writes each step into a temporary directory and renames it when complete, so a
crash never leaves a half-written checkpoint that looks finished; a newest checkpoint
that is corrupt anyway (truncated files, a bad disk) is skipped with a warning and the
one before it is used.
"""

import os
import pathlib

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from dlx import errors


def _manager(directory, asynchronous: bool = False, **options):
  # A save cut short (a kill, a full disk) leaves a *.orbax-checkpoint-tmp folder; the
  # next run of this workdir removes it (the workdir lock keeps that next run alone).
  # Asynchronous: `save` returns once the state is copied to host memory and a thread
  # writes it; the step counts as saved only when orbax renames the finished folder.
  # Each manager names its own cross-process barriers: with the same names, two managers
  # saving the same step in a multi-process run (latest and best) fail each other's.
  return ocp.CheckpointManager(
    os.path.abspath(directory),
    item_names=("state", "meta"),
    options=ocp.CheckpointManagerOptions(
      create=True,
      enable_async_checkpointing=asynchronous,
      cleanup_tmp_directories=True,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
        barrier_sync_key_prefix=os.path.basename(os.path.normpath(directory))
      ),
      **options,
    ),
  )


def saved_steps(directory) -> list[int]:
  """The steps saved under a checkpoint directory (orbax's numbered folders, readable or
  not), oldest first; [] when there is none."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


class Checkpointer:
  """Saves and restores a TrainState (its `checkpointed()` fields) plus a small JSON
  `meta` dict."""

  def __init__(
    self,
    workdir,
    *,
    keep: int = 3,
    best_metric: str = "",
    best_mode: str = "min",
    asynchronous: bool = False,
  ):
    self.latest = _manager(
      os.path.join(workdir, "checkpoints"), asynchronous=asynchronous, max_to_keep=keep
    )
    self.best = None
    if best_metric:
      self.best = _manager(
        os.path.join(workdir, "best_checkpoint"),
        asynchronous=asynchronous,
        max_to_keep=1,
        best_fn=lambda metrics: metrics[best_metric],
        best_mode=best_mode,
      )

  @staticmethod
  def _args(state, meta):
    return ocp.args.Composite(
      state=ocp.args.StandardSave(_to_host(state.checkpointed())), meta=ocp.args.JsonSave(meta)
    )

  def save(self, step: int, state, meta: dict):
    _replace(self.latest, step)
    self.latest.save(step, args=self._args(state, meta))

  def save_best(self, step: int, state, meta: dict, metrics: dict):
    if self.best is not None:
      _replace(self.best, step)
      self.best.save(
        step, args=self._args(state, meta), metrics={k: float(v) for k, v in metrics.items()}
      )

  def restore_latest(self, abstract_state):
    """(state, meta) from the newest readable checkpoint, or None if there is none."""
    return _restore_newest(self.latest, abstract_state)

  def restore_best(self, abstract_state):
    return None if self.best is None else _restore_newest(self.best, abstract_state)

  def wait_until_saved(self):
    """Returns once every save begun has been written (asynchronous saves finish on
    orbax's thread): what follows may read the checkpoints, or count on them."""
    for m in (self.latest, self.best):
      if m is not None:
        m.wait_until_finished()

  def close(self, *, interrupted: bool = False):
    """Finishes the saves begun and closes. `interrupted`: a KeyboardInterrupt (a second
    Ctrl-C) may have cut a save short, after which orbax can fail to finish it (joining
    a thread it never started); that failure is logged, not raised, so the interrupt is
    what the run reports. The checkpoints saved before are intact either way."""
    for m in (self.latest, self.best):
      if m is None:
        continue
      try:
        m.wait_until_finished()
        m.close()
      except Exception as e:  # pylint: disable=broad-except
        if not interrupted:
          raise
        logging.warning(
          "%s: the interrupted save not finished (%s: %s)", m.directory, type(e).__name__, e
        )


def _replace(manager, step):
  """A step already on disk is one we skipped as unreadable (or a rerun of the last step):
  replace it, so the newest checkpoint is always a good one."""
  if step in manager.all_steps():
    manager.delete(step)


def _to_host(state):
  """What a checkpoint writes: host copies of the arrays one process holds whole (they
  restore on any device count or mode, as before meshes split arrays); an array split
  across processes is given to orbax as it is, and each process writes its shards.
  Restores name their target shardings, so either kind restores onto any mesh."""

  def host(x):
    if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
      return x
    return np.asarray(jax.device_get(x))

  return jax.tree.map(host, state)


def host_target(abstract_tree):
  """`abstract_tree`'s shapes as a restore target on this process's first CPU device,
  whatever mesh wrote the checkpoint (a target without a sharding would get the
  writer's, which fails on another topology)."""
  cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=cpu), abstract_tree
  )


def host_restore_target(manager, step: int):
  """The saved state's shapes (from its metadata) as a `host_target`: for reading
  another run (init_from, teachers), whose shapes this run does not know."""
  metadata = manager.item_metadata(step)["state"]
  return host_target(getattr(metadata, "tree", metadata))


def _restore_newest(manager, abstract_state):
  """(state, meta) of the newest readable step, or None when there is no checkpoint;
  `abstract_state` is a TrainState of shapes, whose `frozen` field the restored state
  keeps. Checkpoints of which none restores are an error naming each and why: a run is
  never started over silently on top of them."""
  abstract = abstract_state.checkpointed()
  failures = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        ),
      )
      _check_complete(restored.state, abstract)
      return abstract_state.replace(**restored.state), dict(restored.meta)
    except Exception as e:  # pylint: disable=broad-except
      why = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
      failures.append(f"step {step}: {why}")
      logging.warning(
        "checkpoint at step %d in %s is unreadable (%s); trying the one before it",
        step,
        manager.directory,
        why,
      )
  if failures:
    workdir = os.path.dirname(str(manager.directory))
    raise errors.CheckpointsUnreadableError(
      f"{manager.directory} holds checkpoints of which none restores "
      f"({'; '.join(failures)}); nothing was changed: relaunch with --move_aside to move "
      f"this run to {workdir}.discarded-<time> and start over, or pass another --workdir"
    )
  return None


def _check_complete(state, abstract_state):
  got = jax.tree.map(np.shape, state)
  want = jax.tree.map(np.shape, abstract_state)
  if got != want:
    raise ValueError("restored state does not match the model's shapes")
