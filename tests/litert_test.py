"""hand25d.litert: TFLM agrees with LiteRT, the smallest arena, unsupported ops named."""

from hand25d import litert

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras


def _convert(outputs_fn):
  inp = keras.Input((16, 16, 4), batch_size=1)
  model = keras.Model(inp, outputs_fn(inp))
  return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(0)
  return _convert(lambda x: keras.layers.UpSampling2D(2)(
      keras.layers.Conv2D(8, 3, padding="same", groups=2, dilation_rate=2)(x)))


def test_tflm_matches_litert_and_arena_is_minimal(model):
  x = np.random.default_rng(0).random((1, 16, 16, 4), np.float32)
  arena = litert.smallest_arena(model, [x])
  assert arena % litert.ARENA_GRANULE == 0
  # The output (1x32x32x8 float32) alone needs 32 KB of arena.
  assert 32 * 1024 <= arena < 64 * 1024
  (micro,) = litert.tflm_run(model, [x], arena)
  lite = litert.LiteRtModel(model)
  lite.set_inputs([x])
  lite.interpreter.invoke()
  (expected,) = lite.output_arrays()
  np.testing.assert_allclose(micro, expected, atol=1e-5)
  with pytest.raises(litert.TflmError, match="bytes missing"):
    litert.tflm_run(model, [x], arena - litert.ARENA_GRANULE)


def test_unsupported_op_is_named():
  tiled = _convert(lambda x: keras.layers.Lambda(lambda t: tf.tile(t, [1, 2, 1, 1]))(x))
  x = np.zeros((1, 16, 16, 4), np.float32)
  with pytest.raises(litert.TflmError, match="cannot run op.*TILE") as e:
    litert.smallest_arena(tiled, [x])
  assert e.value.unsupported_ops == ("TILE",)
