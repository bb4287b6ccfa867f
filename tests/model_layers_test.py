"""GroupedConv2D: the fast (block-diagonal) and native forms are the same convolution."""

from hand25d.model import layers

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

# (filters, kernel, groups, strides, dilation, input channels, bias)
CASES = [
    (32, 3, 8, 1, 1, 32, False),
    (40, 3, 8, 1, 3, 40, False),
    (16, 1, 16, 1, 1, 64, True),
    (16, 3, 4, 2, 1, 16, True),
    (12, 5, 2, 1, 2, 6, False),
    (16, 3, 16, 1, 2, 16, True),  # One channel per group: a depthwise convolution.
    (8, 3, 8, 2, 1, 8, False),
]


def _pair(filters, kernel, groups, strides, dilation, bias):
  return [layers.GroupedConv2D(filters, kernel, groups, strides=strides, dilation_rate=dilation,
                               use_bias=bias, form=form, name=f"g_{form}")
          for form in layers.FORMS]


@pytest.mark.parametrize("filters,kernel,groups,strides,dilation,channels,bias", CASES)
def test_fast_equals_native_and_keras_grouped_conv(filters, kernel, groups, strides, dilation,
                                                   channels, bias):
  x = tf.random.stateless_normal((2, 15, 20, channels), seed=(1, 2))
  fast, native = _pair(filters, kernel, groups, strides, dilation, bias)
  y_fast = fast(x)
  native.build(x.shape)
  native.set_weights(fast.get_weights())
  if bias:
    native.bias.assign(tf.random.stateless_normal((filters,), seed=(3, 4)))
    fast.bias.assign(native.bias)
    y_fast = fast(x)
  reference = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                  dilation_rate=dilation, groups=groups, use_bias=bias)
  reference.build(x.shape)
  reference.set_weights(native.get_weights())
  np.testing.assert_allclose(y_fast, native(x), atol=1e-5)
  np.testing.assert_allclose(native(x), reference(x), atol=1e-5)
  assert native(x).shape == native.compute_output_shape(x.shape)


def test_fast_and_native_gradients_agree():
  x = tf.random.stateless_normal((2, 15, 20, 32), seed=(5, 6))
  fast, native = _pair(32, 3, 8, 1, 2, True)
  fast(x)
  native(x)
  native.set_weights(fast.get_weights())
  grads = []
  for layer in (fast, native):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.square(layer(x)))
    grads.append(tape.gradient(loss, [x, layer.kernel, layer.bias]))
  for g_fast, g_native in zip(*grads):
    np.testing.assert_allclose(g_fast, g_native, rtol=1e-4, atol=1e-3)
  # Only the grouped weights exist and train: no weight for the off-diagonal blocks.
  assert fast.kernel.shape == (3, 3, 4, 32)
  assert fast.count_params() == 3 * 3 * 4 * 32 + 32


def test_block_diagonal_kernel_layout():
  kernel = tf.reshape(tf.range(1, 13, dtype=tf.float32), (1, 1, 2, 6))
  dense = layers.block_diagonal_kernel(kernel, groups=3)[0, 0].numpy()
  assert dense.shape == (6, 6)
  for g in range(3):
    block = dense[2 * g:2 * g + 2, 2 * g:2 * g + 2]
    np.testing.assert_array_equal(block, kernel[0, 0, :, 2 * g:2 * g + 2])
  assert np.count_nonzero(dense) == 2 * 6


def test_bad_arguments_are_explained():
  with pytest.raises(ValueError, match="form"):
    layers.GroupedConv2D(8, 3, 2, form="slow")
  with pytest.raises(ValueError, match="not divisible by groups"):
    layers.GroupedConv2D(6, 3, 4)
  with pytest.raises(ValueError, match="input channels 6"):
    layers.GroupedConv2D(8, 3, 4)(tf.zeros((1, 4, 4, 6)))


def test_nearest_upsampling_forms_agree_and_export_without_resize():
  x = tf.random.stateless_normal((2, 5, 7, 6), seed=(7, 8))
  fast, native = (layers.NearestUpSampling2D(form) for form in layers.FORMS)
  reference = keras.layers.UpSampling2D(2, interpolation="nearest")(x)
  np.testing.assert_array_equal(fast(x), reference)
  np.testing.assert_array_equal(native(x), reference)
  clone = layers.NearestUpSampling2D.from_config(native.get_config())
  assert clone.form == "native" and clone.size == (2, 2)
  inputs = keras.Input((5, 7, 6), batch_size=1)
  model = keras.Model(inputs, layers.NearestUpSampling2D("native")(inputs))
  converted = tf.lite.TFLiteConverter.from_keras_model(model).convert()
  interpreter = tf.lite.Interpreter(model_content=converted)
  ops = {op["op_name"] for op in interpreter._get_ops_details()}  # pylint: disable=protected-access
  assert ops == {"CONCATENATION", "RESHAPE"}, ops
  with pytest.raises(ValueError, match="unknown up-sampling form"):
    layers.NearestUpSampling2D("slow")


def test_one_channel_per_group_converts_to_a_depthwise_convolution():
  inputs = keras.Input((12, 16, 8), batch_size=1)  # As exported.
  model = keras.Model(inputs, layers.GroupedConv2D(8, 3, 8, dilation_rate=2, form="native")(inputs))
  converted = tf.lite.TFLiteConverter.from_keras_model(model).convert()
  interpreter = tf.lite.Interpreter(model_content=converted)
  ops = [op["op_name"] for op in interpreter._get_ops_details()]  # pylint: disable=protected-access
  assert ops == ["DEPTHWISE_CONV_2D"], ops
