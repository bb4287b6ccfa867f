"""Lifting 2D keypoints to 2.5D with the measured depth image (DESIGN.md §8).

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
  min_depth_m: float = spec.SENSOR.min_depth_m * 0.5
  max_depth_m: float = spec.SENSOR.max_depth_m * 1.5

  def __post_init__(self):
    if self.window % 2 == 0 or self.max_window % 2 == 0 or self.window > self.max_window:
      raise ValueError(f"windows must be odd with window <= max_window, got "
                       f"{self.window} and {self.max_window}")


def _window_depth(depth: np.ndarray, mask: np.ndarray | None, x: float, y: float,
                  size: int, cfg: LiftConfig) -> float | None:
  h, w = depth.shape
  col, row = int(round(x)), int(round(y))
  r = size // 2
  r0, r1, c0, c1 = max(row - r, 0), min(row + r + 1, h), max(col - r, 0), min(col + r + 1, w)
  if r0 >= r1 or c0 >= c1:
    return None
  values = depth[r0:r1, c0:c1]
  ok = np.isfinite(values) & (values >= cfg.min_depth_m) & (values <= cfg.max_depth_m)
  if mask is not None:
    ok &= mask[r0:r1, c0:c1]
  values = values[ok]
  if values.size < cfg.min_valid:
    return None
  near = np.quantile(values, cfg.near_quantile)
  front = values[values <= near + cfg.cluster_tolerance_m]
  return float(np.median(front))


def keypoint_depths(depth: np.ndarray, xy: np.ndarray, valid: np.ndarray,
                    mask: np.ndarray | None = None, cfg: LiftConfig = LiftConfig()
                    ) -> tuple[np.ndarray, list[str]]:
  """Robust depth of each keypoint of one hand.

  Args:
    depth: [H, W] z-depth in metres at sensor resolution, 0 where invalid.
    xy: [K, 2] keypoints (x, y) in sensor pixels.
    valid: [K] bool, keypoints to lift (visible ones).
    mask: optional [H, W] bool, pixels of this hand.
    cfg: heuristics.

  Returns:
    z: [K] metres, NaN where no depth was found or the keypoint is not valid.
    sources: [K] how each depth was found (SOURCE_*).
  """
  z = np.full(len(xy), np.nan)
  sources = [SOURCE_NONE] * len(xy)
  for k in np.flatnonzero(valid):
    for size in range(cfg.window, cfg.max_window + 1, 2):
      found = _window_depth(depth, mask, xy[k, 0], xy[k, 1], size, cfg)
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


def back_project(xy: np.ndarray, z: np.ndarray, intrinsics: spec.Intrinsics) -> np.ndarray:
  """[K, 2] pixels and [K] z-depths -> [K, 3] camera-space points in metres."""
  x = (xy[:, 0] - intrinsics.cx) * z / intrinsics.fx
  y = (xy[:, 1] - intrinsics.cy) * z / intrinsics.fy
  return np.stack([x, y, z], axis=-1)


def lift(depth: np.ndarray, xy: np.ndarray, valid: np.ndarray,
         intrinsics: spec.Intrinsics = spec.SENSOR.intrinsics,
         mask: np.ndarray | None = None, cfg: LiftConfig = LiftConfig()
         ) -> tuple[np.ndarray, list[str]]:
  """2D keypoints of one hand -> [K, 3] camera-space metres (NaN if unlifted)."""
  if depth.ndim != 2:
    raise ValueError(f"depth must be [H, W], got shape {depth.shape}")
  if xy.ndim != 2 or xy.shape[1] != 2 or valid.shape != (len(xy),):
    raise ValueError(f"keypoints must be [K, 2] with valid [K], got {xy.shape} and "
                     f"{valid.shape}")
  z, sources = keypoint_depths(depth, xy, valid, mask, cfg)
  return back_project(xy, z, intrinsics), sources
