"""PNG files damaged as a disk or a copy damages them, for the corrupt-PNG tests.

`silently_damaged` makes the case Pillow alone gets wrong, whatever zlib
build it has: the pixel bytes are stored uncompressed, and the zlib stream's
Adler-32 sits in an IDAT chunk of its own, which Pillow's decoder never reaches
once it has every row. One pixel byte flipped in the first IDAT chunk (its CRC
left as written) then decodes to one wrong pixel, with no error.
"""

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, body: bytes) -> bytes:
  """One PNG chunk: length, type, data and the CRC of type and data."""
  return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def chunks(data: bytes) -> list[tuple[bytes, int, int]]:
  """(type, offset of the chunk, length of its data) of each chunk of a PNG."""
  found, offset = [], len(SIGNATURE)
  while offset < len(data):
    (length,) = struct.unpack_from(">I", data, offset)
    found.append((data[offset + 4:offset + 8], offset, length))
    offset += 12 + length
  return found


def flip(data: bytes, offset: int) -> bytes:
  """`data` with the byte at `offset` inverted."""
  damaged = bytearray(data)
  damaged[offset] ^= 0xFF
  return bytes(damaged)


def stored_png(image: np.ndarray) -> bytes:
  """A greyscale PNG of `image` ([H, W] uint8 or uint16), pixels stored uncompressed.

  The last 4 bytes of the zlib stream (its Adler-32) are in a second IDAT chunk.
  """
  height, width = image.shape
  big_endian = image.astype(f">u{image.dtype.itemsize}")
  raw = b"".join(b"\0" + row.tobytes() for row in big_endian)  # Filter type 0 per row.
  stream = zlib.compress(raw, 0)
  header = struct.pack(">IIBBBBB", width, height, image.dtype.itemsize * 8, 0, 0, 0, 0)
  return (SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", stream[:-4]) +
          chunk(b"IDAT", stream[-4:]) + chunk(b"IEND", b""))


def silently_damaged(image: np.ndarray) -> bytes:
  """stored_png(image) with the first pixel's first byte flipped (see the module docstring)."""
  data = stored_png(image)
  _, idat, _ = chunks(data)[1]
  # Chunk length and type (8), zlib header (2), stored block header (5), filter byte (1).
  return flip(data, idat + 8 + 2 + 5 + 1)
