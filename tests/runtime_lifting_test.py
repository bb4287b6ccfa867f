"""2.5D lifting and One Euro smoothing on constructed scenes."""

import numpy as np
import pytest

from hand25d import spec
from hand25d.runtime import lifting
from hand25d.runtime import smoothing

K = spec.SENSOR.intrinsics
H, W = spec.SENSOR.height, spec.SENSOR.width


def _plane_depth(z0=0.5, tilt=0.3):
  """z-depth of the plane z = z0 + tilt * X (X metres right of the axis)."""
  cols = np.arange(W)[None, :].repeat(H, 0)
  # Ray x-slope s = (u - cx) / fx; on the plane z = z0 + tilt * s * z.
  s = (cols - K.cx) / K.fx
  return (z0 / (1.0 - tilt * s)).astype(np.float32)


def _project(points):
  return np.stack([points[:, 0] / points[:, 2] * K.fx + K.cx,
                   points[:, 1] / points[:, 2] * K.fy + K.cy], axis=-1)


def test_recovers_points_on_a_tilted_plane():
  rng = np.random.default_rng(0)
  depth = _plane_depth()
  xy = np.stack([rng.uniform(20, W - 20, 30), rng.uniform(20, H - 20, 30)], axis=-1)
  z = depth[np.round(xy[:, 1]).astype(int), np.round(xy[:, 0]).astype(int)]
  truth = lifting.back_project(xy, z.astype(np.float64), K)
  points, sources = lifting.lift(depth, xy, np.ones(30, bool))
  # The window median of a tilted plane is within a few mm of the centre depth.
  np.testing.assert_allclose(points, truth, atol=0.004)
  assert set(sources) == {lifting.SOURCE_WINDOW}
  np.testing.assert_allclose(_project(points), xy, atol=1e-6)


def test_front_cluster_wins_at_the_hand_edge():
  depth = np.full((H, W), 0.8, np.float32)  # Wall behind.
  depth[:, :100] = 0.4  # Hand on the left, edge at column 100.
  depth[50, 99] = 0.6  # A flying pixel between the two.
  xy = np.array([[99.0, 50.0], [101.0, 50.0]])
  points, _ = lifting.lift(depth, xy, np.ones(2, bool))
  assert points[0, 2] == pytest.approx(0.4)
  # Just off the hand, the window still reaches it: the front cluster, and
  # the hand mask when there is one, keep the keypoint on the hand.
  assert points[1, 2] == pytest.approx(0.4)
  mask = depth < 0.5
  points_masked, _ = lifting.lift(depth, xy, np.ones(2, bool), mask=mask)
  assert points_masked[1, 2] == pytest.approx(0.4)


def test_fallbacks_and_invalid_keypoints():
  depth = np.full((H, W), 0.5, np.float32)
  depth[100:140, 100:140] = 0.0  # A hole of invalid depth.
  xy = np.array([[50.0, 50.0], [120.0, 120.0], [135.0, 120.0], [60.0, 60.0]])
  valid = np.array([True, True, True, False])
  points, sources = lifting.lift(depth, xy, valid)
  assert sources == [lifting.SOURCE_WINDOW, lifting.SOURCE_HAND, lifting.SOURCE_WIDE_WINDOW,
                     lifting.SOURCE_NONE]
  assert points[1, 2] == pytest.approx(0.5) and points[2, 2] == pytest.approx(0.5)
  assert np.all(np.isnan(points[3]))
  # Nothing valid at all: nothing is lifted.
  points, sources = lifting.lift(np.zeros((H, W), np.float32), xy, valid)
  assert np.all(np.isnan(points)) and set(sources) == {lifting.SOURCE_NONE}


def test_bad_input_is_a_clear_error():
  with pytest.raises(ValueError, match=r"depth must be \[H, W\]"):
    lifting.lift(np.zeros((1, H, W)), np.zeros((2, 2)), np.ones(2, bool))
  with pytest.raises(ValueError, match="keypoints must be"):
    lifting.lift(np.zeros((H, W)), np.zeros((2, 3)), np.ones(2, bool))
  with pytest.raises(ValueError, match="odd"):
    lifting.LiftConfig(window=4)


def test_one_euro_reduces_jitter_and_follows_motion():
  rng = np.random.default_rng(1)
  t = np.arange(200) / 60.0
  still = np.zeros((200, 1, 2)) + rng.normal(0, 1.0, (200, 1, 2))
  f = smoothing.OneEuroFilter()
  smoothed = np.stack([f(x, ti) for x, ti in zip(still, t)])
  assert smoothing.jitter(smoothed) < 0.3 * smoothing.jitter(still)
  # A fast steady motion is followed with little lag once the filter adapts.
  moving = np.stack([np.full((1, 2), 300.0 * ti) for ti in t])
  f = smoothing.OneEuroFilter()
  followed = np.stack([f(x, ti) for x, ti in zip(moving, t)])
  assert np.abs(followed[-1] - moving[-1]).max() < 5.0


def test_one_euro_restarts_after_a_missing_keypoint():
  f = smoothing.OneEuroFilter()
  f(np.array([0.0, 0.0]), 0.0)
  out = f(np.array([np.nan, 1.0]), 0.1)
  assert np.isnan(out[0])
  np.testing.assert_allclose(f(np.array([50.0, 1.0]), 0.2)[0], 50.0)  # Passes through.
  with pytest.raises(ValueError, match="time must increase"):
    f(np.array([0.0, 0.0]), 0.2)
