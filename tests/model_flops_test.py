"""The analytic FLOP counter on hand-computed cases (model_export_test checks it on TFLite)."""

from hand25d.model import flops
from hand25d.model import layers

import pytest
import tf_keras as keras


def _costs(input_shape, layer):
  x = keras.Input(input_shape)
  model = keras.Model(x, layer(x))
  (cost,) = flops.layer_costs(model)
  return cost


@pytest.mark.parametrize("layer,input_shape,macs", [
    # 8x8 output x 4 filters x (3 x 3 x 3) taps.
    (keras.layers.Conv2D(4, 3, padding="same"), (8, 8, 3), 8 * 8 * 4 * 27),
    # Stride 2: 4x4 outputs.
    (keras.layers.Conv2D(4, 3, strides=2, padding="same"), (8, 8, 3), 4 * 4 * 4 * 27),
    # 8 groups: each output sees 3 x 3 x 32 / 8 inputs.
    (layers.GroupedConv2D(32, 3, 8), (5, 6, 32), 5 * 6 * 32 * 9 * 4),
    (layers.GroupedConv2D(16, 1, 16, form="native"), (5, 6, 64), 5 * 6 * 16 * 4),
    # Depthwise: one 3x3 filter per channel.
    (keras.layers.DepthwiseConv2D(3, padding="same"), (5, 6, 10), 5 * 6 * 10 * 9),
    # Transposed: every input position scatters 3 x 3 x 7.
    (keras.layers.Conv2DTranspose(7, 3, strides=2, padding="same"), (5, 6, 4), 5 * 6 * 4 * 9 * 7),
    (keras.layers.Dense(5), (12,), 12 * 5),
    (keras.layers.ReLU(), (5, 6, 4), 0),
])
def test_hand_computed_macs(layer, input_shape, macs):
  cost = _costs(input_shape, layer)
  assert cost.macs == macs
  assert cost.flops == 2 * macs
  assert cost.params == layer.count_params()


def test_other_ops_are_counted_apart():
  assert _costs((5, 6, 4), keras.layers.BatchNormalization()).other_ops == 2 * 120
  assert _costs((5, 6, 4), keras.layers.MaxPooling2D(2)).other_ops == 120
  assert _costs((5, 6, 4), keras.layers.UpSampling2D(2)).other_ops == 0
  assert _costs((5, 6, 4), keras.layers.Conv2D(2, 1)).other_ops == 5 * 6 * 2  # Bias adds.


def test_nested_models_are_refused():
  inner = keras.Sequential([keras.layers.Dense(2)])
  x = keras.Input((3,))
  with pytest.raises(ValueError, match="nests model"):
    flops.layer_costs(keras.Model(x, inner(x)))

