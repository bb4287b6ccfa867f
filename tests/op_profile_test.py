"""hand25d.tflite_ops, litert_timing and op_profile on tiny converted models.

FLOPs and the split into operators (tflite_ops), invoke times
(litert_timing), a profile (op_profile). No assertion depends on the
machine's speed: the profile is checked for its structure only.
"""

from ai_edge_litert import interpreter as litert_interpreter
from ai_edge_litert.tools import flatbuffer_utils
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from hand25d import litert_timing
from hand25d import op_profile
from hand25d import tflite_ops

# conv 3x3 (8x10 outputs x 4 filters x 27 taps), depthwise 3x3 (8x10x4 x 9),
# grouped 1x1 (8x10x8 x 4 / 2 inputs), dense (320 x 5); flatten and add: none.
TINY_MACS = {"CONV_2D": 8 * 10 * 4 * 27 + 8 * 10 * 8 * 2, "DEPTHWISE_CONV_2D": 8 * 10 * 4 * 9,
             "FULLY_CONNECTED": 8 * 10 * 4 * 5}


def _tiny_keras() -> keras.Model:
  keras.utils.set_random_seed(0)
  x = keras.Input((8, 10, 3), batch_size=1)
  a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
  b = keras.layers.DepthwiseConv2D(3, padding="same")(a)
  c = keras.layers.Add()([a, b])
  grouped = keras.layers.Conv2D(8, 1, groups=2)(c)
  dense = keras.layers.Dense(5)(keras.layers.Flatten()(c))
  return keras.Model(x, [grouped, dense])


def _convert(float16_weights: bool) -> bytes:
  converter = tf.lite.TFLiteConverter.from_keras_model(_tiny_keras())
  if float16_weights:  # As MediaPipe's models: float16 constants, DEQUANTIZE ops.
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  return converter.convert()


@pytest.fixture(scope="module")
def tiny() -> bytes:
  return _convert(float16_weights=False)


@pytest.fixture(scope="module")
def tiny_fp16() -> bytes:
  return _convert(float16_weights=True)


def test_op_macs_by_hand():
  assert tflite_ops.op_macs("CONV_2D", [8, 3, 3, 2], [1, 5, 6, 8]) == 5 * 6 * 8 * 18
  assert tflite_ops.op_macs("DEPTHWISE_CONV_2D", [1, 3, 3, 7], [1, 5, 6, 7]) == 5 * 6 * 7 * 9
  assert tflite_ops.op_macs("FULLY_CONNECTED", [5, 12], [2, 5]) == 2 * 12 * 5
  assert tflite_ops.op_macs("ADD", [1], [1, 5, 6, 7]) == 0


@pytest.mark.parametrize("fixture", ["tiny", "tiny_fp16"])
def test_flops_of_a_tiny_model(fixture, request):
  model = request.getfixturevalue(fixture)
  ops = tflite_ops.operators(model)
  for op_type, macs in TINY_MACS.items():
    assert sum(op.macs for op in ops if op.op_type == op_type) == macs, op_type
  assert tflite_ops.model_flops(model) == 2 * sum(TINY_MACS.values())
  assert {op.op_type for op in ops if op.macs == 0} <= {"ADD", "RESHAPE", "DEQUANTIZE"}
  assert sorted(op.groups for op in ops if op.op_type == "CONV_2D") == [1, 2]
  grouped = [op for op in ops if op.groups > 1]
  assert grouped[0].kind == "CONV_2D grouped" and grouped[0].weights_shape == (8, 1, 1, 2)


def test_float16_weights_are_folded(tiny_fp16):
  ops = tflite_ops.operators(tiny_fp16)
  folded = [op.op_type for op in ops if op.folded]
  assert folded and set(folded) == {"DEQUANTIZE"}
  singles = tflite_ops.single_op_models(tiny_fp16)
  assert [s.op.index for s in singles] == [op.index for op in ops if not op.folded]


def _full_tensors(model: bytes) -> dict[int, np.ndarray]:
  """Every tensor of one run of the full model (builtin kernels) on a random input."""
  full = litert_interpreter.Interpreter(
      model_content=model, experimental_preserve_all_tensors=True,
      experimental_op_resolver_type=(
          litert_interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  full.allocate_tensors()
  (detail,) = full.get_input_details()
  full.set_tensor(detail["index"],
                  np.random.default_rng(1).random(detail["shape"]).astype(np.float32))
  full.invoke()
  return {t["index"]: full.get_tensor(t["index"]) for t in full.get_tensor_details()
          if t["shape"].size}


@pytest.mark.parametrize("fixture", ["tiny", "tiny_fp16"])
def test_each_operator_alone_computes_the_full_models_intermediate(fixture, request):
  model = request.getfixturevalue(fixture)
  tensors = _full_tensors(model)
  singles = tflite_ops.single_op_models(model)
  assert {s.op.op_type for s in singles} == {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESHAPE",
                                             "FULLY_CONNECTED"}
  for single in singles:
    runner = litert_timing.interpreter(single.model)
    inputs = runner.get_input_details()
    assert len(inputs) == len(single.inputs) and single.inputs
    for detail, index in zip(inputs, single.inputs):
      runner.set_tensor(detail["index"], tensors[index])
    runner.invoke()
    outputs = runner.get_output_details()
    assert len(outputs) == len(single.outputs)
    for detail, index in zip(outputs, single.outputs):
      np.testing.assert_allclose(runner.get_tensor(detail["index"]), tensors[index],
                                 rtol=1e-5, atol=1e-5, err_msg=str(single.op))


def test_models_of_several_subgraphs_are_refused(tiny):
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(tiny))
  flat.subgraphs.append(flat.subgraphs[0])
  twice = bytes(flatbuffer_utils.convert_object_to_bytearray(flat))
  with pytest.raises(ValueError, match="2 subgraphs"):
    tflite_ops.single_op_models(twice)


def test_interleaved_times_shapes_and_refusals(tiny):
  runners = [litert_timing.interpreter(tiny), litert_timing.interpreter(tiny, seed=1)]
  times = litert_timing.interleaved_times(runners, rounds=3, invokes=2, warmup=0)
  assert times.median_ms.shape == times.min_ms.shape == (3, 2)
  assert np.all(times.min_ms <= times.median_ms) and np.all(times.min_ms > 0)
  with pytest.raises(ValueError, match="rounds >= 1"):
    litert_timing.interleaved_times(runners, rounds=0, invokes=2, warmup=0)


def test_profile_lists_every_operator(tiny_fp16):
  ops = tflite_ops.operators(tiny_fp16)
  result = op_profile.profile(tiny_fp16, rounds=2, invokes=2, warmup=1)
  assert [(r.index, r.op_type, r.flops, r.folded) for r in result.rows] == [
      (op.index, op.op_type, op.flops, op.folded) for op in ops]
  assert all(r.ms == 0.0 and not r.delegated for r in result.rows if r.folded)
  assert all(r.ms >= 0.0 for r in result.rows)
  assert result.sum_ms == pytest.approx(sum(r.ms for r in result.rows))
  assert result.flops == tflite_ops.model_flops(tiny_fp16)
  if result.sum_ms:
    assert sum(r.share for r in result.rows) == pytest.approx(1.0)
  types = op_profile.by_type(result)
  assert sum(t.count for t in types) == len(ops)
  grouped_flops = 2 * 8 * 10 * 8 * 2
  assert {t.kind: t.flops for t in types if t.flops} == {
      **{k: 2 * v for k, v in TINY_MACS.items()},
      "CONV_2D": 2 * TINY_MACS["CONV_2D"] - grouped_flops, "CONV_2D grouped": grouped_flops}
  table = op_profile.markdown(result)
  assert all(f"| {t.kind} | {t.count} |" in table for t in types)
