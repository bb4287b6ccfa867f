"""The SHAVE cost model: lane use, comb at zero overhead, overlap, the table."""

import numpy as np
import pytest

from export.shave import cost
from export.shave import graph
from export.shave import simulator
import tf_keras as keras


def _single_conv(**conv_kwargs) -> graph.Network:
  inputs = keras.Input((30, 40, 32), batch_size=1)
  x = keras.layers.Conv2D(32, 3, padding="same", name="conv", **conv_kwargs)(inputs)
  return graph.from_keras(keras.Model(inputs, x))


def _priced(network, dtype=np.float16, assumptions=cost.Assumptions()):
  image = np.zeros(network.input_shape, np.float32)
  result = simulator.simulate(network, image, dtype)
  return cost.estimate(result, assumptions)


@pytest.mark.parametrize("dtype,lanes", [(np.float16, 8), (np.float32, 4)])
def test_filters_per_group_a_multiple_of_lanes_use_every_lane(dtype, lanes):
  for groups in (1, 2, 4):
    network = _single_conv(groups=groups)
    (layer_cost,) = _priced(network, dtype).layers
    assert layer_cost.vector_macs * lanes == network.macs()
  # 8 groups of 4 filters with 8 fp16 lanes: blocks straddle two groups and
  # read both groups' inputs, half of them against zero weights.
  (layer_cost,) = _priced(_single_conv(groups=8)).layers
  assert layer_cost.vector_macs * 8 == 2 * layer_cost.macs


def test_comb_dilation_costs_no_extra_macs():
  plain = _priced(_single_conv()).layers[0]
  for dilation in (2, 3, 4):
    dilated = _priced(_single_conv(dilation_rate=dilation)).layers[0]
    assert dilated.vector_macs == plain.vector_macs
    # Only the per-tile overhead and the strided DMA descriptors differ.
    assert dilated.ours_compute - plain.ours_compute < 0.05 * plain.ours_compute
    # The naive kernel is zero-inflated: (2d + 1)^2 / 9 times the taps.
    assert dilated.naive_compute > plain.naive_compute * ((2 * dilation + 1) ** 2 / 9) * 0.7


def test_layer_time_is_bound_by_the_vector_unit_or_the_dma():
  (c,) = _priced(_single_conv()).layers
  assert c.ours_compute >= c.vector_macs
  assert c.ours >= max(c.ours_compute, c.ours_dma)
  assert c.ours <= c.ours_compute + c.ours_dma + cost.Assumptions().layer_overhead_cycles
  slow = cost.Assumptions(dma_bytes_per_cycle=0.05)
  (c_slow,) = _priced(_single_conv(), assumptions=slow).layers
  assert c_slow.ours_dma > c_slow.ours_compute and c_slow.ours > c.ours


def test_table_reports_totals_and_every_layer():
  inputs = keras.Input((24, 32, 1), batch_size=1)
  x = keras.layers.Conv2D(16, 5, strides=2, padding="same", activation="relu",
                          name="stem")(inputs)
  x = keras.layers.Conv2D(16, 3, padding="same", groups=2, dilation_rate=2,
                          activation="relu", name="comb")(x)
  network = graph.from_keras(keras.Model(inputs, x))
  priced = _priced(network)
  assert priced.ours_ms == pytest.approx(sum(c.ours for c in priced.layers) / 600e3)
  assert priced.speedup == pytest.approx(priced.naive_ms / priced.ours_ms)
  assert priced.speedup > 1
  table = cost.format_table(network, priced)
  assert "stem" in table and "comb" in table and f"{priced.ours_ms:.2f}" in table


def test_vector_mac_floor_bounds_our_time_and_the_speedup():
  network = _single_conv(dilation_rate=2)
  priced = _priced(network)
  (c,) = priced.layers
  assert priced.mac_floor_ms == pytest.approx(c.vector_macs / 600e3)
  assert priced.mac_floor_ms < priced.ours_ms
  assert priced.naive_ms / priced.mac_floor_ms > priced.speedup
  # A vector unit issuing two operations a cycle halves the floor.
  dual = _priced(network, assumptions=cost.Assumptions(vau_ops_per_cycle=2))
  assert dual.mac_floor_ms == pytest.approx(priced.mac_floor_ms / 2)
  assert "speed-up at most" in cost.format_table(network, priced)


def test_an_output_stored_in_fp32_costs_its_second_store_and_dma():
  network = _single_conv()  # Its conv is the network's output: planner.fp32_stored.
  image = np.zeros(network.input_shape, np.float32)
  priced, stored = {}, {}
  for fp32_outputs in (False, True):
    result = simulator.simulate(network, image, np.float16, fp32_outputs=fp32_outputs)
    stored[fp32_outputs] = result.reports[0].dma_out_bytes
    priced[fp32_outputs] = cost.estimate(result).layers[0]
  rounded, unrounded = priced[False], priced[True]
  assert unrounded.vector_macs == rounded.vector_macs
  assert stored == {False: 30 * 40 * 32 * 2, True: 30 * 40 * 32 * 4}  # Bytes a value: 2, 4.
  # (Smaller output tiles in fp32 also fetch the 3x3's halo rows more often.)
  assert unrounded.dma_bytes > rounded.dma_bytes + 30 * 40 * 32 * 2
  assert unrounded.ours_compute > rounded.ours_compute and unrounded.ours > rounded.ours
  assert unrounded.naive == rounded.naive  # The naive baseline stores fp16 either way.
