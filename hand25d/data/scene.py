"""Scenes and frames: hands, background planes, distractors -> labelled TOF frame.

`render_frame` turns a seed into one fully labelled frame (numpy arrays, the
four phase frames included); `render_sequence` renders a short continuous clip
(hands moving and changing pose smoothly in a fixed scene). Both are plain
library functions without flags: the generator, the preview and the runtime
call them.
"""

import dataclasses

import numpy as np

from hand25d import spec
from hand25d.data import hand_model
from hand25d.data import poses
from hand25d.data import render
from hand25d.data import tof

# Hand centres sit further than this from the camera so that no hand touches it.
_MIN_HAND_DEPTH_M = spec.SENSOR.min_depth_m
# A keypoint is visible when the surface at its pixel belongs to its own hand
# and lies at most this far in front of it (the finger or palm covering it);
# the wrist, inside the thicker forearm, allows its radius plus a centimetre.
_VISIBILITY_DEPTH_TOLERANCE_M = 0.025
_WRIST = spec.KEYPOINT_INDEX["wrist_center"]
# A hand is present when at least this many of its pixels are seen.
_MIN_PRESENT_PIXELS = 20
_PLANE_MAX_DEPTH_M = 3.0


@dataclasses.dataclass(frozen=True)
class SceneConfig:
  """What scenes contain and the sensor that sees them."""
  height: int = spec.SENSOR.height
  width: int = spec.SENSOR.width
  intrinsics: spec.Intrinsics = spec.SENSOR.intrinsics
  two_hands_prob: float = 0.4
  no_hand_prob: float = 0.05
  wall_prob: float = 0.7
  table_prob: float = 0.6
  max_distractors: int = 3
  sensor_model: tof.TofConfig = tof.TofConfig()

  def scaled(self, height: int, width: int) -> "SceneConfig":
    """The same sensor at another resolution (intrinsics scaled to match)."""
    return dataclasses.replace(
        self, height=height, width=width,
        intrinsics=self.intrinsics.scaled(width / self.width, height / self.height))


@dataclasses.dataclass(frozen=True)
class Hand:
  side: int
  pose: int
  articulation: hand_model.Articulation
  placement: poses.Placement
  skin_reflectivity: float
  sleeve_reflectivity: float


@dataclasses.dataclass(frozen=True)
class Scene:
  """A scene description: hands plus background primitives as (kind, params, reflectivity)."""
  hands: tuple[Hand, ...]
  background: tuple[tuple[str, tuple, float], ...]
  ambient: float


def sample_scene(rng: np.random.Generator, config: SceneConfig,
                 shape: hand_model.HandShape) -> Scene:
  """Draws hands (0, 1 or 2, sides random), planes, distractors and ambient light."""
  u = rng.uniform()
  if u < config.no_hand_prob:
    sides = ()
  elif u < config.no_hand_prob + config.two_hands_prob:
    sides = (spec.LEFT, spec.RIGHT)
  else:
    sides = (int(rng.integers(spec.NUM_SIDES)),)
  hands = []
  for side in sides:
    pose = int(rng.integers(spec.NUM_POSE_CLASSES))
    hands.append(Hand(
        side=side, pose=pose, articulation=poses.sample_articulation(pose, shape, rng),
        placement=poses.sample_placement(rng, config.intrinsics, config.height, config.width, side,
                                         (_MIN_HAND_DEPTH_M, spec.SENSOR.max_depth_m)),
        skin_reflectivity=float(rng.uniform(0.35, 0.7)),
        sleeve_reflectivity=float(rng.uniform(0.1, 0.8))))
  background = []
  if rng.uniform() < config.wall_prob:
    normal = np.array([rng.normal(0, 0.3), rng.normal(0, 0.3), -1.0])
    background.append(("plane", (np.array([0.0, 0.0, rng.uniform(0.6, 1.8)]),
                                 normal / np.linalg.norm(normal)), rng.uniform(0.2, 0.9)))
  if rng.uniform() < config.table_prob:
    normal = np.array([rng.normal(0, 0.2), -1.0, -rng.uniform(0.2, 1.5)])
    background.append(("plane", (np.array([0.0, rng.uniform(0.25, 0.6), 0.5]),
                                 normal / np.linalg.norm(normal)), rng.uniform(0.1, 0.9)))
  for _ in range(int(rng.integers(config.max_distractors + 1))):
    z = rng.uniform(0.25, 1.4)
    centre = np.array([rng.uniform(-0.7, 0.7) * z, rng.uniform(-0.5, 0.5) * z, z])
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    size = rng.uniform(0.01, 0.06)
    kind = ("capsule", "cylinder", "sphere", "box")[int(rng.integers(4))]
    if kind in ("capsule", "cylinder"):  # Pens, cups, bottles, handles.
      half = rng.uniform(0.03, 0.12)
      params = (centre - axis * half, centre + axis * half, size)
    elif kind == "sphere":
      params = (centre, np.eye(3), np.full(3, size))
    else:
      q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
      params = (centre, q * np.sign(np.linalg.det(q)), rng.uniform(0.01, 0.08, size=3))
    background.append((kind, params, rng.uniform(0.1, 0.9)))
  return Scene(hands=tuple(hands), background=tuple(background),
               ambient=float(rng.uniform(*config.sensor_model.ambient_range)))


def render_scene(scene: Scene, shape: hand_model.HandShape, config: SceneConfig,
                 rng: np.random.Generator, user_id: int = 0,
                 with_phase_frames: bool = True) -> dict[str, np.ndarray]:
  """Renders a scene into a labelled frame; `rng` draws only the sensor noise.

  Returns:
    A dict of numpy arrays (H, W from config, S = spec.NUM_SIDES,
    K = spec.NUM_KEYPOINTS): phase_frames [4, H, W] uint16 (if requested),
    amplitude [H, W] uint16, depth [H, W] float32 metres (0 = invalid),
    true_depth [H, W] float32 metres (0 = no surface), segmentation [H, W]
    uint8, keypoints_xy [S, K, 2] float32 sensor pixels, keypoints_depth
    [S, K] float32 camera z in metres, keypoint_visible [S, K] uint8,
    hand_present [S] uint8, pose [S] int64 (0 if absent), orientation_bin [S]
    int64 (0 if absent), roll_deg [S] float32, user_id int64 scalar.
  """
  camera = render.camera(config.height, config.width, config.intrinsics)
  buf = render.DepthBuffer(camera)
  # Object ids index these tables; id -1 (no hit) reads the last entry.
  seg_of_id, refl_of_id = [], []
  geometry = {}
  for hand in scene.hands:
    p = hand.placement
    geo = hand_model.pose_hand(shape, hand.articulation, hand.side, p.rotation(hand.side),
                               p.wrist(hand.side, shape), p.forearm_dir)
    geometry[hand.side] = geo
    hand_id = len(seg_of_id)
    seg_of_id.append(spec.SIDE_SEGMENTATION_CLASS[hand.side])
    refl_of_id.append(hand.skin_reflectivity)
    for row in geo.capsules:
      buf.add_capsule(row[:3], row[3:6], row[6], hand_id)
    buf.add_ellipsoid(*geo.palm, hand_id)
    buf.add_capsule(geo.wrist[:3], geo.wrist[3:6], geo.wrist[6], hand_id)
    seg_of_id.append(spec.BACKGROUND)  # The forearm beyond the wrist is not hand.
    refl_of_id.append(hand.sleeve_reflectivity)
    buf.add_capsule(geo.forearm[:3], geo.forearm[3:6], geo.forearm[6], hand_id + 1)
  for kind, params, refl in scene.background:
    obj_id = len(seg_of_id)
    seg_of_id.append(spec.BACKGROUND)
    refl_of_id.append(refl)
    if kind == "plane":
      buf.add_plane(*params, obj_id, max_depth=_PLANE_MAX_DEPTH_M)
    elif kind == "capsule":
      buf.add_capsule(*params, obj_id)
    elif kind == "cylinder":
      buf.add_cylinder(*params, obj_id)
    elif kind == "sphere":
      buf.add_ellipsoid(*params, obj_id)
    else:
      buf.add_box(*params, obj_id)
  seg_of_id.append(spec.BACKGROUND)
  refl_of_id.append(0.0)
  segmentation = np.take(np.array(seg_of_id, np.uint8), buf.ids)
  reflectivity = np.take(np.array(refl_of_id, np.float32), buf.ids)

  frames = tof.phase_frames(buf.depth, reflectivity, camera, scene.ambient, rng,
                            config.sensor_model)
  frame = {
      "amplitude": tof.amplitude(frames),
      "depth": tof.depth(frames, camera, config.sensor_model),
      "true_depth": np.where(np.isfinite(buf.depth), buf.depth, 0.0).astype(np.float32),
      "segmentation": segmentation,
  }
  if with_phase_frames:
    frame["phase_frames"] = frames
  frame.update(_labels(scene, geometry, buf, segmentation, camera))
  frame["user_id"] = np.int64(user_id)
  return frame


def empty_labels() -> dict[str, np.ndarray]:
  """Per-side labels of a frame without hands (zeros), to be filled per hand."""
  s, k = spec.NUM_SIDES, spec.NUM_KEYPOINTS
  return {
      "keypoints_xy": np.zeros((s, k, 2), np.float32),
      "keypoints_depth": np.zeros((s, k), np.float32),
      "keypoint_visible": np.zeros((s, k), np.uint8),
      "hand_present": np.zeros((s,), np.uint8),
      "pose": np.zeros((s,), np.int64),
      "orientation_bin": np.zeros((s,), np.int64),
      "roll_deg": np.zeros((s,), np.float32),
  }


def _labels(scene, geometry, buf, segmentation, camera) -> dict[str, np.ndarray]:
  """Per-side keypoints, visibility (depth test + bounds), presence, pose, roll."""
  out = empty_labels()
  for hand in scene.hands:
    side, kp = hand.side, geometry[hand.side].keypoints
    xy = camera.project(kp)
    out["keypoints_xy"][side] = xy
    out["keypoints_depth"][side] = kp[:, 2]
    seg_class = spec.SIDE_SEGMENTATION_CLASS[side]
    if np.count_nonzero(segmentation == seg_class) < _MIN_PRESENT_PIXELS:
      continue
    out["hand_present"][side] = 1
    out["pose"][side] = hand.pose
    out["roll_deg"][side] = hand.placement.roll_deg
    out["orientation_bin"][side] = spec.orientation_bin(hand.placement.roll_deg)
    col, row = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    inside = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height) & (kp[:, 2] > 0)
    col, row = np.clip(col, 0, camera.width - 1), np.clip(row, 0, camera.height - 1)
    own = segmentation[row, col] == seg_class
    tolerance = np.full(len(kp), _VISIBILITY_DEPTH_TOLERANCE_M)
    tolerance[_WRIST] = max(_VISIBILITY_DEPTH_TOLERANCE_M, geometry[side].wrist[6] + 0.01)
    unoccluded = buf.depth[row, col] >= kp[:, 2] - tolerance
    out["keypoint_visible"][side] = inside & own & unoccluded
  return out


def user_shape(dataset_seed: int, user_id: int) -> hand_model.HandShape:
  """The hand shape of a user: a pure function of (dataset seed, user id)."""
  return hand_model.sample_shape(np.random.default_rng([dataset_seed, user_id, 0x5EED]))


def render_frame(seed: int | np.random.SeedSequence, config: SceneConfig = SceneConfig(), user_id: int = 0,
                 shape: hand_model.HandShape | None = None,
                 with_phase_frames: bool = True) -> dict[str, np.ndarray]:
  """Renders one labelled frame from a seed (see render_scene for the arrays).

  Args:
    seed: the frame's seed; the same seed gives the same frame.
    config: scene and sensor configuration.
    user_id: stored in the frame's labels.
    shape: hand shape (e.g. user_shape(dataset_seed, user_id)); default: a
      shape drawn from the seed.
    with_phase_frames: also return the four raw phase frames.
  """
  rng = np.random.default_rng(seed)
  shape = shape or hand_model.sample_shape(rng)
  scene = sample_scene(rng, config, shape)
  return render_scene(scene, shape, config, rng, user_id, with_phase_frames)


def render_sequence(seed: int | np.random.SeedSequence, num_frames: int,
                    config: SceneConfig = SceneConfig(), user_id: int = 0,
                    shape: hand_model.HandShape | None = None) -> list[dict[str, np.ndarray]]:
  """A continuous clip: every hand moves and morphs between two sampled states.

  The background stays fixed, each hand's side stays the same, its placement
  and joint angles interpolate linearly from a start state to an end state,
  and the sensor noise is new in every frame. The pose label switches from
  the start class to the end class half-way. Arguments as for render_frame;
  every frame includes the phase frames.
  """
  rng = np.random.default_rng(seed)
  shape = shape or hand_model.sample_shape(rng)
  start = sample_scene(rng, config, shape)
  end_hands = []
  for hand in start.hands:
    pose = int(rng.integers(spec.NUM_POSE_CLASSES))
    end_hands.append(dataclasses.replace(
        hand, pose=pose, articulation=poses.sample_articulation(pose, shape, rng),
        placement=poses.sample_placement(rng, config.intrinsics, config.height, config.width,
                                         hand.side, (_MIN_HAND_DEPTH_M, spec.SENSOR.max_depth_m))))
  clip = []
  for i in range(num_frames):
    w = i / max(num_frames - 1, 1)
    hands = tuple(dataclasses.replace(
        a, pose=a.pose if w < 0.5 else b.pose,
        articulation=_lerp_articulation(a.articulation, b.articulation, w),
        placement=poses.interpolate(a.placement, b.placement, w))
        for a, b in zip(start.hands, end_hands))
    clip.append(render_scene(dataclasses.replace(start, hands=hands), shape, config, rng, user_id))
  return clip


def _lerp_articulation(a: hand_model.Articulation, b: hand_model.Articulation,
                       w: float) -> hand_model.Articulation:
  return hand_model.Articulation(**{
      f.name: (1 - w) * np.asarray(getattr(a, f.name)) + w * np.asarray(getattr(b, f.name))
      for f in dataclasses.fields(a)})
