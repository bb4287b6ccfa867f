"""Checks of incoming frames: a bad frame is reported and skipped.

A stream of TOF frames can carry anything a real sensor or driver produces:
a dropped phase frame, a wrong buffer, NaN from an upstream filter, a
saturated exposure, depth in other units than declared.
`check_phase_frames` (four phase frames) and `check_amplitude_depth` (an
amplitude or IR image with its depth image) name what is wrong so the
runtime can report the frame, skip it and go on with the next one.
"""

import dataclasses
from typing import Sequence

import numpy as np

from hand25d import sensor
from hand25d import spec

# Kinds of bad frame, as reported in FrameResult.error_kind.
WRONG_SHAPE = "wrong_shape"
WRONG_DTYPE = "wrong_dtype"
NON_FINITE = "non_finite"
MISSING_PHASE = "missing_phase_frame"
SATURATED = "saturated"
NO_VALID_DEPTH = "no_valid_depth"
WRONG_UNITS = "wrong_units"  # Depth not in the units declared (metres, or depth_unit_m).
UNREADABLE = "unreadable"  # A recorded frame whose file cannot be read.
BAD_FRAME_KINDS = (WRONG_SHAPE, WRONG_DTYPE, NON_FINITE, MISSING_PHASE, SATURATED,
                   NO_VALID_DEPTH, WRONG_UNITS, UNREADABLE)

# Plausible z-depth of a valid pixel for hand tracking with a TOF or depth
# camera: none deeper than MAX_DEPTH_M (a deeper one means other units, or a
# sentinel such as 65535 where 0 should mark invalid), and a mean no nearer than
# MIN_MEAN_DEPTH_M (nearer means metres read as millimetres, or centimetres).
MAX_DEPTH_M = 10.0
MIN_MEAN_DEPTH_M = 0.1


class BadFrameError(ValueError):
  """A frame that cannot be processed; `kind` is one of BAD_FRAME_KINDS."""

  def __init__(self, kind: str, message: str):
    super().__init__(f"{kind}: {message}")
    self.kind = kind


@dataclasses.dataclass(frozen=True)
class FrameChecks:
  max_saturated_fraction: float = 0.5  # Of all pixels, in any phase frame.
  min_valid_depth_fraction: float = 0.001  # Of all pixels, after filtering.


# Phase frames are ADC counts 0..sensor.ADC_MAX. Integer arrays of at least
# MIN_PHASE_BITS bits (signed or unsigned, either byte order) can hold them;
# narrower ones (int8, uint8: e.g. an 8-bit preview image) cannot, and are
# refused rather than read as counts 16 times too small.
MIN_PHASE_BITS = 16


def _check_phase_dtype(dtype: np.dtype, what: str) -> None:
  """Raises BadFrameError unless `dtype` may hold phase frames (see check_phase_frames)."""
  if (dtype.kind in "iu" and dtype.itemsize * 8 >= MIN_PHASE_BITS) or dtype.kind == "f":
    return
  raise BadFrameError(WRONG_DTYPE, f"{what} has dtype {dtype}; expected ADC counts "
                      f"0..{sensor.ADC_MAX} as integers of at least {MIN_PHASE_BITS} bits "
                      "(e.g. uint16, any byte order) or integral-valued floats")


def check_phase_frames(frames: np.ndarray | Sequence[np.ndarray | None],
                       checks: FrameChecks = FrameChecks(),
                       height: int = spec.SENSOR.height, width: int = spec.SENSOR.width
                       ) -> np.ndarray:
  """Validates the phase frames of one capture and returns them as [4, H, W] uint16.

  Every way phase frames enter the runtime goes through here, with one rule
  for their values: ADC counts 0..sensor.ADC_MAX, given as integers of at
  least MIN_PHASE_BITS bits (int16, uint16, int32, uint32, int64, uint64, in
  either byte order), or as floats that are finite and integral-valued.
  Narrower integers (int8, uint8), bool and anything else are refused, and so
  are fractional floats (e.g. frames normalised to [0, 1]): they are not
  counts, and rounding them would hide that.

  Args:
    frames: the spec.NUM_PHASE_FRAMES phase frames, as one array or a sequence
      (None for a frame that never arrived).
    checks: thresholds.
    height, width: the sensor resolution expected.

  Returns:
    [4, H, W] native uint16 array of the frames (the input itself if it is one).

  Raises:
    BadFrameError: naming the kind of problem and what was seen.
  """
  n = spec.NUM_PHASE_FRAMES
  if not isinstance(frames, np.ndarray):
    try:
      frames = list(frames)
    except TypeError as e:
      raise BadFrameError(WRONG_DTYPE, f"expected phase frames, got {type(frames).__name__}"
                          ) from e
    missing = [i for i, f in enumerate(frames) if f is None or np.size(f) == 0]
    if missing or len(frames) != n:
      raise BadFrameError(MISSING_PHASE, f"expected {n} phase frames, missing "
                          f"{missing or list(range(len(frames), n))}")
    shapes = {np.shape(f) for f in frames}
    if len(shapes) != 1:
      raise BadFrameError(WRONG_SHAPE, f"phase frames have different shapes {sorted(shapes)}")
    frames = [np.asarray(f) for f in frames]
    # Each frame by itself: stacking would promote e.g. int8 with uint16 to int16.
    for i, f in enumerate(frames):
      _check_phase_dtype(f.dtype, f"phase frame {i}")
    frames = np.stack(frames)
  _check_phase_dtype(frames.dtype, "phase frames")
  if frames.ndim == 3 and frames.shape[0] != n and frames.shape[1:] == (height, width):
    raise BadFrameError(MISSING_PHASE, f"expected {n} phase frames, got {frames.shape[0]}")
  if frames.shape != (n, height, width):
    raise BadFrameError(WRONG_SHAPE, f"expected shape {(n, height, width)}, got {frames.shape}")
  if frames.dtype.kind == "f":
    finite = np.isfinite(frames)
    if not finite.all():
      raise BadFrameError(NON_FINITE, f"{frames.size - np.count_nonzero(finite)} "
                          "NaN or Inf values")
    fractional = frames != np.floor(frames)
    if fractional.any():
      first = tuple(int(i) for i in np.argwhere(fractional)[0])
      looks_normalised = " (they look normalised to [0, 1])" if frames.max() <= 1.0 else ""
      raise BadFrameError(
          WRONG_DTYPE, f"float phase frames must be integral-valued ADC counts 0.."
          f"{sensor.ADC_MAX}, but {np.count_nonzero(fractional)} of {frames.size} values are "
          f"fractional, e.g. {float(frames[first]):g} at {list(first)}{looks_normalised}; pass "
          "the sensor's counts, not normalised or scaled values")
  if frames.min() < 0 or frames.max() > sensor.ADC_MAX:
    raise BadFrameError(WRONG_DTYPE, f"values outside the ADC range [0, {sensor.ADC_MAX}] "
                        f"(min {frames.min()}, max {frames.max()}, dtype {frames.dtype})")
  frames = frames.astype(np.uint16, copy=False)  # Exact: checked integral and in range.
  flat = frames.reshape(n, -1)
  dead = [i for i in range(n) if not flat[i].any()]
  if dead:
    raise BadFrameError(MISSING_PHASE, f"phase frames {dead} are all zero")
  # Counting is the costliest check: only when some pixel is saturated at all.
  saturated = (np.count_nonzero(flat >= sensor.ADC_MAX, axis=1).max() / flat.shape[1]
               if flat.max() >= sensor.ADC_MAX else 0.0)
  if saturated > checks.max_saturated_fraction:
    raise BadFrameError(SATURATED, f"{saturated:.0%} of pixels saturated (limit "
                        f"{checks.max_saturated_fraction:.0%})")
  return frames


def _image(x, what: str, height: int, width: int) -> np.ndarray:
  """x as an [height, width] array of real numbers (BadFrameError otherwise)."""
  if x is None:
    raise BadFrameError(WRONG_SHAPE, f"no {what} image")
  x = np.asarray(x)
  if x.dtype.kind not in "uif":
    raise BadFrameError(WRONG_DTYPE, f"{what} must be integers or floats, got {x.dtype}")
  if x.shape != (height, width):
    raise BadFrameError(WRONG_SHAPE, f"{what} must have shape {(height, width)} (the "
                        f"SensorConfig's), got {x.shape}")
  return x


def check_amplitude_depth(amplitude, depth, height: int, width: int, depth_unit_m: float
                          ) -> tuple[np.ndarray, np.ndarray]:
  """Validates an amplitude (IR) image and its depth image; returns them, depth in metres.

  Args:
    amplitude: [H, W] amplitude or IR counts, integers or finite floats >= 0.
    depth: [H, W] z-depth: floats in metres, or integers in units of
      `depth_unit_m` metres; 0 marks invalid pixels (and for floats, NaN or
      Inf too).
    height, width: the resolution expected (sensor.SensorConfig).
    depth_unit_m: metres per unit of integer depth.

  Returns:
    The amplitude as given, and [H, W] float32 depth in metres (0 = invalid).

  Raises:
    BadFrameError: wrong shape or dtype, non-finite or negative amplitude,
      negative depth, or depth implausible in the units declared
      (WRONG_UNITS: a valid pixel deeper than MAX_DEPTH_M, or a mean nearer
      than MIN_MEAN_DEPTH_M).
  """
  amplitude = _image(amplitude, "amplitude", height, width)
  depth = _image(depth, "depth", height, width)
  if amplitude.dtype.kind == "f" and not np.all(np.isfinite(amplitude)):
    bad = np.size(amplitude) - np.count_nonzero(np.isfinite(amplitude))
    raise BadFrameError(NON_FINITE, f"amplitude has {bad} NaN or Inf values")
  if amplitude.dtype.kind != "u" and amplitude.min() < 0:
    raise BadFrameError(WRONG_DTYPE, f"amplitude has negative values (min {amplitude.min()})")
  if depth.dtype.kind == "f":
    metres = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    units = "metres (float depth)"
  else:
    metres = depth.astype(np.float32) * np.float32(depth_unit_m)
    units = f"units of {depth_unit_m:g} m (integer depth, SensorConfig.depth_unit_m)"
  if depth.dtype.kind != "u" and metres.min() < 0:
    raise BadFrameError(WRONG_DTYPE, f"depth has negative values (min {metres.min():g} m)")
  valid = metres > 0
  count = int(np.count_nonzero(valid))
  if count:
    deepest = float(metres.max())
    if deepest > MAX_DEPTH_M:
      raise BadFrameError(WRONG_UNITS, f"depth read as {units} has pixels {deepest:g} m deep, "
                          f"beyond {MAX_DEPTH_M:g} m: other units, or a sentinel where 0 "
                          "should mark invalid pixels")
    mean = float(metres.sum(dtype=np.float64)) / count
    if mean < MIN_MEAN_DEPTH_M:
      raise BadFrameError(WRONG_UNITS, f"depth read as {units} has a mean valid depth of "
                          f"{mean:g} m, nearer than {MIN_MEAN_DEPTH_M:g} m: other units "
                          "(e.g. metres read as millimetres)")
  return amplitude, metres


def check_depth(depth: np.ndarray, checks: FrameChecks = FrameChecks()) -> None:
  """Raises BadFrameError if (almost) no pixel has valid depth."""
  valid = np.mean(depth > 0)
  if valid < checks.min_valid_depth_fraction:
    raise BadFrameError(NO_VALID_DEPTH, f"{valid:.2%} of pixels have valid depth (need "
                        f"{checks.min_valid_depth_fraction:.2%})")
