"""Atomic file writes: a crash leaves the old file or the new one, never half."""

import contextlib
import json
import os
import tempfile
from typing import Iterator


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it to `path` if the block succeeds.

  For writers that want a file name (e.g. tf.io.TFRecordWriter). If the block
  raises, the temporary file is removed and `path` is left as it was.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  os.close(fd)
  try:
    yield tmp
    # mkstemp creates the file 0600; give it the mode open() would have.
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def remove_stale(directory: str) -> list[str]:
  """Removes the temporary files `replacing` leaves behind when a process is killed.

  For a process that starts writing into `directory` (and is its only
  writer). Returns the names removed.
  """
  if not os.path.isdir(directory):
    return []
  stale = [name for name in os.listdir(directory)
           if name.startswith(".") and name.endswith(".tmp")
           and os.path.isfile(os.path.join(directory, name))]
  for name in stale:
    os.remove(os.path.join(directory, name))
  return stale


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` via a temporary file in the same directory + rename."""
  with replacing(path) as tmp, open(tmp, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode("utf-8"))


def write_json(path: str, data) -> None:
  write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
