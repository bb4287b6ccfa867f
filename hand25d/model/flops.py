"""Analytic cost of a Keras model, layer by layer.

FLOPs follow the paper (docs/model_card.md): FLOPs = 2 x multiply-accumulates
(MACs) of the convolutions and dense layers, for one example. Everything else (batch norm,
activations, additions, pooling, resizing, concatenation) is counted apart as
"other" element operations, so the headline figure is the one the paper
reports and the rest stays visible.

The counter reads layer configs and the static shapes of the built model, so
it needs fixed spatial input dimensions. Nested models are not expanded (the
baselines inline their keras.applications layers).
"""

import dataclasses

import numpy as np
import tf_keras as keras

from hand25d.model import layers as layers_lib


@dataclasses.dataclass(frozen=True)
class LayerCost:
  """Cost of one layer for one example."""
  name: str
  kind: str  # The Keras layer class, e.g. "Conv2D".
  params: int
  macs: int  # Multiply-accumulates of convolutions and dense layers.
  other_ops: int  # Element operations of everything else.
  output_shape: tuple[int, ...]  # Without the batch dimension.

  @property
  def flops(self) -> int:
    return 2 * self.macs


def _shape(tensor) -> tuple[int, ...]:
  return tuple(int(d) for d in tensor.shape[1:])


def _size(tensor) -> int:
  return int(np.prod(_shape(tensor)))


def _conv_macs(layer, inputs, outputs) -> int:
  """MACs of a (grouped, depthwise or transposed) 2D convolution."""
  kh, kw = (layer.kernel_size if isinstance(layer.kernel_size, (tuple, list))
            else (layer.kernel_size, layer.kernel_size))
  cin = _shape(inputs)[-1]
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    return _size(outputs) * kh * kw
  if isinstance(layer, keras.layers.Conv2DTranspose):
    # Every input position scatters a kh x kw x cout patch.
    return _size(inputs) * kh * kw * layer.filters
  groups = getattr(layer, "groups", 1)
  return _size(outputs) * kh * kw * (cin // groups)


def _other_ops(layer, inputs: list, outputs) -> int:
  """Element operations of a non-MAC layer (0 for pure data movement)."""
  if isinstance(layer, keras.layers.BatchNormalization):
    return 2 * _size(outputs)  # Scale and shift (folded into the conv at export).
  if isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)):
    return _size(outputs)
  if isinstance(layer, (keras.layers.Add, keras.layers.Multiply)):
    return (len(inputs) - 1) * _size(outputs)
  if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                        keras.layers.GlobalAveragePooling2D)):
    return _size(inputs[0])
  if isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == "bilinear":
    return 4 * _size(outputs)
  return 0


_MAC_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
               layers_lib.GroupedConv2D)


def layer_costs(model: keras.Model) -> list[LayerCost]:
  """Cost of every layer of `model`, in graph order.

  Raises:
    ValueError: if the model nests another model.
  """
  costs = []
  for layer in model.layers:
    if isinstance(layer, keras.layers.InputLayer):
      continue
    if isinstance(layer, keras.Model):
      raise ValueError(f"{model.name!r} nests model {layer.name!r}; inline its layers "
                       "(build it on the outer model's tensors) to count it")
    for node in layer.inbound_nodes:
      inputs = node.input_tensors
      inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
      outputs = node.output_tensors
      if isinstance(layer, _MAC_LAYERS):
        macs = _conv_macs(layer, inputs[0], outputs)
        other = _size(outputs) if getattr(layer, "use_bias", False) else 0
      elif isinstance(layer, keras.layers.Dense):
        macs = _size(inputs[0]) * layer.units
        other = layer.units if layer.use_bias else 0
      else:
        macs = 0
        other = _other_ops(layer, inputs, outputs)
      costs.append(LayerCost(name=layer.name, kind=type(layer).__name__,
                             params=layer.count_params(), macs=int(macs),
                             other_ops=int(other), output_shape=_shape(outputs)))
  return costs


def total_macs(model: keras.Model) -> int:
  return sum(c.macs for c in layer_costs(model))


def total_flops(model: keras.Model) -> int:
  """FLOPs of one example: 2 x MACs of convolutions and dense layers."""
  return 2 * total_macs(model)
