"""The image files of a COCO import, read by what they are (docs/data_format.md).

Each file is read with hand25d.png, which first checks a PNG's chunks (each
CRC, and the IEND chunk at the end): Pillow would decode a damaged file into
wrong pixels without an error. Pillow then reads the PNG header: the colour
type and bit depth give Pillow's mode ("I;16" for 16-bit greyscale, "L" for
8-bit greyscale, "P" for a palette image, "LA", "RGB", "RGBA", ...). A file is
accepted only in the modes the contract allows for its role, so nothing is
rescaled or colour-converted behind the caller's back: an 8-bit depth file is
not multiplied by 257, a palette mask's indices are read as indices (not as
grey luminance), and a colour file is not averaged to grey. The values are then
checked against their units: mask classes in range, depth plausible in mm.
"""

import os

import numpy as np

from hand25d import png
from hand25d import spec

# Depth is z in millimetres. A valid pixel deeper than this is another unit (e.g.
# 0.1 mm) or a sentinel such as 65535 for "invalid" (the contract uses 0): hand-range
# time-of-flight sensors measure a few metres at most.
MAX_DEPTH_MM = 10_000
# A frame whose valid depth has its median nearer than this holds metres or
# centimetres, not millimetres (the sensor's working range starts at 150 mm).
MIN_MEDIAN_DEPTH_MM = 100

# What each file may be: role -> Pillow modes accepted, and how the contract says it.
ACCEPTED_MODES = {
    "amplitude": (("I;16",), "a 16-bit greyscale PNG of ADC counts"),
    "depth": (("I;16",), "a 16-bit greyscale PNG of z-depth in millimetres"),
    "mask": (("L", "P"), "an 8-bit greyscale or palette PNG of segmentation class indices"),
}
class ImageFileError(ValueError):
  """An image file is missing, outside the image root or not what its role needs.

  The message names the file; coco.py adds the COCO file and image id.
  """


def resolve(root: str, rel, role: str) -> str:
  """The path of `rel` inside `root`.

  A path from the JSON must stay inside the image root: an absolute path or one
  whose normalised form climbs out with '..' is refused. The check is on the
  path as written; symbolic links inside the root are followed, since whoever
  owns the root put them there.

  Raises:
    ImageFileError: if rel is not a non-empty string or leaves the root.
  """
  if not isinstance(rel, str) or not rel:
    raise ImageFileError(f"{role} path must be a non-empty string relative to the image root, "
                         f"got {rel!r}")
  norm = os.path.normpath(rel)
  if os.path.isabs(rel) or norm == os.pardir or norm.startswith(os.pardir + os.sep):
    raise ImageFileError(f"{role} path {rel!r} is outside the image root {root}; paths must be "
                         "relative to the root and stay inside it")
  return os.path.join(root, norm)


def read_png(path: str, role: str) -> np.ndarray:
  """Reads a single-channel PNG for `role` ('amplitude', 'depth' or 'mask').

  Returns:
    [H, W] uint16 (amplitude, depth in mm) or uint8 class indices (mask).

  Raises:
    ImageFileError: missing, not a PNG, not decodable, a corrupt PNG (a chunk
      CRC that does not match, truncated: png.read), of a kind the role does
      not accept (see ACCEPTED_MODES), or with values out of range for the role.
  """
  if not os.path.isfile(path):
    raise ImageFileError(f"{role} file {path} does not exist")
  modes, wanted = ACCEPTED_MODES[role]
  try:
    decoded = png.read(path, modes)
  except png.PngError as e:
    raise ImageFileError(f"{role} file {e}") from e
  if decoded.format != "PNG":
    raise ImageFileError(f"{role} file {path} is {decoded.format}, expected {wanted}")
  image = decoded.pixels
  if image is None:
    raise ImageFileError(f"{role} file {path} is "
                         f"{png.MODE_NAMES.get(decoded.mode, decoded.mode)}, expected "
                         f"{wanted}; convert it explicitly (nothing is rescaled or "
                         "colour-converted on import)")
  if role == "depth":
    _check_depth(image, path)
  if role == "mask":
    _check_mask(image, path)
  return image


def _check_depth(depth_mm: np.ndarray, path: str) -> None:
  valid = depth_mm[depth_mm > 0]
  if not valid.size:
    return
  deep = int(np.count_nonzero(valid > MAX_DEPTH_MM))
  if deep:
    raise ImageFileError(
        f"depth file {path}: {deep} pixels are deeper than {MAX_DEPTH_MM} mm (max "
        f"{int(valid.max())}); depth must be z in millimetres with 0 for invalid pixels, not "
        "another unit or a sentinel such as 65535")
  median = float(np.median(valid))
  if median < MIN_MEDIAN_DEPTH_MM:
    raise ImageFileError(
        f"depth file {path}: the median valid depth is {median:g} mm, nearer than "
        f"{MIN_MEDIAN_DEPTH_MM} mm; depth must be z in millimetres, not metres or centimetres")


def _check_mask(seg: np.ndarray, path: str) -> None:
  bad = seg >= spec.NUM_SEGMENTATION_CLASSES
  if np.any(bad):
    values = np.unique(seg[bad])
    raise ImageFileError(
        f"mask file {path}: {int(np.count_nonzero(bad))} pixels hold classes "
        f"{values[:8].tolist()}, outside [0, {spec.NUM_SEGMENTATION_CLASSES}) "
        f"({', '.join(spec.SEGMENTATION_CLASSES)})")
