"""Lifting rendered hands to 2.5D, and the hand mask taken from the depth image."""

from hand25d import spec
from hand25d.data import scene
from hand25d.runtime import lifting
from hand25d.runtime.demo import evaluation

import numpy as np
import pytest

K = spec.SENSOR.intrinsics
H, W = spec.SENSOR.height, spec.SENSOR.width


def test_rendered_hands_are_lifted_within_tolerance():
  """The true 2D keypoints of rendered hands, lifted with the measured (noisy) depth.

  Tolerances: against the rendered surface at the keypoint, |z error| has a
  median within 3 mm and 90 % within 10 mm; against the true joint centres
  (inside fingers and palm, 5-25 mm behind the surface) the 3D error has a
  median within 20 mm and 90 % within 45 mm.
  """
  surface, joints = [], []
  for seed in range(12):
    frame = scene.render_frame(seed)
    xy, xyz, visible = evaluation.truth_keypoints(frame, K)
    lifted = evaluation.lift_truth(frame["depth"], frame, K, lifting.LiftConfig())
    assert np.isfinite(lifted[visible]).all() and np.isnan(lifted[~visible]).all()
    col, row = np.round(xy[visible]).astype(int).T
    surface.extend(1e3 * np.abs(lifted[visible][:, 2] - frame["true_depth"][row, col]))
    joints.extend(1e3 * np.linalg.norm(lifted[visible] - xyz[visible], axis=-1))
  assert len(surface) > 50
  assert np.median(surface) < 3.0 and np.percentile(surface, 90) < 10.0
  assert np.median(joints) < 20.0 and np.percentile(joints, 90) < 45.0


def _hand_with_a_pen():
  """A hand (plane at 0.4 m) before a wall (0.8 m), a pen (0.15 m) in front of it."""
  depth = np.full((H, W), 0.8, np.float32)
  depth[60:180, 80:240] = 0.4
  depth[96:104, 60:104] = 0.15  # The pen, ending one pixel left of the first keypoint.
  xy = np.array([[104.0, 100.0],  # On the hand; 40 % of its 5x5 window is pen.
                 [160.0, 120.0], [200.0, 80.0], [120.0, 150.0], [220.0, 170.0]])
  return depth, xy


def test_hand_mask_rejects_a_distractor_in_front():
  depth, xy = _hand_with_a_pen()
  valid = np.ones(len(xy), bool)
  plain, _ = lifting.lift(depth, xy, valid)
  assert plain[0, 2] == pytest.approx(0.15)  # The front cluster alone takes the pen.
  points, sources = lifting.lift_hand(depth, xy, valid)
  np.testing.assert_allclose(points[:, 2], 0.4)
  assert sources[0] == lifting.SOURCE_WINDOW
  np.testing.assert_allclose(points, lifting.back_project(xy, np.full(len(xy), 0.4), K))


def test_hand_mask_falls_back_to_the_hand_depth():
  depth, xy = _hand_with_a_pen()
  depth[90:110, 90:120] = 0.15  # The pen now covers the keypoint's whole wide window.
  points, sources = lifting.lift_hand(depth, xy, np.ones(len(xy), bool),
                                      cfg=lifting.LiftConfig(max_window=5))
  assert points[0, 2] == pytest.approx(0.4) and sources[0] == lifting.SOURCE_HAND
