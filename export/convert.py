"""Keras inference model -> TFLite flatbuffer (float32 or int8), and running it.

int8 models are fully integer, inputs and outputs included, as TensorFlow Lite
Micro targets expect; `LiteRtModel` quantizes inputs and dequantizes outputs
with the tensors' own parameters so callers always see float arrays.
"""

from typing import Callable, Iterable, Mapping

from ai_edge_litert.interpreter import Interpreter
import numpy as np
import tensorflow as tf
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
    ValueError: unknown mode, or 'int8_ptq' without representative data.
  """
  if quant not in QUANT_MODES:
    raise ValueError(f"unknown quantization {quant!r}; expected one of {QUANT_MODES}")
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  if quant != "float32":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
  if quant == "int8_ptq":
    if representative is None:
      raise ValueError("int8_ptq needs representative data to calibrate activations")
    converter.representative_dataset = representative
  return converter.convert()


class LiteRtModel:
  """A TFLite model in ai-edge-litert with named float inputs and outputs."""

  def __init__(self, model: bytes, num_threads: int = 1):
    self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
    self.interpreter.allocate_tensors()
    self.inputs = self.interpreter.get_input_details()
    self.outputs = self.interpreter.get_output_details()

  def op_names(self) -> list[str]:
    """Builtin op name of every node, in execution order."""
    return [op["op_name"] for op in self.interpreter._get_ops_details()]  # pylint: disable=protected-access

  def set_inputs(self, arrays: list[np.ndarray]) -> None:
    for detail, x in zip(self.inputs, arrays):
      self.interpreter.set_tensor(detail["index"], quantize(x, detail))

  def outputs_by_name(self, names: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Outputs as float arrays, matched to `names` by shape.

    TFLite output tensor names come from the SavedModel signature and are not
    stable across converters, so each expected output is found by its shape
    (the model's outputs have distinct shapes).
    """
    got = {}
    for detail in self.outputs:
      value = dequantize(self.interpreter.get_tensor(detail["index"]), detail)
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
