"""TensorFlow Lite Micro: agreement with LiteRT, the smallest arena, unsupported ops."""

import hand25d  # noqa: F401  (before tensorflow)
from export import tflm

from ai_edge_litert.interpreter import Interpreter
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
  arena = tflm.smallest_arena(model, [x])
  assert arena % tflm.ARENA_GRANULE == 0
  # The output (1x32x32x8 float32) alone needs 32 KB of arena.
  assert 32 * 1024 <= arena < 64 * 1024
  (micro,) = tflm.run(model, [x], arena)
  lite = Interpreter(model_content=model)
  lite.allocate_tensors()
  lite.set_tensor(lite.get_input_details()[0]["index"], x)
  lite.invoke()
  expected = lite.get_tensor(lite.get_output_details()[0]["index"])
  np.testing.assert_allclose(micro, expected, atol=1e-5)
  with pytest.raises(tflm.TflmError, match="bytes missing"):
    tflm.run(model, [x], arena - tflm.ARENA_GRANULE)


def test_unsupported_op_is_named():
  tiled = _convert(lambda x: keras.layers.Lambda(lambda t: tf.tile(t, [1, 2, 1, 1]))(x))
  x = np.zeros((1, 16, 16, 4), np.float32)
  with pytest.raises(tflm.TflmError, match="cannot run op.*TILE") as e:
    tflm.smallest_arena(tiled, [x])
  assert e.value.unsupported_ops == ("TILE",)
