"""Running exported models in TensorFlow Lite Micro (the tflite-micro interpreter).

TFLM reports why a model does not load (an op it cannot resolve, an arena
too small) only on the C++ side's stderr; the Python error just says
"failed to allocate tensors". This module captures that output so the
exporter can say which op or how many bytes were missing.
"""

import contextlib
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from tflite_micro.python.tflite_micro import runtime

# Arena sizes are searched in multiples of this (TFLM aligns buffers to 16 B).
ARENA_GRANULE = 256
MAX_ARENA_BYTES = 64 * 1024 * 1024


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


def _interpreter(model: bytes, arena_size: int) -> runtime.Interpreter:
  with _captured_stderr() as log:
    try:
      return runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    except RuntimeError as e:
      failure = e
  ops = tuple(sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", log["text"]))))
  if ops:
    raise TflmError(f"TensorFlow Lite Micro cannot run op(s) {', '.join(ops)}", ops) from failure
  missing = re.findall(r"missing: (\d+)", log["text"])
  detail = f" ({missing[-1]} bytes missing)" if missing else ""
  raise TflmError(f"TensorFlow Lite Micro could not load the model with a "
                  f"{arena_size}-byte arena{detail}: {log['text'].strip()[-300:]}") from failure


def run(model: bytes, inputs: list[np.ndarray], arena_size: int,
        num_outputs: int = 1) -> list[np.ndarray]:
  """Runs one inference in TFLM and returns the first `num_outputs` outputs.

  Raises:
    TflmError: an unsupported op or too small an arena.
  """
  interpreter = _interpreter(model, arena_size)
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
  code = ("import sys, numpy as np; from export import tflm; "
          "d = np.load(sys.argv[2]); m = open(sys.argv[1], 'rb').read(); "
          "tflm.run(m, [d[k] for k in sorted(d.files)], int(sys.argv[3]))")
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
