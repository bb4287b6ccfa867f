"""Image files read whole, and PNGs checked before their pixels are trusted.

Pillow checks no chunk CRC when it decodes a PNG, so a file damaged on disk
(one flipped byte in its image data) can decode to wrong pixels without an
error. `read` reads the file once and, for a PNG, first has Pillow verify
it (`Image.verify`: each chunk's CRC must match, and the file must run to its
IEND chunk). Only then does Pillow read the header and, if the caller wants
this kind of image, decode the pixels; compressed image data that stops
before the last row fails that decoding, and is reported as a corrupt PNG
too.

Shared by the runtime's PNG recordings (hand25d.runtime.recordings) and the
COCO import (hand25d.data.coco_images), which decide from the header what
they accept. numpy and the standard library; Pillow is imported when the
first file is read, and never TensorFlow (the runtime imports this module).
"""

import dataclasses
import io
import struct
from typing import Container

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Pillow modes of PNG files, in the words of the PNG header.
MODE_NAMES = {
    "1": "1-bit greyscale",
    "L": "8-bit greyscale",
    "I;16": "16-bit greyscale",
    "P": "palette (indexed colour)",
    "LA": "8-bit greyscale+alpha",
    "RGB": "RGB colour",
    "RGBA": "RGBA colour (or 16-bit greyscale+alpha)",
}


class PngError(ValueError):
  """A file that cannot be read or decoded, or a corrupt PNG; the message starts with its path."""


@dataclasses.dataclass(frozen=True)
class Decoded:
  """An image file as `read` found it.

  Attributes:
    format: Pillow's name of the file format ("PNG", "JPEG", ...).
    mode: Pillow's mode, from the header ("I;16" 16-bit greyscale, "L", "P", ...;
      MODE_NAMES says them in the PNG header's words).
    size: (width, height) in pixels.
    pixels: [height, width] (or [height, width, channels]) as Pillow decodes
      them, or None if the file is not of the kind asked for.
  """
  format: str | None
  mode: str
  size: tuple[int, int]
  pixels: np.ndarray | None


def check_chunks(data: bytes, path: str) -> None:
  """Refuses a PNG (`data`, the whole file) with a damaged chunk or no IEND chunk.

  Pillow's own check (`Image.verify`: every chunk's CRC, up to IEND).

  Raises:
    PngError: naming `path` and what Pillow found.
  """
  # The PNG plugin itself, not Image.open: Image.open would hide why a damaged
  # chunk before the image data makes the file unreadable.
  from PIL import PngImagePlugin  # pylint: disable=import-outside-toplevel  (when a file is read)
  try:
    with PngImagePlugin.PngImageFile(io.BytesIO(data)) as image:
      image.verify()
  except (OSError, SyntaxError, ValueError, struct.error) as e:
    raise PngError(f"{path}: corrupt PNG: {e} (the file is damaged or truncated)") from e


def read(path: str, modes: Container[str], size: tuple[int, int] | None = None) -> Decoded:
  """Reads an image file; decodes it if it is a PNG of one of `modes` (and of `size`).

  What the header says decides before any pixel is decoded, so a file of
  another kind or size costs no decoding; the caller names what is wrong with
  it from the result.

  Args:
    path: the file.
    modes: the Pillow modes whose pixels are wanted (e.g. ("I;16",)).
    size: the (width, height) wanted, or None for any.

  Returns:
    The file's format, mode and size, and its pixels if they were wanted.

  Raises:
    PngError: starting with `path`: the file cannot be read, Pillow cannot
      open it, or it is a corrupt PNG (a chunk whose CRC does not match, no
      IEND chunk, image data that does not decode to the last row).
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel  (only when a file is read)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise PngError(f"{path}: cannot be read: {e}") from e
  if data.startswith(SIGNATURE):
    check_chunks(data, path)
  try:
    image = Image.open(io.BytesIO(data))
  except Image.UnidentifiedImageError as e:
    raise PngError(f"{path}: cannot be decoded as an image: Pillow does not recognise it as "
                   "any image format") from e
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise PngError(f"{path}: cannot be decoded as an image: {e}") from e
  with image:
    header = (image.format, image.mode, image.size)
    if (image.format != "PNG" or image.mode not in modes or
        (size is not None and image.size != size)):
      return Decoded(*header, pixels=None)
    try:
      return Decoded(*header, pixels=np.asarray(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
      # Every chunk is intact, so the compressed stream itself is bad or short.
      raise PngError(f"{path}: corrupt PNG: its image data (IDAT) does not decode: {e}") from e
