"""hand25d.png: a damaged PNG is refused naming the file and the chunk, an intact one is read."""

import io
import re
import zlib

import numpy as np
from PIL import Image
from PIL import PngImagePlugin
import pytest

import damaged_png
from hand25d import png

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 4000, (24, 32)).astype(np.uint16)


def _pillow_png(image: np.ndarray, **options) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG", **options)
  return buffer.getvalue()


def _write(tmp_path, data: bytes) -> str:
  path = str(tmp_path / "0.png")
  with open(path, "wb") as f:
    f.write(data)
  return path


def _idat(data: bytes) -> tuple[int, int]:
  """(offset of the first IDAT chunk's data, its length)."""
  offset, length = next((o, n) for kind, o, n in damaged_png.chunks(data) if kind == b"IDAT")
  return offset + 8, length


def test_an_intact_png_is_decoded_only_if_of_the_kind_asked_for(tmp_path):
  path = _write(tmp_path, _pillow_png(IMAGE))
  decoded = png.read(path, ("I;16",), (32, 24))
  assert (decoded.format, decoded.mode, decoded.size) == ("PNG", "I;16", (32, 24))
  np.testing.assert_array_equal(decoded.pixels, IMAGE)
  assert png.read(path, ("L", "P")).pixels is None  # Another kind: not decoded.
  assert png.read(path, ("I;16",), (24, 32)).pixels is None  # Another size.
  stored = _write(tmp_path, damaged_png.stored_png(IMAGE))  # Two IDAT chunks, uncompressed.
  np.testing.assert_array_equal(png.read(stored, ("I;16",)).pixels, IMAGE)


def test_a_flipped_pixel_byte_pillow_decodes_silently_is_refused(tmp_path):
  data = damaged_png.silently_damaged(IMAGE)
  garbage = np.asarray(Image.open(io.BytesIO(data)))  # Pillow alone: no error, a wrong pixel.
  assert np.count_nonzero(garbage != IMAGE) == 1
  path = _write(tmp_path, data)
  with pytest.raises(png.PngError, match=f"^{re.escape(path)}: corrupt PNG: .*checksum in "
                     "b'IDAT'"):
    png.read(path, ("I;16",))


@pytest.mark.parametrize("where", [0, 0.25, 0.5, 0.75, -5, -1])
def test_a_flipped_byte_anywhere_in_the_image_data_is_refused(tmp_path, where):
  data = _pillow_png(IMAGE)
  start, length = _idat(data)
  offset = start + (int(where * length) if isinstance(where, float) else where % length)
  path = _write(tmp_path, damaged_png.flip(data, offset))
  with pytest.raises(png.PngError, match="corrupt PNG: .*checksum in b'IDAT'"):
    png.read(path, ("I;16",))


def test_a_bad_crc_in_another_chunk_names_it(tmp_path):
  info = PngImagePlugin.PngInfo()
  info.add_text("camera", "tof-7")
  data = _pillow_png(IMAGE, pnginfo=info)
  text = next(offset for kind, offset, _ in damaged_png.chunks(data) if kind == b"tEXt")
  path = _write(tmp_path, damaged_png.flip(data, text + 9))
  with pytest.raises(png.PngError, match="corrupt PNG: .*checksum in b'tEXt'"):
    png.read(path, ("I;16",))
  path = _write(tmp_path, damaged_png.flip(data, 8 + 8))  # IHDR's width.
  with pytest.raises(png.PngError, match="corrupt PNG: .*IHDR"):
    png.read(path, ("I;16",))


def test_a_truncated_png_is_refused(tmp_path):
  data = _pillow_png(IMAGE)
  path = _write(tmp_path, data[:-12])  # All but IEND: Pillow alone decodes it.
  with pytest.raises(png.PngError, match="corrupt PNG: .*truncated"):
    png.read(path, ("I;16",))
  start, length = _idat(data)
  path = _write(tmp_path, data[:start + length // 2])
  with pytest.raises(png.PngError, match="corrupt PNG: .*truncated"):
    png.read(path, ("I;16",))


def test_image_data_that_stops_early_under_a_good_crc_is_refused(tmp_path):
  stream = zlib.compress(b"".join(b"\0" + row.astype(">u2").tobytes() for row in IMAGE))
  data = damaged_png.stored_png(IMAGE)
  _, first_idat, _ = damaged_png.chunks(data)[1]
  short = (data[:first_idat] + damaged_png.chunk(b"IDAT", stream[:len(stream) // 2]) +
           damaged_png.chunk(b"IEND", b""))
  path = _write(tmp_path, short)
  with pytest.raises(png.PngError, match="corrupt PNG: its image data \\(IDAT\\) does not "
                     "decode"):
    png.read(path, ("I;16",))


def test_what_is_not_a_png(tmp_path):
  jpeg = io.BytesIO()
  Image.fromarray(np.full((8, 8), 9, np.uint8)).save(jpeg, format="JPEG")
  decoded = png.read(_write(tmp_path, jpeg.getvalue()), ("L",))
  assert decoded.format == "JPEG" and decoded.pixels is None
  path = _write(tmp_path, b"not an image")
  with pytest.raises(png.PngError, match=f"^{re.escape(path)}: cannot be decoded as an "
                     "image: Pillow does not recognise"):
    png.read(path, ("I;16",))
  with pytest.raises(png.PngError, match="missing.png: cannot be read: .*No such file"):
    png.read(str(tmp_path / "missing.png"), ("I;16",))
