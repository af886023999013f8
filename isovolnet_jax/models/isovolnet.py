"""IsoVolNet (seed 000): blocks that keep H*W*C constant.

Each block: depthwise 3x3 conv -> pointwise 1x1 conv that multiplies the
channels by 4 -> 2x2 pooling that halves H and W. H*W*C at a block's output
equals its input's, so the feature volume is the same from the first block to
the last. Then global max pooling and a dense classifier.

`channel_multiplier=2` gives the channel-doubling baseline (volume halves each
block) and `conv='standard'` the standard-conv twin with the same widths.
"""

import dataclasses
import math
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from isovolnet_jax.errors import InputError
from isovolnet_jax.airbench import model as airbench_model
from isovolnet_jax.models import layers

MIN_SIDE = 32
DEFAULT_BLOCKS = 5  # The seed's diagram: five blocks.
WHITEN_WIDTH = 2 * 2 * 2 * 3  # airbench's whiten_stem on RGB: +- pairs of 2x2x3 patches.


@dataclasses.dataclass(frozen=True)
class Block:
  in_shape: tuple[int, int, int]   # H, W, C entering the block.
  out_shape: tuple[int, int, int]  # H, W, C after pooling.


def check_input_shape(shape: Sequence[int]) -> tuple[int, int, int]:
  """(H, W, 3) with H, W >= 32, or a one-line InputError naming the size."""
  if len(shape) != 3:
    raise InputError(f'IsoVolNet takes H x W x 3 images, got shape {tuple(shape)}')
  h, w, c = (int(s) for s in shape)
  if c != 3:
    raise InputError(f'IsoVolNet takes 3-channel (RGB) images, got {h}x{w}x{c}')
  if h < MIN_SIDE or w < MIN_SIDE:
    raise InputError(f'image {h}x{w} is smaller than {MIN_SIDE}x{MIN_SIDE}, the '
                     f'smallest IsoVolNet input; resize it (data.image_size) '
                     f'to at least {MIN_SIDE}x{MIN_SIDE}')
  return h, w, c


def max_blocks(height: int, width: int) -> int:
  """How many times 2x2 pooling can halve H and W exactly.

  Exact halving is what keeps the volume constant: pooling 5 rows to 2 would
  drop a row and break H*W*C, so the limit is the power of two in H and W.
  """
  def twos(n):
    return (n & -n).bit_length() - 1
  return min(twos(height), twos(width))


def plan(input_shape: Sequence[int], stem_features: int, num_blocks: int,
         channel_multiplier: int = 4) -> list[Block]:
  """The block shapes for an input, checked before any array is built.

  `stem_features`: the channels entering the first block (0: the image's).
  """
  h, w, c = check_input_shape(input_shape)
  limit = max_blocks(h, w)
  if num_blocks == -1:
    num_blocks = min(DEFAULT_BLOCKS, limit)
  if num_blocks < 1 or num_blocks > limit:
    raise InputError(
        f'model.num_blocks={num_blocks} does not fit a {h}x{w} input: at most '
        f'{limit} blocks halve it exactly (H and W must be divisible by '
        f'2**num_blocks); set --config.model.num_blocks between 1 and {limit} '
        f'or resize the images')
  c = stem_features or c
  blocks = []
  for _ in range(num_blocks):
    out = (h // 2, w // 2, c * channel_multiplier)
    blocks.append(Block((h, w, c), out))
    h, w, c = out
  return blocks


class IsoVolNet(nn.Module):
  num_classes: int
  stem_features: int = 0        # 0: no stem, the volume is H*W*3.
  whiten_stem: bool = False     # airbench's 2x2 whitening conv + GELU first (3 -> 24).
  num_blocks: int = -1          # -1: as many as the seed's 5 and the input allow.
  convs_per_block: int = 1      # DS convs per block; the last one widens x4.
  pool: str = 'max'
  norm: str = 'batch'
  activation: str = 'relu'
  dropout: float = 0.0          # Before the classifier.
  conv: str = 'separable'       # or 'standard': the full-conv twin.
  channel_multiplier: int = 4   # 4 keeps H*W*C; 2 is the doubling baseline.
  conv_impl: str = 'auto'      # Depthwise/grouped convs: 'auto', 'lax', 'unrolled'.
  conv_dtype: Any = None     # The convs' operand dtype; None: `dtype` (layers.conv_function).
  dtype: Any = jnp.float32

  def __post_init__(self):
    if self.pool not in ('max', 'avg'):
      raise InputError(f"unknown model.pool={self.pool!r}; choose 'max' or 'avg'")
    if self.conv not in ('separable', 'standard'):
      raise InputError(f"unknown model.conv={self.conv!r}; choose 'separable' "
                       f"or 'standard'")
    if self.convs_per_block < 1:
      raise InputError(f'model.convs_per_block={self.convs_per_block} must be >= 1')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    # The first block's width: the stem conv's, else the whitening stem's
    # (2*2*2*3 = 24: it keeps H x W), else the image's 3. The volume H*W*C
    # is constant from there on.
    first = self.stem_features or (WHITEN_WIDTH if self.whiten_stem else 0)
    blocks = plan(x.shape[1:], first, self.num_blocks, self.channel_multiplier)
    x = x.astype(self.dtype)
    common = dict(norm=self.norm, activation=self.activation,
                  conv_impl=self.conv_impl, conv_dtype=self.conv_dtype, dtype=self.dtype)
    if self.whiten_stem:
      # Padded ((0, 1), (0, 1)), not airbench's VALID: 32x32 stays 32x32, so
      # H and W still halve exactly in every block (31 would not) and the
      # input stays >= MIN_SIDE.
      x = airbench_model.whiten_stem(x, conv_impl=self.conv_impl, conv_dtype=self.conv_dtype,
                             dtype=self.dtype)
    if self.stem_features:
      x = layers.ConvNormAct(self.stem_features, name='stem', **common)(x, train)
    pool = layers.max_pool_2x2 if self.pool == 'max' else layers.avg_pool_2x2
    for i, block in enumerate(blocks):
      chex.assert_shape(x, (None, *block.in_shape))
      for j in range(self.convs_per_block):
        last = j == self.convs_per_block - 1
        x = layers.SeparableConv(
            block.out_shape[2] if last else block.in_shape[2],
            separable=self.conv == 'separable', name=f'block{i + 1}_conv{j + 1}',
            **common)(x, train)
      x = pool(x)
      chex.assert_shape(x, (None, *block.out_shape))
      if self.channel_multiplier == 4:
        # The invariant the architecture is named for.
        chex.assert_equal(math.prod(x.shape[1:]), math.prod(block.in_shape))
    x = jnp.max(x, axis=(1, 2))  # Global max pooling.
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(x)
    return x.astype(jnp.float32)
