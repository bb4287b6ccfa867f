"""The SHAVE deployment blob: round trip, clear errors, and the blob against float32 TFLite."""

import dataclasses
import os
import struct
import zlib

import numpy as np
import pytest

from export import convert
from export.shave import agreement
from export.shave import blob
from export.shave import graph
from export.shave import memory
from export.shave import planner
from export.shave import simulator
from hand25d import paper

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "testdata", "tof_tiny")


@pytest.fixture(scope="module")
def model(randomized_inference_model):
  return randomized_inference_model(0)


@pytest.fixture(scope="module")
def blobs(model, tmp_path_factory):
  """dtype -> (path, write_blob summary) of the model's blobs."""
  directory = tmp_path_factory.mktemp("blobs")
  written = {}
  for dtype in blob.DTYPES:
    path = str(directory / f"hand25d_{dtype}.blob")
    written[dtype] = path, blob.write_blob(model, path, dtype)
  return written


def _descriptor(layer: graph.Layer) -> tuple:
  return dataclasses.astuple(dataclasses.replace(layer, kernel=None, bias=None))


@pytest.mark.parametrize("dtype", sorted(blob.DTYPES))
def test_blob_round_trips_layers_weights_and_schedule(model, blobs, dtype):
  path, summary = blobs[dtype]
  want = planner.compile_network(graph.from_keras(model), blob.DTYPES[dtype])
  got = blob.read_blob(path)
  assert (got.dtype, got.capacity, got.schedule) == (want.dtype, want.capacity, want.schedule)
  assert [_descriptor(layer) for layer in got.network.layers] == [
      _descriptor(layer) for layer in want.network.layers]
  assert (got.network.input_name, got.network.input_shape, got.network.outputs,
          got.network.output_shapes) == (want.network.input_name, want.network.input_shape,
                                         want.network.outputs, want.network.output_shapes)
  assert got.stacks.keys() == want.stacks.keys() and len(got.stacks) == 35
  for name, stack in want.stacks.items():
    read = got.stacks[name]
    assert read.stack.dtype == stack.stack.dtype == blob.DTYPES[dtype], name
    for field in ("stack", "bias", "inputs", "counts"):
      np.testing.assert_array_equal(getattr(read, field), getattr(stack, field), err_msg=name)
    assert (read.kernel_size, read.out_channels) == (stack.kernel_size, stack.out_channels)
  # The blob holds no Keras weights: the simulator can only run its stacks.
  assert all(layer.kernel is None and layer.bias is None for layer in got.network.layers)
  assert summary["layers"] == len(got.network.layers) == 48
  assert summary["bytes"] == os.path.getsize(path) and summary["dtype"] == dtype
  # The targets: inside the 128 KB slice, at most the paper's 16 ms on one SHAVE.
  assert summary["peak_slice_bytes"] <= summary["slice_bytes"] == memory.SLICE_BYTES
  assert 0 < summary["modelled_ms"] <= paper.SHAVE_MS


def _rewrite_checksum(data: bytearray) -> bytes:
  data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
  return bytes(data)


def test_simulator_runs_the_weights_in_the_blob(blobs):
  path, _ = blobs["fp32"]
  program = blob.read_blob(path)
  image = np.random.default_rng(1).uniform(0, 1, program.network.input_shape)
  before = simulator.run(program, image.astype(np.float32)).outputs
  # Double the keypoint layer's kernel stack in the file: the simulated
  # keypoint maps follow the blob, the presence head does not change.
  with open(path, "rb") as f:
    data = bytearray(f.read())
  stack = program.stacks["keypoints"].stack
  offset = data.index(stack.tobytes())
  data[offset:offset + stack.nbytes] = (2 * stack).tobytes()
  edited = blob.from_bytes(_rewrite_checksum(data), "edited")
  after = simulator.run(edited, image.astype(np.float32)).outputs
  np.testing.assert_array_equal(after["presence"], before["presence"])
  assert not np.allclose(after["keypoints"], before["keypoints"])


def _corrupted(path, tmp_path, edit) -> str:
  with open(path, "rb") as f:
    data = bytearray(f.read())
  bad = str(tmp_path / "bad.blob")
  with open(bad, "wb") as f:
    f.write(edit(data))
  return bad


@pytest.mark.parametrize("edit,message", [
    (lambda d: bytes(d[:-100]), r"truncated: the header declares \d+ bytes, the file has \d+"),
    (lambda d: bytes(d[:20]), "truncated: 20 bytes, shorter than the 32-byte header"),
    (lambda d: bytes(d) + b"\0" * 16, "16 bytes after the"),
    (lambda d: bytes(d[:5000]) + bytes([d[5000] ^ 0x10]) + bytes(d[5001:]),
     "checksum mismatch .*the file is corrupt"),
    (lambda d: bytes(d[:8]) + struct.pack("<H", 1) + bytes(d[10:]),
     "format version 1; this reader reads version 2"),
    (lambda d: b"TFL3" + bytes(d[4:]), "not a SHAVE deployment blob: magic"),
    (lambda d: _rewrite_checksum(d[:10] + struct.pack("<H", 8) + d[12:]),
     "element type of 8 bits"),
])
def test_bad_blobs_name_the_file_and_the_problem(blobs, tmp_path, edit, message):
  bad = _corrupted(blobs["fp16"][0], tmp_path, edit)
  with pytest.raises(blob.BlobError, match=message) as error:
    blob.read_blob(bad)
  assert str(error.value).startswith(f"SHAVE blob {bad}: ")


def test_inconsistent_layer_records_are_refused(blobs):
  program = blob.read_blob(blobs["fp16"][0])
  # A schedule that does not fit the slice the blob declares.
  tiles = dict(program.schedule, tier1_conv=planner.Tile(rows=60, blocks=2))
  data = blob.to_bytes(dataclasses.replace(program, schedule=tiles))
  with pytest.raises(blob.BlobError, match="schedule: layer 'tier1_conv' needs"):
    blob.from_bytes(data, "big_tiles.blob")
  # A kernel stack shape that does not match its layer (checksum rewritten):
  # the first layer's 72-byte descriptor precedes its one input index and its
  # name; the stack's N is the 15th u32 after the first 8 bytes.
  data = bytearray(blob.to_bytes(program))
  descriptor = data.index(b"tier1_conv") - 2 - 4 - 72
  struct.pack_into("<I", data, descriptor + 8 + 4 * 14, 9)
  with pytest.raises(blob.BlobError, match="layer 'tier1_conv': kernel stack"):
    blob.from_bytes(_rewrite_checksum(data), "bad_stack.blob")


def test_write_blob_refuses_other_types(model, tmp_path):
  with pytest.raises(ValueError, match=r"dtype must be one of \['fp16', 'fp32'\], not 'int8'"):
    blob.write_blob(model, str(tmp_path / "int8.blob"), "int8")
  assert not os.listdir(tmp_path)


@pytest.fixture(scope="module")
def tflite_model(model):
  return convert.to_tflite(model, "float32")


@pytest.fixture(scope="module")
def frames(blobs):
  return agreement.load_labelled_frames(FIXTURE, "test", blob.read_blob(blobs["fp32"][0]))


@pytest.mark.slow  # Converts to TFLite and reads the test frames.
def test_fp32_blob_matches_tflite_on_test_frames(blobs, tflite_model, frames):
  result = agreement.compare(blob.read_blob(blobs["fp32"][0]), tflite_model, frames)
  print("fp32", agreement.format_agreement(result))
  assert result.frames == len(frames) == 3
  first = agreement.load_labelled_frames(FIXTURE, "test", blob.read_blob(blobs["fp32"][0]),
                                         max_frames=2)
  assert len(first) == 2 and np.array_equal(first[1][0], frames[1][0])
  assert result.relative_error.keys() == {"keypoints", "presence"}
  for key, error in result.relative_error.items():
    assert error <= 1e-4, key
  # Same arg-max everywhere, so the decoded keypoints move only by the
  # refinement's reading of neighbours within the error bound.
  assert result.shift_px.shape == (3 * 16,)
  assert result.shift_px.max() < 0.01
  # The labels' visible keypoints: both decode to the same error.
  visible = sum(int(seen.sum()) for _, (_, seen) in frames)
  assert visible > 0 and int(result.visible.sum()) == visible
  assert result.program_px_error == pytest.approx(result.tflite_px_error, abs=0.01)


@pytest.mark.slow
def test_fp16_blob_keeps_the_tflite_arg_max_on_test_frames(blobs, tflite_model, frames):
  result = agreement.compare(blob.read_blob(blobs["fp16"][0]), tflite_model, frames)
  print("fp16", agreement.format_agreement(result))
  assert result.keypoints == 3 * 16
  for key, error in result.relative_error.items():
    assert error <= agreement.ERROR_BOUNDS[np.dtype(np.float16)], key
  # Untrained weights make near-tie score maps (docs/embedded.md), and so do
  # trained ones with Gaussian targets (a peak's neighbour is nearly as high):
  # fp16 may move an arg-max only where the top-2 margin is within the bound.
  assert result.argmax_agreement >= 0.9
  assert result.mismatch_margin <= 2 * result.bound
  assert result.shift_px.shape == (3 * 16,)
  assert 0.0 <= result.shift_within(0.5) <= 1.0
  assert 0.0 <= result.shift_within(0.5, visible_only=True) <= 1.0
  assert np.isfinite(result.program_px_error) and np.isfinite(result.tflite_px_error)
  text = agreement.format_agreement(result)
  assert "decoded keypoint moves" in text and "mean 2D error against the labels" in text


@pytest.mark.slow
def test_labels_of_another_keypoint_count_are_refused(blobs, tflite_model, frames):
  image, (xy, visible) = frames[0]
  with pytest.raises(ValueError, match="frame 0: labels of 8 keypoints for 16 'keypoints'"):
    agreement.compare(blob.read_blob(blobs["fp32"][0]), tflite_model,
                      [(image, (xy[:8], visible[:8]))])



def test_agreement_measures_how_far_a_decoded_keypoint_moves():
  # Two channels of a [5, 13] map at stride 2. Channel 0: a peak with
  # symmetric neighbours, the same in both. Channel 1: a near-tie between two
  # cells 8 apart, beyond each other's refinement window, that the
  # "simulated" map breaks the other way.
  reference = np.zeros((5, 13, 2), np.float32)
  reference[2, 6, 0] = 4.0
  reference[2, 2, 1], reference[2, 10, 1] = 3.0, 2.999
  simulated = reference.copy()
  simulated[2, 10, 1] = 3.001
  shift = agreement.decoded_shift(reference, simulated, stride=2)
  assert shift.shape == (2,)
  assert shift[0] == 0.0
  # The arg-max moves 8 cells; both peaks are symmetric within their
  # windows, so the refinement moves neither: 8 cells x 2 px.
  assert shift[1] == pytest.approx(16.0, abs=1e-3)
  # A cell nearly as high beside the first peak pulls its refined position
  # towards the second: the move shrinks.
  reference[2, 3, 1] = simulated[2, 3, 1] = 2.99
  assert agreement.decoded_shift(reference, simulated, stride=2)[1] < 15.5
  # Two near-equal neighbours decode to nearly the same place whichever
  # wins: a near-tie that fp16 breaks the other way moves the arg-max by a
  # cell (2 px) but the keypoint by much less.
  reference[2, 10, 1] = simulated[2, 10, 1] = 0.0
  simulated[2, 3, 1] = 3.01
  assert agreement.decoded_shift(reference, simulated, stride=2)[1] < 0.5
  result = agreement.Agreement(1, {}, 2, 1, 0, 0, 1e-2, 0.0, shift)
  assert result.shift_within(0.5) == 0.5
  assert result.shift_within(16.0) == 1.0
  assert np.isnan(agreement.Agreement(0, {}, 0, 0, 0, 0, 1e-2, 0.0).shift_within(1.0))
