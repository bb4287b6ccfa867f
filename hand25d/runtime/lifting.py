"""Lifting 2D keypoints to 2.5D with the measured depth image (docs/runtime.md).

The paper lifts its 2D predictions "using simple filtering and heuristics to
ensure valid depth". Here, for each keypoint:

1. Take the valid depths (> 0, finite, inside the working range) in a small
   window around the keypoint; with a hand mask, only pixels on that hand.
2. Reject flying pixels and background: a keypoint near the edge of the
   hand sees both the hand and what is behind it, so keep the *front* cluster:
   the depths within `cluster_tolerance_m` of the window's near quantile.
3. Depth = median of that cluster.
4. Fallbacks: grow the window up to `max_window`; then the median depth of
   the hand's other lifted keypoints; else the keypoint is left unlifted (NaN).

`hand_depths` and `lift_hand` add hand-mask awareness without a segmentation
output (the deployed network predicts only keypoints and presence): the hand
is segmented from the depth image itself as the pixels within
`hand_depth_band_m` of the hand's median keypoint depth. A keypoint whose
depth falls outside that band (a distractor in front of it, the wall behind
a fingertip at the edge) is looked up again among the hand's pixels only.

The keypoint is then back-projected with the pinhole intrinsics to
camera-space metres (x right, y down, z forward).
"""

import dataclasses

import numpy as np

from hand25d import spec

# How a keypoint's depth was found.
SOURCE_WINDOW = "window"
SOURCE_WIDE_WINDOW = "wide_window"
SOURCE_HAND = "hand_median"
SOURCE_NONE = "none"


@dataclasses.dataclass(frozen=True)
class LiftConfig:
  """Heuristics of the depth look-up (sizes in sensor pixels)."""
  window: int = 5  # Odd side of the first window.
  max_window: int = 13  # Largest window tried before the hand fallback.
  min_valid: int = 3  # Valid depths a window needs.
  near_quantile: float = 0.2  # Where the front cluster starts.
  cluster_tolerance_m: float = 0.03  # Depth spread of the front cluster.
  hand_depth_band_m: float = 0.15  # Half-depth of the hand mask around its median.
  min_depth_m: float = spec.SENSOR.min_depth_m * 0.5
  max_depth_m: float = spec.SENSOR.max_depth_m * 1.5

  def __post_init__(self):
    if self.window % 2 == 0 or self.max_window % 2 == 0 or self.window > self.max_window:
      raise ValueError(f"windows must be odd with window <= max_window, got "
                       f"{self.window} and {self.max_window}")


def _windows(depth: np.ndarray, mask: np.ndarray | None, x: float, y: float,
             near_m: float, far_m: float, cfg: LiftConfig):
  """The valid depths of each window around (x, y), smallest first, as (size, values).

  Valid: finite, in [near_m, far_m] and in the mask. The largest window is
  cut and validated once; each size is a view into it.
  """
  h, w = depth.shape
  col, row = int(round(x)), int(round(y))
  big = cfg.max_window // 2
  if not (-big <= row < h + big and -big <= col < w + big):
    return
  r0, c0 = max(row - big, 0), max(col - big, 0)
  patch = depth[r0:row + big + 1, c0:col + big + 1]
  ok = np.isfinite(patch) & (patch >= near_m) & (patch <= far_m)
  if mask is not None:
    ok &= mask[r0:row + big + 1, c0:col + big + 1]
  for size in range(cfg.window, cfg.max_window + 1, 2):
    r = size // 2
    rows = slice(max(row - r, 0) - r0, max(row + r + 1 - r0, 0))
    cols = slice(max(col - r, 0) - c0, max(col + r + 1 - c0, 0))
    yield size, patch[rows, cols][ok[rows, cols]]


def _front_depth(values: np.ndarray, cfg: LiftConfig) -> float | None:
  """Median of the front cluster of a window's valid depths; None if too few."""
  n = values.size
  if n < cfg.min_valid:
    return None
  # On the sorted values: np.quantile (linear interpolation), the front
  # cluster as a prefix, and its median; a few times faster than the calls.
  values = np.sort(values)
  pos = cfg.near_quantile * (n - 1)
  lo = int(pos)
  near = values[lo] + (values[min(lo + 1, n - 1)] - values[lo]) * (pos - lo)
  m = int(np.searchsorted(values, near + cfg.cluster_tolerance_m, side="right"))
  return 0.5 * (float(values[(m - 1) // 2]) + float(values[m // 2]))


def keypoint_depths(depth: np.ndarray, xy: np.ndarray, valid: np.ndarray,
                    mask: np.ndarray | None = None, cfg: LiftConfig = LiftConfig(),
                    depth_range: tuple[float, float] | None = None
                    ) -> tuple[np.ndarray, list[str]]:
  """Robust depth of each keypoint of one hand.

  Args:
    depth: [H, W] z-depth in metres at sensor resolution, 0 where invalid.
    xy: [K, 2] keypoints (x, y) in sensor pixels.
    valid: [K] bool, keypoints to lift (visible ones).
    mask: optional [H, W] bool, pixels of this hand.
    cfg: heuristics.
    depth_range: optional (near, far) metres narrowing cfg's working range.

  Returns:
    z: [K] metres, NaN where no depth was found or the keypoint is not valid.
    sources: [K] how each depth was found (SOURCE_*).

  Raises:
    ValueError: a valid keypoint with a NaN or infinite coordinate.
  """
  _check_finite(xy, valid)
  near_m, far_m = cfg.min_depth_m, cfg.max_depth_m
  if depth_range is not None:
    near_m, far_m = max(near_m, depth_range[0]), min(far_m, depth_range[1])
  z = np.full(len(xy), np.nan)
  sources = [SOURCE_NONE] * len(xy)
  for k in np.flatnonzero(valid):
    for size, values in _windows(depth, mask, xy[k, 0], xy[k, 1], near_m, far_m, cfg):
      found = _front_depth(values, cfg)
      if found is not None:
        z[k] = found
        sources[k] = SOURCE_WINDOW if size == cfg.window else SOURCE_WIDE_WINDOW
        break
  lifted = np.isfinite(z)
  if lifted.any():
    hand_depth = float(np.median(z[lifted]))
    for k in np.flatnonzero(valid & ~lifted):
      z[k] = hand_depth
      sources[k] = SOURCE_HAND
  return z, sources


def _check_finite(xy: np.ndarray, valid: np.ndarray) -> None:
  bad = np.flatnonzero(np.asarray(valid, bool) & ~np.isfinite(xy).all(axis=-1))
  if bad.size:
    raise ValueError(f"keypoints {bad.tolist()} are marked valid but have non-finite "
                     f"coordinates {np.asarray(xy)[bad].tolist()}; mark them not valid (not "
                     "visible) or give their pixel coordinates")


def back_project(xy: np.ndarray, z: np.ndarray, intrinsics: spec.Intrinsics) -> np.ndarray:
  """[K, 2] pixels and [K] z-depths -> [K, 3] camera-space points in metres."""
  x = (xy[:, 0] - intrinsics.cx) * z / intrinsics.fx
  y = (xy[:, 1] - intrinsics.cy) * z / intrinsics.fy
  return np.stack([x, y, z], axis=-1)


def _check_shapes(depth: np.ndarray, xy: np.ndarray, valid: np.ndarray) -> None:
  if depth.ndim != 2:
    raise ValueError(f"depth must be [H, W], got shape {depth.shape}")
  if xy.ndim != 2 or xy.shape[1] != 2 or valid.shape != (len(xy),):
    raise ValueError(f"keypoints must be [K, 2] with valid [K], got {xy.shape} and "
                     f"{valid.shape}")


def lift(depth: np.ndarray, xy: np.ndarray, valid: np.ndarray,
         intrinsics: spec.Intrinsics = spec.SENSOR.intrinsics,
         mask: np.ndarray | None = None, cfg: LiftConfig = LiftConfig()
         ) -> tuple[np.ndarray, list[str]]:
  """2D keypoints of one hand -> [K, 3] camera-space metres (NaN if unlifted)."""
  _check_shapes(depth, xy, valid)
  z, sources = keypoint_depths(depth, xy, valid, mask, cfg)
  return back_project(xy, z, intrinsics), sources


def hand_depths(depth: np.ndarray, xy: np.ndarray, valid: np.ndarray,
                cfg: LiftConfig = LiftConfig()) -> tuple[np.ndarray, list[str]]:
  """Like `keypoint_depths`, with the hand mask taken from the depth image.

  Keypoints whose first depth lies more than cfg.hand_depth_band_m from the
  hand's median keypoint depth are looked up again among the pixels within
  that band, the hand mask (see the module docstring; it is evaluated in the
  windows only); if there is no such depth near one of them, it takes the
  hand's median (SOURCE_HAND).
  """
  z, sources = keypoint_depths(depth, xy, valid, None, cfg)
  lifted = np.isfinite(z)
  if lifted.any():
    hand_depth = float(np.median(z[lifted]))
    band = cfg.hand_depth_band_m
    outliers = lifted & (np.abs(z - hand_depth) > band)
    if outliers.any():
      z_masked, masked_sources = keypoint_depths(depth, xy, outliers, None, cfg,
                                                 (hand_depth - band, hand_depth + band))
      for k in np.flatnonzero(outliers):
        found = np.isfinite(z_masked[k])
        z[k] = z_masked[k] if found else hand_depth
        sources[k] = masked_sources[k] if found else SOURCE_HAND
  return z, sources


def lift_hand(depth: np.ndarray, xy: np.ndarray, valid: np.ndarray,
              intrinsics: spec.Intrinsics = spec.SENSOR.intrinsics,
              cfg: LiftConfig = LiftConfig()) -> tuple[np.ndarray, list[str]]:
  """Like `lift`, with the hand mask from the depth image (`hand_depths`)."""
  _check_shapes(depth, xy, valid)
  z, sources = hand_depths(depth, xy, valid, cfg)
  return back_project(xy, z, intrinsics), sources
