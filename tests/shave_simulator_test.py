"""Keras -> layer list builder and the 128 KB slice simulator against Keras."""

import dataclasses

import numpy as np
import pytest

from export.shave import graph
from export.shave import memory
from export.shave import planner
from export.shave import simulator
import tf_keras as keras


def _conv_bn(x, filters, kernel, name, relu=True, **kwargs):
  x = keras.layers.Conv2D(filters, kernel, padding=kwargs.pop("padding", "same"),
                          use_bias=False, name=f"{name}_conv", **kwargs)(x)
  x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
  return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _small_model() -> keras.Model:
  """Every supported layer type: grouped, dilated, strided, SAME and VALID."""
  image = keras.Input((24, 32, 1), batch_size=1, name="image")
  x = _conv_bn(image, 8, 5, "stem", strides=2)
  a = _conv_bn(x, 16, 1, "reduce")
  b = _conv_bn(a, 16, 3, "grouped_d2", groups=2, dilation_rate=2)
  c = _conv_bn(b, 16, 3, "grouped_d3", relu=False, groups=4, dilation_rate=3)
  x = keras.layers.Add(name="add")([a, c])
  x = keras.layers.ReLU(name="add_relu")(x)
  x = keras.layers.MaxPooling2D(2, name="pool")(x)
  x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="dw")(x)
  x = keras.layers.BatchNormalization(name="dw_bn")(x)
  x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up")(x)
  x = keras.layers.Concatenate(name="concat")([x, b])
  head = keras.layers.Conv2D(12, 3, strides=2, padding="valid", groups=4, activation="relu",
                             name="head")(x)
  pooled = keras.layers.GlobalAveragePooling2D(name="gap")(x)
  presence = keras.layers.Dense(2, name="presence")(pooled)
  model = keras.Model(image, {"head": head, "presence": presence})
  rng = np.random.default_rng(3)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      gamma, beta, mean, var = (w.shape for w in layer.get_weights())
      layer.set_weights([rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.3, beta),
                         rng.normal(0, 0.3, mean), rng.uniform(0.5, 2.0, var)])
    elif layer.weights:
      layer.set_weights([rng.normal(0, 0.4, w.shape) for w in layer.get_weights()])
  return model


@pytest.fixture(scope="module")
def model_and_network():
  model = _small_model()
  return model, graph.from_keras(model)


@pytest.fixture(scope="module")
def image():
  return np.random.default_rng(0).uniform(0, 1, (24, 32, 1)).astype(np.float32)


def test_builder_folds_batch_norm_and_fuses_relu(model_and_network):
  _, network = model_and_network
  kinds = {layer.name: (layer.kind, layer.relu) for layer in network.layers}
  assert kinds == {
      "stem_conv": ("conv", True), "reduce_conv": ("conv", True),
      "grouped_d2_conv": ("conv", True), "grouped_d3_conv": ("conv", False),
      "add": ("add", True), "pool": ("max_pool", False), "dw": ("depthwise", False),
      "up": ("resize_nearest", False), "concat": ("concat", False),
      "head": ("conv", True), "gap": ("global_avg_pool", False),
      "presence": ("conv", False)}
  d3 = next(layer for layer in network.layers if layer.name == "grouped_d3_conv")
  assert (d3.groups, d3.dilation, d3.kernel.shape) == (4, 3, (3, 3, 4, 16))
  assert network.outputs == {"head": "head", "presence": "presence"}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_simulated_network_matches_keras(model_and_network, image, dtype):
  model, network = model_and_network
  want = {k: v.numpy()[0] for k, v in model(image[None], training=False).items()}
  result = simulator.simulate(network, image, dtype)
  for key, expected in want.items():
    got = result.outputs[key]
    assert got.shape == expected.shape
    value_range = float(expected.max() - expected.min())
    tolerance = 1e-4 if dtype == np.float32 else 1e-2
    assert np.abs(got - expected).max() <= tolerance * value_range, key
  assert result.peak_bytes <= memory.SLICE_BYTES


def test_row_tiles_with_halos_give_the_same_result(model_and_network, image):
  _, network = model_and_network
  planned = simulator.simulate(network, image, np.float32)
  one_row = {name: dataclasses.replace(tile, rows=1)
             for name, tile in planner.plan(network, np.float32).items()}
  tiled = simulator.simulate(network, image, np.float32, schedule=one_row)
  for key in planned.outputs:
    np.testing.assert_allclose(tiled.outputs[key], planned.outputs[key], rtol=0, atol=1e-5)
  assert sum(r.tiles for r in tiled.reports) > sum(r.tiles for r in planned.reports)
  assert tiled.peak_bytes < planned.peak_bytes
  # Halo rows are fetched again by every tile: more bytes in for a 3x3.
  assert ({r.name: r.dma_in_bytes for r in tiled.reports}["grouped_d2_conv"]
          > {r.name: r.dma_in_bytes for r in planned.reports}["grouped_d2_conv"])


def test_small_slice_forces_tiling_and_stays_inside(model_and_network, image):
  _, network = model_and_network
  capacity = 16 * 1024
  result = simulator.simulate(network, image, np.float16, capacity=capacity)
  assert result.peak_bytes <= capacity
  assert max(r.tiles for r in result.reports) > 1


def test_schedule_over_the_slice_is_refused(model_and_network, image):
  _, network = model_and_network
  schedule = {"grouped_d2_conv": planner.Tile(rows=1000, blocks=4)}
  with pytest.raises(memory.SliceOverflowError) as error:
    simulator.simulate(network, image, np.float32, schedule=schedule, capacity=4096)
  assert error.value.layer == "grouped_d2_conv"
  assert error.value.needed > error.value.limit == 4096
  assert "'grouped_d2_conv' needs" in str(error.value) and "4096 bytes" in str(error.value)
  with pytest.raises(memory.SliceOverflowError, match="even with one-row tiles"):
    planner.plan(network, np.float16, capacity=256)


def test_dma_counts_bytes_and_descriptors(image):
  inputs = keras.Input((24, 32, 1), batch_size=1)
  x = keras.layers.Conv2D(8, 1, name="pointwise")(inputs)
  x = keras.layers.Conv2D(8, 3, padding="same", dilation_rate=2, name="dilated")(x)
  network = graph.from_keras(keras.Model(inputs, x))
  schedule = {"pointwise": planner.Tile(rows=6, blocks=1),
              "dilated": planner.Tile(rows=12, blocks=1)}
  result = simulator.simulate(network, image, np.float16, schedule=schedule)
  pointwise, dilated = result.reports
  # 1x1: input (24x32 planar fp16) and weights in once, output out once;
  # 4 tiles of 6 rows: one descriptor per tile each way plus weights and bias.
  assert pointwise.tiles == 4
  assert pointwise.dma_in_bytes == 24 * 32 * 2 + 8 * 2 + 8 * 2
  assert pointwise.dma_out_bytes == 24 * 32 * 8 * 2
  assert pointwise.dma_transfers == 2 + 2 * 4
  # Comb fields gather and scatter with a pixel stride: one descriptor per
  # row; the padding rows of each field's halo are zeroed by the core.
  assert dilated.tiles == 4 and dilated.tile == planner.Tile(12, 1)
  # The network's output: stored from the fp32 accumulators, 4 bytes a value.
  assert dilated.dma_out_bytes == 24 * 32 * 8 * 4
  assert dilated.dma_transfers == 2 + 4 * 12 + 4 * 12


def test_unsupported_layers_are_named():
  inputs = keras.Input((8, 8, 4), batch_size=1)
  x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="smooth_up")(inputs)
  with pytest.raises(ValueError, match="'smooth_up'.*only nearest"):
    graph.from_keras(keras.Model(inputs, x))
  x = keras.layers.Add(name="sum")([inputs, inputs])
  x = keras.layers.BatchNormalization(name="late_bn")(x)
  with pytest.raises(ValueError, match="'late_bn' follows 'sum'"):
    graph.from_keras(keras.Model(inputs, x))
  conv = keras.layers.Conv2D(4, 1, name="tapped")(inputs)
  x = keras.layers.BatchNormalization(name="tap_bn")(conv)
  with pytest.raises(ValueError, match="'tap_bn' cannot be fused: its input 'tapped'"):
    graph.from_keras(keras.Model(inputs, {"before": conv, "after": x}))
  x = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="deconv")(inputs)
  with pytest.raises(ValueError, match="'deconv' of type Conv2DTranspose is not supported"):
    graph.from_keras(keras.Model(inputs, x))


def test_depthwise_tiles_split_channel_blocks(image):
  inputs = keras.Input((24, 32, 1), batch_size=1)
  x = keras.layers.Conv2D(64, 1, name="widen")(inputs)
  x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
  model = keras.Model(inputs, x)
  network = graph.from_keras(model)
  # 64 fp32 channels x 34 padded columns = 8.5 KB a row: three input rows
  # double-buffered plus two output rows exceed a 40 KB slice.
  capacity = 40 * 1024
  tile = planner.plan_layer(network.layers[1], np.float32, capacity)
  assert tile.blocks < 16
  result = simulator.simulate(network, image, np.float32, capacity=capacity)
  want = model(image[None]).numpy()[0]
  np.testing.assert_allclose(result.outputs[model.output_names[0]], want, atol=1e-4)
  assert result.reports[1].tile == tile and result.peak_bytes <= capacity
  with pytest.raises(ValueError, match="'widen' .* needs all 16 channel blocks"):
    simulator.simulate(network, image, np.float32, schedule={"widen": planner.Tile(4, 2)})


def test_fused_upsampling_matches_keras_without_the_large_map():
  inputs = keras.Input((6, 8, 16), batch_size=1)
  a = keras.layers.UpSampling2D(2, interpolation="nearest", name="up2")(inputs)
  a = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(a)
  b = keras.layers.UpSampling2D(3, interpolation="nearest", name="up3")(inputs)
  b = keras.layers.Conv2D(8, 3, padding="same", dilation_rate=2, groups=2, name="comb")(b)
  model = keras.Model(inputs, {"a": a, "b": b})
  for layer in model.layers:
    if layer.weights:
      layer.set_weights([np.random.default_rng(9).normal(0, 0.5, w.shape)
                         for w in layer.get_weights()])
  fused, unfused = graph.from_keras(model), graph.from_keras(model, fuse=False)
  assert [(layer.name, layer.upsample) for layer in fused.layers] == [("dw", 2), ("comb", 3)]
  assert len(unfused.layers) == 4
  x = np.random.default_rng(2).normal(size=(6, 8, 16)).astype(np.float32)
  want = {k: v.numpy()[0] for k, v in model(x[None]).items()}
  capacity = 24 * 1024  # small enough to need several tiles
  runs = [simulator.simulate(n, x, np.float32, capacity=capacity) for n in (fused, unfused)]
  for result in runs:
    for key, expected in want.items():
      np.testing.assert_allclose(result.outputs[key], expected, atol=1e-4)
  fused_run, unfused_run = runs
  assert all(r.expand_vectors > 0 and r.tiles > 1 for r in fused_run.reports)
  assert (sum(r.dma_bytes for r in fused_run.reports)
          < sum(r.dma_bytes for r in unfused_run.reports) / 2)


def _shuffle_model(groups: int) -> keras.Model:
  # Imported here: the decoder's shuffle is the one the simulator must match.
  from hand25d.model import network  # pylint: disable=import-outside-toplevel
  image = keras.Input((12, 16, 1), batch_size=1, name="image")
  a = keras.layers.Conv2D(8, 3, padding="same", name="a")(image)
  b = keras.layers.Conv2D(8, 3, padding="same", name="b")(a)
  x = keras.layers.Concatenate(name="concat")([a, b])
  x = network.channel_shuffle(x, groups, "shuffle")
  x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up")(x)
  head = keras.layers.Conv2D(4, 1, groups=4, name="head")(x)
  pooled = keras.layers.GlobalAveragePooling2D(name="gap")(
      keras.layers.Concatenate(name="concat2")([a, b]))
  return keras.Model(image, {"head": head, "pooled": pooled})


@pytest.mark.parametrize("groups", [2, 4])
def test_channel_shuffle_is_one_layer_and_matches_keras(groups):
  model = _shuffle_model(groups)
  network = graph.from_keras(model)
  shuffles = [layer for layer in network.layers if layer.kind == graph.CHANNEL_SHUFFLE]
  assert [(layer.name, layer.inputs, layer.groups) for layer in shuffles] == [
      ("shuffle_merge", ("concat",), groups)]
  # The up-sampling after it still fuses into the grouped 1x1.
  assert {layer.name: layer.upsample for layer in network.layers}["head"] == 2
  image = np.random.default_rng(2).uniform(0, 1, (12, 16, 1)).astype(np.float32)
  want = model(image[None], training=False)["head"].numpy()[0]
  for dtype, tolerance in ((np.float32, 1e-5), (np.float16, 1e-2)):
    got = simulator.simulate(network, image, dtype).outputs["head"]
    assert np.abs(got - want).max() <= tolerance * float(want.max() - want.min())


def test_channel_shuffle_equals_the_numpy_definition():
  x = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
  # Channel g * (C / groups) + i -> i * groups + g: two blocks of 4 interleave.
  np.testing.assert_array_equal(graph.shuffle_channels(x, 2)[0, 0], [0, 4, 1, 5, 2, 6, 3, 7])


def test_other_reshapes_are_refused():
  image = keras.Input((4, 4, 8), batch_size=1, name="image")
  x = keras.layers.Reshape((16, 8), name="flatten")(image)
  x = keras.layers.Reshape((4, 4, 8), name="unflatten")(x)
  with pytest.raises(ValueError, match="'flatten' is not part of a channel shuffle"):
    graph.from_keras(keras.Model(image, x))
  x = keras.layers.Reshape((16, 2, 4), name="split")(image)
  x = keras.layers.Permute((2, 1, 3), name="swap")(x)
  with pytest.raises(ValueError, match="Permute 'swap' is not part of a channel shuffle"):
    graph.from_keras(keras.Model(image, x))


def test_an_fp16_program_stores_its_outputs_unrounded(model_and_network, image):
  _, network = model_and_network
  # The convolutions that give a network output and that no layer reads.
  assert planner.fp32_stored(network) == {"head", "presence"}
  stored = planner.compile_network(network, np.float16).out_dtypes
  assert {name for name, dtype in stored.items() if dtype == np.float32} == {"head", "presence"}
  assert planner.compile_network(network, np.float32).out_dtypes["head"] == np.float32
  unrounded = simulator.simulate(network, image, np.float16)
  rounded = simulator.simulate(network, image, np.float16, fp32_outputs=False)
  for key in ("head", "presence"):
    # The same fp32 accumulators, stored with and without rounding to fp16.
    values = unrounded.outputs[key]
    assert np.array_equal(values.astype(np.float16).astype(np.float32), rounded.outputs[key])
    assert np.any(values != rounded.outputs[key])
  # Stored in fp32 (8 lanes of 4 bytes): twice the output's DMA bytes.
  out_bytes = {r.name: r.dma_out_bytes for r in unrounded.reports}
  assert out_bytes["head"] == 2 * {r.name: r.dma_out_bytes for r in rounded.reports}["head"]
  assert out_bytes["concat"] == {r.name: r.dma_out_bytes for r in rounded.reports}["concat"]


def test_only_outputs_no_layer_reads_are_stored_in_fp32():
  inputs = keras.Input((8, 8, 8), batch_size=1)
  first = keras.layers.Conv2D(8, 1, name="first")(inputs)
  second = keras.layers.Conv2D(8, 1, name="second")(first)
  total = keras.layers.Add(name="total")([first, second])
  network = graph.from_keras(keras.Model(inputs, {"first": first, "total": total}))
  # "first" is an output that "second" reads; "total" is not a convolution.
  assert planner.fp32_stored(network) == frozenset()
