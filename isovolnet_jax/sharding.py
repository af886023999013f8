"""The device mesh and which rows of each global batch this process feeds.

A mesh over every device of every host (`config.mesh_shape` / `mesh_axes`,
by default 1-D: `data`); the batch is split along `data` and the train state
replicated, so `jax.jit` inserts the gradient all-reduce itself. Several
hosts: each process feeds the rows of the global batch that its own devices
hold (`DataShard`).
"""

import math

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from isovolnet_jax.errors import InputError


def mesh_sizes(mesh_shape, mesh_axes, device_count: int) -> tuple[int, ...]:
  """`config.mesh_shape` with its -1 resolved, checked against the devices."""
  shape, axes = tuple(mesh_shape), tuple(mesh_axes)
  where = f'config.mesh_shape={shape} with config.mesh_axes={axes}'
  if len(shape) != len(axes):
    raise InputError(f'{where}: give one size per axis name')
  if 'data' not in axes or len(set(axes)) != len(axes):
    raise InputError(f"{where}: the axis names must be distinct and include 'data' "
                     f"(the batch is sharded along it)")
  if any(not isinstance(s, int) or (s < 1 and s != -1) for s in shape) or \
      shape.count(-1) > 1:
    raise InputError(f'{where}: sizes must be positive integers, with at most one '
                     f'-1 (= the rest of the devices)')
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape and device_count % known == 0:
    shape = tuple(device_count // known if s == -1 else s for s in shape)
  if math.prod(shape) != device_count:
    raise InputError(f'{where} does not cover the {device_count} devices '
                     f'({jax.process_count()} processes); make the product of '
                     f'mesh_shape {device_count} or use -1 for one axis')
  return shape


def make_mesh(batch_size: int, mesh_shape=(-1,), mesh_axes=('data',),
              grad_accum_steps: int = 1) -> jax.sharding.Mesh:
  """The device mesh; the batch must split evenly along `data` (and into
  `grad_accum_steps` micro-batches, each split along `data` too)."""
  n = jax.device_count()
  shape = mesh_sizes(mesh_shape, mesh_axes, n)
  data = shape[tuple(mesh_axes).index('data')]
  if not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
    raise InputError(f'grad_accum_steps={grad_accum_steps} must be an integer >= 1')
  need = grad_accum_steps * data
  if batch_size % need:
    devices = f'the {data} devices' + (
        '' if data == n else " of the mesh's data axis")
    by = (devices if grad_accum_steps == 1 else
          f'grad_accum_steps={grad_accum_steps} micro-batches x {devices}')
    raise InputError(f'batch_size={batch_size} is not divisible by {by}; set '
                     f'--config.batch_size to a multiple of {need}')
  # Auto axes: the model code carries no sharding annotations and GSPMD
  # propagates the batch sharding through it. (Explicit axes, the default of
  # jax.make_mesh, would ask every reshape and reduction to name its sharding.)
  return jax.make_mesh(shape, tuple(mesh_axes),
                       axis_types=(AxisType.Auto,) * len(shape))


class DataShard:
  """Which rows of each global batch this process feeds to its devices.

  The batch is split into `mesh.shape['data']` equal blocks, block j going to
  the devices at position j of the `data` axis (and replicated along the
  other axes). This process feeds the blocks its own devices hold: usually
  one contiguous range, slice `index` of `count` (what the `data` pipelines'
  process_index / process_count select); if a mesh puts them elsewhere
  (`local_rows`), the process takes the whole batch and picks its blocks.
  Either way the global array is the same batch, whatever the hosts.
  """

  def __init__(self, mesh: jax.sharding.Mesh):
    self.mesh, self.size = mesh, mesh.shape['data']
    axis = mesh.axis_names.index('data')
    me = jax.process_index()
    self.blocks = sorted({pos[axis] for pos, d in np.ndenumerate(mesh.devices)
                          if d.process_index == me})
    m = len(self.blocks)
    self.contiguous = (self.blocks == list(range(self.blocks[0], self.blocks[0] + m))
                       and self.blocks[0] % m == 0 and self.size % m == 0)
    self.index, self.count = ((self.blocks[0] // m, self.size // m) if self.contiguous
                              else (0, 1))

  def local_rows(self, *arrays):
    """Whole-batch arrays -> this process's rows (a no-op when contiguous)."""
    if self.contiguous:
      return arrays
    def pick(a):
      b = len(a) // self.size
      return np.concatenate([a[j * b:(j + 1) * b] for j in self.blocks])
    return tuple(pick(a) for a in arrays)

  def to_global(self, *local_arrays):
    """This process's rows -> global arrays sharded along `data`."""
    sharding = NamedSharding(self.mesh, P('data'))
    rows = len(local_arrays[0]) * self.size // len(self.blocks)
    return [jax.make_array_from_process_local_data(sharding, a, (rows, *a.shape[1:]))
            for a in local_arrays]



def to_global(mesh, *local_arrays):
  """Each process's slice of the batch -> one array sharded along `data`."""
  return DataShard(mesh).to_global(*local_arrays)
