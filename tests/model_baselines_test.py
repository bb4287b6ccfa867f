"""Table-2 baselines: keras.applications backbones under the same decoder and heads."""

from hand25d import spec
from hand25d.model import config as config_lib
from hand25d.model import flops
from hand25d.model import network

import pytest
import tensorflow as tf

# Inference network (backbone + adapter + decoder + presence) at 120x160, and
# its MACs; the paper's Table 2 has 1.893M and 7.017M parameters.
PINNED = {
    "mobilenet_v2": (1_864_674, 110_142_528),
    "densenet121": (7_098_274, 1_031_828_608),
}
# DenseNet-121 takes seconds to build.
BACKBONES = [pytest.param(b, marks=pytest.mark.slow) if b == "densenet121" else b
             for b in PINNED]
SMALL = dict(input_height=64, input_width=64)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_baseline_pinned_size(backbone):
  model = network.inference_model(config_lib.ModelConfig(backbone=backbone))
  assert (model.count_params(), flops.total_macs(model)) == PINNED[backbone]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_baseline_has_the_same_decoder_heads_and_output_shapes(backbone):
  config = config_lib.ModelConfig(backbone=backbone, **SMALL)
  model = network.build_training_model(config)
  ours = network.build_training_model(config_lib.ModelConfig(**SMALL))
  shared = [layer for layer in ours.layers[1:] if not layer.name.startswith("tier")]
  # Decoder (with the channel shuffle's 3 layers), heads, spatial path and fusion module.
  assert len(shared) == 52
  for layer in shared:
    assert ([w.shape for w in model.get_layer(layer.name).weights]
            == [w.shape for w in layer.weights]), layer.name
  outputs = model(tf.zeros((1, 64, 64, 1)))
  reference = ours(tf.zeros((1, 64, 64, 1)))
  assert {k: v.shape for k, v in outputs.items()} == {k: v.shape for k, v in reference.items()}
  assert model.get_layer("adapter_resize").output.shape[1:] == (8, 8, 64)
  assert model.input.shape[-1] == spec.INPUT_CHANNELS
