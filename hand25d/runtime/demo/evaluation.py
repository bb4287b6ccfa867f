"""Accuracy, latency and jitter of runtime results, against the renderer's ground truth.

Accuracy is measured over the primary keypoints that are visible in the
ground truth, on hands present in it:
  * 2D error (sensor pixels), where the runtime marks the keypoint visible;
  * 2.5D error (mm), the same keypoints where they were lifted;
  * lifting error (mm): the *true* 2D keypoints lifted with the frame's
    measured depth (`lifting.lift_hand`), i.e. the lifting alone, whatever
    the network's 2D error; and its z error against the rendered surface
    (if the frame carries it).
Ground-truth keypoints are joint centres inside the finger or palm while a
lifted point lies on the surface (the paper's 2.5D: "the hand surface's
depth"), so part of every error against the joints is the distance from the
surface to the joint; the surface error leaves that out.

Jitter is `smoothing.jitter` (mean |second difference| per frame) of
keypoint tracks, within clips, over the frames where the keypoint is seen.
"""

import math
import warnings

import numpy as np

from hand25d import spec
from hand25d.runtime import lifting
from hand25d.runtime import pipeline
from hand25d.runtime import smoothing
from hand25d.runtime.demo import sequence

_PRIMARY = list(spec.PRIMARY_KEYPOINT_INDICES)
_S, _P = spec.NUM_SIDES, spec.NUM_PRIMARY_KEYPOINTS


def stats(values) -> dict:
  """count, mean, median and 90th percentile of finite values (None if there are none)."""
  v = np.asarray(values, np.float64).ravel()
  v = v[np.isfinite(v)]
  if not v.size:
    return {"count": 0, "mean": None, "median": None, "p90": None}
  return {"count": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)),
          "p90": float(np.percentile(v, 90))}


def truth_keypoints(truth: dict, intrinsics: spec.Intrinsics
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Primary keypoints of the ground truth: xy [S, P, 2], xyz [S, P, 3] m, visible [S, P]."""
  xy = np.asarray(truth["keypoints_xy"], np.float64)[:, _PRIMARY]
  z = np.asarray(truth["keypoints_depth"], np.float64)[:, _PRIMARY]
  visible = ((np.asarray(truth["keypoint_visible"])[:, _PRIMARY] > 0) &
             (np.asarray(truth["hand_present"])[:, None] > 0))
  xyz = np.stack([lifting.back_project(xy[s], z[s], intrinsics) for s in range(_S)])
  return xy, xyz, visible


def result_keypoints(result: pipeline.FrameResult) -> tuple[np.ndarray, np.ndarray]:
  """xy [S, P, 2] and xyz [S, P, 3] of a result, NaN where not visible (or a bad frame)."""
  xy, xyz = np.full((_S, _P, 2), np.nan), np.full((_S, _P, 3), np.nan)
  for s, hand in enumerate(result.hands):
    xy[s][hand.visible] = hand.keypoints_2d[hand.visible]
    xyz[s][hand.visible] = hand.keypoints_3d[hand.visible]
  return xy, xyz


def lift_truth(depth: np.ndarray, truth: dict, intrinsics: spec.Intrinsics,
               cfg: lifting.LiftConfig) -> np.ndarray:
  """[S, P, 3] metres: the true visible 2D keypoints lifted with `depth` (NaN elsewhere)."""
  xy, _, visible = truth_keypoints(truth, intrinsics)
  return np.stack([lifting.lift_hand(depth, xy[s], visible[s], intrinsics, cfg)[0]
                   for s in range(_S)])


def _surface_z(true_depth: np.ndarray, xy: np.ndarray) -> np.ndarray:
  """Rendered surface depth (m) at the pixels xy [..., 2]; NaN off the image or surface."""
  true_depth = np.asarray(true_depth)
  h, w = true_depth.shape
  col, row = np.round(xy[..., 0]), np.round(xy[..., 1])
  inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
  z = true_depth[np.where(inside, row, 0).astype(int), np.where(inside, col, 0).astype(int)]
  return np.where(inside & (z > 0), z, np.nan)


class Accuracy:
  """Accumulates errors of good frames with ground truth; `summary()` gives the figures."""

  def __init__(self, intrinsics: spec.Intrinsics):
    self._intrinsics = intrinsics
    self._errors = {k: [] for k in ("error_2d_px", "error_25d_mm", "lifting_error_mm",
                                    "lifting_surface_error_mm")}
    self.frames = 0
    self._keypoints = self._found = self._hands = self._hands_right = 0

  def add(self, result: pipeline.FrameResult, truth: dict, lifted_truth: np.ndarray) -> None:
    """Adds one good frame; `lifted_truth` is lift_truth() of its depth."""
    self.frames += 1
    xy_true, xyz_true, visible = truth_keypoints(truth, self._intrinsics)
    xy, xyz = result_keypoints(result)
    present = np.asarray(truth["hand_present"]) > 0
    self._hands += _S
    self._hands_right += sum(h.present == p for h, p in zip(result.hands, present))
    found = visible & np.isfinite(xy[..., 0])
    self._keypoints += int(visible.sum())
    self._found += int(found.sum())
    e = self._errors
    e["error_2d_px"].extend(np.linalg.norm(xy - xy_true, axis=-1)[found])
    e["error_25d_mm"].extend(1e3 * np.linalg.norm(xyz - xyz_true, axis=-1)[found])
    e["lifting_error_mm"].extend(1e3 * np.linalg.norm(lifted_truth - xyz_true, axis=-1)[visible])
    if sequence.TRUE_DEPTH in truth:
      surface = _surface_z(truth[sequence.TRUE_DEPTH], xy_true)
      e["lifting_surface_error_mm"].extend(1e3 * np.abs(lifted_truth[..., 2] - surface)[visible])

  def summary(self) -> dict:
    out = {k: stats(v) for k, v in self._errors.items()}
    out["keypoints_in_truth"] = self._keypoints
    out["keypoints_found"] = self._found
    out["hand_presence_accuracy"] = self._hands_right / self._hands if self._hands else None
    return out


class Tracks:
  """Keypoint tracks [T, S, P, D] of a stream, for jitter within clips.

  A NaN row is put between clips (and a bad frame adds a NaN row), so that
  no second difference spans a cut.
  """

  def __init__(self):
    self._rows = []
    self._clip = None

  def add(self, clip: int, points: np.ndarray) -> None:
    if self._clip is not None and clip != self._clip:
      self._rows.append(np.full_like(self._rows[-1], np.nan))
    self._clip = clip
    self._rows.append(np.asarray(points, np.float64))

  def jitter(self, scale: float = 1.0) -> float | None:
    """Mean |second difference| per frame (times `scale`); None if never seen 3 times running."""
    if len(self._rows) < 3:
      return None
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)  # No finite second difference: NaN.
      value = smoothing.jitter(np.stack(self._rows) * scale)
    return value if math.isfinite(value) else None


def latency(timings: list[dict[str, float]]) -> dict:
  """fps and total-latency percentiles (ms) of processed frames, mean ms per stage."""
  if not timings:
    return {"frames": 0}
  total = np.array([t["total"] for t in timings])
  stages = sorted({k for t in timings for k in t if k != "total"})
  return {
      "frames": len(timings), "fps": float(1e3 / total.mean()), "mean_ms": float(total.mean()),
      "p50_ms": float(np.percentile(total, 50)), "p90_ms": float(np.percentile(total, 90)),
      "p99_ms": float(np.percentile(total, 99)),
      "stage_mean_ms": {k: float(np.mean([t.get(k, 0.0) for t in timings])) for k in stages}}
