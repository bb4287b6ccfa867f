"""Hand model, renderer, TOF model and scene labels (hand25d.data, numpy only)."""

import dataclasses
import hashlib
import math
import platform

import numba
import numpy as np
import pytest

from hand25d import sensor
from hand25d import spec
from hand25d.data import hand_model
from hand25d.data import poses
from hand25d.data import render
from hand25d.data import scene
from hand25d.data import tof

_SMALL = scene.SceneConfig().scaled(120, 160)


def _hand_scene(side=spec.RIGHT, depth=0.45, pose="open_hand", extra=()):
  """One hand centred in the image, palm to the camera, fingers up."""
  shape = hand_model.HandShape()
  rng = np.random.default_rng(0)
  placement = poses.Placement(centre=np.array([0.0, 0.0, depth]),
                              hand_dir=np.array([0.0, -1.0, 0.0]),
                              forearm_dir=np.array([0.0, 1.0, -0.3]) / np.hypot(1.0, 0.3),
                              roll_deg=0.0)
  hand = scene.Hand(side=side, pose=spec.POSE_INDEX[pose],
                    articulation=poses.sample_articulation(spec.POSE_INDEX[pose], shape, rng),
                    placement=placement, skin_reflectivity=0.5, sleeve_reflectivity=0.5)
  return scene.Scene(hands=(hand,), background=tuple(extra), ambient=300.0), shape


def _wall_frame(distance, config=_SMALL, seed=0):
  wall = ("plane", (np.array([0.0, 0.0, distance]), np.array([0.0, 0.0, -1.0])), 0.6)
  return scene.render_scene(scene.Scene(hands=(), background=(wall,), ambient=300.0),
                            hand_model.HandShape(), config, np.random.default_rng(seed))


def test_same_seed_gives_identical_frames_and_other_seeds_differ():
  a, b = scene.render_frame(11, _SMALL), scene.render_frame(11, _SMALL)
  assert a.keys() == b.keys()
  for key in a:
    assert np.asarray(a[key]).tobytes() == np.asarray(b[key]).tobytes(), key
  c = scene.render_frame(12, _SMALL)
  assert a["amplitude"].tobytes() != c["amplitude"].tobytes()


def test_frame_arrays_have_documented_shapes():
  f = scene.render_frame(3)
  h, w = spec.SENSOR.height, spec.SENSOR.width
  assert f["phase_frames"].shape == (spec.NUM_PHASE_FRAMES, h, w)
  assert f["phase_frames"].dtype == np.uint16
  assert f["amplitude"].shape == f["depth"].shape == f["segmentation"].shape == (h, w)
  assert f["keypoints_xy"].shape == (spec.NUM_SIDES, spec.NUM_KEYPOINTS, 2)
  assert f["keypoint_visible"].shape == (spec.NUM_SIDES, spec.NUM_KEYPOINTS)
  np.testing.assert_array_equal(f["amplitude"], tof.amplitude(f["phase_frames"]))


def test_visible_keypoints_fall_on_their_own_hand():
  seen = 0
  for seed in range(8):
    f = scene.render_frame(seed, _SMALL)
    for side in range(spec.NUM_SIDES):
      vis = f["keypoint_visible"][side] > 0
      if not vis.any():
        continue
      assert f["hand_present"][side]
      xy = np.round(f["keypoints_xy"][side][vis]).astype(int)
      labels = f["segmentation"][xy[:, 1], xy[:, 0]]
      np.testing.assert_array_equal(labels, spec.SIDE_SEGMENTATION_CLASS[side])
      seen += vis.sum()
  assert seen > 40


def test_constructed_occlusion_marks_keypoints_invisible():
  clear, shape = _hand_scene()
  free = scene.render_scene(clear, shape, _SMALL, np.random.default_rng(0))
  centre = spec.KEYPOINT_INDEX["hand_center"]
  assert free["keypoint_visible"][spec.RIGHT, centre] == 1
  assert free["keypoint_visible"][spec.RIGHT].sum() >= 12
  # A ball between the camera and the palm hides the hand centre.
  target = free["keypoints_depth"][spec.RIGHT, centre]
  kp = free["keypoints_xy"][spec.RIGHT, centre]
  k = _SMALL.intrinsics
  z = target - 0.12
  ball_centre = np.array([(kp[0] - k.cx) / k.fx * z, (kp[1] - k.cy) / k.fy * z, z])
  blocked, _ = _hand_scene(extra=[("sphere", (ball_centre, np.eye(3), np.full(3, 0.03)), 0.5)])
  hidden = scene.render_scene(blocked, shape, _SMALL, np.random.default_rng(0))
  assert hidden["keypoint_visible"][spec.RIGHT, centre] == 0
  assert hidden["keypoint_visible"][spec.RIGHT].sum() < free["keypoint_visible"][spec.RIGHT].sum()


def test_right_hand_palm_to_camera_has_thumb_on_image_right_and_left_mirrors():
  right, shape = _hand_scene(side=spec.RIGHT)
  left, _ = _hand_scene(side=spec.LEFT)
  for s, side, sign in ((right, spec.RIGHT, 1), (left, spec.LEFT, -1)):
    f = scene.render_scene(s, shape, _SMALL, np.random.default_rng(0))
    xy = f["keypoints_xy"][side]
    thumb = xy[spec.KEYPOINT_INDEX["thumb_tip"], 0]
    pinky = xy[spec.KEYPOINT_INDEX["pinky_tip"], 0]
    assert sign * (thumb - pinky) > 10
    assert xy[spec.KEYPOINT_INDEX["middle_tip"], 1] < xy[spec.KEYPOINT_INDEX["wrist_center"], 1]


def test_amplitude_falls_with_distance():
  means = [float(_wall_frame(d)["amplitude"][50:70, 70:90].mean()) for d in (0.3, 0.6, 1.2)]
  assert means[0] > means[1] > means[2]
  # 1/r^2: doubling the distance divides the return by about 4.
  assert 3.0 < means[0] / means[1] < 5.0


def test_depth_from_phase_frames_matches_true_depth_on_a_plane():
  tilted = ("plane", (np.array([0.0, 0.0, 0.5]), np.array([0.2, 0.1, -1.0]) / np.sqrt(1.05)), 0.6)
  f = scene.render_scene(scene.Scene(hands=(), background=(tilted,), ambient=300.0),
                         hand_model.HandShape(), _SMALL, np.random.default_rng(1))
  valid = f["depth"] > 0
  assert valid.mean() > 0.95
  err = f["depth"][valid] - f["true_depth"][valid]
  assert abs(np.median(err)) < 0.003  # Unbiased.
  assert np.median(np.abs(err)) < 0.012  # Within the noise of ~1 cm at 0.5 m.
  assert np.percentile(np.abs(err), 95) < 0.03


# Every (Q, I) the phase can see: integer differences of 12-bit codes.
_CODES = np.arange(-sensor.ADC_MAX, sensor.ADC_MAX + 1, dtype=np.float32)


def _code_pairs(chunks=16):
  """(y, x) flat float32 chunks covering _CODES x _CODES, y-major, then x = -0.

  sensor.depth makes I (x) of an invalid pixel +-0 (I times False).
  """
  for rows in np.array_split(_CODES, chunks):
    yield np.repeat(rows, _CODES.size), np.tile(_CODES, rows.size)
  yield _CODES, np.full(_CODES.size, -0.0, np.float32)


@numba.njit
def _libm_atan2f(y, x):
  out = np.empty(y.shape, np.float32)
  for k in range(y.size):
    out[k] = math.atan2(y[k], x[k])  # numba calls the C library's atan2f for float32.
  return out


def test_arctan2_f32_bits_are_pinned_over_every_phase_input():
  # The data engine's phase, and so a data set's bytes, must not change: this
  # digest does not depend on the machine's libm.
  digest = hashlib.sha256()
  for y, x in _code_pairs():
    digest.update(tof.arctan2_f32(y, x).tobytes())
  assert digest.hexdigest() == "6ecc42c9d456371eefd67e333fa2eee568015b78212536133aa9bbe0b599c23a"


@pytest.mark.skipif(platform.libc_ver() != ("glibc", "2.36"),
                    reason="arctan2_f32 ports glibc 2.36's atan2f; another C library may round "
                    "atan2f otherwise")
def test_arctan2_f32_has_the_bits_of_glibcs_atan2f():
  def same_bits(y, x):  # NaNs included: the C code's x + y picks which payload.
    return tof.arctan2_f32(y, x).tobytes() == _libm_atan2f(y, x).tobytes()

  # Every input the phase can have (what AVX2 machines wrote before).
  assert all(same_bits(y, x) for y, x in _code_pairs())
  # Any float32: random bit patterns (NaNs, infinities and subnormals among them).
  rng = np.random.default_rng(0)
  y, x = rng.integers(0, 2**32, (2, 2_000_000), dtype=np.uint64).astype(np.uint32).view(np.float32)
  assert same_bits(y, x)
  # NaN payloads of both inputs: the result keeps x's if x is a NaN, else y's.
  nans = (np.uint32(0x7fc00000) | rng.integers(0, 2**22, 64).astype(np.uint32)).view(np.float32)
  assert same_bits(nans, nans[::-1].copy()) and same_bits(nans, np.ones(64, np.float32))
  assert same_bits(np.ones(64, np.float32), nans)
  # The special cases and the thresholds of the C code, one ulp either side.
  special = np.array([0.0, 1.0, np.inf, np.nan, 1e-45, 3.4e38, 2.0**-29, 2.0**25, 0.4375, 0.6875,
                      1.1875, 2.4375, 1.5, 2.0**60, 2.0**-60], np.float32)
  special = np.concatenate([special, -special])
  special = np.concatenate([special, np.nextafter(special, np.float32(np.inf)),
                            np.nextafter(special, np.float32(-np.inf))])
  y, x = np.meshgrid(special, special)
  assert same_bits(y.ravel(), x.ravel())
  # x = 1 (the C code's own branch) and -1.
  for one in (1.0, -1.0):
    assert same_bits(y.ravel(), np.full(y.size, one, np.float32))


def test_arctan2_f32_refuses_other_dtypes_and_shapes():
  with pytest.raises(ValueError, match="float32 arrays, got float64"):
    tof.arctan2_f32(np.zeros(3), np.zeros(3, np.float32))
  with pytest.raises(ValueError, match=r"one shape, got \(2, 3\) and \(6,\)"):
    tof.arctan2_f32(np.zeros((2, 3), np.float32), np.zeros(6, np.float32))
  # Any shape and memory layout otherwise.
  y, x = np.ones((4, 6), np.float32)[:, ::2], np.full((4, 6), -1.0, np.float32)[:, ::2]
  np.testing.assert_array_equal(tof.arctan2_f32(y, x), np.full((4, 3), 3 * np.pi / 4, np.float32))


def test_depth_takes_its_phase_from_arctan2_f32(monkeypatch):
  frame = _wall_frame(0.5)
  camera = render.camera(_SMALL.height, _SMALL.width, _SMALL.intrinsics)
  np.testing.assert_array_equal(frame["depth"], sensor.depth(
      frame["phase_frames"], camera, _SMALL.sensor_model, arctan2=tof.arctan2_f32))
  # On AVX2 machines numpy's arctan2 has the same bits, so also check the call.
  calls = []
  real = tof.arctan2_f32
  monkeypatch.setattr(tof, "arctan2_f32", lambda y, x: calls.append(y.shape) or real(y, x))
  tof.depth(frame["phase_frames"], camera, _SMALL.sensor_model)
  assert calls == [frame["depth"].shape]


def test_low_signal_and_flying_pixels_are_invalid():
  far = _wall_frame(2.9)  # Beyond the useful range: amplitude too low.
  assert (far["depth"] > 0).mean() < 0.2
  # A ball in front of a wall: the optical blur mixes the two at its rim.
  ball = ("sphere", (np.array([0.0, 0.0, 0.35]), np.eye(3), np.full(3, 0.05)), 0.7)
  wall = ("plane", (np.array([0.0, 0.0, 0.7]), np.array([0.0, 0.0, -1.0])), 0.7)
  f = scene.render_scene(scene.Scene(hands=(), background=(ball, wall), ambient=200.0),
                         hand_model.HandShape(), _SMALL, np.random.default_rng(0))
  valid = f["depth"] > 0
  true = np.pad(f["true_depth"], 1, mode="edge")
  neighbours = np.stack([true[1 + dy:true.shape[0] - 1 + dy, 1 + dx:true.shape[1] - 1 + dx]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
  nearest = np.abs(neighbours - f["depth"]).min(axis=0)
  # Every valid pixel is near a true surface: no mixed depths between ball and wall.
  assert np.percentile(nearest[valid], 99.9) < 0.05
  assert valid.mean() > 0.9


def test_invalid_pixels_have_a_positive_zero_depth_with_either_phase():
  # depth zeroes invalid and flying pixels by multiplying with a mask, which
  # keeps the sign of a -0: none may reach it (the stored bytes would change).
  rng = np.random.default_rng(0)
  frames = rng.integers(0, sensor.ADC_MAX + 1, (4, 24, 32)).astype(np.uint16)
  frames[:, :12] = frames[:, :12] // 64  # Low amplitude: invalid.
  frames[0, 20:] = sensor.ADC_MAX  # Saturated: invalid.
  frames[1, :, 0] = frames[3, :, 0]  # Q = 0 exactly (+0).
  camera = render.camera(24, 32, _SMALL.intrinsics)
  for arctan2 in (np.arctan2, tof.arctan2_f32):
    z = sensor.depth(frames, camera, _SMALL.sensor_model, arctan2=arctan2)
    assert (z == 0).sum() > 24 * 16 and (z > 0).any()
    assert not np.signbit(z).any()


def test_every_pose_class_and_orientation_bin_is_sampled():
  rng = np.random.default_rng(0)
  bins = {spec.orientation_bin(poses.sample_placement(rng, _SMALL.intrinsics, 120, 160, 1).roll_deg)
          for _ in range(200)}
  assert bins == set(range(spec.NUM_ORIENTATION_BINS))
  shape = hand_model.HandShape()
  for pose in range(spec.NUM_POSE_CLASSES):
    art = poses.sample_articulation(pose, shape, rng)
    for field in dataclasses.fields(art):
      lo, hi = hand_model.JOINT_LIMITS_DEG[field.name]
      assert np.all(np.asarray(getattr(art, field.name)) >= lo)
      assert np.all(np.asarray(getattr(art, field.name)) <= hi)


def test_pinch_and_ok_close_the_thumb_on_the_index_tip():
  rng = np.random.default_rng(1)
  for name in ("pinch", "ok"):
    for _ in range(3):
      shape = hand_model.sample_shape(rng)
      joints = hand_model.local_joints(shape, poses.sample_articulation(
          spec.POSE_INDEX[name], shape, rng))
      gap = np.linalg.norm(joints[hand_model.JOINT_INDEX["thumb_tip"]] -
                           joints[hand_model.JOINT_INDEX["index_tip"]])
      assert gap < 0.015, (name, gap)
  open_joints = hand_model.local_joints(hand_model.HandShape(), poses.sample_articulation(
      spec.POSE_INDEX["open_hand"], hand_model.HandShape(), rng))
  assert np.linalg.norm(open_joints[4] - open_joints[8]) > 0.04


def test_users_have_different_hands():
  a, b = scene.user_shape(0, 1), scene.user_shape(0, 2)
  assert a != b
  assert scene.user_shape(0, 1) == a


def test_sequence_moves_continuously():
  clip = scene.render_sequence(5, 4, _SMALL)
  assert len(clip) == 4 and "phase_frames" in clip[0]
  present = [s for s in range(spec.NUM_SIDES) if clip[0]["hand_present"][s]]
  for side in present:
    steps = [np.abs(clip[i + 1]["keypoints_xy"][side] - clip[i]["keypoints_xy"][side]).max()
             for i in range(3)]
    assert max(steps) < 80
  assert clip[0]["amplitude"].tobytes() != clip[1]["amplitude"].tobytes()


def test_primitives_render_at_their_analytic_depth():
  camera = render.camera(120, 160, _SMALL.intrinsics)
  px = 200.0 * 160 / 320  # Focal length in pixels at this resolution.
  buf = render.DepthBuffer(camera)
  # A cylinder seen end-on: a flat disc at z = 0.5 of radius 0.05 m = 10 px.
  buf.add_cylinder(np.array([0.0, 0.0, 0.6]), np.array([0.0, 0.0, 0.5]), 0.05, 0)
  disc = buf.ids == 0
  np.testing.assert_allclose(buf.depth[disc], 0.5, atol=1e-9)
  assert abs(disc.sum() - np.pi * (0.05 * px / 0.5)**2) < 0.1 * disc.sum()
  # A capsule seen end-on is rounded: its nearest point is the sphere apex.
  buf = render.DepthBuffer(camera)
  buf.add_capsule(np.array([0.0, 0.0, 0.6]), np.array([0.0, 0.0, 0.5]), 0.05, 0)
  assert abs(buf.depth.min() - 0.45) < 1e-3
  # A sideways cylinder: depth across it follows the circle z = 0.5 - sqrt(r^2 - x^2).
  buf = render.DepthBuffer(camera)
  buf.add_cylinder(np.array([0.0, -0.1, 0.5]), np.array([0.0, 0.1, 0.5]), 0.05, 0)
  row = buf.depth[int(camera.intrinsics.cy)]
  assert abs(row.min() - 0.45) < 1e-3
  assert np.isinf(buf.depth[0, 0]) and buf.ids[0, 0] == -1
  # An axis-aligned box: its front face.
  buf = render.DepthBuffer(camera)
  buf.add_box(np.array([0.0, 0.0, 0.6]), np.eye(3), np.array([0.05, 0.05, 0.1]), 3)
  np.testing.assert_allclose(buf.depth[buf.ids == 3], 0.5, atol=1e-9)
