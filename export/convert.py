"""Keras inference model -> TFLite flatbuffer (float32 or int8).

int8 models are fully integer, inputs and outputs included, as TensorFlow Lite
Micro targets expect; `hand25d.litert.LiteRtModel` runs them, quantizing
inputs and dequantizing outputs with the tensors' own parameters so callers
always see float arrays.
"""

from typing import Callable, Iterable, Mapping
import warnings

import numpy as np

from hand25d import litert
from hand25d.model import card

import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils
import tf_keras as keras

QUANT_MODES = ("float32", "int8_ptq", "int8_qat")
# What the converter's quantizer prints to stderr at INFO level, hidden unless
# TF_CPP_MIN_LOG_LEVEL is 0 (hand25d.litert.native_info_hidden).
_CONVERTER_INFO = ("INFO: ", "fully_quantize: ")


def to_tflite(model: keras.Model, quant: str,
              representative: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
  """Converts a batch-1 Keras model.

  Args:
    model: the inference model (a QAT-wrapped model for 'int8_qat').
    quant: one of QUANT_MODES.
    representative: for 'int8_ptq', yields lists of input arrays to calibrate
      activation ranges (real frames from the input pipeline).

  Raises:
    ValueError: unknown mode, 'int8_ptq' without representative data, or an
      'int8_qat' model that does not convert to integer tensors only.
  """
  if quant not in QUANT_MODES:
    raise ValueError(f"unknown quantization {quant!r}; expected one of {QUANT_MODES}")
  if quant == "float32":
    return card.convert(model)  # The model the model card measures.
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.inference_input_type = tf.int8
  converter.inference_output_type = tf.int8
  if quant == "int8_ptq":
    if representative is None:
      raise ValueError("int8_ptq needs representative data to calibrate activations")
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = representative
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


def strip(model: bytes) -> bytes:
  """The model without tensor names, signatures and description.

  They are debug strings: TensorFlow Lite Micro never reads them, and they
  take about a quarter of the int8 model. Outputs keep their order.
  """
  flat = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
  flatbuffer_utils.strip_strings(flat)
  return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))
