"""Atomic file writes: a crash leaves the old file or the new one, never half."""

import json
import os
import tempfile


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` via a temporary file in the same directory + rename."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode("utf-8"))


def write_json(path: str, data) -> None:
  write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
