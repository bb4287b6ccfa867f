"""Quiet consoles for the command-line entry points (`*_main.py`, pyproject's scripts).

TensorFlow prints its C++ start-up lines (oneDNN, "Could not find cuda
drivers", the "cuInit" error on a machine without a GPU), the TFLite
converter's internals and Python-side warnings that say nothing to a user.
Importing this module, first in a binary (before anything imports
TensorFlow), hides them unless the command line asks for `--verbosity=1`
(`-v 1`) or more:

  * TF_CPP_MIN_LOG_LEVEL=3 (unless already set in the environment): TensorFlow's
    C++ log lines are not printed. Errors still reach the user as exceptions.
  * `import_tensorflow()` imports TensorFlow with file descriptor 2 sent to a
    temporary file, since its first lines are printed before it reads that
    variable; they are replayed if the import fails.
  * Python log records below ERROR from TensorFlow's own files (the logger
    `tensorflow`, and absl records such as the converter's) are dropped.

Before that, a command started in an install without the `train` extra (a
runtime-only `pip install hand25d`) stops with one line saying what to
install (`hand25d.extras`), whatever the verbosity. And whatever the
verbosity, TF_ENABLE_ONEDNN_OPTS=1 is set unless the environment sets it:
TensorFlow runs its oneDNN CPU kernels by default only on CPUs with AVX-512
VNNI, BF16 or AMX; on an AVX2-only CPU its Eigen kernels run hand25d's train
step 1.5x slower (docs/training.md, "Throughput"). TensorFlow reads the variable when
it is imported, so it must be set here.

The binaries that use TensorFlow import it first (a comment says why where
that breaks the import order); a library never does, nor does `import
hand25d`, and the TensorFlow-free runtime has no use for it (it imports
TensorFlow when it is installed). Standard library and hand25d.extras only,
and absl.logging (of the `train` extra), imported before its logger is used.
"""

import importlib
import logging
import os
import sys
import tempfile

from hand25d import extras

# --verbosity at or above this shows TensorFlow's lines.
VERBOSE = 1


def verbosity(argv: list[str]) -> int:
  """The absl --verbosity (-v) the command line asks for; 0 (absl's INFO) if none or unreadable."""
  value = None
  for i, arg in enumerate(argv[1:], start=1):
    for name in ("--verbosity", "-verbosity", "--v", "-v"):
      if arg == name and i + 1 < len(argv):
        value = argv[i + 1]
      elif arg.startswith(name + "="):
        value = arg[len(name) + 1:]
  try:
    return int(value) if value is not None else 0
  except ValueError:
    return 0


def quiet(argv: list[str]) -> bool:
  """True when TensorFlow's lines are to be hidden (--verbosity below VERBOSE)."""
  return verbosity(argv) < VERBOSE


def _tensorflow_dir() -> str | None:
  spec = importlib.util.find_spec("tensorflow")  # Finds without importing.
  return (os.path.dirname(spec.origin) + os.sep) if spec and spec.origin else None


class _DropTensorFlowRecords(logging.Filter):
  """Drops records below ERROR logged from files under TensorFlow's package."""

  def __init__(self, directory: str):
    super().__init__()
    self._directory = directory

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR or not record.pathname.startswith(self._directory)


def import_tensorflow():
  """Imports and returns TensorFlow; quietly (see the module doc) unless verbose.

  Raises:
    ImportError: as `import tensorflow` does, after replaying what it printed.
  """
  if "tensorflow" in sys.modules or not quiet(sys.argv):
    return importlib.import_module("tensorflow")
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as lines:
    os.dup2(lines.fileno(), 2)
    try:
      return importlib.import_module("tensorflow")
    except BaseException:
      os.dup2(saved, 2)
      lines.seek(0)
      os.write(2, lines.read())
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)


def _install() -> None:
  if not quiet(sys.argv):
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  directory = _tensorflow_dir()
  if directory:
    # absl's logger must exist before it is looked up here: getLogger("absl")
    # would otherwise create a plain logging.Logger under that name, whose
    # records all name absl's own file as their source (__init__.py:556) and
    # so escape this filter.
    importlib.import_module("absl.logging")
    logging.getLogger("absl").addFilter(_DropTensorFlowRecords(directory))
  if directory and "tensorflow" not in sys.modules:
    import_tensorflow()


extras.require("train")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
_install()
