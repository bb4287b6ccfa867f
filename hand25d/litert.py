"""Running .tflite models: LiteRT (ai-edge-litert) and TensorFlow Lite Micro.

The one place that builds interpreters, for the runtime, the exporter
(export/) and the model card. TensorFlow-free: numpy, ai_edge_litert and
tflite_micro only.

  LiteRtModel          LiteRT with float inputs and outputs (quantized
                       models are fed and read through `quantize`/`dequantize`)
  builtin_interpreter  LiteRT's builtin kernels, no delegate (graph statistics)
  op_details           the nodes of a LiteRT interpreter, in execution order
  tflm_interpreter     a TFLM interpreter; `TflmError` says why it cannot load
  tflm_run             one TFLM inference
  smallest_arena       the smallest TFLM tensor arena that runs a model

TFLM reports why a model does not load (an op it cannot resolve, an arena
too small) only on the C++ side's stderr; the Python error just says
"failed to allocate tensors". `tflm_interpreter` captures that output so the
error can say which op or how many bytes were missing.
"""

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from typing import Mapping

from ai_edge_litert import interpreter as litert_interpreter
import numpy as np
from tflite_micro.python.tflite_micro import runtime as tflm_runtime

# TFLM arena sizes are searched in multiples of this (TFLM aligns buffers to 16 B).
ARENA_GRANULE = 256
MAX_ARENA_BYTES = 64 * 1024 * 1024


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
  """Float array -> the tensor's dtype with its (scale, zero point)."""
  if detail["dtype"] == np.float32:
    return np.asarray(x, np.float32)
  scale, zero = detail["quantization"]
  info = np.iinfo(detail["dtype"])
  return np.clip(np.round(np.asarray(x) / scale + zero), info.min, info.max).astype(
      detail["dtype"])


def dequantize(x: np.ndarray, detail: dict) -> np.ndarray:
  """The tensor's values (its dtype, with its (scale, zero point)) -> float32."""
  if detail["dtype"] == np.float32:
    return np.asarray(x, np.float32)
  scale, zero = detail["quantization"]
  return (x.astype(np.float32) - zero) * scale


def builtin_interpreter(model: bytes) -> litert_interpreter.Interpreter:
  """LiteRT interpreter running the builtin kernels (no XNNPACK rewriting of the graph)."""
  interpreter = litert_interpreter.Interpreter(
      model_content=model,
      experimental_op_resolver_type=(
          litert_interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  interpreter.allocate_tensors()
  return interpreter


def op_details(interpreter: litert_interpreter.Interpreter) -> list[dict]:
  """Every node (op_name, inputs, outputs, ...) of the graph, in execution order."""
  return interpreter._get_ops_details()  # pylint: disable=protected-access


class LiteRtModel:
  """A TFLite model in ai-edge-litert with named float inputs and outputs.

  By default LiteRT runs its optimized kernels with its default delegate
  (XNNPACK), as an application would; `reference=True` runs its reference
  kernels instead, which compute exactly what TensorFlow Lite Micro does
  (optimized int8 kernels may round differently by a few steps).
  """

  def __init__(self, model: bytes, num_threads: int = 1, reference: bool = False):
    resolver = (litert_interpreter.OpResolverType.BUILTIN_REF if reference
                else litert_interpreter.OpResolverType.AUTO)
    self.interpreter = litert_interpreter.Interpreter(
        model_content=model, num_threads=num_threads, experimental_op_resolver_type=resolver)
    self.interpreter.allocate_tensors()
    self.inputs = self.interpreter.get_input_details()
    self.outputs = self.interpreter.get_output_details()

  def op_names(self) -> list[str]:
    """Builtin op name of every node, in execution order."""
    return [op["op_name"] for op in op_details(self.interpreter)]

  def set_inputs(self, arrays: list[np.ndarray]) -> None:
    for detail, x in zip(self.inputs, arrays):
      self.interpreter.set_tensor(detail["index"], quantize(x, detail))

  def output_arrays(self) -> list[np.ndarray]:
    """The outputs of the last invoke as float arrays, in the model's output order."""
    return [dequantize(self.interpreter.get_tensor(d["index"]), d) for d in self.outputs]

  def outputs_by_name(self, names: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Outputs as float arrays, matched to `names` by shape.

    TFLite output tensor names come from the SavedModel signature and are not
    stable across converters (nor kept by `export.convert.strip`), so each
    expected output is found by its shape (the model's outputs have distinct
    shapes).
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


class TflmError(RuntimeError):
  """The model cannot run in TensorFlow Lite Micro; the message says why."""

  def __init__(self, message: str, unsupported_ops: tuple[str, ...] = ()):
    super().__init__(message)
    self.unsupported_ops = unsupported_ops


@contextlib.contextmanager
def _captured_stderr():
  """Captures what C++ code writes to file descriptor 2."""
  with tempfile.TemporaryFile(mode="w+b") as tmp:
    saved = os.dup(2)
    os.dup2(tmp.fileno(), 2)
    log = {"text": ""}
    try:
      yield log
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      tmp.seek(0)
      log["text"] = tmp.read().decode("utf-8", "replace")


def tflm_interpreter(model: bytes, arena_size: int) -> tflm_runtime.Interpreter:
  """A TFLM interpreter of the model with an `arena_size`-byte tensor arena.

  Raises:
    TflmError: an op TFLM cannot run, or too small an arena (with the bytes
      missing when TFLM says).
  """
  with _captured_stderr() as log:
    try:
      return tflm_runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    except RuntimeError as e:
      failure = e
  ops = tuple(sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", log["text"]))))
  if ops:
    raise TflmError(f"TensorFlow Lite Micro cannot run op(s) {', '.join(ops)}", ops) from failure
  missing = re.findall(r"missing: (\d+)", log["text"])
  detail = f" ({missing[-1]} bytes missing)" if missing else ""
  raise TflmError(f"TensorFlow Lite Micro could not load the model with a "
                  f"{arena_size}-byte arena{detail}: {log['text'].strip()[-300:]}") from failure


def tflm_run(model: bytes, inputs: list[np.ndarray], arena_size: int,
             num_outputs: int = 1) -> list[np.ndarray]:
  """Runs one inference in TFLM and returns the first `num_outputs` outputs.

  Raises:
    TflmError: an unsupported op or too small an arena.
  """
  interpreter = tflm_interpreter(model, arena_size)
  for i, x in enumerate(inputs):
    interpreter.set_input(x, i)
  interpreter.invoke()
  return [np.array(interpreter.get_output(i)) for i in range(num_outputs)]


def _fits(model_path: str, inputs_path: str, arena_size: int) -> bool:
  """Whether the model runs with `arena_size`, tried in a child process.

  TFLM can crash (not just fail) when the arena is too small even for its own
  bookkeeping, so each probe runs in a process of its own; a crash counts as
  "does not fit".
  """
  code = ("import sys, numpy as np; from hand25d import litert; "
          "d = np.load(sys.argv[2]); m = open(sys.argv[1], 'rb').read(); "
          "litert.tflm_run(m, [d[k] for k in sorted(d.files)], int(sys.argv[3]))")
  result = subprocess.run([sys.executable, "-c", code, model_path, inputs_path, str(arena_size)],
                          capture_output=True, text=True, timeout=300)
  if result.returncode == 0:
    return True
  ops = re.findall(r"cannot run op\(s\) ([\w, ]+)", result.stderr)
  if ops:
    names = tuple(o.strip() for o in ops[-1].split(","))
    raise TflmError(f"TensorFlow Lite Micro cannot run op(s) {', '.join(names)}", names)
  return False


def smallest_arena(model: bytes, inputs: list[np.ndarray]) -> int:
  """The smallest tensor arena (bytes, a multiple of ARENA_GRANULE) that runs the model.

  Raises:
    TflmError: the model has ops TFLM cannot run, or needs over MAX_ARENA_BYTES.
  """
  with tempfile.TemporaryDirectory() as tmp:
    model_path = os.path.join(tmp, "model.tflite")
    inputs_path = os.path.join(tmp, "inputs.npz")
    with open(model_path, "wb") as f:
      f.write(model)
    np.savez(inputs_path, **{f"input_{i:03d}": x for i, x in enumerate(inputs)})
    hi = 16 * 1024
    while not _fits(model_path, inputs_path, hi):
      hi *= 2
      if hi > MAX_ARENA_BYTES:
        raise TflmError(f"the model does not run in TFLM even with a {MAX_ARENA_BYTES}-byte "
                        "arena")
    lo = 0  # Below any arena that runs.
    while hi - lo > ARENA_GRANULE:
      mid = (lo + hi) // 2 // ARENA_GRANULE * ARENA_GRANULE
      if _fits(model_path, inputs_path, mid):
        hi = mid
      else:
        lo = mid
    return hi
