"""Data parallelism: a device mesh with the batch on the 'data' axis (default), or pmap.

In both modes parameters are replicated and every device sees a slice of the global
batch; gradients are averaged over all of it, so both modes compute the same update.
"""

import jax
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

DATA_AXIS = "data"


def initialize_distributed(enabled: bool):
  """Multi-host: connect the processes (coordinator from the environment, as on TPU
  pods or SLURM). Each host then feeds its own slice of every global batch."""
  if enabled:
    jax.distributed.initialize()


def create_mesh():
  # Auto axes: XLA propagates shardings; the step's code needs no sharding annotations.
  return jax.make_mesh(
    (jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
  )


def _local_devices_sharding():
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("devices",))
  return NamedSharding(mesh, P("devices"))


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharded(mesh):
  return NamedSharding(mesh, P(DATA_AXIS))


def global_batch(local_batch, mesh):
  """Host-local NumPy arrays -> global arrays already sharded over the mesh."""
  sharding = batch_sharded(mesh)
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
