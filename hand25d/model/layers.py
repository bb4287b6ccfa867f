"""Grouped convolution that trains fast on CPU and exports as a true grouped conv
(and nearest-neighbour up-sampling that exports without a resize, and the
training heads' keypoint geometry, at the end).

TensorFlow's native grouped `Conv2D` is 20-80x slower than a dense convolution
on CPU, above all in its backward pass (docs/model_card.md, "Grouped
convolutions on CPU"). `GroupedConv2D` keeps one set of weights, shaped exactly like a native grouped kernel
`[kh, kw, in_channels // groups, filters]`, and runs it in one of two forms:

  * "fast": the grouped kernel is expanded into a block-diagonal dense kernel
    `[kh, kw, in_channels, filters]` (zeros outside the diagonal blocks) and
    applied with a dense convolution. Gradients reach only the grouped
    weights, so training is exactly that of the grouped layer.
  * "native": the grouped kernel is applied directly (`tf.nn.conv2d` with a
    filter depth of in_channels // groups). This is what the exported model
    uses: the converted TFLite graph has a `CONV_2D` whose filter input depth
    is in_channels // groups.

Both forms have the same weights, so a model built in one form loads the
weights of the other by layer name (see `network.transfer_weights`).
"""

from typing import Any

import tensorflow as tf
import tf_keras as keras

FORMS = ("fast", "native")


def block_diagonal_kernel(kernel: tf.Tensor, groups: int) -> tf.Tensor:
  """Expands a grouped kernel into the equivalent dense kernel.

  Args:
    kernel: [kh, kw, cin // groups, cout] grouped kernel; output channels
      [g * cout // groups, (g + 1) * cout // groups) belong to group g.
    groups: number of groups.

  Returns:
    [kh, kw, cin, cout] kernel that is zero wherever input channel and output
    channel belong to different groups.
  """
  group_in = kernel.shape[2]
  cout = kernel.shape[3]
  tiled = tf.tile(kernel, [1, 1, groups, 1])
  in_group = tf.range(group_in * groups) // group_in
  out_group = tf.range(cout) // (cout // groups)
  mask = tf.cast(tf.equal(in_group[:, None], out_group[None, :]), kernel.dtype)
  return tiled * mask


class GroupedConv2D(keras.layers.Layer):
  """2D convolution with `groups` groups, 'same' padding, in a fast or native form.

  Equivalent to `keras.layers.Conv2D(filters, kernel_size, strides,
  padding="same", dilation_rate=..., groups=groups, use_bias=...)` in both
  forms, with the same weight shapes and names. With one input and one output
  channel per group (groups == channels == filters) it is a depthwise
  convolution and runs as one in both forms (DEPTHWISE_CONV_2D in TFLite).
  """

  def __init__(self, filters: int, kernel_size: int, groups: int, strides: int = 1,
               dilation_rate: int = 1, use_bias: bool = True, form: str = "fast",
               kernel_initializer: Any = "he_normal", **kwargs):
    super().__init__(**kwargs)
    if form not in FORMS:
      raise ValueError(f"unknown grouped-conv form {form!r}; expected one of {FORMS}")
    if filters % groups:
      raise ValueError(f"{self.name}: filters={filters} is not divisible by groups={groups}")
    if strides > 1 and dilation_rate > 1:
      raise ValueError(f"{self.name}: strides and dilation_rate cannot both exceed 1")
    self.filters = filters
    self.kernel_size = kernel_size
    self.groups = groups
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.use_bias = use_bias
    self.form = form
    self.kernel_initializer = keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    channels = int(input_shape[-1])
    if channels % self.groups:
      raise ValueError(f"{self.name}: input channels {channels} are not divisible by "
                       f"groups={self.groups}")
    k = self.kernel_size
    self.kernel = self.add_weight(
        name="kernel", shape=(k, k, channels // self.groups, self.filters),
        initializer=self.kernel_initializer, trainable=True)
    self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros",
                                 trainable=True) if self.use_bias else None)
    super().build(input_shape)

  @property
  def depthwise(self) -> bool:
    """One input and one output channel per group (after build): a depthwise convolution."""
    return self.groups > 1 and self.kernel.shape[2] == 1 and self.groups == self.filters

  def call(self, inputs):
    kernel = self.kernel
    if self.depthwise:
      # [k, k, 1, C] -> the depthwise filter [k, k, C, 1].
      outputs = tf.nn.depthwise_conv2d(
          inputs, tf.transpose(kernel, (0, 1, 3, 2)), strides=(1, self.strides, self.strides, 1),
          padding="SAME", dilations=(self.dilation_rate, self.dilation_rate))
      return tf.nn.bias_add(outputs, self.bias) if self.use_bias else outputs
    if self.form == "fast" and self.groups > 1:
      kernel = block_diagonal_kernel(kernel, self.groups)
    outputs = tf.nn.conv2d(inputs, kernel, strides=self.strides, padding="SAME",
                           dilations=self.dilation_rate)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    return outputs

  def compute_output_shape(self, input_shape):
    shape = tf.TensorShape(input_shape).as_list()
    for axis in (1, 2):
      if shape[axis] is not None:
        shape[axis] = -(-shape[axis] // self.strides)
    shape[-1] = self.filters
    return tf.TensorShape(shape)

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size, groups=self.groups,
                  strides=self.strides, dilation_rate=self.dilation_rate,
                  use_bias=self.use_bias, form=self.form,
                  kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
    return config


class NearestUpSampling2D(keras.layers.UpSampling2D):
  """x2 nearest-neighbour up-sampling (`UpSampling2D(2, "nearest")`) in a fast or native form.

  Both forms give the same values, out[b, 2i + a, 2j + d, c] = in[b, i, j, c]
  for a, d in {0, 1}:

    * "fast" (training): UpSampling2D's resize, whose gradient TensorFlow
      has;
    * "native" (export): every pixel doubled along the width, then every
      row along the height, by reshapes and concatenations ([B, H, W, 1, C]
      -> [B, H, W, 2, C] = [B, H, 1, 2W, C] -> [B, H, 2, 2W, C] = [B, 2H,
      2W, C]). In TFLite that is RESHAPE and CONCATENATION, which XNNPACK
      runs in float32 and int8; it leaves RESIZE_NEAREST_NEIGHBOR to
      LiteRT's reference kernel, outside its graph (docs/export.md,
      "Latency"). (DEPTH_TO_SPACE would do it too, but LiteRT has no int8
      kernel of the version the converter writes.)

  Input and output are channels-last, [B, H, W, C] -> [B, 2H, 2W, C]; the
  native form needs H, W and C static.
  """

  def __init__(self, form: str = "fast", **kwargs):
    if form not in FORMS:
      raise ValueError(f"unknown up-sampling form {form!r}; expected one of {FORMS}")
    for fixed in ("size", "interpolation", "data_format"):  # From get_config.
      kwargs.pop(fixed, None)
    super().__init__(size=2, interpolation="nearest", data_format="channels_last", **kwargs)
    self.form = form

  def call(self, inputs):
    if self.form == "fast":
      return super().call(inputs)
    _, h, w, c = inputs.shape
    x = tf.reshape(inputs, (-1, h, w, 1, c))
    x = tf.reshape(tf.concat([x, x], axis=3), (-1, h, 1, 2 * w, c))
    return tf.reshape(tf.concat([x, x], axis=2), (-1, 2 * h, 2 * w, c))

  def get_config(self):
    config = super().get_config()
    config.update(form=self.form)
    return config


class HandKeypointGeometry(keras.layers.Layer):
  """Each hand's keypoint layout, read from its score maps (training heads only).

  The soft-argmax of each map (softmax over its positions, then the expected
  column and row) gives a keypoint in cells; a hand's keypoints are taken
  relative to its first one (the wrist, spec.KEYPOINT_NAMES) and divided by
  the largest distance from it, so the layout does not depend on where the
  hand is or how large it looks.

  Input: score-map logits [B, H, W, sides * keypoints], channel
  side * keypoints + k (spec's primary and auxiliary channel order).
  Output: [B, sides, keypoints * 2], (x, y) per keypoint.
  """

  def __init__(self, sides: int, **kwargs):
    super().__init__(**kwargs)
    self.sides = sides

  def call(self, maps: tf.Tensor) -> tf.Tensor:
    h, w, c = maps.shape[1], maps.shape[2], maps.shape[3]
    weights = tf.nn.softmax(tf.reshape(maps, (-1, h * w, c)), axis=1)
    rows, cols = tf.meshgrid(tf.range(h, dtype=maps.dtype), tf.range(w, dtype=maps.dtype),
                             indexing="ij")
    grid = tf.stack([tf.reshape(cols, (-1,)), tf.reshape(rows, (-1,))], axis=-1)  # [HW, 2]
    xy = tf.einsum("bpc,pk->bck", weights, grid)  # [B, C, 2]
    xy = tf.reshape(xy, (-1, self.sides, c // self.sides, 2))
    relative = xy - xy[:, :, :1]
    scale = tf.reduce_max(tf.norm(relative + 1e-9, axis=-1), axis=-1)[..., None, None]
    return tf.reshape(relative / (scale + 1e-3), (-1, self.sides, c // self.sides * 2))

  def get_config(self) -> dict[str, Any]:
    return {**super().get_config(), "sides": self.sides}


# The custom layers of hand25d's networks, by class name, for Keras
# deserialisation (keras.models.load_model, tfmot's quantize_scope).
CUSTOM_OBJECTS = {cls.__name__: cls for cls in (GroupedConv2D, NearestUpSampling2D,
                                                 HandKeypointGeometry)}
