"""Keras inference model -> TFLite flatbuffer (float32 or int8), and running it.

int8 models are fully integer, inputs and outputs included, as TensorFlow Lite
Micro targets expect; `LiteRtModel` quantizes inputs and dequantizes outputs
with the tensors' own parameters so callers always see float arrays.
"""

from typing import Callable, Iterable, Mapping

from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType
import numpy as np

from hand25d.model import card

import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils
import tf_keras as keras

QUANT_MODES = ("float32", "int8_ptq", "int8_qat")


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
  model_bytes = converter.convert()
  if quant == "int8_qat":
    floats = [t["name"] for t in Interpreter(model_content=model_bytes).get_tensor_details()
              if t["dtype"] == np.float32]
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


class LiteRtModel:
  """A TFLite model in ai-edge-litert with named float inputs and outputs.

  By default LiteRT runs its optimized kernels with its default delegate
  (XNNPACK), as an application would; `reference=True` runs its reference
  kernels instead, which compute exactly what TensorFlow Lite Micro does
  (optimized int8 kernels may round differently by a few steps).
  """

  def __init__(self, model: bytes, num_threads: int = 1, reference: bool = False):
    resolver = (OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO)
    self.interpreter = Interpreter(model_content=model, num_threads=num_threads,
                                   experimental_op_resolver_type=resolver)
    self.interpreter.allocate_tensors()
    self.inputs = self.interpreter.get_input_details()
    self.outputs = self.interpreter.get_output_details()

  def op_names(self) -> list[str]:
    """Builtin op name of every node, in execution order."""
    return [op["op_name"] for op in self.interpreter._get_ops_details()]  # pylint: disable=protected-access

  def set_inputs(self, arrays: list[np.ndarray]) -> None:
    for detail, x in zip(self.inputs, arrays):
      self.interpreter.set_tensor(detail["index"], quantize(x, detail))

  def output_arrays(self) -> list[np.ndarray]:
    """The outputs of the last invoke as float arrays, in the model's output order."""
    return [dequantize(self.interpreter.get_tensor(d["index"]), d) for d in self.outputs]

  def outputs_by_name(self, names: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Outputs as float arrays, matched to `names` by shape.

    TFLite output tensor names come from the SavedModel signature and are not
    stable across converters (nor kept by `strip`), so each expected output is
    found by its shape (the model's outputs have distinct shapes).
    """
    got = {}
    for value in self.output_arrays():
      matches = [n for n, shape in names.items() if tuple(shape) == value.shape]
      if len(matches) != 1:
        raise ValueError(f"output of shape {value.shape} matches {matches} of {dict(names)}")
      got[matches[0]] = value
    return got

  def __call__(self, arrays: list[np.ndarray], names: Mapping[str, tuple[int, ...]]
               ) -> dict[str, np.ndarray]:
    self.set_inputs(arrays)
    self.interpreter.invoke()
    return self.outputs_by_name(names)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
  """Float array -> the tensor's dtype with its (scale, zero point)."""
  if detail["dtype"] == np.float32:
    return np.asarray(x, np.float32)
  scale, zero = detail["quantization"]
  info = np.iinfo(detail["dtype"])
  return np.clip(np.round(np.asarray(x) / scale + zero), info.min, info.max).astype(
      detail["dtype"])


def dequantize(x: np.ndarray, detail: dict) -> np.ndarray:
  if detail["dtype"] == np.float32:
    return np.asarray(x, np.float32)
  scale, zero = detail["quantization"]
  return (x.astype(np.float32) - zero) * scale
