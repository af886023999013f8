"""The training split on the devices (memory pipeline, `data.device_resident`).

When the uint8 training split fits on an accelerator (CIFAR-10's is 138 MB),
it is copied to every device once. Each step then receives no images at all: the jitted step
reads its batch's rows from the epoch's row table (uploaded once per epoch),
gathers the images and labels on the device and applies airbench's
alternating flip there, so the host never sits between two steps. The rows,
their order and the flips are those of `memory.train_batches`, bit for bit:
the same batches, the same resume.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from isovolnet_jax.airbench import augment as airbench_augment
from isovolnet_jax.data import order
from isovolnet_jax.errors import InputError

# On an accelerator the split stays below this share of a device's memory;
# the rest is the model's.
_DEVICE_SHARE = 0.25

MODES = ('auto', 'on', 'off')


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Split:
  """The training split as replicated device arrays."""
  images: jax.Array       # uint8 [N, H, W, C]
  labels: jax.Array       # int32 [N]
  first_flips: jax.Array  # bool [N]: alternating flip's epoch-0 coin per image ([0] if off)


def fits(nbytes: int, devices=None) -> bool:
  """Whether 'auto' puts a split of `nbytes` on each of `devices` (default:
  the local ones): accelerators only, up to a quarter of the smallest one's
  memory. On CPU the devices' memory is the host's RAM, which holds the split
  already: there is no transfer to save, and the host-fed loop measured
  faster there (results/loop_step), so 'auto' keeps it on the host."""
  limits = []
  for d in devices or jax.local_devices():
    stats = d.memory_stats() if d.platform != 'cpu' else None
    if not stats or 'bytes_limit' not in stats:
      return False
    limits.append(stats['bytes_limit'] * _DEVICE_SHARE)
  return nbytes <= min(limits)


def wanted(mode: str, pipeline: str, nbytes: int) -> bool:
  """`data.device_resident` resolved: 'on', 'off', or 'auto' (on when the
  memory pipeline's training split `fits`)."""
  if mode not in MODES:
    raise InputError(f'unknown data.device_resident={mode!r}; choose one of {list(MODES)}')
  if pipeline != 'memory':
    if mode == 'on':
      raise InputError("data.device_resident='on' needs data.pipeline='memory'; set "
                       "--config.data.device_resident=auto")
    return False
  return mode == 'on' or (mode == 'auto' and fits(nbytes))


def _replicated(mesh, array: np.ndarray) -> jax.Array:
  """`array`, which every process holds whole, replicated on every device."""
  return jax.make_array_from_callback(array.shape, NamedSharding(mesh, P()),
                                      lambda index: array[index])


def put(mesh, images: np.ndarray, labels: np.ndarray, seed: int,
        alternating_flip: bool) -> Split:
  """The split on every device of `mesh` (each process holds it whole)."""
  flips = (airbench_augment.first_epoch_flips(np.arange(len(images)), seed) if alternating_flip
           else np.zeros(1, bool))
  return Split(_replicated(mesh, images), _replicated(mesh, labels.astype(np.int32)),
               _replicated(mesh, flips))


def epoch_rows(mesh, seed: int, epoch: int, n: int, batch_size: int) -> jax.Array:
  """int32 [steps_per_epoch, batch_size]: row i is the training rows of the
  epoch's batch i (`order.batch_rows`), sharded along `data` by column, so
  each device holds the rows of its own block of every batch."""
  steps = order.steps_per_epoch(n, batch_size)
  perm = order.epoch_permutation(seed, epoch, n)
  rows = order.batch_rows(perm, np.arange(steps), batch_size).astype(np.int32)
  return jax.make_array_from_callback(rows.shape, NamedSharding(mesh, P(None, 'data')),
                                      lambda index: rows[index])


def batch(split: Split, rows: jax.Array, step: jax.Array, alternating_flip: bool):
  """(uint8 images, int32 labels) of global step `step`, inside the jitted
  step; `rows` is that step's epoch's `epoch_rows`."""
  steps_per_epoch = rows.shape[0]
  idx = rows[step % steps_per_epoch]
  images, labels = split.images[idx], split.labels[idx]
  if alternating_flip:  # As airbench.augment.alternating_flip, by image id and epoch.
    flip = split.first_flips[idx] ^ ((step // steps_per_epoch) % 2 == 1)
    images = jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)
  return images, labels
