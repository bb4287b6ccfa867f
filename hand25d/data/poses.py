"""Pose sampling: joint angles for the 9 pose classes and egocentric placement.

Each named pose class is a template of joint angles plus Gaussian variation;
`other` draws every angle uniformly within the joint limits. `ok` and `pinch`
close the thumb onto the index fingertip by a small vectorised search over the
thumb's and the index finger's angles. Placement puts the hand in front of an
egocentric camera within spec.SENSOR's working range, with the forearm coming
from the wearer and a roll about the hand's long axis (the forearm axis up to
the wrist bend) drawn uniformly over all orientation bins.
"""

import dataclasses

import numpy as np

from hand25d import spec
from hand25d.data import hand_model

# Finger templates (mcp, pip, dip) in degrees; 'thumb' is (palmar, radial, mcp, ip).
_CURLED = (85.0, 100.0, 60.0)
_STRAIGHT = (5.0, 5.0, 3.0)
_TEMPLATES = {
    "open_hand": dict(fingers=[_STRAIGHT] * 4, spread=12.0, thumb=(20.0, 55.0, 0.0, 0.0)),
    "fist": dict(fingers=[_CURLED] * 4, spread=0.0, thumb=(45.0, 5.0, 40.0, 35.0)),
    "point": dict(fingers=[_STRAIGHT] + [_CURLED] * 3, spread=0.0, thumb=(45.0, 5.0, 40.0, 35.0)),
    "l_pose": dict(fingers=[_STRAIGHT] + [_CURLED] * 3, spread=0.0, thumb=(10.0, 65.0, 0.0, 0.0)),
    "thumbs_up": dict(fingers=[_CURLED] * 4, spread=0.0, thumb=(15.0, 0.0, 0.0, 0.0)),
    "c_pose": dict(fingers=[(30.0, 45.0, 20.0)] * 4, spread=0.0, thumb=(55.0, 35.0, 10.0, 5.0)),
    "pinch": dict(fingers=[(40.0, 45.0, 25.0)] + [(35.0, 50.0, 30.0)] * 3, spread=3.0, thumb=None),
    "ok": dict(fingers=[(45.0, 55.0, 35.0)] + [(8.0, 10.0, 5.0)] * 3, spread=10.0, thumb=None),
}
_ANGLE_JITTER_DEG = 7.0
_THUMB_FIELDS = ("thumb_palmar", "thumb_radial", "thumb_mcp_flex", "thumb_ip_flex")
_INDEX_FIELDS = ("mcp_flex", "pip_flex", "dip_flex")


def _close_thumb_on_index(shape: hand_model.HandShape, art: hand_model.Articulation,
                          rng: np.random.Generator) -> hand_model.Articulation:
  """Adjusts the thumb and the index finger so that their tips (nearly) touch.

  A vectorised random search over the 4 thumb angles and the index finger's
  3 flexions (kept within +-25 degrees of the template), refined around the
  best candidate.
  """
  lim = hand_model.JOINT_LIMITS_DEG
  index = np.array([art.mcp_flex[0], art.pip_flex[0], art.dip_flex[0]])
  lo = np.concatenate([[lim[f][0] for f in _THUMB_FIELDS],
                       np.maximum(index - 25.0, [lim[f][0] for f in _INDEX_FIELDS])])
  hi = np.concatenate([[lim[f][1] for f in _THUMB_FIELDS],
                       np.minimum(index + 25.0, [lim[f][1] for f in _INDEX_FIELDS])])

  def tip_distance(c):
    thumb = hand_model.thumb_joints(shape, c[:, 0], c[:, 1], c[:, 2], c[:, 3])[:, -1]
    tip = hand_model.finger_joints(shape, 0, c[:, 4], c[:, 5], c[:, 6], art.abduction[0])[:, -1]
    return np.linalg.norm(thumb - tip, axis=-1)

  candidates = rng.uniform(lo, hi, size=(1024, 7))
  best = candidates[np.argmin(tip_distance(candidates))]
  for scale in (8.0, 4.0, 2.0, 1.0):
    trials = np.clip(best + rng.normal(0.0, scale, (96, 7)), lo, hi)
    candidates = np.concatenate([best[None], trials])
    best = candidates[np.argmin(tip_distance(candidates))]
  flex = {f: getattr(art, f).copy() for f in _INDEX_FIELDS}
  for f, v in zip(_INDEX_FIELDS, best[4:]):
    flex[f][0] = v
  return dataclasses.replace(art, **flex, **{f: float(v) for f, v in zip(_THUMB_FIELDS, best[:4])})


def sample_articulation(pose: int, shape: hand_model.HandShape,
                        rng: np.random.Generator) -> hand_model.Articulation:
  """Joint angles of pose class `pose` (an index into spec.POSE_CLASSES)."""
  name = spec.POSE_CLASSES[pose]
  if name == "other":
    lim = hand_model.JOINT_LIMITS_DEG
    return hand_model.Articulation(
        mcp_flex=rng.uniform(*lim["mcp_flex"], 4), pip_flex=rng.uniform(*lim["pip_flex"], 4),
        dip_flex=rng.uniform(*lim["dip_flex"], 4), abduction=rng.uniform(*lim["abduction"], 4),
        **{f: float(rng.uniform(*lim[f])) for f in _THUMB_FIELDS})
  t = _TEMPLATES[name]
  fingers = np.array(t["fingers"]) + rng.normal(0.0, _ANGLE_JITTER_DEG, size=(4, 3))
  spread = t["spread"] * np.array([1.0, 0.0, -1.0, -1.6]) + rng.normal(0.0, 3.0, size=4)
  thumb = (np.array(t["thumb"]) + rng.normal(0.0, _ANGLE_JITTER_DEG, size=4)
           if t["thumb"] is not None else np.zeros(4))
  art = hand_model.Articulation(
      mcp_flex=fingers[:, 0], pip_flex=fingers[:, 1], dip_flex=fingers[:, 2], abduction=spread,
      **dict(zip(_THUMB_FIELDS, (float(v) for v in thumb)))).clipped()
  if t["thumb"] is None:
    art = _close_thumb_on_index(shape, art, rng)
  return art


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
  """Rodrigues rotation of v about a unit axis."""
  return (v * np.cos(angle) + hand_model.cross(axis, v) * np.sin(angle) +
          axis * np.dot(axis, v) * (1.0 - np.cos(angle)))


def hand_frame(side: int, hand_dir: np.ndarray, position: np.ndarray,
               roll_deg: float) -> np.ndarray:
  """Rotation (columns = local x, y, z) for a hand pointing along `hand_dir`.

  Roll 0 turns the palm normal towards the camera. The roll is mirror
  symmetric: a right hand turns by +roll about its hand axis, a left hand by
  -roll, so a horizontally flipped image keeps the same roll and bin.
  """
  y = hand_dir / np.linalg.norm(hand_dir)
  to_cam = -position / np.linalg.norm(position)
  ref = to_cam - np.dot(to_cam, y) * y
  ref /= np.linalg.norm(ref)
  sign = 1.0 if side == spec.RIGHT else -1.0
  z = _rotate(ref, y, sign * np.deg2rad(roll_deg))
  x = hand_model.cross(y, z)
  return np.stack([x, y, z], axis=1)


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where a hand is, independent of its side (see hand_frame for the roll)."""
  centre: np.ndarray  # Camera-space hand centre (metres).
  hand_dir: np.ndarray  # Unit vector from the wrist towards the fingers.
  forearm_dir: np.ndarray  # Unit vector from the wrist towards the elbow.
  roll_deg: float

  def rotation(self, side: int) -> np.ndarray:
    return hand_frame(side, self.hand_dir, self.centre, self.roll_deg)

  def wrist(self, side: int, shape: hand_model.HandShape) -> np.ndarray:
    """The wrist sits half a palm length behind the hand centre."""
    return self.centre - self.rotation(side)[:, 1] * _WRIST_TO_CENTRE_M * shape.size


_WRIST_TO_CENTRE_M = 0.055


def sample_placement(rng: np.random.Generator, intrinsics: spec.Intrinsics, height: int,
                     width: int, side: int,
                     depth_range: tuple[float, float] | None = None) -> Placement:
  """Egocentric placement: hand centre within the working range, roll uniform.

  The depth is drawn uniformly in inverse depth over `depth_range` (default
  spec.SENSOR's working range), so near and far hands are equally common in
  pixels. The forearm comes from the wearer (towards the camera and the bottom
  of the image, on the hand's own side); the hand centre lands anywhere in the
  image with a margin, so some hands are cut by the border.
  """
  lo, hi = depth_range or (spec.SENSOR.min_depth_m, spec.SENSOR.max_depth_m)
  z = 1.0 / rng.uniform(1.0 / hi, 1.0 / lo)
  u = rng.uniform(0.1, 0.9) * width
  v = rng.uniform(0.15, 0.9) * height
  centre = np.array([(u - intrinsics.cx) / intrinsics.fx * z,
                     (v - intrinsics.cy) / intrinsics.fy * z, z])
  sx = -1.0 if side == spec.LEFT else 1.0
  forearm_dir = np.array([sx * rng.uniform(-0.1, 0.6), rng.uniform(0.4, 1.0),
                          -rng.uniform(0.3, 1.0)])
  forearm_dir /= np.linalg.norm(forearm_dir)
  # Wrist flexion and deviation: the hand axis leaves the forearm axis.
  hand_dir = -forearm_dir + rng.normal(0.0, 0.3, size=3)
  hand_dir /= np.linalg.norm(hand_dir)
  return Placement(centre=centre, hand_dir=hand_dir, forearm_dir=forearm_dir,
                   roll_deg=float(rng.uniform(-180.0, 180.0)))


def interpolate(p0: Placement, p1: Placement, w: float) -> Placement:
  """Placement a fraction w of the way from p0 to p1 (roll along the short arc)."""
  droll = (p1.roll_deg - p0.roll_deg + 180.0) % 360.0 - 180.0

  def lerp_dir(a, b):
    v = (1 - w) * a + w * b
    return v / np.linalg.norm(v)

  return Placement(centre=(1 - w) * p0.centre + w * p1.centre,
                   hand_dir=lerp_dir(p0.hand_dir, p1.hand_dir),
                   forearm_dir=lerp_dir(p0.forearm_dir, p1.forearm_dir),
                   roll_deg=float((p0.roll_deg + w * droll + 180.0) % 360.0 - 180.0))
