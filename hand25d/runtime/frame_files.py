"""The frame files of a recording, read with their headers checked first (docs/runtime.md).

A frame file that breaks the contract raises FrameFileError naming the file
(and the array of a .npz): its header's shape or dtype, data shorter than
the header says, a PNG that is not 16-bit greyscale or is damaged, integers
too narrow for the sensor's range, a timestamp or clip index that is not
one. hand25d/runtime/recordings.py turns the error into an unreadable frame
(frames.BadFrameError), so one bad file does not end a recording.
"""

import math
import os
import zipfile

import numpy as np

from hand25d import png

# Integer image arrays (phase frames, amplitude, depth) need at least this many
# bits: ADC counts and depth in millimetres do not fit in 8.
MIN_INTEGER_BITS = 16


class FrameFileError(ValueError):
  """One frame's file breaks the contract (becomes an UNREADABLE frame)."""


def _npy_header(f, name: str) -> tuple[tuple[int, ...], np.dtype]:
  """(shape, dtype) from the .npy header at f's position (f is left at the data)."""
  version = np.lib.format.read_magic(f)
  if version == (1, 0):
    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
  elif version == (2, 0):
    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
  else:
    raise FrameFileError(f"{name}: .npy format version {version} is not supported")
  return tuple(int(d) for d in shape), dtype


def _check_header(name: str, shape: tuple[int, ...], dtype: np.dtype,
                  expected: tuple[int | None, ...], available_bytes: int) -> None:
  """Refuses a header whose shape is not `expected` (None: any size) or whose data is missing."""
  if dtype.hasobject or dtype.kind not in "buif":
    raise FrameFileError(f"{name}: dtype {dtype} is not numbers")
  if len(shape) != len(expected) or any(e is not None and s != e
                                         for s, e in zip(shape, expected)):
    want = tuple("T" if e is None else e for e in expected)
    raise FrameFileError(f"{name}: its header says shape {shape}, expected {want}")
  nbytes = math.prod(shape) * dtype.itemsize
  if nbytes > available_bytes:
    raise FrameFileError(f"{name}: its header says {shape} {dtype} ({nbytes} bytes) but the "
                          f"file holds {available_bytes} bytes of data (truncated?)")


def read_npy(path: str, expected: tuple[int | None, ...]) -> np.ndarray:
  """Reads a .npy file whose header must claim shape `expected` (None: any size).

  Raises:
    ValueError: naming the file, if the header disagrees or the data is short.
  """
  with open(path, "rb") as f:
    shape, dtype = _npy_header(f, path)
    _check_header(path, shape, dtype, expected, os.path.getsize(path) - f.tell())
  return np.load(path, allow_pickle=False)


def read_npz(path: str, expected: dict[str, tuple[int | None, ...]]) -> dict[str, np.ndarray]:
  """The arrays of `expected` (name -> shape, None: any size) present in a .npz file.

  Each member's header is checked before it is read; other members are not read.

  Raises:
    ValueError: naming the file and array, if a header disagrees or the data is short.
  """
  with zipfile.ZipFile(path) as zf:
    members = {n[:-len(".npy")]: n for n in zf.namelist() if n.endswith(".npy")}
    for key, shape in expected.items():
      if key in members:
        info = zf.getinfo(members[key])
        with zf.open(info) as f:
          got, dtype = _npy_header(f, f"{path}[{key}]")
          _check_header(f"{path}[{key}]", got, dtype, shape, info.file_size - f.tell())
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in expected if k in members}


def read_png16(path: str, height: int, width: int) -> np.ndarray:
  """[height, width] uint16 from a 16-bit greyscale PNG, refused by its header otherwise.

  The file's chunks are checked first (png.read): a PNG damaged on disk is
  refused, not decoded into wrong pixels.

  Raises:
    ValueError: naming the file: not a PNG, a corrupt one (a chunk CRC that
      does not match, truncated), not 16-bit greyscale (bit depth and colour
      type from the header), or another size.
  """
  try:
    image = png.read(path, ("I;16",), (width, height))
  except png.PngError as e:
    raise FrameFileError(str(e)) from e
  if image.pixels is not None:
    return image.pixels
  if image.format != "PNG":
    raise FrameFileError(f"{path}: is {image.format}, expected a 16-bit greyscale PNG")
  if image.mode != "I;16":
    raise FrameFileError(f"{path}: is {png.MODE_NAMES.get(image.mode, image.mode)} (Pillow "
                          f"mode {image.mode}), expected a 16-bit greyscale PNG; nothing is "
                          "rescaled (an 8-bit image would lose the depth or IR range)")
  raise FrameFileError(f"{path}: is {image.size[1]}x{image.size[0]} pixels, the SensorConfig "
                        f"says {height}x{width}")


def check_bits(array: np.ndarray, name: str) -> None:
  """Refuses an image array whose integers are too narrow for the sensor's range.

  The rule of the PNG path (read_png16) for arrays: nothing is rescaled, so an
  8-bit array would lose the IR, phase or depth range, as an 8-bit PNG would.
  """
  kind, bits = array.dtype.kind, array.dtype.itemsize * 8
  if kind == "f" or (kind in "iu" and bits >= MIN_INTEGER_BITS):
    return
  raise FrameFileError(f"{name}: dtype {array.dtype}, expected integers of at least "
                        f"{MIN_INTEGER_BITS} bits (e.g. uint16) or floats; nothing is rescaled "
                        "(an 8-bit array would lose the depth or IR range)")


def timestamp_seconds(value: np.ndarray, name: str) -> float:
  """A frame's timestamp_s: a finite real number of seconds, not a bool."""
  if value.dtype.kind not in "iuf":
    raise FrameFileError(f"{name}: {value.item()!r} of dtype {value.dtype} is not a number "
                          "of seconds")
  seconds = float(value)
  if not math.isfinite(seconds):
    raise FrameFileError(f"{name}: is {seconds}")
  return seconds


def clip_index(value: np.ndarray, name: str) -> int:
  """A frame's clip: an integer (or an integral float), not a bool."""
  kind = value.dtype.kind
  if kind in "iu" or (kind == "f" and float(value).is_integer()):
    return int(value)
  raise FrameFileError(f"{name}: {value.item()!r} of dtype {value.dtype} is not an integer "
                        "clip index")
