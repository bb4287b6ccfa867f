"""Comb dilation: a dilation-d convolution as d x d undilated fields (paper §3).

With stride 1, output pixel (y, x) of a dilation-d convolution reads padded
input pixels (y + d*i, x + d*j): all in the same residue class (y mod d,
x mod d). So the padded input splits into d*d *fields* (even rows/even
columns, even/odd, ... for d = 2), field (p, q) = padded[p::d, q::d], and

    output[p::d, q::d] = undilated_conv(padded[p::d, q::d])

with the same compact kh x kw kernel. The fields are independent, each is a
1/d^2 of the image, and together they compute exactly the output pixels once:
no extra multiply-accumulates and no zero-inflated kernel. On the SHAVE the
DMA gathers a field's pixels with a stride of d and scatters its outputs back
with a stride of d ("recombined on output"); simulator.py does exactly that.
"""

import numpy as np

from export.shave import conv
from export.shave import layout


def fields(dilation: int) -> list[tuple[int, int]]:
  """The (row, column) residues of the d x d comb fields, row-major."""
  return [(p, q) for p in range(dilation) for q in range(dilation)]


def field_size(out_size: int, residue: int, dilation: int) -> int:
  """Output pixels along one axis of the field with this residue."""
  return max(-(-(out_size - residue) // dilation), 0)


def conv2d(x: np.ndarray, kernel: layout.KernelStack, *, depthwise: bool, strides: int,
           dilation: int, padding: str, relu: bool) -> np.ndarray:
  """A whole-tensor convolution on interleaved data, dilated ones by comb.

  Args:
    x: [H, W, CB, L] interleaved input (storage type fp16 or fp32).
    kernel: reordered kernel stack (layout.reorder_kernel or
      layout.reorder_depthwise, as `depthwise` says).
    depthwise: the kernel is depthwise (lane-wise).
    strides: spatial stride; must be 1 when dilation > 1 (as in TensorFlow).
    dilation: dilation rate d; d*d undilated fields when d > 1.
    padding: "SAME" or "VALID", as tf.nn.conv2d.
    relu: apply the fused ReLU.

  Returns:
    [Ho, Wo, OB, L] interleaved output.
  """
  if dilation > 1 and strides > 1:
    raise ValueError(f"a convolution cannot have both strides={strides} and "
                     f"dilation={dilation} above 1 (TensorFlow refuses it too)")
  kh, kw = kernel.kernel_size
  top, bottom, out_rows = conv.padding_amounts(x.shape[0], kh, strides, dilation, padding)
  left, right, out_cols = conv.padding_amounts(x.shape[1], kw, strides, dilation, padding)
  padded = np.pad(x, ((top, bottom), (left, right), (0, 0), (0, 0)))
  run = conv.depthwise_tile if depthwise else conv.conv_tile
  blocks, lanes = kernel.bias.shape
  out = np.zeros((out_rows, out_cols, blocks, lanes), x.dtype)
  for p, q in fields(dilation):
    if field_size(out_rows, p, dilation) and field_size(out_cols, q, dilation):
      out[p::dilation, q::dilation] = run(padded[p::dilation, q::dilation], kernel,
                                          strides, relu)
  return out
