"""The SHAVE C kernel against its numpy reference, the slice simulator and float32 TFLite."""

import os
import struct
import zlib

import numpy as np
import pytest

from export import convert
from export.shave import agreement
from export.shave import blob
from export.shave import comb
from export.shave import graph
from export.shave import layout
from export.shave import memory
from export.shave import native
from export.shave import planner
from export.shave import simulator
from hand25d.model import network as network_lib
import tf_keras as keras

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")
# The figures of simulator.LayerReport the C kernel reports too.
REPORT_FIELDS = native.STATS_FIELDS


def test_soft_fp16_conversions_round_like_numpy():
  lib = native.library()
  halves = np.arange(1 << 16, dtype=np.uint16)
  want = halves.view(np.float16).astype(np.float32)
  got = np.array([lib.shv_half_to_float_soft(int(h)) for h in halves], np.float32)
  finite = np.isfinite(want)
  np.testing.assert_array_equal(got[finite], want[finite])
  assert np.isnan(got[~finite & np.isnan(want)]).all()
  # Floats around every rounding case: ties, subnormals, overflow, random.
  rng = np.random.default_rng(0)
  edges = (np.arange(1 << 16, dtype=np.uint32) << 13) + rng.integers(-2, 3, 1 << 16).astype(
      np.uint32)
  floats = np.concatenate([edges.view(np.float32)[:1 << 15],
                           rng.normal(0, 100, 20000).astype(np.float32),
                           np.float32([65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26])])
  floats = floats[np.isfinite(floats)]
  got = np.array([lib.shv_float_to_half_soft(float(f)) for f in floats], np.uint16)
  with np.errstate(over="ignore"):  # the values above 65519 round to inf
    want = floats.astype(np.float16).view(np.uint16)
  np.testing.assert_array_equal(got, want)


def _every_kind_model() -> keras.Model:
  """Every layer kind the kernel runs: grouped, dilated, strided, fused and plain resize."""
  image = keras.Input((20, 28, 1), batch_size=1, name="image")
  x = keras.layers.Conv2D(8, 5, strides=2, padding="same", activation="relu", name="stem")(image)
  a = keras.layers.Conv2D(16, 1, activation="relu", name="reduce")(x)
  b = keras.layers.Conv2D(16, 3, padding="same", groups=2, dilation_rate=2, activation="relu",
                          name="grouped_d2")(a)
  c = keras.layers.Conv2D(16, 3, padding="same", groups=8, dilation_rate=3, name="grouped_d3")(b)
  x = keras.layers.ReLU(name="add_relu")(keras.layers.Add(name="add")([a, c]))
  x = keras.layers.MaxPooling2D(2, name="pool")(x)
  x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, name="dw")(x)
  up = keras.layers.UpSampling2D(2, interpolation="nearest", name="up")(x)
  x = keras.layers.Concatenate(name="concat")([up, b])
  x = network_lib.channel_shuffle(x, 4, "shuffle")
  x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up_fused")(x)
  x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw_up")(x)
  head = keras.layers.Conv2D(12, 3, strides=2, padding="valid", groups=4, name="head")(x)
  single = keras.layers.Conv2D(1, 3, padding="same", name="single")(up)
  pooled = keras.layers.GlobalAveragePooling2D(name="gap")(up)
  presence = keras.layers.Dense(2, name="presence")(pooled)
  model = keras.Model(image, {"head": head, "single": single, "presence": presence})
  rng = np.random.default_rng(3)
  for layer in model.layers:
    if layer.weights:
      layer.set_weights([rng.normal(0, 0.4, w.shape) for w in layer.get_weights()])
  return model


@pytest.fixture(scope="module")
def every_kind():
  return graph.from_keras(_every_kind_model())


def _reference(layer: graph.Layer, inputs: list[np.ndarray], stack, dtype) -> np.ndarray:
  """The numpy reference of one layer on interleaved inputs, interleaved output."""
  lanes = planner.tensor_lanes(layer.out_shape[-1], dtype)
  if layer.kind in (graph.CONV, graph.DEPTHWISE):
    x = inputs[0].repeat(layer.upsample, 0).repeat(layer.upsample, 1)
    return comb.conv2d(x, stack, depthwise=layer.kind == graph.DEPTHWISE, strides=layer.strides,
                       dilation=layer.dilation, padding=layer.padding, relu=layer.relu)
  planar = [layout.from_interleaved(x, s[-1]).astype(np.float32)
            for x, s in zip(inputs, layer.in_shapes)]
  if layer.kind == graph.ADD:
    y = sum(planar)
    y = np.maximum(y, 0) if layer.relu else y
  elif layer.kind == graph.CONCAT:
    y = np.concatenate(planar, -1)
  elif layer.kind == graph.CHANNEL_SHUFFLE:
    y = graph.shuffle_channels(planar[0], layer.groups)
  elif layer.kind == graph.RESIZE_NEAREST:
    y = planar[0].repeat(layer.scale, 0).repeat(layer.scale, 1)
  elif layer.kind == graph.MAX_POOL:
    h, w, c = layer.out_shape
    k = layer.strides
    y = planar[0][:h * k, :w * k].reshape(h, k, w, k, c).max(axis=(1, 3))
  else:
    y = planar[0].mean(axis=(0, 1), keepdims=True)
  return layout.to_interleaved(y.astype(dtype), lanes)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_every_layer_matches_the_numpy_reference_and_the_simulator(every_kind, dtype):
  # A small slice: every layer runs in several tiles, depthwise ones also in
  # channel-block tiles.
  capacity = 20 * 1024 if dtype == np.float16 else 32 * 1024
  program = planner.compile_network(every_kind, dtype, capacity=capacity)
  kinds = {layer.kind for layer in every_kind.layers}
  assert kinds == set(graph.KINDS), kinds
  image = np.random.default_rng(0).uniform(0, 1, every_kind.input_shape).astype(np.float32)
  runner = native.Runner(blob.to_bytes(program))
  assert runner.slice.size == capacity
  runner.set_input(image)
  index = {every_kind.input_name: 0}
  index.update({layer.name: i + 1 for i, layer in enumerate(every_kind.layers)})
  c_reports = []
  for i, layer in enumerate(every_kind.layers):
    c_reports.append(runner.run_layer(i))
    inputs = [runner.tensor(index[name]) for name in layer.inputs]
    want = _reference(layer, inputs, program.stacks.get(layer.name), dtype)
    got = runner.tensor(i + 1)
    assert got.shape == want.shape, layer.name
    got, want = got.astype(np.float32), want.astype(np.float32)
    if dtype == np.float32:
      # Equal up to accumulation order: a few fp32 roundings of the largest term.
      bound = 1e-6 * max(1.0, float(np.abs(want).max()))
    else:
      # fp32 sums in another order round to the same fp16 or the next one.
      bound = np.spacing(np.maximum(np.abs(got), np.abs(want)).astype(np.float16)).astype(
          np.float32)
    assert (np.abs(got - want) <= bound).all(), (layer.name, float(np.abs(got - want).max()))
  # The same tiles, buffers and transfers as the simulator, layer by layer.
  reports = simulator.run(program, image).reports
  assert [tuple(getattr(r, f) for f in REPORT_FIELDS) for r in reports] == [
      tuple(getattr(r, f) for f in REPORT_FIELDS) for r in c_reports]
  assert max(r.peak_bytes for r in c_reports) <= capacity
  assert max(r.tiles for r in c_reports) > 1
  assert any(r.expand_vectors for r in c_reports)
  assert any(program.schedule[layer.name].blocks < layout.channel_blocks(layer.out_shape[-1],
                                                                          layout.lanes_for(dtype))
             for layer in every_kind.layers if layer.kind == graph.DEPTHWISE)


@pytest.fixture(scope="module")
def model(randomized_inference_model):
  return randomized_inference_model(0)


@pytest.fixture(scope="module")
def blobs(model):
  """dtype -> the bytes of the hand25d network's blob (what blob.write_blob writes)."""
  network = graph.from_keras(model)
  return {name: blob.to_bytes(planner.compile_network(network, dtype))
          for name, dtype in blob.DTYPES.items()}


@pytest.mark.parametrize("dtype", sorted(blob.DTYPES))
def test_runner_equals_the_simulator_inside_128_kb(blobs, dtype):
  runner = native.Runner(blobs[dtype], f"{dtype}.blob")
  program = runner.program
  assert runner.slice.size == memory.SLICE_BYTES == program.capacity
  image = np.random.default_rng(1).uniform(0, 1, program.network.input_shape).astype(np.float32)
  want = simulator.run(program, image)
  # Bytes past the peak are never touched: the kernel works inside the slice.
  runner.slice[:] = 0xA5
  got = runner.run(image)
  assert got.peak_bytes == want.peak_bytes <= memory.SLICE_BYTES
  assert (runner.slice[got.peak_bytes:] == 0xA5).all()
  assert got.dma_bytes == sum(r.dma_bytes for r in want.reports)
  assert [tuple(getattr(s, f) for f in REPORT_FIELDS) for s in got.layers] == [
      tuple(getattr(r, f) for f in REPORT_FIELDS) for r in want.reports]
  # fp32: accumulation order only. fp16: where two fp32 sums round to
  # neighbouring fp16 values (the one step allowed layer by layer above), the
  # step propagates like any fp16 rounding, within fp16's error bound.
  bound = 1e-5 if dtype == "fp32" else agreement.ERROR_BOUNDS[np.dtype(np.float16)]
  for key, expected in want.outputs.items():
    assert got.outputs[key].shape == expected.shape
    value_range = float(expected.max() - expected.min())
    assert np.abs(got.outputs[key] - expected).max() <= bound * value_range, key


@pytest.fixture(scope="module")
def tflite_model(model):
  return convert.to_tflite(model, "float32")


@pytest.fixture(scope="module")
def frames(blobs):
  return agreement.load_frames(FIXTURE, "test", blob.from_bytes(blobs["fp32"]))


def _compare(data: bytes, tflite_model, frames) -> agreement.Agreement:
  runner = native.Runner(data)
  return agreement.compare(runner.program, tflite_model, frames,
                           run=lambda image: runner.run(image).outputs)


@pytest.mark.slow  # Converts to TFLite and reads the test frames.
def test_fp32_runner_keeps_every_tflite_arg_max_on_fixture_frames(blobs, tflite_model, frames):
  result = _compare(blobs["fp32"], tflite_model, frames)
  print("C kernel, fp32", agreement.format_agreement(result))
  assert result.frames == len(frames) == 3 and result.keypoints == 3 * 16
  assert result.argmax_equal == result.keypoints
  for key, error in result.relative_error.items():
    assert error <= agreement.ERROR_BOUNDS[np.dtype(np.float32)], key


@pytest.mark.slow
def test_fp16_runner_keeps_the_decisive_tflite_arg_max(blobs, tflite_model, frames):
  result = _compare(blobs["fp16"], tflite_model, frames)
  print("C kernel, fp16", agreement.format_agreement(result))
  for key, error in result.relative_error.items():
    assert error <= agreement.ERROR_BOUNDS[np.dtype(np.float16)], key
  # As for the simulator (tests/shave_blob_test.py): only near-ties may move.
  assert result.decisive_equal == result.decisive
  assert result.mismatch_margin <= 2 * result.bound


def _rewrite_checksum(data: bytearray) -> bytes:
  data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
  return bytes(data)


def test_bad_blobs_and_small_slices_are_refused_with_the_reason(blobs):
  data = blobs["fp16"]
  program = blob.from_bytes(data)
  # The Python reader does not look inside the input table; the C one must
  # (an out-of-range channel would read outside the tile).
  edited = bytearray(data)
  table = program.stacks["tier2_unit1_reduce_conv"].inputs.astype("<u2").tobytes()
  offset = edited.index(table)
  edited[offset:offset + 2] = struct.pack("<H", 999)
  with pytest.raises(native.KernelError,
                     match="edited.blob: .*'tier2_unit1_reduce_conv': input table names channel "
                     "999 of 16"):
    native.Runner(_rewrite_checksum(edited), "edited.blob")
  # What the C parser checks itself, before and without the Python reader.
  lib = native.library()
  net = np.zeros(lib.shv_net_struct_bytes(), np.uint8)
  error = native.ctypes.create_string_buffer(512)

  def refuse(bad: bytes) -> str:
    buffer = np.frombuffer(bad, np.uint8).copy()
    assert lib.shv_net_parse(native.pointer(net), native.pointer(buffer), buffer.size, error,
                             512) == 2
    return error.value.decode()

  assert "truncated" in refuse(data[:20])
  assert "the header declares" in refuse(data[:-100])
  assert "checksum mismatch" in refuse(data[:5000] + bytes([data[5000] ^ 1]) + data[5001:])
  assert "format version 3" in refuse(data[:8] + struct.pack("<H", 3) + data[10:])
  # Only outputs that no layer reads may be stored in fp32 (flag bit 2).
  name = "tier2_unit1_reduce_conv".encode()
  descriptor = data.index(struct.pack("<H", len(name)) + name) - 4 - 72  # One input.
  flagged = bytearray(data)
  flagged[descriptor + 5] |= 4
  assert "whose output is stored in fp32" in refuse(_rewrite_checksum(flagged))
  with pytest.raises(blob.BlobError, match=r"layers \['tier2_unit1_reduce_conv'\] flagged as "
                     r"stored in fp32 and \[\] not"):
    blob.from_bytes(_rewrite_checksum(flagged))
  # ... and all of them or none: not one output in fp32 and the other rounded.
  name = b"presence"  # Also an output's key, before the layers: its last occurrence.
  descriptor = data.rindex(struct.pack("<H", len(name)) + name) - 4 - 72
  assert data[descriptor + 5] & 4
  unflagged = bytearray(data)
  unflagged[descriptor + 5] &= ~4 & 0xFF
  assert "layer 'presence' is not flagged as stored in fp32" in refuse(
      _rewrite_checksum(unflagged))
  with pytest.raises(blob.BlobError, match=r"\[\] flagged as stored in fp32 and \['presence'\] "
                     "not"):
    blob.from_bytes(_rewrite_checksum(unflagged))
  assert "bad magic" in refuse(b"TFL3" + data[4:])
  # A slice smaller than a layer's buffers: the layer, the bytes, the limit.
  runner = native.Runner(data, slice_bytes=64 * 1024)
  with pytest.raises(native.KernelError, match=r"layer 'tier2_concat' needs \d+ bytes of slice "
                     r"memory but the slice holds 65536 bytes"):
    runner.run(np.zeros(program.network.input_shape, np.float32))
  with pytest.raises(ValueError, match="at most 131072 bytes"):
    native.Runner(data, slice_bytes=256 * 1024)



def test_outputs_of_an_fp16_blob_are_stored_unrounded():
  """The C kernel writes the fp32 accumulators of the network's outputs (planner.fp32_stored),
  8 lanes (a conv of 12 channels) or 1 (a single-channel depthwise), as the simulator does."""
  inputs = keras.Input((6, 10, 3), batch_size=1)
  wide = keras.layers.Conv2D(12, 3, padding="same", name="wide")(inputs)
  one = keras.layers.Conv2D(1, 1, name="one")(inputs)
  single = keras.layers.DepthwiseConv2D(3, padding="same", name="single")(one)
  model = keras.Model(inputs, {"wide": wide, "single": single})
  rng = np.random.default_rng(5)
  for layer in model.layers:
    layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
  program = planner.compile_network(graph.from_keras(model), np.float16)
  assert {n for n, d in program.out_dtypes.items() if d == np.float32} == {"wide", "single"}
  image = rng.uniform(0, 1, (6, 10, 3)).astype(np.float32)
  want = simulator.run(program, image).outputs
  got = native.Runner(blob.to_bytes(program)).run(image).outputs
  for key in ("wide", "single"):
    # fp32 accumulation order only: far below one fp16 step (2^-11 of a value).
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
    assert np.any(got[key] != got[key].astype(np.float16).astype(np.float32)), key
