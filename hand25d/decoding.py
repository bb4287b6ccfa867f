"""Keypoint decoding from score maps: arg-max with sub-pixel refinement.

Shared by evaluation and the on-device runtime, in numpy. A cell (row, col) of
a score map at stride s covers input pixels [col*s, col*s + s - 1]; its centre
is at x = (col + 0.5) * s - 0.5 in input pixels (pixel centres at integers).
"""

import numpy as np


def cell_to_pixel(cell: np.ndarray, stride: int) -> np.ndarray:
  """Cell coordinates (fractional allowed) at `stride` -> input pixel coordinates."""
  return (np.asarray(cell, np.float64) + 0.5) * stride - 0.5


def pixel_to_cell(pixel: np.ndarray, stride: int) -> np.ndarray:
  """Input pixel coordinates -> integer cell at `stride` (the cell containing it)."""
  return np.floor((np.asarray(pixel, np.float64) + 0.5) / stride).astype(np.int64)


def _parabola_offset(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
  """Vertex offset in [-0.5, 0.5] of the parabola through three samples."""
  curvature = left - 2.0 * centre + right
  with np.errstate(divide="ignore", invalid="ignore"):
    offset = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
  return np.clip(offset, -0.5, 0.5)


def decode(score_maps: np.ndarray, stride: int, refine: bool = True
           ) -> tuple[np.ndarray, np.ndarray]:
  """Decodes keypoints from score maps (logits).

  Args:
    score_maps: [B, H, W, C] logits, one map per keypoint channel.
    stride: resolution of the maps relative to the input.
    refine: fit a parabola through the peak and its neighbours in x and y.

  Returns:
    xy: [B, C, 2] float64 (x, y) in input pixels.
    confidence: [B, C] softmax probability of the peak cell.
  """
  maps = np.asarray(score_maps)
  if maps.ndim != 4:
    raise ValueError(f"score maps must be [B, H, W, C], got shape {maps.shape}")
  if maps.dtype.kind != "f":
    maps = maps.astype(np.float64)
  b, h, w, c = maps.shape
  # Positions x channels without a transposed copy; the softmax runs in the
  # maps' own precision (float32 from a model: about 3x faster than float64).
  flat = maps.reshape(b, h * w, c)
  peak = flat.argmax(axis=1)
  row, col = np.divmod(peak, w)
  peak_logit = np.take_along_axis(flat, peak[:, None, :], axis=1)
  confidence = 1.0 / np.exp(flat - peak_logit).sum(axis=1, dtype=np.float64)
  x, y = col.astype(np.float64), row.astype(np.float64)
  if refine:
    bi, ci = np.meshgrid(np.arange(b), np.arange(c), indexing="ij")

    def at(r, q):
      return maps[bi, np.clip(r, 0, h - 1), np.clip(q, 0, w - 1), ci].astype(np.float64)

    centre = at(row, col)
    # On the border there is no neighbour outside: no refinement on that axis.
    dx = np.where((col > 0) & (col < w - 1),
                  _parabola_offset(at(row, col - 1), centre, at(row, col + 1)), 0.0)
    dy = np.where((row > 0) & (row < h - 1),
                  _parabola_offset(at(row - 1, col), centre, at(row + 1, col)), 0.0)
    x, y = x + dx, y + dy
  xy = np.stack([cell_to_pixel(x, stride), cell_to_pixel(y, stride)], axis=-1)
  return xy, confidence
