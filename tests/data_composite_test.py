"""Two-hand compositing keeps both hands' labels and re-checks visibility."""

import numpy as np

from hand25d import spec
from hand25d.data import composite
from hand25d.data import hand_model
from hand25d.data import poses
from hand25d.data import scene

_CONFIG = scene.SceneConfig().scaled(120, 160)


def _frame(side, x, depth, wall=True):
  """One open hand of `side` at image-plane offset x (metres) and depth, palm to camera."""
  shape = hand_model.HandShape()
  placement = poses.Placement(centre=np.array([x, 0.0, depth]), hand_dir=np.array([0.0, -1.0, 0.0]),
                              forearm_dir=np.array([0.0, 1.0, -0.3]) / np.hypot(1.0, 0.3),
                              roll_deg=0.0)
  pose = spec.POSE_INDEX["open_hand"]
  hand = scene.Hand(side=side, pose=pose, placement=placement, skin_reflectivity=0.5,
                    sleeve_reflectivity=0.4,
                    articulation=poses.sample_articulation(pose, shape, np.random.default_rng(0)))
  background = ((("plane", (np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0])), 0.5),)
                if wall else ())
  return scene.render_scene(scene.Scene(hands=(hand,), background=background, ambient=200.0),
                            shape, _CONFIG, np.random.default_rng(1))


def test_compositing_keeps_both_hands_labels():
  a = _frame(spec.LEFT, -0.1, 0.5)
  b = _frame(spec.RIGHT, 0.1, 0.5)
  assert bool(composite.can_composite(a, b, spec.RIGHT))
  assert not bool(composite.can_composite(a, b, spec.LEFT))
  out = {k: np.asarray(v) for k, v in composite.composite(a, b, spec.RIGHT).items()}
  np.testing.assert_array_equal(out["hand_present"], [1, 1])
  for key in composite.PER_SIDE_KEYS:
    np.testing.assert_array_equal(out[key][spec.LEFT], a[key][spec.LEFT], err_msg=key)
    np.testing.assert_array_equal(out[key][spec.RIGHT], b[key][spec.RIGHT], err_msg=key)
  left, right = spec.SIDE_SEGMENTATION_CLASS
  np.testing.assert_array_equal(out["segmentation"] == left, a["segmentation"] == left)
  np.testing.assert_array_equal(out["segmentation"] == right, b["segmentation"] == right)
  hand_b = b["segmentation"] == right
  np.testing.assert_array_equal(out["amplitude"][hand_b], b["amplitude"][hand_b])
  np.testing.assert_array_equal(out["amplitude"][~hand_b], a["amplitude"][~hand_b])
  assert out["amplitude"].dtype == a["amplitude"].dtype


def test_nearer_pasted_hand_hides_the_keypoints_it_covers():
  a = _frame(spec.LEFT, 0.0, 0.6)
  b = _frame(spec.RIGHT, 0.0, 0.35)  # Right in front of a's hand.
  out = composite.composite(a, b, spec.RIGHT)
  vis = np.asarray(out["keypoint_visible"])
  assert vis[spec.LEFT].sum() < a["keypoint_visible"][spec.LEFT].sum()
  np.testing.assert_array_equal(vis[spec.RIGHT], b["keypoint_visible"][spec.RIGHT])
  # Swapped depths: now the pasted hand is behind and loses keypoints instead.
  back = composite.composite(_frame(spec.LEFT, 0.0, 0.35), _frame(spec.RIGHT, 0.0, 0.6), spec.RIGHT)
  assert np.asarray(back["keypoint_visible"])[spec.RIGHT].sum() < b["keypoint_visible"][
      spec.RIGHT].sum()


def test_label_known_flags_move_with_the_hand_and_an_unknown_mask_stays_unknown():
  a = _frame(spec.LEFT, -0.1, 0.5)
  b = _frame(spec.RIGHT, 0.1, 0.5)
  # Without a mask b's hand cannot be cut out.
  assert not bool(composite.can_composite(a, dict(b, segmentation_known=0), spec.RIGHT))
  a_unknown = dict(a, segmentation=np.zeros_like(a["segmentation"]), segmentation_known=0,
                   pose_known=np.array([0, 1]), orientation_known=np.array([1, 1]))
  b = dict(b, pose_known=np.array([1, 1]), orientation_known=np.array([1, 0]))
  assert bool(composite.can_composite(a_unknown, b, spec.RIGHT))
  out = {k: np.asarray(v) for k, v in composite.composite(a_unknown, b, spec.RIGHT).items()}
  assert out["segmentation_known"] == 0
  np.testing.assert_array_equal(out["pose_known"], [0, 1])
  np.testing.assert_array_equal(out["orientation_known"], [1, 0])
  # a's keypoints are not lost to its unknown (all background) mask; b's hand is beside it.
  np.testing.assert_array_equal(out["keypoint_visible"][spec.LEFT],
                                a["keypoint_visible"][spec.LEFT])
  known = composite.composite(a, b, spec.RIGHT)
  assert int(known["segmentation_known"]) == 1
