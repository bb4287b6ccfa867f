"""Keypoint decoding from score maps: arg-max with sub-pixel refinement.

Shared by evaluation and the on-device runtime, in numpy. A cell (row, col) of
a score map at stride s covers input pixels [col*s, col*s + s - 1]; its centre
is at x = (col + 0.5) * s - 0.5 in input pixels (pixel centres at integers).

The refinement is a local soft-argmax: the mean position under the softmax
of the logits / REFINE_TEMPERATURE over the (2 REFINE_RADIUS + 1)^2 cells
around the peak cell (kept symmetric about it near the map's border). It
reads the map's shape around the peak, not only its two neighbours on each
axis as a parabola does, and two near-equal cells within the window give
nearly the same position whichever of them is the peak. docs/training.md
("Sub-pixel decoding") measures it against the parabola and gives how the
constants were chosen.

A model with a hand mask (spec.HAND_MASK, ModelConfig.hand_mask) is decoded
with it: the peak cell of each side's score map is the arg-max of the map
plus HAND_MASK_WEIGHT times the log of the probability that the cell lies on
that side's hand (the mask's softmax, bilinearly up-sampled to the score
maps, floored at HAND_MASK_FLOOR). A keypoint of the left hand is then less
often found on the right hand or on the background. The refinement and
the confidence read the score map alone, so the mask's slope does not pull
a keypoint towards the middle of its hand; a stronger peak of the map that
the mask demoted, within the refinement's window, can still pull the
keypoint towards it (rare: docs/training.md, "Sub-pixel decoding").
docs/training.md ("Decoding with the hand mask") measures the mask and how
its constants were chosen.
"""

from typing import Mapping, Optional

import numpy as np

from hand25d import spec

# Weight of the hand mask's log-probability added to the score maps, and the
# probability below which it stops counting: chosen on the validation users
# (benchmarks/hand_mask_decoding.py).
HAND_MASK_WEIGHT = 0.75
HAND_MASK_FLOOR = 1e-4
# The refinement's window (cells either side of the peak, at the maps'
# stride) and the temperature of its softmax (logits): chosen on the
# validation users (benchmarks/refinement.py).
REFINE_RADIUS = 5
REFINE_TEMPERATURE = 0.35


def cell_to_pixel(cell: np.ndarray, stride: int) -> np.ndarray:
  """Cell coordinates (fractional allowed) at `stride` -> input pixel coordinates."""
  return (np.asarray(cell, np.float64) + 0.5) * stride - 0.5


def pixel_to_cell(pixel: np.ndarray, stride: int) -> np.ndarray:
  """Input pixel coordinates -> integer cell at `stride` (the cell containing it)."""
  return np.floor((np.asarray(pixel, np.float64) + 0.5) / stride).astype(np.int64)


def _local_soft_argmax(maps: np.ndarray, row: np.ndarray, col: np.ndarray, radius: int,
                       temperature: float) -> tuple[np.ndarray, np.ndarray]:
  """Mean (row, col) offset from each peak under the softmax of its window.

  The window is symmetric about the peak on each axis: near the map's border
  it shrinks to the cells that exist on both sides (none on the border
  itself), so a one-sided window does not pull the keypoint inwards (on a
  flat map, towards the middle of the window).

  Args:
    maps: [B, H, W, C] logits.
    row, col: [B, C] integer peak cells.
    radius: cells either side of the peak.
    temperature: the logits are divided by it.

  Returns:
    (d_row, d_col), each [B, C] float64, within [-radius, radius]; 0 where
    the window holds infinite logits (no position to refine to).
  """
  b, h, w, c = maps.shape
  offsets = np.arange(-radius, radius + 1)
  reach_rows = np.minimum(np.minimum(row, h - 1 - row), radius)[..., None]  # [B, C, 1]
  reach_cols = np.minimum(np.minimum(col, w - 1 - col), radius)[..., None]
  inside = ((np.abs(offsets) <= reach_rows)[..., :, None]
            & (np.abs(offsets) <= reach_cols)[..., None, :])  # [B, C, K, K]
  bi = np.arange(b)[:, None, None, None]
  ci = np.arange(c)[None, :, None, None]
  rows = np.clip(row[..., None] + offsets, 0, h - 1)
  cols = np.clip(col[..., None] + offsets, 0, w - 1)
  window = maps[bi, rows[..., :, None], cols[..., None, :], ci].astype(np.float64)
  logits = np.where(inside, window / temperature, -np.inf)
  with np.errstate(invalid="ignore"):  # inf - inf: NaN, replaced below.
    weights = np.exp(logits - logits.max(axis=(-2, -1), keepdims=True))
    weights /= weights.sum(axis=(-2, -1), keepdims=True)
    d_row, d_col = weights.sum(axis=-1) @ offsets, weights.sum(axis=-2) @ offsets
  return (np.where(np.isfinite(d_row), d_row, 0.0), np.where(np.isfinite(d_col), d_col, 0.0))


def _bilinear_weights(size: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Source indices and weights of a x`factor` bilinear up-sampling, cell centres aligned."""
  x = np.clip((np.arange(size * factor) + 0.5) / factor - 0.5, 0.0, size - 1.0)
  lo = np.floor(x).astype(np.int64)
  return lo, np.minimum(lo + 1, size - 1), x - lo


def hand_mask_log_prior(hand_mask: np.ndarray, mask_stride: int, stride: int) -> np.ndarray:
  """Log-probability that each score-map cell lies on each hand.

  Args:
    hand_mask: [B, h, w, 3] logits of the classes spec.SEGMENTATION_CLASSES
      at `mask_stride` (the model's spec.HAND_MASK output).
    mask_stride: the mask's resolution relative to the input (a multiple of
      `stride`).
    stride: the score maps' resolution relative to the input.

  Returns:
    [B, h * f, w * f, 2] float32, f = mask_stride / stride: log(max(p,
    HAND_MASK_FLOOR)) for the left and the right hand (spec.SIDES), p the
    softmax bilinearly up-sampled with cell centres aligned.

  Raises:
    ValueError: a mask that is not [B, h, w, 3], or strides that do not nest.
  """
  mask = np.asarray(hand_mask, np.float32)
  if mask.ndim != 4 or mask.shape[-1] != spec.NUM_SEGMENTATION_CLASSES:
    raise ValueError(f"hand mask must be [B, h, w, {spec.NUM_SEGMENTATION_CLASSES}], got shape "
                     f"{mask.shape}")
  if stride <= 0 or mask_stride % stride:
    raise ValueError(f"hand mask stride {mask_stride} is not a multiple of the score maps' "
                     f"stride {stride}")
  sides = mask[..., list(spec.SIDE_SEGMENTATION_CLASS)]
  prob = np.exp(sides - mask.max(axis=-1, keepdims=True))
  prob /= np.exp(mask - mask.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True)
  factor = mask_stride // stride
  r0, r1, tr = _bilinear_weights(mask.shape[1], factor)
  c0, c1, tc = _bilinear_weights(mask.shape[2], factor)
  tr, tc = tr[None, :, None, None], tc[None, None, :, None]
  rows = prob[:, r0] * (1.0 - tr) + prob[:, r1] * tr
  prob = rows[:, :, c0] * (1.0 - tc) + rows[:, :, c1] * tc
  return np.log(np.maximum(prob, HAND_MASK_FLOOR), dtype=np.float32)


def decode(score_maps: np.ndarray, stride: int, refine: bool = True,
           hand_mask: Optional[np.ndarray] = None,
           mask_stride: int = spec.HAND_MASK_STRIDE,
           mask_weight: float = HAND_MASK_WEIGHT,
           refine_radius: int = REFINE_RADIUS,
           refine_temperature: float = REFINE_TEMPERATURE) -> tuple[np.ndarray, np.ndarray]:
  """Decodes keypoints from score maps (logits).

  Args:
    score_maps: [B, H, W, C] logits, one map per keypoint channel.
    stride: resolution of the maps relative to the input.
    refine: move each keypoint from its peak cell's centre to the local
      soft-argmax around it (the module docstring).
    hand_mask: None, or [B, H*stride/mask_stride, W*stride/mask_stride, 3]
      hand-mask logits (the model's spec.HAND_MASK output) whose
      log-probabilities are added to the maps to pick each peak cell
      (hand_mask_log_prior; the maps must then be the 16 primary channels).
    mask_stride: the hand mask's resolution relative to the input.
    mask_weight: the weight of the hand mask's log-probabilities.
    refine_radius: the refinement's window, cells either side of the peak.
    refine_temperature: the refinement's softmax temperature (logits).

  Returns:
    xy: [B, C, 2] float64 (x, y) in input pixels.
    confidence: [B, C] softmax probability of the peak cell in the score
      map (the map alone, with or without a hand mask).

  Raises:
    ValueError: maps that are not [B, H, W, C], a hand mask that does not
      match them, or a radius that is not an integer >= 0 or a temperature
      that is not > 0.
  """
  maps = np.asarray(score_maps)
  if maps.ndim != 4:
    raise ValueError(f"score maps must be [B, H, W, C], got shape {maps.shape}")
  if (not isinstance(refine_radius, (int, np.integer)) or refine_radius < 0
      or not refine_temperature > 0):
    raise ValueError(f"refinement needs an integer radius >= 0 and a temperature > 0, got "
                     f"{refine_radius!r} and {refine_temperature!r}")
  if maps.dtype.kind != "f":
    maps = maps.astype(np.float64)
  b, h, w, c = maps.shape
  if hand_mask is not None:
    prior = hand_mask_log_prior(hand_mask, mask_stride, stride)
    if prior.shape[:3] != maps.shape[:3] or c != spec.NUM_PRIMARY_CHANNELS:
      raise ValueError(f"hand mask {np.shape(hand_mask)} at stride {mask_stride} does not "
                       f"match score maps {maps.shape} at stride {stride}")
  # Positions x channels without a transposed copy; the softmax runs in the
  # maps' own precision (float32 from a model: about 3x faster than float64).
  flat = maps.reshape(b, h * w, c)
  if hand_mask is None:
    peak = flat.argmax(axis=1)
  else:  # The mask picks the cell; confidence and refinement read the maps alone.
    # Each side's prior broadcast over its keypoints' channels (left first).
    sides = flat.reshape(b, h * w, spec.NUM_SIDES, spec.NUM_PRIMARY_KEYPOINTS)
    peak = (sides + mask_weight * prior.reshape(b, h * w, -1, 1)).argmax(axis=1).reshape(b, c)
  row, col = np.divmod(peak, w)
  peak_logit = np.take_along_axis(flat, peak[:, None, :], axis=1)
  confidence = 1.0 / np.exp(flat - peak_logit).sum(axis=1, dtype=np.float64)
  x, y = col.astype(np.float64), row.astype(np.float64)
  if refine:
    dy, dx = _local_soft_argmax(maps, row, col, refine_radius, refine_temperature)
    x, y = x + dx, y + dy
  xy = np.stack([cell_to_pixel(x, stride), cell_to_pixel(y, stride)], axis=-1)
  return xy, confidence


def decode_outputs(outputs: Mapping[str, np.ndarray], refine: bool = True
                   ) -> tuple[np.ndarray, np.ndarray]:
  """`decode` of a model's outputs: its keypoints, with its hand mask if it has one.

  Args:
    outputs: output name (spec) -> array; needs spec.KEYPOINTS [B, H/2, W/2,
      16]; spec.HAND_MASK [B, H/8, W/8, 3] is used if present.
    refine: as in `decode`.

  Returns:
    (xy [B, 16, 2] in input pixels, confidence [B, 16]), as `decode`.
  """
  return decode(outputs[spec.KEYPOINTS], spec.OUTPUT_STRIDE, refine,
                hand_mask=outputs.get(spec.HAND_MASK))
