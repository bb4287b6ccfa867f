"""convert.dense_pointwise_groups: grouped 1x1 CONV_2Ds become dense ones of the same values."""

from export import convert
from hand25d import litert
from hand25d.model import layers

import numpy as np
import pytest
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils
import tf_keras as keras

SHAPE = (1, 6, 8, 8)
NAMES = {"scores": (1, 6, 8, 4), "grouped3x3": (1, 6, 8, 8)}


def _model() -> keras.Model:
  """A grouped 1x1 (4 groups of 2 inputs, 1 filter each) and a grouped 3x3 beside it."""
  keras.utils.set_random_seed(0)
  image = keras.Input(SHAPE[1:], batch_size=1, name="amplitude")
  x = keras.layers.Conv2D(8, 1, name="stem")(image)
  scores = layers.GroupedConv2D(4, 1, 4, form="native", name="scores")(x)
  grouped = layers.GroupedConv2D(8, 3, 2, form="native", name="grouped3x3")(x)
  return keras.Model(image, {"scores": scores, "grouped3x3": grouped})


def _filters(model: bytes) -> list[list[int]]:
  """The filter shape of every CONV_2D, in operator order."""
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
  codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in flat.operatorCodes]
  graph = flat.subgraphs[0]
  return [graph.tensors[op.inputs[1]].shape.tolist() for op in graph.operators
          if codes[op.opcodeIndex] == schema_fb.BuiltinOperator.CONV_2D]


def _images(n: int = 8):
  rng = np.random.default_rng(0)
  return [rng.uniform(0, 1, SHAPE).astype(np.float32) for _ in range(n)]


@pytest.fixture(scope="module")
def converted():
  model = _model()

  def representative():
    for image in _images(16):
      yield [image]

  return {"float32": convert.to_tflite(model, "float32"),
          "int8 per tensor": convert.to_tflite(model, "int8_ptq", representative),
          "int8 per channel": convert.to_tflite(model, "int8_ptq", representative,
                                                per_channel_weights=True)}


@pytest.mark.parametrize("mode", ["float32", "int8 per tensor", "int8 per channel"])
def test_the_grouped_1x1_becomes_dense_with_the_same_outputs(converted, mode):
  grouped = converted[mode]
  dense = convert.dense_pointwise_groups(grouped)
  assert sorted(_filters(grouped)) == [[4, 1, 1, 2], [8, 1, 1, 8], [8, 3, 3, 4]]
  # The 1x1 takes all 8 channels; the 3x3 stays grouped, the dense stem as it was.
  assert sorted(_filters(dense)) == [[4, 1, 1, 8], [8, 1, 1, 8], [8, 3, 3, 4]]
  for reference in (False, True):  # XNNPACK and TFLite's reference kernels.
    before = litert.LiteRtModel(grouped, reference=reference)
    after = litert.LiteRtModel(dense, reference=reference)
    for image in _images():
      want, got = before([image], NAMES), after([image], NAMES)
      for name in NAMES:
        if mode == "float32":
          np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6)
        else:  # The same integer sums: bit for bit.
          np.testing.assert_array_equal(got[name], want[name])


def test_a_model_without_grouped_1x1_keeps_its_operators(converted):
  dense = convert.dense_pointwise_groups(converted["float32"])
  again = convert.dense_pointwise_groups(dense)
  assert _filters(again) == _filters(dense)


def test_an_asymmetric_int8_filter_is_refused_by_operator(converted):
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(converted["int8 per tensor"]))
  graph = flat.subgraphs[0]
  for index, op in enumerate(graph.operators):
    weights = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
    if weights is not None and weights.shape.tolist() == [4, 1, 1, 2]:
      weights.quantization.zeroPoint = np.array([3], np.int64)
      break
  broken = bytes(flatbuffer_utils.convert_object_to_bytearray(flat))
  with pytest.raises(ValueError, match=rf"CONV_2D operator {index}, filter \[4, 1, 1, 2\].*"
                                       "asymmetric"):
    convert.dense_pointwise_groups(broken)
