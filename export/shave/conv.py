"""Undilated convolution kernels on interleaved tiles (the SHAVE inner loops).

Both kernels take an explicitly padded interleaved tile [Hi, Wi, CBi, Li] and
compute the VALID, undilated, strided convolution into interleaved output
blocks [Ho, Wo, OB, L]. Dilation is not handled here: comb.py splits a dilated
convolution into undilated fields that these kernels run unchanged.

  * conv_tile: dense or grouped convolution as scalar-broadcast dot products.
    For each output block and tap, every input channel of the block's input
    set is one vector multiply-accumulate: the input scalar broadcast to the
    lanes times the L filters' weight vector (layout.KernelStack).
  * depthwise_tile: lane-wise multiply-accumulate of whole input vectors, one
    per tap and channel block.

Arithmetic: the tile and weights are read in their storage type (fp16 or
fp32), accumulated in fp32 and rounded to the output's type on store (the
storage type, or fp32 for a network output of an fp16 program:
planner.fp32_stored), the fused ReLU applied before rounding.
"""

import numpy as np

from export.shave import layout

PADDINGS = ("SAME", "VALID")


def padding_amounts(size: int, kernel: int, stride: int, dilation: int,
                    padding: str) -> tuple[int, int, int]:
  """TensorFlow's padding along one axis.

  Returns:
    (before, after, output size) for an input of `size` and a kernel of
    `kernel` taps spaced `dilation` apart, as tf.nn.conv2d pads.
  """
  if padding not in PADDINGS:
    raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
  span = (kernel - 1) * dilation + 1
  if padding == "VALID":
    if size < span:
      raise ValueError(f"VALID convolution of {size} pixels with a kernel spanning {span}")
    return 0, 0, (size - span) // stride + 1
  out = -(-size // stride)
  total = max((out - 1) * stride + span - size, 0)
  return total // 2, total - total // 2, out


def output_size(size_in: int, kernel: int, stride: int) -> int:
  """Output size of a VALID undilated convolution; 0 if the input is too short."""
  return max((size_in - kernel) // stride + 1, 0)


def _start(tile: np.ndarray, kernel: layout.KernelStack, stride: int):
  """Bias-initialised fp32 accumulators and each tap's (tap, rows, cols) input window."""
  kh, kw = kernel.kernel_size
  out_rows = output_size(tile.shape[0], kh, stride)
  out_cols = output_size(tile.shape[1], kw, stride)
  acc = np.empty((out_rows, out_cols) + kernel.bias.shape, np.float32)
  acc[...] = kernel.bias.astype(np.float32)
  windows = []
  for tap in range(kh * kw):
    dy, dx = divmod(tap, kw)
    windows.append((tap, slice(dy, dy + (out_rows - 1) * stride + 1, stride),
                    slice(dx, dx + (out_cols - 1) * stride + 1, stride)))
  return acc, windows


def _finish(acc: np.ndarray, relu: bool, dtype) -> np.ndarray:
  if relu:
    np.maximum(acc, 0.0, out=acc)
  return acc.astype(dtype)


def conv_tile(tile: np.ndarray, kernel: layout.KernelStack, stride: int,
              relu: bool, out_dtype=None) -> np.ndarray:
  """Dense/grouped VALID convolution of a padded interleaved tile.

  Args:
    tile: [Hi, Wi, CBi, Li] padded input; input channel c sits at block
      c // Li, lane c % Li.
    kernel: the reordered kernel stack.
    stride: spatial stride (both axes).
    relu: apply the fused ReLU.
    out_dtype: the output's type (default: the tile's).

  Returns:
    [Ho, Wo, OB, L] output blocks in `out_dtype`.
  """
  acc, windows = _start(tile, kernel, stride)
  scalars = tile.reshape(tile.shape[0], tile.shape[1], -1)
  for ob, count in enumerate(kernel.counts):
    source = scalars[..., kernel.inputs[ob, :count]].astype(np.float32)
    weights = kernel.stack[ob, :, :count].astype(np.float32)
    for tap, rows, cols in windows:
      # `count` broadcast-scalar x weight-vector MACs per output pixel.
      acc[:, :, ob] += source[rows, cols] @ weights[tap]
  return _finish(acc, relu, out_dtype or tile.dtype)


def depthwise_tile(tile: np.ndarray, kernel: layout.KernelStack, stride: int,
                   relu: bool, out_dtype=None) -> np.ndarray:
  """Depthwise VALID convolution of a padded interleaved tile, lane by lane.

  Args:
    tile: [Hi, Wi, CB, L] padded input, same lanes as the kernel.
    kernel: from layout.reorder_depthwise.
    stride: spatial stride (both axes).
    relu: apply the fused ReLU.
    out_dtype: the output's type (default: the tile's).

  Returns:
    [Ho, Wo, CB, L] output blocks in `out_dtype`.
  """
  acc, windows = _start(tile, kernel, stride)
  source = tile.astype(np.float32)
  weights = kernel.stack[:, :, 0].astype(np.float32)
  for tap, rows, cols in windows:
    acc += source[rows, cols] * weights[:, tap]
  return _finish(acc, relu, out_dtype or tile.dtype)
