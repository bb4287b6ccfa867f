"""The network the SHAVE simulator runs: a plain list of layer descriptors.

`from_keras(model)` turns a tf_keras functional model into a `Network`: one
frozen `Layer` per kernel invocation, in execution order, with BatchNorm
folded into the preceding convolution's weights and bias, and ReLU fused into
the layer that feeds it. Supported Keras layers:

  Conv2D (with groups=, strides, dilation, SAME/VALID, linear or relu
  activation), DepthwiseConv2D (multiplier 1), hand25d's
  hand25d.model.layers.GroupedConv2D (SAME padding; either form, both hold
  the same grouped kernel), BatchNormalization (after a convolution), ReLU
  (plain), Add,
  Concatenate (channels), UpSampling2D (nearest), MaxPooling2D (pool ==
  stride, VALID), GlobalAveragePooling2D, Dense (as a 1x1 convolution on
  the pooled 1x1 map), and a channel shuffle written as Reshape, Permute,
  Reshape (hand25d.model.network.channel_shuffle; one layer, `groups` blocks).

A grouped convolution with one input and one filter per group is a depthwise
convolution and becomes one (lane-wise, docs/embedded.md). A nearest-neighbour
up-sampling whose only user is a convolution is fused into it (`upsample`):
the convolution reads the small map and up-samples each tile in the slice, so
the large map is never written to DDR.
"""

import dataclasses
from typing import Optional

import numpy as np
import tf_keras as keras

from hand25d.model import layers as hand25d_layers

CONV = "conv"
DEPTHWISE = "depthwise"
ADD = "add"
CONCAT = "concat"
RESIZE_NEAREST = "resize_nearest"
MAX_POOL = "max_pool"
GLOBAL_AVG_POOL = "global_avg_pool"
CHANNEL_SHUFFLE = "channel_shuffle"
# New kinds go at the end: a blob stores a layer's kind as its index here.
KINDS = (CONV, DEPTHWISE, ADD, CONCAT, RESIZE_NEAREST, MAX_POOL, GLOBAL_AVG_POOL,
         CHANNEL_SHUFFLE)
# Kinds whose output a following ReLU can be fused into.
RELU_FUSABLE = (CONV, DEPTHWISE, ADD)
# Exact types: subclasses such as Conv2DTranspose compute something else.
_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense,
          hand25d_layers.GroupedConv2D)


@dataclasses.dataclass(frozen=True, eq=False)
class Layer:
  """One layer of the embedded network; its output tensor is named `name`.

  Attributes:
    name: stable name (the Keras layer's); also names the output tensor.
    kind: one of KINDS.
    inputs: names of the input tensors (a layer name or Network.input_name).
    in_shapes: (H, W, C) of each input.
    out_shape: (H, W, C) of the output.
    kernel_size: (kh, kw) of a convolution, or the pool window of max_pool.
    strides: spatial stride (convolution, max_pool).
    dilation: dilation rate (convolution).
    groups: groups of a CONV (1: dense); blocks of a CHANNEL_SHUFFLE.
    padding: "SAME" or "VALID".
    scale: up-sampling factor of resize_nearest.
    upsample: CONV/DEPTHWISE only: the input is up-sampled (nearest) by this
      factor as it is read, a fused resize_nearest; in_shapes[0] is the
      stored, small input.
    relu: ReLU fused on the output.
    kernel: CONV [kh, kw, cin // groups, cout]; DEPTHWISE [kh, kw, C, 1];
      BatchNorm folded in. None for other kinds, and for layers read from a
      deployment blob, whose weights exist only as the reordered kernel
      stacks of the planner.Program (blob.py).
    bias: [cout] with BatchNorm folded in; None where kernel is None.
  """
  name: str
  kind: str
  inputs: tuple[str, ...]
  in_shapes: tuple[tuple[int, int, int], ...]
  out_shape: tuple[int, int, int]
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  dilation: int = 1
  groups: int = 1
  padding: str = "VALID"
  scale: int = 1
  upsample: int = 1
  relu: bool = False
  kernel: Optional[np.ndarray] = None
  bias: Optional[np.ndarray] = None

  @property
  def conv_input_shape(self) -> tuple[int, int, int]:
    """(H, W, C) the convolution sees: the first input after `upsample`."""
    h, w, c = self.in_shapes[0]
    return (h * self.upsample, w * self.upsample, c)

  @property
  def inputs_per_filter(self) -> int:
    """Input channels each output channel reads per tap (cin // groups; 1 if depthwise)."""
    if self.kind == DEPTHWISE:
      return 1
    return self.conv_input_shape[2] // self.groups

  def macs(self) -> int:
    """Multiply-accumulates of the layer as defined (no lane padding)."""
    if self.kind not in (CONV, DEPTHWISE):
      return 0
    h, w, c = self.out_shape
    return h * w * c * self.kernel_size[0] * self.kernel_size[1] * self.inputs_per_filter

  def parameters(self) -> int:
    """Weights and biases of the layer as defined (BatchNorm folded, no padding)."""
    if self.kind not in (CONV, DEPTHWISE):
      return 0
    c = self.out_shape[2]
    return c * (self.kernel_size[0] * self.kernel_size[1] * self.inputs_per_filter + 1)


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
  """Layers in execution order, the input tensor and the named outputs.

  Attributes:
    input_name: name of the input tensor.
    input_shape: (H, W, C) of the input.
    layers: the layers, each after its inputs.
    outputs: output key (the Keras model's output name) -> tensor name.
    output_shapes: output key -> shape of the Keras output without batch.
  """
  input_name: str
  input_shape: tuple[int, int, int]
  layers: tuple[Layer, ...]
  outputs: dict[str, str]
  output_shapes: dict[str, tuple[int, ...]]

  def macs(self) -> int:
    return sum(layer.macs() for layer in self.layers)


def shuffle_channels(x: np.ndarray, groups: int) -> np.ndarray:
  """ShuffleNet's channel shuffle on the last axis: channel g * (C / groups) + i
  moves to i * groups + g (hand25d.model.network.channel_shuffle)."""
  c = x.shape[-1]
  return x.reshape(x.shape[:-1] + (groups, c // groups)).swapaxes(-1, -2).reshape(x.shape)


def _square(value, what: str, layer) -> int:
  values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
  if len(set(values)) != 1:
    raise ValueError(f"layer {layer.name!r}: {what} {values} is not square; the SHAVE "
                     "kernel supports equal values on both axes")
  return int(values[0])


def _shape(shape) -> tuple[int, int, int]:
  """Keras output shape (with batch) -> (H, W, C); a pooled vector is (1, 1, C)."""
  dims = tuple(int(d) for d in shape[1:])
  return (1, 1) + dims if len(dims) == 1 else dims


def _inbound(layer) -> list:
  if len(layer.inbound_nodes) != 1:
    raise ValueError(f"layer {layer.name!r} is called {len(layer.inbound_nodes)} times; "
                     "shared layers are not supported")
  layers = layer.inbound_nodes[0].inbound_layers
  return list(layers) if isinstance(layers, (list, tuple)) else [layers]


def _activation_relu(layer) -> bool:
  activation = keras.activations.serialize(layer.activation)
  if activation not in ("linear", "relu"):
    raise ValueError(f"layer {layer.name!r}: activation {activation!r} is not supported; "
                     "only linear or relu")
  return activation == "relu"


def _conv(layer, inputs, in_shapes, out_shape) -> Layer:
  """A Keras Conv2D/DepthwiseConv2D/grouped/Dense layer as a Layer."""
  common = dict(name=layer.name, inputs=inputs, in_shapes=in_shapes, out_shape=out_shape)
  if isinstance(layer, keras.layers.Dense):
    kernel = layer.kernel.numpy()[None, None]
    bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
    return Layer(kind=CONV, relu=_activation_relu(layer), kernel=kernel, bias=bias, **common)
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    if layer.depth_multiplier != 1:
      raise ValueError(f"layer {layer.name!r}: depth_multiplier {layer.depth_multiplier} "
                       "is not supported; only 1")
    kernel = layer.depthwise_kernel.numpy()
    kind, groups, relu = DEPTHWISE, 1, _activation_relu(layer)
    padding = layer.padding.upper()
  elif isinstance(layer, keras.layers.Conv2D):
    kernel, groups, relu = layer.kernel.numpy(), layer.groups, _activation_relu(layer)
    kind, padding = CONV, layer.padding.upper()
  else:
    kernel, groups, relu = layer.kernel.numpy(), layer.groups, False
    kind, padding = CONV, "SAME"
  cout = kernel.shape[-1] if kind == CONV else kernel.shape[2]
  bias = (layer.bias.numpy() if getattr(layer, "bias", None) is not None
          else np.zeros(cout, np.float32))
  if kind == CONV and groups > 1 and kernel.shape[2] == 1 and groups == cout:
    kind, groups, kernel = DEPTHWISE, 1, kernel.transpose(0, 1, 3, 2)
  return Layer(kind=kind, kernel_size=tuple(kernel.shape[:2]),
               strides=_square(layer.strides, "strides", layer),
               dilation=_square(layer.dilation_rate, "dilation_rate", layer),
               groups=groups, padding=padding, relu=relu, kernel=kernel, bias=bias, **common)


def convolution(layer) -> Optional[Layer]:
  """A Keras convolution as a Layer with its own kernel and bias, None for other layers.

  Conv2D, DepthwiseConv2D, GroupedConv2D or Dense (exact types), read as
  from_keras reads them before folding BatchNorm or fusing a following ReLU
  (a grouped convolution with one input and one filter per group becomes a
  depthwise one); the descriptor a layer-by-layer replacement needs
  (export/shave/tf_op.py).

  Raises:
    ValueError: naming the layer, for settings the SHAVE kernel does not run.
  """
  if type(layer) not in _CONVS:  # pylint: disable=unidiomatic-typecheck
    return None
  sources = tuple(source.name for source in _inbound(layer))
  return _conv(layer, sources, (_shape(layer.input_shape),), _shape(layer.output_shape))


def _fold_batch_norm(target: Layer, bn) -> Layer:
  if target.kind not in (CONV, DEPTHWISE) or target.relu:
    raise ValueError(f"BatchNormalization {bn.name!r} follows {target.name!r} "
                     f"({target.kind}{', relu' if target.relu else ''}); it can only be "
                     "folded into a convolution without activation")
  if [int(a) % 4 for a in np.atleast_1d(bn.axis)] != [3]:
    raise ValueError(f"BatchNormalization {bn.name!r} normalizes axis {bn.axis}, not channels")
  channels = target.out_shape[-1]
  gamma = bn.gamma.numpy() if bn.scale else np.ones(channels, np.float32)
  beta = bn.beta.numpy() if bn.center else np.zeros(channels, np.float32)
  scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
  shift = beta - bn.moving_mean.numpy() * scale
  if target.kind == CONV:
    kernel = target.kernel * scale
  else:
    kernel = target.kernel * scale[:, None]
  return dataclasses.replace(target, kernel=kernel.astype(np.float32),
                             bias=(target.bias * scale + shift).astype(np.float32))


def _check_plain_relu(layer) -> None:
  if isinstance(layer, keras.layers.Activation):
    if keras.activations.serialize(layer.activation) != "relu":
      raise ValueError(f"activation layer {layer.name!r} is not relu")
    return
  if (layer.max_value is not None or float(layer.negative_slope) != 0.0
      or float(layer.threshold) != 0.0):
    raise ValueError(f"ReLU {layer.name!r} has max_value/negative_slope/threshold set; only "
                     "a plain ReLU fuses into the SHAVE kernel")


def fuse_resize(network: Network) -> Network:
  """Fuses each resize_nearest whose only user is a convolution into it."""
  users = {}
  for layer in network.layers:
    for name in layer.inputs:
      users.setdefault(name, []).append(layer)
  fused, layers = {}, []
  for layer in network.layers:
    consumers = users.get(layer.name, [])
    if (layer.kind == RESIZE_NEAREST and layer.name not in network.outputs.values()
        and len(consumers) == 1 and consumers[0].kind in (CONV, DEPTHWISE)
        and consumers[0].upsample == 1):
      fused[layer.name] = layer
      continue
    if layer.inputs and layer.inputs[0] in fused:
      resize = fused[layer.inputs[0]]
      layer = dataclasses.replace(layer, inputs=resize.inputs, in_shapes=resize.in_shapes,
                                  upsample=resize.scale)
    layers.append(layer)
  return dataclasses.replace(network, layers=tuple(layers))


def from_keras(model: keras.Model, fuse: bool = True) -> Network:
  """Builds the layer list of a single-input tf_keras functional model.

  Args:
    model: the model; BatchNorm and ReLU are folded into the layers before.
    fuse: also fuse nearest up-sampling into the convolution after it
      (fuse_resize).

  Raises:
    ValueError: naming the layer, for layer types or settings the SHAVE
      kernel does not run, BatchNorm or ReLU that cannot be folded, or
      intermediate results that folding would lose.
  """
  if len(model.inputs) != 1:
    raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs; expected 1")
  input_layer = model.inputs[0]._keras_history.layer
  # Users of each layer's output, model outputs included: a result with more
  # than one user must not have BatchNorm or ReLU folded into it.
  consumers = {layer.name: 0 for layer in model.layers}
  for layer in model.layers:
    for source in ([] if layer is input_layer else _inbound(layer)):
      consumers[source.name] += 1
  for tensor in _named_outputs(model).values():
    consumers[tensor._keras_history.layer.name] += 1
  alias = {input_layer.name: input_layer.name}
  shapes = {input_layer.name: _shape(model.inputs[0].shape)}
  layers: dict[str, Layer] = {}
  # A channel shuffle in flight: Reshape or Permute name -> (source, groups).
  shuffles: dict[str, tuple[str, int]] = {}
  for layer in model.layers:
    if layer is input_layer:
      continue
    if isinstance(layer, (keras.layers.Reshape, keras.layers.Permute)):
      descriptor = _shuffle_part(layer, alias, shapes, shuffles, consumers)
      if descriptor is not None:
        layers[layer.name] = descriptor
        alias[layer.name] = layer.name
        shapes[layer.name] = descriptor.out_shape
      continue
    for source in _inbound(layer):
      if source.name in shuffles:
        raise ValueError(f"layer {layer.name!r} reads {source.name!r}, the inside of a channel "
                         "shuffle; only the shuffle's last Reshape may be read")
    sources = [alias[s.name] for s in _inbound(layer)]
    in_shapes = tuple(shapes[s] for s in sources)
    out_shape = _shape(layer.output_shape)
    if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.ReLU,
                          keras.layers.Activation)):
      target = layers.get(sources[0])
      if target is None or consumers[_inbound(layer)[0].name] != 1:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} cannot be fused: its input "
                         f"{_inbound(layer)[0].name!r} is the model input or has other users")
      if isinstance(layer, keras.layers.BatchNormalization):
        layers[target.name] = _fold_batch_norm(target, layer)
      else:
        _check_plain_relu(layer)
        if target.kind not in RELU_FUSABLE or target.relu:
          raise ValueError(f"ReLU {layer.name!r} follows {target.name!r} ({target.kind}); "
                           f"it fuses only into {RELU_FUSABLE} without a ReLU")
        layers[target.name] = dataclasses.replace(target, relu=True)
      alias[layer.name] = target.name
      continue
    common = dict(name=layer.name, inputs=tuple(sources), in_shapes=in_shapes,
                  out_shape=out_shape)
    if type(layer) in _CONVS:  # pylint: disable=unidiomatic-typecheck
      if isinstance(layer, keras.layers.Dense) and in_shapes[0][:2] != (1, 1):
        raise ValueError(f"Dense {layer.name!r} must follow a global pooling, not a "
                         f"{in_shapes[0]} map")
      descriptor = _conv(layer, tuple(sources), in_shapes, out_shape)
    elif isinstance(layer, keras.layers.Add):
      descriptor = Layer(kind=ADD, **common)
    elif isinstance(layer, keras.layers.Concatenate):
      if layer.axis not in (-1, 3):
        raise ValueError(f"Concatenate {layer.name!r} joins axis {layer.axis}, not channels")
      descriptor = Layer(kind=CONCAT, **common)
    elif isinstance(layer, keras.layers.UpSampling2D):
      if layer.interpolation != "nearest":
        raise ValueError(f"UpSampling2D {layer.name!r} uses {layer.interpolation!r}; only "
                         "nearest runs on the SHAVE kernel")
      descriptor = Layer(kind=RESIZE_NEAREST, scale=_square(layer.size, "size", layer),
                         **common)
    elif isinstance(layer, keras.layers.MaxPooling2D):
      pool = _square(layer.pool_size, "pool_size", layer)
      if _square(layer.strides, "strides", layer) != pool or layer.padding != "valid":
        raise ValueError(f"MaxPooling2D {layer.name!r}: only VALID pooling with "
                         "strides == pool_size is supported")
      descriptor = Layer(kind=MAX_POOL, kernel_size=(pool, pool), strides=pool, **common)
    elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
      descriptor = Layer(kind=GLOBAL_AVG_POOL, **common)
    else:
      raise ValueError(f"layer {layer.name!r} of type {type(layer).__name__} is not supported "
                       f"by the SHAVE kernel; supported: {KINDS} and BatchNorm/ReLU fused")
    layers[layer.name] = descriptor
    alias[layer.name] = layer.name
    shapes[layer.name] = out_shape
  outputs, output_shapes = {}, {}
  for key, tensor in _named_outputs(model).items():
    outputs[key] = alias[tensor._keras_history.layer.name]
    output_shapes[key] = tuple(int(d) for d in tensor.shape[1:])
  network = Network(input_name=input_layer.name, input_shape=shapes[input_layer.name],
                    layers=tuple(layers.values()), outputs=outputs,
                    output_shapes=output_shapes)
  return fuse_resize(network) if fuse else network


def _shuffle_part(layer, alias, shapes, shuffles, consumers) -> Optional[Layer]:
  """One layer of Reshape [H*W, G, C/G] -> Permute (1, 3, 2) -> Reshape [H, W, C].

  Returns the CHANNEL_SHUFFLE Layer at the last Reshape, None before it.

  Raises:
    ValueError: naming the layer, for any other use of Reshape or Permute.
  """
  (source,) = _inbound(layer)
  out_shape = tuple(int(d) for d in layer.output_shape[1:])
  refuse = ValueError(f"{type(layer).__name__} {layer.name!r} is not part of a channel shuffle "
                      "(Reshape [H*W, G, C/G], Permute (1, 3, 2), Reshape [H, W, C]); the "
                      "SHAVE kernel runs no other reshape or transpose")
  if source.name in shuffles and consumers[source.name] != 1:
    raise refuse
  if isinstance(layer, keras.layers.Permute):
    if source.name not in shuffles or tuple(layer.dims) != (1, 3, 2):
      raise refuse
    shuffles[layer.name] = shuffles[source.name]
    return None
  if source.name not in shuffles:  # The first Reshape: [H, W, C] -> [H*W, G, C/G].
    if source.name not in alias or len(out_shape) != 3:
      raise refuse
    h, w, c = shapes[alias[source.name]]
    groups = out_shape[1]
    if out_shape != (h * w, groups, c // groups) or c % groups:
      raise refuse
    shuffles[layer.name] = (alias[source.name], groups)
    return None
  if not isinstance(source, keras.layers.Permute):
    raise refuse
  origin, groups = shuffles[source.name]
  if out_shape != shapes[origin]:
    raise refuse
  return Layer(name=layer.name, kind=CHANNEL_SHUFFLE, inputs=(origin,),
               in_shapes=(shapes[origin],), out_shape=out_shape, groups=groups)


def _named_outputs(model: keras.Model) -> dict:
  """Output key -> Keras tensor: dict keys for dict outputs, else the layer names."""
  if isinstance(model.output, dict):
    return dict(model.output)
  return dict(zip(model.output_names, model.outputs))
