"""Running .tflite models: LiteRT (ai-edge-litert) and TensorFlow Lite Micro.

The one place that builds interpreters, for the runtime, the exporter
(export/) and the model card. TensorFlow-free: numpy, ai_edge_litert,
tflite_micro and flatbuffers only.

  LiteRtModel          LiteRT with float inputs and outputs (quantized
                       models are fed and read through `quantize`/`dequantize`)
  builtin_interpreter  LiteRT's builtin kernels, no delegate (graph statistics)
  op_details           the nodes of a LiteRT interpreter, in execution order
  tflm_interpreter     a TFLM interpreter; `TflmError` says why it cannot load
  tflm_run             one TFLM inference
  smallest_arena       the smallest TFLM tensor arena that runs a model
  native_info_hidden   hides what native code prints at INFO level (LiteRT's
                       "Created TensorFlow Lite XNNPACK delegate") when
                       TF_CPP_MIN_LOG_LEVEL asks for it
  read_metadata        a model's TFLite metadata (what export.metadata writes) as a dict
  packed_files         the files packed into a model with its metadata (label files)

TFLM reports why a model does not load or run (an op it cannot resolve, an
arena too small, a kernel refusing its tensor types) only on the C++ side's
stderr; the Python error just says "failed to allocate tensors" or
"invocation failed". `tflm_interpreter` and `tflm_run` capture that output so
`TflmError` gives TFLM's own words, and tell too small an arena
(`TflmError.missing_bytes`) from every other failure.
"""

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from typing import Any, Mapping, Optional
import zipfile

from ai_edge_litert import interpreter as litert_interpreter
from ai_edge_litert import schema_py_generated as tflite_schema
import numpy as np
from tflite_micro.python.tflite_micro import runtime as tflm_runtime

from hand25d import metadata_schema_py_generated as metadata_schema

# TFLM arena sizes are given in multiples of this (TFLM aligns buffers to 16 B).
ARENA_GRANULE = 256
MAX_ARENA_BYTES = 64 * 1024 * 1024
# TFLM's arena allocator (SingleArenaBufferAllocator) ends every message about
# an arena too small with "missing: <bytes>"; no other failure prints it.
_MISSING = re.compile(r"missing: (\d+)")
# The most of TFLM's messages an error quotes (the end, where the cause is).
_WORDS_CHARS = 600
# The model's metadata entry that holds its TFLite metadata (a ModelMetadata
# flatbuffer with this file identifier), as tflite-support and MediaPipe name it.
METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
# A TFLite flatbuffer's file identifier, at bytes 4..8.
TFLITE_IDENTIFIER = b"TFL3"
# Metadata fields holding an enum value: (object API class, attribute) -> enum.
_METADATA_ENUMS = {
    ("AssociatedFileT", "type"): metadata_schema.AssociatedFileType,
    ("ImagePropertiesT", "colorSpace"): metadata_schema.ColorSpaceType,
    ("BoundingBoxPropertiesT", "type"): metadata_schema.BoundingBoxType,
    ("BoundingBoxPropertiesT", "coordinateType"): metadata_schema.CoordinateType,
    ("ContentT", "contentPropertiesType"): metadata_schema.ContentProperties,
    ("ProcessUnitT", "optionsType"): metadata_schema.ProcessUnitOptions,
    ("ScoreCalibrationOptionsT", "scoreTransformation"): metadata_schema.ScoreTransformationType,
}


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


@contextlib.contextmanager
def native_info_hidden(prefixes: tuple[str, ...] = ("INFO: ",)):
  """Hides the lines native code writes to stderr that start with `prefixes`.

  Only when TF_CPP_MIN_LOG_LEVEL is 1 or more, TensorFlow's convention for
  "no INFO lines" (the command-line binaries set it unless --verbosity is 1
  or more; hand25d/console.py). LiteRT prints its INFO lines with its own
  logger, which ignores that variable. Every other line is written back to
  stderr when the block ends, also when it raises. Meant for short blocks
  such as building an interpreter: while it runs, all of the process's
  stderr goes through a temporary file.
  """
  try:
    hide = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 1
  except ValueError:
    hide = False
  if not hide:
    yield
    return
  log = {"text": ""}
  try:
    with _captured_stderr() as log:
      yield
  finally:
    kept = [line for line in log["text"].splitlines(keepends=True)
            if not line.startswith(prefixes)]
    if kept:
      os.write(2, "".join(kept).encode())


def builtin_interpreter(model: bytes) -> litert_interpreter.Interpreter:
  """LiteRT interpreter running the builtin kernels (no XNNPACK rewriting of the graph)."""
  with native_info_hidden():
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
    with native_info_hidden():  # The XNNPACK delegate's INFO line.
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
  """The model cannot run in TensorFlow Lite Micro; the message says why, in TFLM's words.

  Attributes:
    unsupported_ops: builtin ops TFLM has no kernel for (empty otherwise).
    missing_bytes: set when the tensor arena was too small: the bytes TFLM
      said were missing (0 if it did not say how many); None for any other
      failure (an unsupported op, a kernel refusing its tensor types or
      parameters, a failed Prepare or Invoke, a crash).
  """

  def __init__(self, message: str, unsupported_ops: tuple[str, ...] = (),
               missing_bytes: Optional[int] = None):
    super().__init__(message)
    self.unsupported_ops = unsupported_ops
    self.missing_bytes = missing_bytes


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


def _tflm_words(log: str) -> str:
  """What TFLM printed, without the noise of other libraries, shortened from the front."""
  lines = [l for l in log.strip().splitlines() if l and not l.startswith("INFO: ")]
  return " | ".join(lines)[-_WORDS_CHARS:]


def tflm_interpreter(model: bytes, arena_size: int) -> tflm_runtime.Interpreter:
  """A TFLM interpreter of the model with an `arena_size`-byte tensor arena.

  Raises:
    TflmError: an op TFLM cannot run (`unsupported_ops`), too small an arena
      (`missing_bytes`), or any other failure to prepare the model (e.g. a
      kernel refusing its tensor types, as for a hybrid model with float
      inputs and int8 weights), with what TFLM printed.
  """
  with _captured_stderr() as log:
    try:
      return tflm_runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    except (RuntimeError, ValueError) as e:
      failure = e
  ops = tuple(sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", log["text"]))))
  if ops:
    raise TflmError(f"TensorFlow Lite Micro cannot run op(s) {', '.join(ops)}", ops) from failure
  words = _tflm_words(log["text"]) or str(failure)
  missing = _MISSING.findall(log["text"])
  if missing:
    raise TflmError(f"TensorFlow Lite Micro could not load the model with a {arena_size}-byte "
                    f"arena ({missing[-1]} bytes missing): {words}",
                    missing_bytes=int(missing[-1])) from failure
  raise TflmError(f"TensorFlow Lite Micro cannot prepare the model: {words}") from failure


def _invoke(interpreter: tflm_runtime.Interpreter, inputs: list[np.ndarray]) -> None:
  """Sets the inputs and runs one inference; TFLM's refusals become TflmError."""
  with _captured_stderr() as log:
    try:
      for i, x in enumerate(inputs):
        interpreter.set_input(x, i)
      interpreter.invoke()
      return
    except (RuntimeError, ValueError) as e:
      failure = e
  words = _tflm_words(log["text"])
  raise TflmError(f"TensorFlow Lite Micro failed to run the model: {failure}"
                  + (f": {words}" if words else "")) from failure


def tflm_run(model: bytes, inputs: list[np.ndarray], arena_size: int,
             num_outputs: int = 1) -> list[np.ndarray]:
  """Runs one inference in TFLM and returns the first `num_outputs` outputs.

  Raises:
    TflmError: the model does not load (`tflm_interpreter`), TFLM refuses an
      input (dtype or shape), or Invoke fails; with what TFLM said.
  """
  interpreter = tflm_interpreter(model, arena_size)
  _invoke(interpreter, inputs)
  return [np.array(interpreter.get_output(i)) for i in range(num_outputs)]


def _probe(model_path: str, inputs_path: str, arena_size: int) -> dict:
  """Runs the model once in TFLM: {"used_bytes": arena bytes it used} or its TflmError.

  The body of the child process of `_probe_in_child`. The used bytes are
  TFLM's own count (RecordingMicroAllocator, "Arena allocation total": the
  head and tail of the arena after Invoke).
  """
  with open(model_path, "rb") as f:
    model = f.read()
  with np.load(inputs_path) as data:
    inputs = [data[k] for k in sorted(data.files)]
  try:
    interpreter = tflm_interpreter(model, arena_size)
    _invoke(interpreter, inputs)
  except TflmError as e:
    return {"error": str(e), "unsupported_ops": list(e.unsupported_ops),
            "missing_bytes": e.missing_bytes}
  with _captured_stderr() as log:
    interpreter.print_allocations()
  used = re.search(r"Arena allocation total (\d+) bytes", log["text"])
  if not used:
    return {"error": "TensorFlow Lite Micro did not report its arena use: "
                     f"{_tflm_words(log['text'])}", "unsupported_ops": [], "missing_bytes": None}
  return {"used_bytes": int(used.group(1))}


def _probe_in_child(model_path: str, inputs_path: str, arena_size: int) -> int:
  """The arena bytes the model uses when run with `arena_size`, run in a child process.

  A crash of TFLM (it can crash, not just fail) then ends the child, not the
  caller.

  Raises:
    TflmError: as `tflm_run` says; or the child crashed (the signal and what
      TFLM printed) or raised (its exception, e.g. of a file that is not a
      TFLite model).
  """
  # The child imports this very hand25d (not another copy on its path).
  code = ("import json, sys; sys.path.insert(0, sys.argv[4]); from hand25d import litert; "
          "print(json.dumps(litert._probe(sys.argv[1], sys.argv[2], int(sys.argv[3]))))")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, "-c", code, model_path, inputs_path, str(arena_size),
                           root],
                          capture_output=True, text=True, timeout=300, check=False)
  lines = result.stdout.strip().splitlines()
  if result.returncode < 0:  # Killed by a signal: what TFLM printed before it.
    raise TflmError(f"TensorFlow Lite Micro crashed (signal "
                    f"{signal.Signals(-result.returncode).name}) running the model with a "
                    f"{arena_size}-byte arena: {_tflm_words(result.stderr)}")
  if result.returncode != 0 or not lines:  # A Python exception: its last line says which.
    said = result.stderr.strip().splitlines()[-1:] or ["no output"]
    raise TflmError(f"TensorFlow Lite Micro failed (exit status {result.returncode}) running "
                    f"the model with a {arena_size}-byte arena: {said[0][-_WORDS_CHARS:]}")
  report = json.loads(lines[-1])
  if "error" in report:
    raise TflmError(report["error"], tuple(report["unsupported_ops"]), report["missing_bytes"])
  return report["used_bytes"]


def smallest_arena(model: bytes, inputs: list[np.ndarray]) -> int:
  """The smallest tensor arena (bytes, a multiple of ARENA_GRANULE) that runs the model.

  TFLM runs the model once with MAX_ARENA_BYTES and reports the bytes it
  used; no smaller arena can hold those. That count rounded up to
  ARENA_GRANULE is then tried, and grown by ARENA_GRANULE only while TFLM
  says the arena is too small (an allocation made and freed during Prepare
  may need more than the final count). Every run is a child process of its
  own. On the shipped models this gives what a bisection over arena sizes
  gives (hand25d/pretrained/model_card.json), in 2 runs instead of about 20.

  Raises:
    TflmError: at once, with TFLM's words, for any failure other than too
      small an arena: an op TFLM cannot run (`unsupported_ops`), a kernel
      refusing its tensor types or parameters, a failed Prepare or Invoke, a
      crash; or the model needs over MAX_ARENA_BYTES.
  """
  with tempfile.TemporaryDirectory() as tmp:
    model_path = os.path.join(tmp, "model.tflite")
    inputs_path = os.path.join(tmp, "inputs.npz")
    with open(model_path, "wb") as f:
      f.write(model)
    np.savez(inputs_path, **{f"input_{i:03d}": x for i, x in enumerate(inputs)})
    try:
      used = _probe_in_child(model_path, inputs_path, MAX_ARENA_BYTES)
    except TflmError as e:
      if e.missing_bytes is None:
        raise
      raise TflmError(f"the model does not run in TFLM even with a {MAX_ARENA_BYTES}-byte "
                      f"arena: {e}", missing_bytes=e.missing_bytes) from e
    arena = -(-used // ARENA_GRANULE) * ARENA_GRANULE
    while True:
      try:
        _probe_in_child(model_path, inputs_path, arena)
        return arena
      except TflmError as e:
        if e.missing_bytes is None or arena + ARENA_GRANULE > MAX_ARENA_BYTES:
          raise
      arena += ARENA_GRANULE


def _metadata_buffer(model: bytes) -> Optional[bytes]:
  """The bytes of the model's TFLITE_METADATA buffer; None without one."""
  if model[4:8] != TFLITE_IDENTIFIER:
    raise ValueError(f"not a TFLite model: its file identifier is {model[4:8]!r}, a .tflite "
                     f"flatbuffer has {TFLITE_IDENTIFIER!r}")
  root = tflite_schema.Model.GetRootAs(model, 0)
  for i in range(root.MetadataLength()):
    entry = root.Metadata(i)
    if entry.Name() != METADATA_NAME.encode():
      continue
    buffer = root.Buffers(entry.Buffer())
    if buffer.Offset() > 1:  # A model over 2 GB keeps its buffers after the flatbuffer.
      return bytes(model[buffer.Offset():buffer.Offset() + buffer.Size()])
    return buffer.DataAsNumpy().tobytes() if buffer.DataLength() else None
  return None


def _snake_case(name: str) -> str:
  return re.sub(r"([A-Z])", r"_\1", name).lower()


def _plain(value: Any, owner: str = "", field: str = "") -> Any:
  """An object API value of the metadata schema as str, number, bytes, list or dict."""
  if value is None or isinstance(value, (bool, int, float, str)):
    enum = _METADATA_ENUMS.get((owner, field))
    if enum is not None and isinstance(value, int):
      return next((k for k, v in vars(enum).items() if v == value and not k.startswith("_")),
                  value)
    return value
  if isinstance(value, bytes):
    return value.decode("utf-8", "replace")
  if isinstance(value, np.ndarray):  # [ubyte] (custom metadata) as bytes, [float] as a list.
    return value.tobytes() if value.dtype == np.uint8 else value.tolist()
  if isinstance(value, (list, tuple)):
    return [_plain(v, owner, field) for v in value]
  cls = type(value).__name__
  return {_snake_case(k): _plain(v, cls, k) for k, v in vars(value).items() if v is not None}


def read_metadata(model: bytes) -> Optional[dict[str, Any]]:
  """The model's TFLite metadata as a dict; None if it has none (a TFLM copy).

  Keys are the field names of the metadata schema (metadata_schema.fbs:
  name, description, version, license, min_parser_version,
  subgraph_metadata[0].input_tensor_metadata / output_tensor_metadata, each
  with name, description, dimension_names, content, stats,
  associated_files, ...); absent fields are left out, enum values are their
  names ("TENSOR_AXIS_LABELS", "ImageProperties"), strings are str and
  custom metadata `data` is bytes: the JSON of tflite-support's
  MetadataDisplayer, as a dict (docs/export.md). The files that
  associated_files name are read with `packed_files`.

  Raises:
    ValueError: the bytes are not a TFLite model, or its TFLITE_METADATA
      buffer is not a metadata flatbuffer.
  """
  data = _metadata_buffer(model)
  if data is None:
    return None
  if not metadata_schema.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0):
    raise ValueError(f"the model's {METADATA_NAME} buffer is not TFLite metadata: its file "
                     f"identifier is {data[4:8]!r}, not {METADATA_IDENTIFIER!r}")
  return _plain(metadata_schema.ModelMetadataT.InitFromObj(
      metadata_schema.ModelMetadata.GetRootAs(data, 0)))


def packed_files(model: bytes) -> dict[str, bytes]:
  """The files packed into the model with its metadata (a zip after the flatbuffer), by name.

  Empty for a model without packed files.
  """
  data = io.BytesIO(model)
  if not zipfile.is_zipfile(data):
    return {}
  with zipfile.ZipFile(data) as archive:
    return {name: archive.read(name) for name in archive.namelist()}
