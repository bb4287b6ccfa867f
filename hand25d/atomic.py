"""Atomic file writes: a crash leaves the old file or the new one, never half.

`replacing` and the writers below replace one file; `replacing_dir` replaces
a directory of files as one set, so a crash never leaves new files beside
old ones.
"""

import contextlib
import json
import os
import shutil
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


# The names `replacing_dir` gives its temporary directories beside `path`:
# .<name>.<random>.tmp (the new set), .<name>.<random>.old.tmp (the old one).
_OLD_SUFFIX = ".old.tmp"


def _dir_temporaries(path: str) -> tuple[str, str, list[str]]:
  """(parent, base name, names of `replacing_dir`'s temporary directories beside path).

  Of the real path: a symbolic link to the directory stays one, to the new set.
  """
  parent, name = os.path.split(os.path.realpath(path))
  found = sorted(n for n in os.listdir(parent)
                 if n.startswith(f".{name}.") and n.endswith(".tmp")
                 and os.path.isdir(os.path.join(parent, n))) if os.path.isdir(parent) else []
  return parent, name, found


@contextlib.contextmanager
def replacing_dir(path: str) -> Iterator[str]:
  """Yields an empty temporary directory beside `path`; if the block succeeds, it becomes `path`.

  The block writes a whole set of files into the yielded directory; on
  success it replaces the directory `path` (and all it held) by two renames:
  `path` aside, the new directory in. A process killed before then leaves
  `path` as it was; killed between the renames, it leaves no `path` and the
  old set aside, which `remove_stale_dirs` puts back. If the block raises,
  the temporary directory is removed and `path` is left as it was.
  """
  parent, name, _ = _dir_temporaries(path)
  path = os.path.join(parent, name)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
  old = None
  try:
    yield tmp
    # mkdtemp creates the directory 0700; give it the mode makedirs would have.
    os.chmod(tmp, 0o777 & ~_umask())
    if os.path.lexists(path):
      old = tmp[:-len(".tmp")] + _OLD_SUFFIX
      os.rename(path, old)
    os.rename(tmp, path)
  except BaseException:
    if old is not None and not os.path.lexists(path):
      os.rename(old, path)  # Interrupted between the renames: the old set goes back.
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  if old is not None:
    shutil.rmtree(old)


def remove_stale_dirs(path: str) -> list[str]:
  """Cleans up after a `replacing_dir(path)` whose process was killed; returns the names removed.

  A new set that never got renamed into place is removed. If `path` itself
  is missing because the kill came between the two renames, the old set is
  renamed back to `path` first (the new one may be incomplete). For a
  process about to write `path` (and its only writer).
  """
  parent, name, found = _dir_temporaries(path)
  path = os.path.join(parent, name)
  old = [n for n in found if n.endswith(_OLD_SUFFIX)]
  if old and not os.path.lexists(path):
    os.rename(os.path.join(parent, old[0]), path)
    found.remove(old[0])
  for n in found:
    shutil.rmtree(os.path.join(parent, n))
  return found


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
