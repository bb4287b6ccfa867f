"""Interleaved layout, reordered dot-product convolution and comb dilation vs TensorFlow."""

import numpy as np
import pytest

from export.shave import comb
from export.shave import layout
import tensorflow as tf


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("channels", [1, 3, 4, 8, 13, 16])
def test_interleave_round_trip(dtype, channels):
  lanes = layout.lanes_for(dtype)
  x = np.random.default_rng(channels).normal(size=(5, 7, channels)).astype(dtype)
  blocked = layout.to_interleaved(x, lanes)
  assert blocked.shape == (5, 7, -(-channels // lanes), lanes)
  # Channel c lives in block c // L, lane c % L; the padding lanes are zero.
  flat = blocked.reshape(5, 7, -1)
  np.testing.assert_array_equal(flat[..., :channels], x)
  assert not flat[..., channels:].any()
  np.testing.assert_array_equal(layout.from_interleaved(blocked, channels), x)


def test_lanes_fill_a_128_bit_register():
  for dtype in (np.float16, np.float32):
    assert layout.lanes_for(dtype) * np.dtype(dtype).itemsize == layout.VECTOR_BYTES
  with pytest.raises(ValueError, match="fp16 or fp32"):
    layout.lanes_for(np.int8)


def test_kernel_stack_grouped_blocks_read_only_their_group():
  # 4 groups of 8 filters with 8 lanes: each output block is one group and
  # reads only that group's 6 inputs: a dot product of length 6 per tap.
  kernel = np.ones((3, 3, 6, 32), np.float32)
  stack = layout.reorder_kernel(kernel, np.zeros(32), groups=4, lanes=8)
  assert stack.stack.shape == (4, 9, 6, 8)
  np.testing.assert_array_equal(stack.counts, [6, 6, 6, 6])
  np.testing.assert_array_equal(stack.inputs[2], np.arange(12, 18))
  # 8 groups of 5 filters (not a multiple of 8): blocks straddle groups and
  # read the union of their inputs against zero weights.
  stack = layout.reorder_kernel(np.ones((3, 3, 5, 40)), np.zeros(40), groups=8, lanes=8)
  np.testing.assert_array_equal(stack.counts, [10, 15, 10, 15, 10])
  assert stack.stack[0, 0, :5, :5].all() and not stack.stack[0, 0, 5:, :5].any()


def _tf_conv(x, kernel, bias, groups, strides, dilation, padding, depthwise):
  if depthwise:
    y = tf.nn.depthwise_conv2d(x[None], kernel, [1, strides, strides, 1], padding,
                               dilations=[dilation, dilation])
  else:
    # TF's CPU grouped Conv2D: feed the block-diagonal dense kernel instead.
    cin = x.shape[-1]
    dense = np.zeros(kernel.shape[:2] + (cin, kernel.shape[-1]), np.float32)
    cin_g, cout_g = cin // groups, kernel.shape[-1] // groups
    for g in range(groups):
      dense[:, :, g * cin_g:(g + 1) * cin_g, g * cout_g:(g + 1) * cout_g] = (
          kernel[:, :, :, g * cout_g:(g + 1) * cout_g])
    y = tf.nn.conv2d(x[None], dense, strides, padding, dilations=dilation)
  return np.maximum(y.numpy()[0] + bias, 0.0)


def _sweep_cases(count, seed):
  """Seeded random convolution configurations covering the kernel's cases."""
  rng = np.random.default_rng(seed)
  for _ in range(count):
    depthwise = rng.random() < 0.3
    dilation = int(rng.choice([1, 1, 2, 3, 4]))
    strides = 1 if dilation > 1 else int(rng.choice([1, 2, 3]))
    k = int(rng.choice([1, 2, 3, 5]))
    if depthwise:
      groups, cin = 1, int(rng.integers(1, 20))
      cout = cin
    else:
      groups = int(rng.choice([1, 2, 4, 8]))
      cin = groups * int(rng.integers(1, 5))
      cout = groups * int(rng.integers(1, 6))
    padding = str(rng.choice(["SAME", "VALID"]))
    span = (k - 1) * dilation + 1
    rows, cols = (int(rng.integers(span, span + 12)) for _ in range(2))
    yield depthwise, groups, cin, cout, k, strides, dilation, padding, rows, cols


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_comb_convolution_sweep_matches_tensorflow(dtype):
  rng = np.random.default_rng(7)
  lanes = layout.lanes_for(dtype)
  for case in _sweep_cases(60, seed=11 if dtype == np.float32 else 12):
    depthwise, groups, cin, cout, k, strides, dilation, padding, rows, cols = case
    x = rng.normal(size=(rows, cols, cin)).astype(np.float32)
    shape = (k, k, cin, 1) if depthwise else (k, k, cin // groups, cout)
    kernel = rng.normal(size=shape).astype(np.float32)
    bias = rng.normal(size=cout).astype(np.float32)
    # Compare against TF fed the same rounded values the kernel stores.
    x, kernel, bias = (a.astype(dtype).astype(np.float32) for a in (x, kernel, bias))
    if depthwise:
      stack = layout.reorder_depthwise(kernel, bias, lanes, dtype)
    else:
      stack = layout.reorder_kernel(kernel, bias, groups, lanes, dtype)
    got = comb.conv2d(layout.to_interleaved(x.astype(dtype), lanes), stack,
                      depthwise=depthwise, strides=strides, dilation=dilation,
                      padding=padding, relu=True)
    want = _tf_conv(x, kernel, bias, groups, strides, dilation, padding, depthwise)
    got = layout.from_interleaved(got, cout).astype(np.float32)
    assert got.shape == want.shape, case
    tolerance = 1e-4 if dtype == np.float32 else 4e-3
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= tolerance * scale, case


def test_comb_fields_partition_the_output_without_extra_macs():
  # Every output pixel belongs to exactly one field, so the fields' undilated
  # convolutions do exactly the output's multiply-accumulates.
  for dilation in (2, 3, 4):
    for size in (7, 8, 9, 15):
      covered = sum(comb.field_size(size, p, dilation) for p in range(dilation))
      assert covered == size
  assert comb.fields(2) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_strided_dilated_convolution_is_refused():
  stack = layout.reorder_kernel(np.ones((3, 3, 4, 4)), np.zeros(4), 1, 4)
  with pytest.raises(ValueError, match="both strides=2 and dilation=2"):
    comb.conv2d(np.zeros((9, 9, 1, 4), np.float32), stack, depthwise=False, strides=2,
                dilation=2, padding="SAME", relu=False)
