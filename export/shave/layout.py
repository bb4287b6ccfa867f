"""Channel-interleaved activations and the reordered kernel stack (docs/embedded.md).

A SHAVE vector register is 128 bits: LANES[dtype] lanes of fp16 (8) or fp32
(4). Activations are stored *channel-interleaved*: a [H, W, C] tensor becomes
[H, W, CB, L] with CB = ceil(C / L) channel blocks of L lanes per pixel
(channels past C are zero). One pixel's channel block is one vector load, and
a row of a tile is contiguous in memory, so a row tile is one DMA transfer.

The kernel stack is reordered so that a convolution is a sequence of dot
products whose results land in the lanes of an output block: for output block
`ob` (output channels ob*L .. ob*L+L-1), tap t and input channel `ci` of the
block's input set, `stack[ob, t, i]` is the vector of the L filters' weights
for that (tap, input channel). The kernel multiplies it by the scalar input
broadcast to all lanes and accumulates; after all taps and inputs the
accumulator holds L output channels of one pixel: already interleaved for the
next layer.

A block's *input set* is the union of the input channels of the groups its L
output channels belong to. With filters per group a multiple of L, this is
exactly one group's inputs (no wasted multiply-accumulates); otherwise the
block also reads the inputs of its neighbouring groups against zero weights
(the "regrouped" case, see docs/embedded.md).
"""

import dataclasses

import numpy as np

# Lanes of a 128-bit vector register per element type.
LANES = {np.dtype(np.float16): 8, np.dtype(np.float32): 4}
VECTOR_BYTES = 16


def lanes_for(dtype) -> int:
  """Vector lanes of `dtype` (fp16: 8, fp32: 4) in a 128-bit register."""
  dtype = np.dtype(dtype)
  if dtype not in LANES:
    raise ValueError(f"the SHAVE kernel runs fp16 or fp32, not {dtype}")
  return LANES[dtype]


def channel_blocks(channels: int, lanes: int) -> int:
  """Number of L-lane channel blocks that hold `channels` channels."""
  return -(-channels // lanes)


def to_interleaved(x: np.ndarray, lanes: int) -> np.ndarray:
  """[..., C] channel-last tensor -> [..., CB, L], zero-padding the last block."""
  channels = x.shape[-1]
  blocks = channel_blocks(channels, lanes)
  padded = np.zeros(x.shape[:-1] + (blocks * lanes,), x.dtype)
  padded[..., :channels] = x
  return padded.reshape(x.shape[:-1] + (blocks, lanes))


def from_interleaved(x: np.ndarray, channels: int) -> np.ndarray:
  """[..., CB, L] interleaved tensor -> [..., C], dropping the padding lanes."""
  if x.shape[-2] * x.shape[-1] < channels:
    raise ValueError(f"interleaved tensor of shape {x.shape} holds fewer than {channels} "
                     "channels")
  return x.reshape(x.shape[:-2] + (x.shape[-2] * x.shape[-1],))[..., :channels]


@dataclasses.dataclass(frozen=True, eq=False)
class KernelStack:
  """A convolution kernel reordered for interleaved dot products.

  Attributes:
    stack: [OB, T, N, L] weights; stack[ob, t, i, l] multiplies input channel
      inputs[ob, i] at tap t (row-major over kh x kw) into output channel
      ob*L + l. Zero where that input is outside the output channel's group,
      and for padding output channels.
    inputs: [OB, N] input channel of each row of stack[ob, t]; blocks whose
      input set is smaller than N repeat their last channel against zeros.
    counts: [OB] size of each block's input set (the dot-product length per
      tap); the cost model counts only these.
    bias: [OB, L] bias per output channel, zero in padding lanes.
    kernel_size: (kh, kw).
    out_channels: real output channels (<= OB * L).
  """
  stack: np.ndarray
  inputs: np.ndarray
  counts: np.ndarray
  bias: np.ndarray
  kernel_size: tuple[int, int]
  out_channels: int


def block_input_sets(in_per_group: int, cout: int, groups: int, lanes: int) -> list[list[int]]:
  """The input set of every L-lane output block of a (grouped) convolution.

  Args:
    in_per_group: input channels per group (cin // groups).
    cout: output channels.
    groups: number of groups (1: dense).
    lanes: vector lanes L.

  Returns:
    Per output block, the input channels it reads: the union of the inputs
    of the groups its output channels belong to. The sizes are the dot-product
    lengths per tap, all that the cost model needs of a kernel.
  """
  if cout % groups:
    raise ValueError(f"cout={cout} is not divisible by groups={groups}")
  cout_g = cout // groups
  sets = []
  for ob in range(channel_blocks(cout, lanes)):
    group_ids = sorted({o // cout_g for o in range(ob * lanes, min((ob + 1) * lanes, cout))})
    sets.append([g * in_per_group + i for g in group_ids for i in range(in_per_group)])
  return sets


def reorder_kernel(kernel: np.ndarray, bias: np.ndarray, groups: int, lanes: int,
                   dtype=np.float32) -> KernelStack:
  """Reorders a (grouped) Conv2D kernel into the interleaved kernel stack.

  Args:
    kernel: [kh, kw, cin // groups, cout] as in Keras/TF; output channel o
      belongs to group o // (cout // groups) and reads input channels
      g*cin_g .. (g+1)*cin_g - 1 of its group g.
    bias: [cout].
    groups: number of groups (1: dense).
    lanes: vector lanes L.
    dtype: element type of the stored stack and bias.

  Returns:
    The KernelStack.
  """
  kh, kw, cin_g, cout = kernel.shape
  sets = block_input_sets(cin_g, cout, groups, lanes)
  cout_g = cout // groups
  width = max(len(s) for s in sets)
  stack = np.zeros((len(sets), kh * kw, width, lanes), np.float32)
  inputs = np.zeros((len(sets), width), np.int64)
  taps = kernel.reshape(kh * kw, cin_g, cout).astype(np.float32)
  for ob, channels in enumerate(sets):
    inputs[ob, :len(channels)] = channels
    inputs[ob, len(channels):] = channels[-1]
    for lane in range(lanes):
      o = ob * lanes + lane
      if o >= cout:
        break
      g = o // cout_g
      for i, c in enumerate(channels):
        if c // cin_g == g:
          stack[ob, :, i, lane] = taps[:, c - g * cin_g, o]
  return KernelStack(stack=stack.astype(dtype), inputs=inputs,
                     counts=np.array([len(s) for s in sets]),
                     bias=to_interleaved(bias.astype(np.float32), lanes).astype(dtype),
                     kernel_size=(kh, kw), out_channels=cout)


def reorder_depthwise(kernel: np.ndarray, bias: np.ndarray, lanes: int,
                      dtype=np.float32) -> KernelStack:
  """Reorders a depthwise [kh, kw, C, 1] kernel for lane-wise multiply-accumulates.

  A depthwise output block needs the same L channels of the input block, so
  the kernel multiplies whole input vectors lane by lane: stack[cb, t, 0] is
  the L channels' weights at tap t, `inputs` is unused (N = 1) and `counts` is
  one vector multiply-accumulate per tap.
  """
  kh, kw, channels, multiplier = kernel.shape
  if multiplier != 1:
    raise ValueError(f"depthwise channel multiplier {multiplier} is not supported; only 1")
  blocks = channel_blocks(channels, lanes)
  taps = kernel.reshape(kh * kw, channels).astype(np.float32)
  stack = to_interleaved(taps, lanes).transpose(1, 0, 2)[:, :, None, :]
  return KernelStack(stack=stack.astype(dtype), inputs=np.zeros((blocks, 1), np.int64),
                     counts=np.ones(blocks, np.int64),
                     bias=to_interleaved(bias.astype(np.float32), lanes).astype(dtype),
                     kernel_size=(kh, kw), out_channels=channels)
