"""The SHAVE C kernel as a TensorFlow custom op, and a Keras layer on it.

`conv2d(x, kernel, bias, ...)` runs one (grouped, dilated, strided or
depthwise) convolution with bias and optional ReLU through the op
`ShaveConv2D` (export/shave/kernel/shave_conv_op.cc): the same C kernel as
the blob runner (native.py), tile by tile in a 128 KB slice, with the tile
planner.plan_layer picks for the layer. `ShaveConv2D` is the Keras layer
form, and `with_shave_convolutions(model)` copies a tf_keras functional model
with every convolution (Conv2D, DepthwiseConv2D, hand25d's GroupedConv2D,
Dense on a pooled vector) replaced by one, weights included, so that a
whole network runs through the op.

The op library is compiled on first use against tf.sysconfig's headers and
flags, into the cache of cbuild.py keyed by TensorFlow's version. Inference
only: the op has no gradient.
"""

import functools
import os

import numpy as np
import tensorflow as tf
import tf_keras as keras

from export.shave import cbuild
from export.shave import conv
from export.shave import graph
from export.shave import memory
from export.shave import planner

OP_SOURCE = os.path.join(cbuild.KERNEL_DIR, "shave_conv_op.cc")
STORAGE = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16)}


def library_path() -> str:
  """The op library's file, built if needed against this TensorFlow's headers and flags.

  Raises:
    cbuild.BuildError: no C/C++ compiler, or the build failed.
  """
  return cbuild.shared_library(
      f"shave_conv_op-tf{tf.__version__}", cxx_sources=(OP_SOURCE,),
      cxx_flags=tf.sysconfig.get_compile_flags(),
      link_flags=[*tf.sysconfig.get_link_flags(), f"-Wl,-rpath,{tf.sysconfig.get_lib()}"],
      key=tf.__version__)


@functools.lru_cache(maxsize=None)
def op_library():
  """The loaded op library (tf.load_op_library), built on first use.

  Raises:
    cbuild.BuildError: no C/C++ compiler, or the build failed.
  """
  return tf.load_op_library(library_path())


# Static Python (shapes and the planner), not graph code: autograph would
# trace the planner's loops into a graph.
@tf.autograph.experimental.do_not_convert
def plan_tile(input_shape, kernel_size, filters: int, *, strides: int = 1, dilation: int = 1,
              groups: int = 1, padding: str = "SAME", depthwise: bool = False,
              storage: str = "fp32") -> planner.Tile:
  """The tile planner.plan_layer picks for this convolution in a 128 KB slice.

  Args:
    input_shape: (H, W, C) of one image.
    kernel_size: (kh, kw).
    filters: output channels (C if depthwise).

  Raises:
    memory.SliceOverflowError: the layer does not fit even with one-row tiles.
  """
  h, w, c = (int(d) for d in input_shape)
  kh, kw = kernel_size
  _, _, out_h = conv.padding_amounts(h, kh, strides, dilation, padding)
  _, _, out_w = conv.padding_amounts(w, kw, strides, dilation, padding)
  layer = graph.Layer(name="shave_conv2d", kind=graph.DEPTHWISE if depthwise else graph.CONV,
                      inputs=("input",), in_shapes=((h, w, c),),
                      out_shape=(out_h, out_w, filters), kernel_size=(kh, kw), strides=strides,
                      dilation=dilation, groups=1 if depthwise else groups, padding=padding)
  return planner.plan_layer(layer, STORAGE[storage], memory.SLICE_BYTES)


@tf.autograph.experimental.do_not_convert
def conv2d(x, kernel, bias, *, strides: int = 1, dilation: int = 1, padding: str = "SAME",
           relu: bool = False, depthwise: bool = False, storage: str = "fp32",
           with_stats: bool = False):
  """A convolution + bias (+ ReLU) through the SHAVE C kernel.

  Args:
    x: [B, H, W, Cin] float32, H, W and Cin static.
    kernel: [kh, kw, Cin / groups, Cout] as tf.nn.conv2d takes it (the groups
      follow from its input depth), or [kh, kw, C, 1] with depthwise.
    bias: [Cout].
    strides, dilation: on both axes; not both above 1.
    padding: "SAME" or "VALID".
    relu: fuse a ReLU.
    depthwise: a depthwise kernel (tf.nn.depthwise_conv2d, multiplier 1).
    storage: "fp32" or "fp16": the element type inside the kernel (fp32
      accumulation either way); inputs and outputs are float32.
    with_stats: also return the [B, 6] int64 run figures (native.STATS_FIELDS).

  Returns:
    [B, Ho, Wo, Cout] float32 (and the stats).

  Raises:
    ValueError: non-static shapes, or channels that do not divide into groups.
    memory.SliceOverflowError: the layer does not fit the slice.
  """
  if storage not in STORAGE:
    raise ValueError(f"storage must be one of {sorted(STORAGE)}, not {storage!r}")
  x, kernel = tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(kernel, tf.float32)
  shape = x.shape[1:]
  if len(x.shape) != 4 or not shape.is_fully_defined() or not kernel.shape.is_fully_defined():
    raise ValueError(f"ShaveConv2D needs static height, width and channels to plan its tiles; "
                     f"input {x.shape}, kernel {kernel.shape}")
  kh, kw, depth, out = kernel.shape
  if depthwise:
    groups, filters = 1, depth
  else:
    if shape[2] % depth:
      raise ValueError(f"{shape[2]} input channels do not divide into groups of {depth} "
                       f"(kernel {kernel.shape})")
    groups, filters = shape[2] // depth, out
  tile = plan_tile(shape, (kh, kw), filters, strides=strides, dilation=dilation, groups=groups,
                   padding=padding, depthwise=depthwise, storage=storage)
  output, stats = op_library().shave_conv2d(
      x, kernel, tf.convert_to_tensor(bias, tf.float32), strides=strides, dilation=dilation,
      groups=groups, padding=padding, relu=relu, depthwise=depthwise, storage=storage,
      tile_rows=tile.rows, tile_blocks=tile.blocks)
  return (output, stats) if with_stats else output


class ShaveConv2D(keras.layers.Layer):
  """A convolution layer computed by the SHAVE C kernel (inference only).

  Weights as Conv2D's (kernel [kh, kw, Cin / groups, filters]) or, with
  `depthwise`, DepthwiseConv2D's ([kh, kw, C, 1]), and a bias; a rank-2
  input [B, C] is a 1x1 map (a Dense layer on a pooled vector) and gives
  [B, filters]. kernel_size: an int or (kh, kw).
  """

  def __init__(self, filters: int, kernel_size, strides: int = 1, dilation_rate: int = 1,
               groups: int = 1, padding: str = "same", relu: bool = False,
               use_bias: bool = True, depthwise: bool = False, storage: str = "fp32", **kwargs):
    super().__init__(**kwargs)
    if storage not in STORAGE:
      raise ValueError(f"{self.name}: storage must be one of {sorted(STORAGE)}, not {storage!r}")
    size = tuple(kernel_size) if isinstance(kernel_size, (tuple, list)) else (kernel_size,) * 2
    self.filters, self.kernel_size, self.strides = filters, size, strides
    self.dilation_rate, self.groups, self.padding = dilation_rate, groups, padding.upper()
    self.relu, self.use_bias, self.depthwise, self.storage = relu, use_bias, depthwise, storage

  def build(self, input_shape):
    channels = int(input_shape[-1])
    kh, kw = self.kernel_size
    shape = (kh, kw, channels, 1) if self.depthwise else (kh, kw, channels // self.groups,
                                                          self.filters)
    self.kernel = self.add_weight(name="kernel", shape=shape, trainable=False)
    self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros",
                                 trainable=False) if self.use_bias else None)
    super().build(input_shape)

  def call(self, inputs):
    flat = inputs.shape.rank == 2
    x = inputs[:, None, None, :] if flat else inputs
    bias = self.bias if self.use_bias else tf.zeros([self.filters])
    y = conv2d(x, self.kernel, bias, strides=self.strides, dilation=self.dilation_rate,
               padding=self.padding, relu=self.relu, depthwise=self.depthwise,
               storage=self.storage)
    return y[:, 0, 0, :] if flat else y

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                  dilation_rate=self.dilation_rate, groups=self.groups, padding=self.padding,
                  relu=self.relu, use_bias=self.use_bias, depthwise=self.depthwise,
                  storage=self.storage)
    return config


def with_shave_convolutions(model: keras.Model, storage: str = "fp32") -> keras.Model:
  """A copy of a functional model whose convolutions all run through ShaveConv2D.

  Conv2D, DepthwiseConv2D, GroupedConv2D and Dense (read by
  graph.convolution, as the SHAVE blob reads them) become ShaveConv2D layers
  of the same name and weights (a bias of zeros where they had none);
  every other layer (BatchNormalization, ReLU, Add, pooling, up-sampling,
  the channel shuffle's Reshape/Permute) is copied with its weights and
  stays a TensorFlow op.

  Raises:
    ValueError: naming the layer, for a convolution the SHAVE kernel does not
      run (graph.convolution: other activations, unequal strides or dilation
      on the two axes, depth multipliers above 1).
  """
  weights = {}

  def clone(layer):
    descriptor = graph.convolution(layer)
    if descriptor is None:
      return layer.__class__.from_config(layer.get_config())
    weights[layer.name] = [descriptor.kernel, descriptor.bias]
    return ShaveConv2D(descriptor.out_shape[-1], descriptor.kernel_size, descriptor.strides,
                       descriptor.dilation, descriptor.groups, descriptor.padding,
                       descriptor.relu, depthwise=descriptor.kind == graph.DEPTHWISE,
                       storage=storage, name=layer.name)

  copy = keras.models.clone_model(model, clone_function=clone)
  for layer in model.layers:
    if layer.weights:
      copy.get_layer(layer.name).set_weights(weights.get(layer.name, layer.get_weights()))
  return copy
