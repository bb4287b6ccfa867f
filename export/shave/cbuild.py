"""Builds the SHAVE C kernel (export/shave/kernel/) into a cache, on first use.

The C kernel is compiled by the machine's C compiler into a shared library
that `native.py` loads with ctypes, and, with TensorFlow's headers and flags,
into the custom op `tf_op.py` loads. Both are built here rather than by
`pip install`: pip builds in an isolated environment without TensorFlow, so
the op could not be built there, and a library built by setuptools would sit
in a different place for an editable install, a wheel and a Bazel sandbox.
A cache keyed by content works the same in all of them: a library's file name
carries a hash of its sources, the compiler's identity, the flags (and for
the op TensorFlow's version and flags), so an edit or a TensorFlow upgrade
rebuilds and a stale build is never loaded. `make` builds both right after
installing (export/shave/build_main.py), so a missing compiler shows there.

The cache is $HAND25D_CACHE_DIR, else $XDG_CACHE_HOME/hand25d, else
~/.cache/hand25d. A build found there is used even where the cache is read
only (a Bazel test sandbox); a missing one is then built in a temporary
directory ($TEST_TMPDIR under Bazel). Builds are written atomically, so
concurrent first uses (parallel tests) are safe.
"""

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from typing import Sequence

from hand25d import atomic

KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel")
# The C library: the kernel, the layer runner, the blob runner, the naive baseline.
C_SOURCES = ("kernel.c", "layer.c", "net.c", "naive.c")
HEADERS = ("shave_kernel.h", "shave_naive.h", "internal.h")
# Portable C99, optimised: the same build for the kernel and the naive
# baseline it is compared with. ISO C99 also keeps gcc from contracting a
# multiply and an add into an FMA, so the rounding is that of the reference.
C_FLAGS = ("-std=c99", "-O3", "-fPIC", "-Wall")
_COMPILERS = {"c": ("CC", ("cc", "gcc", "clang")), "c++": ("CXX", ("c++", "g++", "clang++"))}


def c_flags() -> tuple[str, ...]:
  """C_FLAGS, plus -mf16c on an x86 CPU with F16C.

  The one target-specific flag: with it gcc converts fp16 to and from fp32
  in one instruction instead of a libgcc call per value. The library is
  built on the machine that loads it, and the flag is part of the cache key.
  """
  if platform.machine().lower() not in ("x86_64", "amd64"):
    return C_FLAGS
  try:
    with open("/proc/cpuinfo") as f:
      has_f16c = any(line.startswith("flags") and " f16c" in line for line in f)
  except OSError:
    has_f16c = False
  return C_FLAGS + (("-mf16c",) if has_f16c else ())


class BuildError(RuntimeError):
  """The C kernel cannot be built: no compiler, or the compiler failed."""


def cache_dir() -> str:
  """Where built libraries are kept (see the module docstring)."""
  if os.environ.get("HAND25D_CACHE_DIR"):
    return os.environ["HAND25D_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "hand25d")


def _fallback_dir() -> str:
  """Where to build when the cache cannot be written."""
  base = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()
  return os.path.join(base, f"hand25d-cache-{os.getuid() if hasattr(os, 'getuid') else 0}")


def _writable(directory: str) -> bool:
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError:
    return False
  return os.access(directory, os.W_OK)


def compiler(language: str) -> str:
  """The path of the C ("c") or C++ ("c++") compiler: $CC / $CXX, else the usual names.

  Raises:
    BuildError: if none is on PATH.
  """
  variable, names = _COMPILERS[language]
  candidates = (os.environ[variable],) if os.environ.get(variable) else names
  for name in candidates:
    found = shutil.which(name)
    if found:
      return found
  raise BuildError(f"the SHAVE C kernel needs a {language.upper()} compiler and found none "
                   f"(looked for {', '.join(candidates)} on PATH): install gcc (Debian/Ubuntu: "
                   f"apt-get install build-essential) or set ${variable}")


def _identity(path: str) -> str:
  try:
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                            check=False)
  except OSError as e:
    raise BuildError(f"cannot run the compiler {path}: {e}") from e
  return path + "\n" + result.stdout.split("\n", 1)[0]


def _run(command: list[str], what: str) -> None:
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode:
    raise BuildError(f"compiling {what} failed (exit {result.returncode}):\n"
                     f"  {' '.join(command)}\n{result.stderr[-4000:]}")


def shared_library(name: str, cxx_sources: Sequence[str] = (), cxx_flags: Sequence[str] = (),
                   link_flags: Sequence[str] = (), key: str = "") -> str:
  """The path of a shared library of the C kernel (plus C++ sources), built if needed.

  Args:
    name: file name stem in the cache.
    cxx_sources: C++ files (absolute paths) compiled and linked with the kernel.
    cxx_flags: flags for the C++ files (e.g. TensorFlow's compile flags).
    link_flags: flags for the link (e.g. TensorFlow's link flags).
    key: anything else the build depends on (e.g. TensorFlow's version).

  Raises:
    BuildError: no compiler, or a compile or link error (with its output).
  """
  cc, flags = compiler("c"), c_flags()
  cxx = compiler("c++") if cxx_sources else None
  digest = hashlib.sha256()
  for part in (name, _identity(cc), *flags, _identity(cxx) if cxx else "", *cxx_flags,
               *link_flags, key):
    digest.update(part.encode() + b"\0")
  for path in [os.path.join(KERNEL_DIR, f) for f in C_SOURCES + HEADERS] + list(cxx_sources):
    with open(path, "rb") as f:
      digest.update(os.path.basename(path).encode() + b"\0" + f.read())
  file_name = f"{name}-{digest.hexdigest()[:16]}.so"
  for directory in (cache_dir(), _fallback_dir()):
    if os.path.exists(os.path.join(directory, file_name)):
      return os.path.join(directory, file_name)
  directory = cache_dir() if _writable(cache_dir()) else _fallback_dir()
  os.makedirs(directory, exist_ok=True)
  target = os.path.join(directory, file_name)
  with tempfile.TemporaryDirectory(dir=directory) as work:
    objects = []
    for source in C_SOURCES:
      objects.append(os.path.join(work, source + ".o"))
      _run([cc, *flags, "-c", os.path.join(KERNEL_DIR, source), "-o", objects[-1]], source)
    with atomic.replacing(target) as tmp:
      if cxx:
        _run([cxx, *cxx_flags, "-O2", "-fPIC", "-shared", "-I", KERNEL_DIR, *cxx_sources,
              *objects, "-o", tmp, *link_flags], ", ".join(map(os.path.basename, cxx_sources)))
      else:
        _run([cc, "-shared", *objects, "-o", tmp], name)
  return target
