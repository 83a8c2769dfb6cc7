"""Data parallelism: a device mesh (default; dlx/training/sharding.py says where each
array lives on it), or pmap.

Every device sees a slice of the global batch; gradients are averaged over all of it, so
both modes compute the same update. Under pmap the parameters are replicated; on the
mesh they are too unless --config.mesh.fsdp or .tensor split them.
"""

import os
import socket
import time

import jax
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from dlx import errors
from dlx.training import sharding as sharding_lib

ENV = {
  "coordinator_address": "DLX_COORDINATOR_ADDRESS",
  "num_processes": "DLX_NUM_PROCESSES",
  "process_id": "DLX_PROCESS_ID",
}


def distributed_settings(coordinator_address=None, num_processes=None, process_id=None) -> dict:
  """The multi-host settings from the arguments, else the DLX_* environment variables;
  what neither gives is left to JAX's cluster detection (SLURM, Open MPI, Cloud TPU)."""
  given = dict(
    coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
  )
  settings = {}
  for name, value in given.items():
    if value is None and os.environ.get(ENV[name]):
      value = os.environ[ENV[name]]
    if value is not None and name != "coordinator_address":
      try:
        value = int(value)
      except ValueError:
        raise errors.ConfigError(f"{ENV[name]}={value!r}: must be an integer") from None
    if value is not None:
      settings[name] = value
  if "num_processes" in settings and "process_id" in settings:
    if not 0 <= settings["process_id"] < settings["num_processes"]:
      raise errors.ConfigError(
        f"--process_id={settings['process_id']} must be in [0, {settings['num_processes']})"
      )
  return settings


def initialize_distributed(enabled: bool, *, timeout_s: int = 300, **settings):
  """Multi-host: connect the processes (docs/curriculum.md#a8). Each process then feeds
  its own slice of every global batch; process 0 writes the run's files. On CPU the
  collectives between processes go through Gloo. A coordinator that does not answer
  within `timeout_s` is one clear error, not a hang."""
  if not enabled:
    return
  settings = distributed_settings(**settings)
  # Only the CPU backend reads this; set before any backend starts.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # JAX aborts the whole process when it cannot reach the coordinator, so a worker
  # first checks that something listens there (process 0 is the one that listens).
  if settings.get("process_id", 0) != 0 and "coordinator_address" in settings:
    _wait_for_coordinator(settings, timeout_s)
  try:
    jax.distributed.initialize(**settings, initialization_timeout=int(timeout_s))
  except Exception as e:  # pylint: disable=broad-except
    raise _join_error(settings, timeout_s, " ".join(str(e).split())[:300]) from None


def _join_error(settings, timeout_s, reason):
  return errors.ConfigError(
    f"could not join the distributed job at "
    f"{settings.get('coordinator_address', 'the detected coordinator')} within {timeout_s} s "
    f"(process {settings.get('process_id', '?')} of {settings.get('num_processes', '?')}): "
    f"{reason}; check --coordinator_address, --num_processes and --process_id "
    "(or DLX_COORDINATOR_ADDRESS, DLX_NUM_PROCESSES, DLX_PROCESS_ID) and that process 0 runs"
  )


def _wait_for_coordinator(settings, timeout_s):
  host, _, port = settings["coordinator_address"].rpartition(":")
  if not host or not port.isdigit():
    raise errors.ConfigError(
      f"--coordinator_address={settings['coordinator_address']!r}: expected HOST:PORT"
    )
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise _join_error(settings, timeout_s, f"nothing answers there ({e})") from None
      time.sleep(0.5)


def _local_devices_sharding():
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("devices",))
  return NamedSharding(mesh, P("devices"))


def replicated(mesh):
  return NamedSharding(mesh, P())


def global_batch(local_batch, mesh):
  """Host-local NumPy arrays -> global arrays already sharded over the mesh's batch axes."""
  sharding = sharding_lib.batch_sharding(mesh)
  return jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
  )


def pmap_batch(local_batch):
  """Host-local arrays -> a leading axis of local devices, placed one slice per device."""
  n = jax.local_device_count()
  sharding = _local_devices_sharding()
  return jax.tree.map(
    lambda x: jax.device_put(np.asarray(x).reshape((n, -1) + np.shape(x)[1:]), sharding),
    local_batch,
  )


def mean_over_devices(tree, axis_name):
  """pmean under pmap; identity under jit (where the mean over the batch is global)."""
  return tree if axis_name is None else lax.pmean(tree, axis_name)


def sum_over_devices(tree, axis_name):
  return tree if axis_name is None else lax.psum(tree, axis_name)


def replicate(tree):
  """A pytree copied onto every local device along a new leading axis (pmap layout)."""
  n = jax.local_device_count()
  sharding = _local_devices_sharding()
  return jax.tree.map(
    lambda x: jax.device_put(np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), sharding), tree
  )


def unreplicate(tree):
  return jax.tree.map(lambda x: x[0], tree)
