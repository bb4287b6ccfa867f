"""hand25d.litert: TFLM agrees with LiteRT, the smallest arena, TFLM's failures in its words.

Reading TFLite metadata back is tested on the exported models in
export_metadata_test.py, which writes it.
"""

import os
import subprocess

from hand25d import litert

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras


def _convert(outputs_fn):
  inp = keras.Input((16, 16, 4), batch_size=1)
  model = keras.Model(inp, outputs_fn(inp))
  return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture
def children(monkeypatch):
  """The arena sizes of the TFLM child processes started."""
  run, arenas = subprocess.run, []

  def counted(args, **kwargs):
    arenas.append(int(args[5]))  # [python, -c, code, model, inputs, arena, ...]
    return run(args, **kwargs)

  monkeypatch.setattr(litert.subprocess, "run", counted)
  return arenas


@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(0)
  return _convert(lambda x: keras.layers.UpSampling2D(2)(
      keras.layers.Conv2D(8, 3, padding="same", groups=2, dilation_rate=2)(x)))


def test_tflm_matches_litert_and_arena_is_minimal(model, children):
  x = np.random.default_rng(0).random((1, 16, 16, 4), np.float32)
  arena = litert.smallest_arena(model, [x])
  # One run reports the arena used, one confirms its rounded size.
  assert children == [litert.MAX_ARENA_BYTES, arena]
  assert arena % litert.ARENA_GRANULE == 0
  # The output (1x32x32x8 float32) alone needs 32 KB of arena.
  assert 32 * 1024 <= arena < 64 * 1024
  (micro,) = litert.tflm_run(model, [x], arena)
  lite = litert.LiteRtModel(model)
  lite.set_inputs([x])
  lite.interpreter.invoke()
  (expected,) = lite.output_arrays()
  np.testing.assert_allclose(micro, expected, atol=1e-5)
  with pytest.raises(litert.TflmError, match="bytes missing") as e:
    litert.tflm_run(model, [x], arena - litert.ARENA_GRANULE)
  assert e.value.missing_bytes > 0


def test_unsupported_op_is_named(children):
  tiled = _convert(lambda x: keras.layers.Lambda(lambda t: tf.tile(t, [1, 2, 1, 1]))(x))
  x = np.zeros((1, 16, 16, 4), np.float32)
  with pytest.raises(litert.TflmError, match="cannot run op.*TILE") as e:
    litert.smallest_arena(tiled, [x])
  assert e.value.unsupported_ops == ("TILE",) and e.value.missing_bytes is None
  assert len(children) == 1


def test_kernel_refusing_its_tensor_types_is_reported_at_once_in_tflms_words(children):
  """A hybrid model (float inputs, int8 weights): no arena helps, so none is tried."""
  inp = keras.Input((16, 16, 4), batch_size=1)
  converter = tf.lite.TFLiteConverter.from_keras_model(
      keras.Model(inp, keras.layers.Dense(64)(keras.layers.Flatten()(inp))))
  converter.optimizations = [tf.lite.Optimize.DEFAULT]  # Dynamic range: int8 weights only.
  hybrid = converter.convert()
  x = np.zeros((1, 16, 16, 4), np.float32)
  with pytest.raises(litert.TflmError, match="cannot prepare the model: Input type: FLOAT32 "
                     "with filter type: INT8 not supported.*FULLY_CONNECTED") as e:
    litert.smallest_arena(hybrid, [x])
  assert e.value.missing_bytes is None and len(children) == 1
  with pytest.raises(litert.TflmError, match="cannot prepare the model: Input type: FLOAT32"):
    litert.tflm_run(hybrid, [x], 1 << 20)


def test_refused_input_is_a_tflm_error(model):
  with pytest.raises(litert.TflmError, match="Got value of type INT8 but expected type FLOAT32"):
    litert.tflm_run(model, [np.zeros((1, 16, 16, 4), np.int8)], 1 << 20)


def test_crash_is_reported_at_once_not_taken_for_a_small_arena(model, children, monkeypatch):
  # TFLM crashes (SIGSEGV) when an arena cannot even hold its bookkeeping.
  monkeypatch.setattr(litert, "MAX_ARENA_BYTES", 256)
  with pytest.raises(litert.TflmError, match=r"crashed \(signal SIGSEGV\).*256-byte arena"):
    litert.smallest_arena(model, [np.zeros((1, 16, 16, 4), np.float32)])
  assert len(children) == 1


def test_file_that_is_not_a_model_is_reported_at_once(children):
  with pytest.raises(litert.TflmError, match="failed \\(exit status 1\\).*: TypeError"):
    litert.smallest_arena(b"\0" * 64, [np.zeros((1, 4), np.float32)])
  assert len(children) == 1


@pytest.mark.parametrize("level, shown", [("3", False), ("0", True)])
def test_litert_info_lines_follow_tf_cpp_min_log_level(model, capfd, monkeypatch, level, shown):
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
  capfd.readouterr()
  litert.LiteRtModel(model)  # XNNPACK's "INFO: Created ... delegate" (printed once per process).
  with pytest.raises(RuntimeError):
    with litert.native_info_hidden():
      os.write(2, b"INFO: said at INFO level\nWARNING: not hidden\n")
      raise RuntimeError("the block fails")
  err = capfd.readouterr().err
  assert "WARNING: not hidden" in err  # Written back, although the block raised.
  assert ("INFO: said at INFO level" in err) == shown


def test_a_model_without_metadata_has_none_and_bytes_that_are_no_model_are_refused(model):
  assert litert.read_metadata(model) is None and litert.packed_files(model) == {}
  with pytest.raises(ValueError, match="not a TFLite model: its file identifier is"):
    litert.read_metadata(b"\0" * 64)
