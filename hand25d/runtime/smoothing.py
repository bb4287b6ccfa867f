"""Temporal smoothing of keypoints with the One Euro filter.

Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass
Filter for Noisy Input in Interactive Systems" (CHI 2012): a first-order
low-pass filter whose cut-off rises with the speed of the signal, so a still
hand stops jittering while a moving hand does not lag.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class OneEuroConfig:
  min_cutoff_hz: float = 1.0  # Cut-off at rest: lower = less jitter.
  beta: float = 0.05  # Speed coefficient: higher = less lag when moving.
  derivative_cutoff_hz: float = 1.0


def _alpha(cutoff_hz: float, dt: float) -> float:
  tau = 1.0 / (2.0 * math.pi * cutoff_hz)
  return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
  """Filters an array signal (e.g. [K, 2] keypoints) element-wise over time.

  NaN entries (a keypoint not seen in a frame) reset that element: its next
  finite value passes through unfiltered.
  """

  def __init__(self, cfg: OneEuroConfig = OneEuroConfig()):
    self._cfg = cfg
    self._x = None
    self._dx = None
    self._t = None

  def reset(self) -> None:
    self._x = self._dx = self._t = None

  def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
    """Filters the value `x` observed at time `t` (seconds, increasing)."""
    x = np.asarray(x, np.float64)
    if self._x is None or self._x.shape != x.shape:
      self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
      return x.copy()
    dt = t - self._t
    if not dt > 0:
      raise ValueError(f"time must increase: got {t} after {self._t}")
    fresh = ~np.isfinite(self._x)
    dx = np.where(fresh, 0.0, (x - self._x) / dt)
    a_d = _alpha(self._cfg.derivative_cutoff_hz, dt)
    self._dx = np.where(np.isfinite(dx), a_d * dx + (1 - a_d) * self._dx, 0.0)
    cutoff = self._cfg.min_cutoff_hz + self._cfg.beta * np.abs(self._dx)
    tau = 1.0 / (2.0 * math.pi * cutoff)
    a = 1.0 / (1.0 + tau / dt)
    out = np.where(fresh, x, a * x + (1 - a) * self._x)
    self._x, self._t = out, t
    return out.copy()


def jitter(track: np.ndarray) -> float:
  """Mean magnitude of the second difference of a [T, ..., D] track (NaN-aware).

  For smooth motion the second difference is near 0; frame-to-frame noise
  raises it. Units are those of the track per frame².
  """
  track = np.asarray(track, np.float64)
  if len(track) < 3:
    raise ValueError(f"jitter needs at least 3 frames, got {len(track)}")
  accel = np.linalg.norm(track[2:] - 2 * track[1:-1] + track[:-2], axis=-1)
  return float(np.nanmean(accel))


class HandSmoother:
  """One Euro filters for the hands of a stream, over (x px, y px, z mm).

  Hand speeds are hundreds of units per second in pixels and in millimetres
  alike, so one OneEuroConfig suits all three; smoothing z rather than the
  3D point keeps the smoothed point on the ray of the smoothed pixel. A hand
  that is not present restarts its filter.
  """

  def __init__(self, cfg: OneEuroConfig, num_sides: int):
    self._filters = [OneEuroFilter(cfg) for _ in range(num_sides)]

  def reset(self) -> None:
    for f in self._filters:
      f.reset()

  def __call__(self, xy: np.ndarray, z: np.ndarray, present: np.ndarray,
               t: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooths [S, K, 2] pixels and [S, K] metres (NaN: not seen) observed at `t`."""
    xy, z = np.array(xy, np.float64), np.array(z, np.float64)
    for side, f in enumerate(self._filters):
      if not present[side]:
        f.reset()
        continue
      out = f(np.concatenate([xy[side], 1e3 * z[side][:, None]], axis=1), t)
      xy[side], z[side] = out[:, :2], out[:, 2] / 1e3
    return xy, z
