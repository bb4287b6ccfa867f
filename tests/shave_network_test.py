"""The hand25d inference network in the SHAVE simulator: matches Keras, fits, is fast."""

import numpy as np
import pytest

from export.shave import cost
from export.shave import graph
from export.shave import memory
from export.shave import simulator
from hand25d import paper


@pytest.fixture(scope="module")
def model(randomized_inference_model):
  return randomized_inference_model(5)


@pytest.fixture(scope="module")
def network(model):
  return graph.from_keras(model)


def test_builder_keeps_depthwise_and_dilated_convolutions(network):
  # The default tiers' 3x3s have one channel per group: depthwise layers.
  depthwise = [layer for layer in network.layers if layer.kind == graph.DEPTHWISE]
  assert {layer.dilation for layer in depthwise} == {1, 2, 3, 4}
  # Both decoder stages: nearest x2 fused into the depthwise 3x3 after it.
  assert [layer.upsample for layer in depthwise if layer.upsample > 1] == [2, 2]
  assert not any(layer.kind == graph.RESIZE_NEAREST for layer in network.layers)
  assert set(network.outputs) == set(network.output_shapes)


@pytest.fixture(scope="module")
def paper_grouping(randomized_inference_model):
  """(model, network): the paper's grouping (4 in Tier-2, 8 in Tier-3), 48x64 input."""
  model = randomized_inference_model(7, tier2_groups=4, tier3_groups=8, tier3_bottleneck=40,
                                     input_height=48, input_width=64)
  return model, graph.from_keras(model)


def test_builder_keeps_grouped_and_dilated_convolutions(paper_grouping):
  _, network = paper_grouping
  convs = [layer for layer in network.layers if layer.kind == graph.CONV]
  assert {layer.groups for layer in convs} >= {1, 4, 8}
  assert {layer.dilation for layer in convs} == {1, 2, 3, 4}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_paper_grouping_matches_keras(paper_grouping, dtype):
  model, network = paper_grouping
  _assert_simulation_matches_keras(model, network, dtype, seed=3)


def _assert_simulation_matches_keras(model, network, dtype, seed: int) -> None:
  """The simulated network stays inside the slice and computes what Keras does."""
  image = np.random.default_rng(seed).uniform(0, 1, network.input_shape).astype(np.float32)
  want = {k: v.numpy()[0] for k, v in model(image[None], training=False).items()}
  result = simulator.simulate(network, image, dtype)
  assert result.peak_bytes <= memory.SLICE_BYTES
  for key, expected in want.items():
    value_range = float(expected.max() - expected.min())
    tolerance = 1e-4 if dtype == np.float32 else 1e-2
    assert np.abs(result.outputs[key] - expected).max() <= tolerance * value_range, key


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_simulated_network_matches_keras_inside_the_slice(model, network, dtype):
  _assert_simulation_matches_keras(model, network, dtype, seed=1)


@pytest.fixture(scope="module")
def small_score4(randomized_inference_model):
  """(model, network): score maps formed at stride 4 (ModelConfig.score_stride), 48x64 input."""
  model = randomized_inference_model(6, score_stride=4, input_height=48, input_width=64)
  return model, graph.from_keras(model)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_maps_formed_before_the_last_upsampling_match_keras(small_score4, dtype):
  model, network = small_score4
  depthwise = [layer for layer in network.layers
               if layer.kind == graph.DEPTHWISE and layer.upsample > 1]
  assert [layer.upsample for layer in depthwise] == [2, 2]
  assert depthwise[-1].out_shape == (24, 32, 16)  # The second stage up-samples the 16 maps alone.
  _assert_simulation_matches_keras(model, network, dtype, seed=2)


def test_modelled_latency_meets_the_16_ms_target(network):
  image = np.zeros(network.input_shape, np.float32)
  result = simulator.simulate(network, image, np.float16)
  priced = cost.estimate(result)
  assert priced.ours_ms <= paper.SHAVE_MS
  assert priced.naive_ms > priced.ours_ms
