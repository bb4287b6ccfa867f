"""Keypoint decoding from score maps: arg-max with sub-pixel refinement.

Shared by evaluation and the on-device runtime, in numpy. A cell (row, col) of
a score map at stride s covers input pixels [col*s, col*s + s - 1]; its centre
is at x = (col + 0.5) * s - 0.5 in input pixels (pixel centres at integers).

A model with a hand mask (spec.HAND_MASK, ModelConfig.hand_mask) is decoded
with it: the peak cell of each side's score map is the arg-max of the map
plus HAND_MASK_WEIGHT times the log of the probability that the cell lies on
that side's hand (the mask's softmax, bilinearly up-sampled to the score
maps, floored at HAND_MASK_FLOOR). A keypoint of the left hand is then less
often found on the right hand or on the background. The sub-cell
refinement and the confidence read the score map alone, so the mask's slope
does not pull a keypoint towards the middle of its hand. docs/training.md
("Decoding with the hand mask") measures it and how the constants were
chosen.
"""

from typing import Mapping, Optional

import numpy as np

from hand25d import spec

# Weight of the hand mask's log-probability added to the score maps, and the
# probability below which it stops counting: chosen on the validation users
# (benchmarks/hand_mask_decoding.py).
HAND_MASK_WEIGHT = 0.75
HAND_MASK_FLOOR = 1e-4


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


def _bilinear_weights(size: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Source indices and weights of a x`factor` bilinear up-sampling, cell centres aligned."""
  x = np.clip((np.arange(size * factor) + 0.5) / factor - 0.5, 0.0, size - 1.0)
  lo = np.floor(x).astype(np.int64)
  return lo, np.minimum(lo + 1, size - 1), x - lo


def hand_mask_log_prior(hand_mask: np.ndarray, mask_stride: int, stride: int) -> np.ndarray:
  """Log-probability that each score-map cell lies on each primary channel's hand.

  Args:
    hand_mask: [B, h, w, 3] logits of the classes spec.SEGMENTATION_CLASSES
      at `mask_stride` (the model's spec.HAND_MASK output).
    mask_stride: the mask's resolution relative to the input (a multiple of
      `stride`).
    stride: the score maps' resolution relative to the input.

  Returns:
    [B, h * f, w * f, spec.NUM_PRIMARY_CHANNELS] float32, f = mask_stride /
    stride: log(max(p, HAND_MASK_FLOOR)) of the side of each channel (left
    for the first spec.NUM_PRIMARY_KEYPOINTS), p the softmax bilinearly
    up-sampled with cell centres aligned.

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
  log_prior = np.log(np.maximum(prob, HAND_MASK_FLOOR), dtype=np.float32)
  return np.repeat(log_prior, spec.NUM_PRIMARY_KEYPOINTS, axis=-1)


def decode(score_maps: np.ndarray, stride: int, refine: bool = True,
           hand_mask: Optional[np.ndarray] = None,
           mask_stride: int = spec.HAND_MASK_STRIDE,
           mask_weight: float = HAND_MASK_WEIGHT) -> tuple[np.ndarray, np.ndarray]:
  """Decodes keypoints from score maps (logits).

  Args:
    score_maps: [B, H, W, C] logits, one map per keypoint channel.
    stride: resolution of the maps relative to the input.
    refine: fit a parabola through the peak and its neighbours in x and y.
    hand_mask: None, or [B, H*stride/mask_stride, W*stride/mask_stride, 3]
      hand-mask logits (the model's spec.HAND_MASK output) whose
      log-probabilities are added to the maps to pick each peak cell
      (hand_mask_log_prior; the maps must then be the 16 primary channels).
    mask_stride: the hand mask's resolution relative to the input.
    mask_weight: the weight of the hand mask's log-probabilities.

  Returns:
    xy: [B, C, 2] float64 (x, y) in input pixels.
    confidence: [B, C] softmax probability of the peak cell in the score
      map (the map alone, with or without a hand mask).

  Raises:
    ValueError: maps that are not [B, H, W, C], or a hand mask that does not
      match them.
  """
  maps = np.asarray(score_maps)
  if maps.ndim != 4:
    raise ValueError(f"score maps must be [B, H, W, C], got shape {maps.shape}")
  if maps.dtype.kind != "f":
    maps = maps.astype(np.float64)
  if hand_mask is not None:
    prior = hand_mask_log_prior(hand_mask, mask_stride, stride)
    if prior.shape != maps.shape:
      raise ValueError(f"hand mask {np.shape(hand_mask)} at stride {mask_stride} does not "
                       f"match score maps {maps.shape} at stride {stride}")
  b, h, w, c = maps.shape
  # Positions x channels without a transposed copy; the softmax runs in the
  # maps' own precision (float32 from a model: about 3x faster than float64).
  flat = maps.reshape(b, h * w, c)
  if hand_mask is None:
    peak = flat.argmax(axis=1)
  else:  # The mask picks the cell; confidence and refinement read the maps alone.
    peak = (flat + mask_weight * prior.reshape(b, h * w, c)).argmax(axis=1)
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
