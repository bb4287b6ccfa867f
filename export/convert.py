"""Keras inference model -> TFLite flatbuffer (float32 or int8), and -> SavedModel.

int8 models are fully integer, inputs and outputs included, as TensorFlow Lite
Micro targets expect; `hand25d.litert.LiteRtModel` runs them, quantizing
inputs and dequantizing outputs with the tensors' own parameters so callers
always see float arrays.

Every model is converted from a SavedModel of the Keras model written by
`write_saved_model` (as `TFLiteConverter.from_keras_model` does with one of
its own), so that its `serving_default` signature names the input by the
input mode and the outputs by the keys of the model's output dict
(`keypoints`, `presence`), whatever its layers are called: a QAT model's
output layers are `quant_keypoints`, ..., which `from_keras_model` would
put into the signature. `strip` then makes the copies that go to TensorFlow
Lite Micro (no names, no signature) and to LiteRT (its signature and the
names of its inputs and outputs kept).
"""

import os
import tempfile
from typing import Callable, Iterable, Optional
import warnings

import numpy as np

from hand25d import litert
from hand25d.model import layers

import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils
import tf_keras as keras

QUANT_MODES = ("float32", "int8_ptq", "int8_qat")
# The signature of the SavedModel and of the converted models (the converter's default key).
SERVING_SIGNATURE = "serving_default"
# What the converter's quantizer prints to stderr at INFO level, hidden unless
# TF_CPP_MIN_LOG_LEVEL is 0 (hand25d.litert.native_info_hidden).
_CONVERTER_INFO = ("INFO: ", "fully_quantize: ")


def to_tflite(model: keras.Model, quant: str,
              representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
              per_channel_weights: bool = False) -> bytes:
  """Converts a batch-1 Keras model.

  Args:
    model: the inference model (a QAT-wrapped model for 'int8_qat').
    quant: one of QUANT_MODES.
    representative: for 'int8_ptq', yields lists of input arrays to calibrate
      activation ranges (real frames from the input pipeline).
    per_channel_weights: 'int8_ptq' only: one scale per output channel of
      each convolution kernel (the converter's default) instead of one per
      kernel. A QAT model carries its granularity in its fake-quant ops
      (`export.qat.quantize`).

  Raises:
    ValueError: unknown mode, 'int8_ptq' without representative data, or an
      'int8_qat' model that does not convert to integer tensors only.
  """
  if quant not in QUANT_MODES:
    raise ValueError(f"unknown quantization {quant!r}; expected one of {QUANT_MODES}")
  if quant == "int8_ptq" and representative is None:
    raise ValueError("int8_ptq needs representative data to calibrate activations")
  with tempfile.TemporaryDirectory() as tmp:
    saved = os.path.join(tmp, "saved_model")
    write_saved_model(model, saved, batch_size=model.input.shape[0])
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if quant == "float32":
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    else:
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter.inference_input_type = tf.int8
      converter.inference_output_type = tf.int8
    if quant == "int8_ptq":
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
      converter.representative_dataset = representative
      # The converter's switch for per-tensor weights (TFLiteConverter has no
      # public one); each scale costs 12 bytes with its int64 zero point.
      converter._experimental_disable_per_channel = not per_channel_weights  # pylint: disable=protected-access
    # A QAT model carries its ranges in fake-quant ops. Asking for
    # TFLITE_BUILTINS_INT8 would make the converter demand a representative data
    # set before it looks at the graph, so the all-integer result is checked here.
    with litert.native_info_hidden(_CONVERTER_INFO), warnings.catch_warnings():
      # TF 1's input statistics (mean/std for a uint8 input): TF 2's converter
      # takes the input's quantization from the calibration or the fake-quant ops.
      warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
      model_bytes = converter.convert()
  if quant == "int8_qat":
    tensors = litert.builtin_interpreter(model_bytes).get_tensor_details()
    floats = [t["name"] for t in tensors if t["dtype"] == np.float32]
    if floats:
      raise ValueError(f"the QAT model converted with float tensors {floats[:5]}: a layer "
                       "lacks fake quantization")
  return model_bytes


# Filter element types dense_pointwise_groups rewrites (TFLite TensorType codes).
_FILTER_DTYPES = {schema_fb.TensorType.FLOAT32: np.float32,
                  schema_fb.TensorType.FLOAT16: np.float16,
                  schema_fb.TensorType.INT8: np.int8}


def dense_pointwise_groups(model: bytes) -> bytes:
  """The model with every grouped 1x1 CONV_2D made a dense one of the same values.

  XNNPACK runs a grouped convolution as one small matrix product per group:
  the int8 QAT model's score layer (16 groups of 4 inputs at 30x40) took 0.29
  of its 0.77 ms at 0.5 GFLOP/s (docs/export.md, "Latency"). A dense 1x1 with
  the block-diagonal filter (zero wherever input and output channel are in
  different groups) computes the same: a zero weight adds nothing, and int8
  filters are symmetric (zero point 0), so a zero is exactly 0 and the
  per-tensor or per-output-channel scales do not change. The filter's bytes
  grow by the number of groups; nothing else changes (the bias, the output's
  quantization, the op's options: TFLite reads the groups from the filter's
  input depth).

  Args:
    model: a TFLite flatbuffer.

  Returns:
    The rewritten flatbuffer (the same bytes' worth of model when there is no
    grouped 1x1 convolution).

  Raises:
    ValueError: a grouped 1x1 filter that is not float32, float16 or
      symmetric int8 (its zero would not be exact), or whose buffer another
      tensor shares, naming the operator's index and the filter's shape.
  """
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
  conv = {i for i, code in enumerate(flat.operatorCodes)
          if max(code.builtinCode, code.deprecatedBuiltinCode) == schema_fb.BuiltinOperator.CONV_2D}
  users = {}  # buffer index -> tensors that read it, over every subgraph.
  for graph in flat.subgraphs:
    for tensor in graph.tensors:
      users[tensor.buffer] = users.get(tensor.buffer, 0) + 1
  for graph in flat.subgraphs:
    for index, op in enumerate(graph.operators):
      if op.opcodeIndex not in conv:
        continue
      image, weights = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
      cout, kh, kw, group_in = (int(d) for d in weights.shape)
      cin = int(image.shape[3])
      if (kh, kw) != (1, 1) or group_in == cin:
        continue
      where = f"CONV_2D operator {index}, filter {[cout, kh, kw, group_in]} on {cin} channels"
      quant = weights.quantization
      if (weights.type not in _FILTER_DTYPES
          or (weights.type == schema_fb.TensorType.INT8 and quant is not None
              and quant.zeroPoint is not None and np.any(np.asarray(quant.zeroPoint) != 0))):
        raise ValueError(f"{where}: a {weights.type}-typed or asymmetric filter cannot be "
                         "made dense exactly")
      if users[weights.buffer] != 1:
        raise ValueError(f"{where}: its filter's buffer is shared with another tensor")
      buffer = flat.buffers[weights.buffer]
      grouped = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(),
                              _FILTER_DTYPES[weights.type]).reshape(cout, 1, 1, group_in)
      # TFLite's filter is [cout, kh, kw, cin]; the Keras layer's kernel [kh, kw, cin, cout].
      dense = layers.block_diagonal_kernel(tf.constant(grouped.transpose(1, 2, 3, 0)),
                                           cin // group_in).numpy().transpose(3, 0, 1, 2)
      buffer.data = np.frombuffer(np.ascontiguousarray(dense).tobytes(), np.uint8)
      weights.shape = np.array([cout, 1, 1, cin], np.int32)
  return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


def strip(model: bytes, keep_signature: bool = False) -> bytes:
  """The model without the converter's debug strings.

  Without keep_signature (the TensorFlow Lite Micro copy): no tensor names,
  signatures or description. TFLM never reads them, and they take about a
  quarter of the int8 model. Outputs keep their order.

  With keep_signature (the LiteRT copy): the signatures (`serving_default`,
  named inputs and outputs) and the names of the input and output tensors
  stay; the names of the other tensors, the subgraph name and the
  description go.
  """
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
  if not keep_signature:
    flatbuffer_utils.strip_strings(flat)
  else:
    flat.description = None
    for subgraph in flat.subgraphs:
      subgraph.name = None
      kept = set(subgraph.inputs) | set(subgraph.outputs)
      for index, tensor in enumerate(subgraph.tensors):
        if index not in kept:
          tensor.name = None
  return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


def serving_function(model: keras.Model, batch_size: Optional[int] = None
                     ) -> tf.types.experimental.ConcreteFunction:
  """The model's `serving_default` signature: its named input -> its dict of outputs.

  Args:
    model: a Keras model with one input and a dict of outputs.
    batch_size: the input's batch size; None: any.
  """
  spec = tf.TensorSpec((batch_size,) + tuple(model.input.shape[1:]), model.input.dtype,
                       name=model.input.name)
  serve = tf.function(lambda image: model(image, training=False), input_signature=[spec])
  return serve.get_concrete_function()


def write_saved_model(model: keras.Model, directory: str,
                      batch_size: Optional[int] = None) -> None:
  """Writes the model as a TensorFlow SavedModel with one `serving_default` signature.

  Its input is named as the model's (its input mode, e.g. `amplitude`), with
  `batch_size` (None: any batch size); its outputs are the model's dict keys
  (`keypoints`, `presence`). Only the weights and the serving function are
  saved, not the Keras layers' own traced functions (with them the
  SavedModel of "ours" is about three times larger and slower to write and
  load); so it loads with `tf.saved_model.load(directory).signatures
  ["serving_default"]`, not as a Keras model. `directory` must not exist yet
  or be empty.
  """
  module = tf.Module(name=model.name)
  module.weights = list(model.weights)  # Tracked, so that the signature's captures are saved.
  signatures = {SERVING_SIGNATURE: serving_function(model, batch_size)}
  tf.saved_model.save(module, directory, signatures=signatures)
