"""An articulated 21-joint hand: shape parameters, joint limits and kinematics.

The hand is modelled in a local frame (metres) of a *right* hand:
  +y runs from the wrist towards the fingers, +z is the palm normal (the side
  the palm faces) and +x = y x z points towards the thumb.
A left hand is the mirror image (local x negated). Joints: the wrist, then for
the thumb CMC, MCP, IP, tip and for each finger MCP, PIP, DIP, tip (21 in all).
The 17 labelled keypoints of `spec.KEYPOINT_NAMES` are 16 of these joints plus
the hand centre (the centroid of the wrist and the four finger MCPs).

A "user" is one `HandShape`: bone lengths, palm size and thickness. Data sets
are split by user so no hand geometry is shared between splits.
"""

import dataclasses

import numpy as np

from hand25d import spec

FINGERS = ("index", "middle", "ring", "pinky")
NUM_JOINTS = 21
# Joint order: wrist, thumb (cmc, mcp, ip, tip), then per finger (mcp, pip, dip, tip).
JOINT_NAMES = (("wrist",) + tuple(f"thumb_{j}" for j in ("cmc", "mcp", "ip", "tip")) +
               tuple(f"{f}_{j}" for f in FINGERS for j in ("mcp", "pip", "dip", "tip")))
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}
# Joint index of every labelled keypoint; -1 marks the derived hand centre.
KEYPOINT_JOINTS = tuple(
    -1 if n == "hand_center" else JOINT_INDEX["wrist" if n == "wrist_center" else n]
    for n in spec.KEYPOINT_NAMES)
_HAND_CENTER_JOINTS = (JOINT_INDEX["wrist"],) + tuple(JOINT_INDEX[f"{f}_mcp"] for f in FINGERS)

# Nominal right-hand geometry (metres), local frame.
_MCP = np.array([[0.027, 0.094, 0.0], [0.007, 0.100, 0.0], [-0.012, 0.095, 0.0],
                 [-0.029, 0.085, 0.0]])
_FINGER_BONES = np.array([[0.041, 0.024, 0.020], [0.046, 0.028, 0.021],
                          [0.043, 0.027, 0.021], [0.034, 0.019, 0.018]])
_FINGER_SPLAY_DEG = np.array([8.0, 0.0, -7.0, -15.0])  # Rest direction off +y.
_FINGER_RADII = np.array([0.0095, 0.0085, 0.0078])  # Proximal, middle, distal.
_THUMB_CMC = np.array([0.021, 0.022, 0.006])
_THUMB_BONES = np.array([0.044, 0.032, 0.027])  # Metacarpal, proximal, distal.
_THUMB_RADII = np.array([0.0125, 0.0105, 0.009])
_PALM_CENTER = np.array([0.0, 0.052, 0.0])
_PALM_SEMI_AXES = np.array([0.043, 0.054, 0.015])
_FOREARM_LENGTH = 0.26
_FOREARM_RADIUS = 0.03
# HandGeometry.capsules' bones: the joint each starts at (it ends at the
# next), the three of each finger, then of the thumb; and their radii.
_BONE_STARTS = np.array([5 + 4 * f + k for f in range(4) for k in range(3)] + [1, 2, 3])
_BONE_RADII = np.concatenate([np.tile(_FINGER_RADII, 4), _THUMB_RADII])
# The first part of the forearm counts as hand (the wrist keypoint lies on it).
_WRIST_LENGTH = 0.035

# Joint limits in degrees (anatomical ranges).
JOINT_LIMITS_DEG = {
    "mcp_flex": (-25.0, 95.0),
    "pip_flex": (0.0, 115.0),
    "dip_flex": (0.0, 85.0),
    "abduction": (-20.0, 20.0),
    "thumb_palmar": (-5.0, 80.0),  # Palmar abduction out of the palm plane.
    "thumb_radial": (-10.0, 90.0),  # Radial abduction within the palm plane.
    "thumb_mcp_flex": (-10.0, 70.0),
    "thumb_ip_flex": (-15.0, 85.0),
}


@dataclasses.dataclass(frozen=True)
class HandShape:
  """Per-user hand shape: multiplicative scales of the nominal hand."""
  size: float = 1.0  # Overall scale of every length.
  palm_width: float = 1.0
  finger_length: float = 1.0
  thickness: float = 1.0  # Radii of fingers, palm and forearm.
  finger_lengths: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # Per finger.


def sample_shape(rng: np.random.Generator) -> HandShape:
  """Samples a plausible adult hand (about +-12% size, +-10% proportions)."""
  return HandShape(
      size=float(rng.uniform(0.88, 1.12)),
      palm_width=float(rng.uniform(0.9, 1.1)),
      finger_length=float(rng.uniform(0.9, 1.1)),
      thickness=float(rng.uniform(0.85, 1.15)),
      finger_lengths=tuple(float(v) for v in rng.uniform(0.95, 1.05, size=len(FINGERS))))


@dataclasses.dataclass(frozen=True)
class Articulation:
  """Joint angles in degrees; arrays are per finger (index, middle, ring, pinky)."""
  mcp_flex: np.ndarray
  pip_flex: np.ndarray
  dip_flex: np.ndarray
  abduction: np.ndarray
  thumb_palmar: float
  thumb_radial: float
  thumb_mcp_flex: float
  thumb_ip_flex: float

  def clipped(self) -> "Articulation":
    """The articulation with every angle clamped to JOINT_LIMITS_DEG."""
    return Articulation(**{f.name: np.clip(getattr(self, f.name), *JOINT_LIMITS_DEG[f.name])
                           for f in dataclasses.fields(self)})


@dataclasses.dataclass(frozen=True)
class HandGeometry:
  """A posed hand in camera space (metres), ready to render.

  Attributes:
    joints: [21, 3] joint positions.
    keypoints: [NUM_KEYPOINTS, 3] labelled keypoints in spec order.
    capsules: [15, 7] rows (ax, ay, az, bx, by, bz, radius): the three bones
      of each finger, then of the thumb.
    palm: (center [3], rotation [3, 3] columns = ellipsoid axes, semi-axes [3]).
    wrist: [7] capsule row of the wrist, the first few centimetres of the
      forearm: part of the hand.
    forearm: [7] capsule row of the rest of the forearm towards the elbow.
  """
  joints: np.ndarray
  keypoints: np.ndarray
  capsules: np.ndarray
  palm: tuple[np.ndarray, np.ndarray, np.ndarray]
  wrist: np.ndarray
  forearm: np.ndarray


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """np.cross of [..., 3] vectors, the same operations (and bits) without its axis handling.

  np.cross takes 1.7-1.9x as long on the 3-vectors of hand posing and the
  [N, 3] arrays of the pose search.
  """
  a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
  b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
  return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], -1)


def _unit(v: np.ndarray) -> np.ndarray:
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def thumb_joints(shape: HandShape, palmar, radial, mcp_flex, ip_flex) -> np.ndarray:
  """[..., 4, 3] thumb CMC, MCP, IP and tip of a right hand (angles in degrees).

  Vectorised over the angles' common shape so pose search can try many thumbs
  at once. The metacarpal direction comes from the two abduction angles; MCP
  and IP flexion bend the thumb towards the palm's ulnar side.
  """
  # At zero radial abduction the metacarpal points 25 deg radial of the hand axis.
  rad = np.deg2rad(np.asarray(radial, np.float64) + 25.0)
  pal = np.deg2rad(np.asarray(palmar, np.float64))
  flex = np.deg2rad(np.stack(np.broadcast_arrays(np.zeros_like(pal), mcp_flex, ip_flex), -1))
  rad, pal = np.broadcast_arrays(rad, pal)
  z = np.array([0.0, 0.0, 1.0])
  in_plane = np.stack([np.sin(rad), np.cos(rad), np.zeros_like(rad)], -1)
  d = _unit(np.cos(pal)[..., None] * in_plane + np.sin(pal)[..., None] * z)
  # Flexion bends towards the palm (+z) and across it (d x -z, the ulnar side).
  bend = _unit(cross(d, -z) * 0.6 + z)
  bend = _unit(bend - np.sum(bend * d, -1, keepdims=True) * d)
  angles = np.cumsum(flex, axis=-1)[..., None]  # [..., 3, 1]
  steps = ((np.cos(angles) * d[..., None, :] + np.sin(angles) * bend[..., None, :]) *
           (_THUMB_BONES[:, None] * shape.size * shape.finger_length))
  cmc = _THUMB_CMC * np.array([shape.palm_width, 1.0, 1.0]) * shape.size
  out = np.concatenate([np.zeros_like(steps[..., :1, :]), np.cumsum(steps, axis=-2)], axis=-2)
  return out + cmc


def finger_joints(shape: HandShape, finger, mcp_flex, pip_flex, dip_flex,
                  abduction) -> np.ndarray:
  """[..., 4, 3] MCP, PIP, DIP and tip of right-hand fingers (angles in degrees).

  Vectorised over the common shape of the finger indices (0 = index .. 3 =
  pinky, an int or an int array) and the angles. Flexion rotates each bone
  from the finger's in-palm direction towards the palm normal (+z).
  """
  finger = np.asarray(finger)
  splay = np.deg2rad(_FINGER_SPLAY_DEG[finger] + np.asarray(abduction, np.float64))
  flex = np.deg2rad(np.stack(np.broadcast_arrays(mcp_flex, pip_flex, dip_flex), -1))
  splay = np.broadcast_to(splay, flex.shape[:-1])
  u = np.stack([-np.sin(splay), np.cos(splay), np.zeros_like(splay)], -1)[..., None, :]
  angles = np.cumsum(flex, axis=-1)[..., None]  # [..., 3, 1]
  lengths = (_FINGER_BONES[finger] * shape.size * shape.finger_length *
             np.asarray(shape.finger_lengths)[finger][..., None])[..., None]
  steps = (np.cos(angles) * u + np.sin(angles) * np.array([0.0, 0.0, 1.0])) * lengths
  mcp = (_MCP[finger] * np.array([shape.palm_width, 1.0, 1.0]) * shape.size)[..., None, :]
  return np.concatenate([np.zeros_like(steps[..., :1, :]), np.cumsum(steps, axis=-2)], -2) + mcp


def local_joints(shape: HandShape, art: Articulation) -> np.ndarray:
  """[21, 3] joint positions of a right hand in its local frame (metres)."""
  art = art.clipped()
  joints = np.zeros((NUM_JOINTS, 3))
  joints[1:5] = thumb_joints(shape, art.thumb_palmar, art.thumb_radial, art.thumb_mcp_flex,
                             art.thumb_ip_flex)
  joints[5:] = finger_joints(shape, np.arange(len(FINGERS)), art.mcp_flex, art.pip_flex,
                             art.dip_flex, art.abduction).reshape(-1, 3)
  return joints


def keypoints_from_joints(joints: np.ndarray) -> np.ndarray:
  """[NUM_KEYPOINTS, 3] labelled keypoints (spec order) from [21, 3] joints."""
  idx = np.array(KEYPOINT_JOINTS)
  kp = joints[np.maximum(idx, 0)].copy()
  kp[idx < 0] = joints[list(_HAND_CENTER_JOINTS)].mean(axis=0)
  return kp


def pose_hand(shape: HandShape, art: Articulation, side: int, rotation: np.ndarray,
              wrist: np.ndarray, forearm_dir: np.ndarray) -> HandGeometry:
  """Places a hand in camera space.

  Args:
    shape: the user's hand shape.
    art: joint angles.
    side: spec.LEFT or spec.RIGHT; a left hand mirrors the local x axis.
    rotation: [3, 3] proper rotation whose columns are the local x, y, z axes
      in camera coordinates.
    wrist: [3] camera-space position of the wrist joint.
    forearm_dir: [3] unit vector from the wrist towards the elbow.

  Returns:
    The posed HandGeometry.
  """
  mirror = np.array([-1.0 if side == spec.LEFT else 1.0, 1.0, 1.0])
  local = local_joints(shape, art) * mirror
  joints = local @ rotation.T + wrist
  t = shape.thickness * shape.size
  capsules = np.concatenate([joints[_BONE_STARTS], joints[_BONE_STARTS + 1],
                             (_BONE_RADII * t)[:, None]], axis=1)
  # The palm is an ellipsoid flattened along the palm normal.
  palm_center = (_PALM_CENTER * mirror) @ rotation.T * shape.size + wrist
  palm_axes = _PALM_SEMI_AXES * np.array([shape.palm_width * shape.size, shape.size, t])
  cuff = wrist + forearm_dir * _WRIST_LENGTH * shape.size
  elbow = wrist + forearm_dir * _FOREARM_LENGTH * shape.size
  radius = [_FOREARM_RADIUS * t]
  return HandGeometry(joints=joints, keypoints=keypoints_from_joints(joints),
                      capsules=capsules, palm=(palm_center, rotation, palm_axes),
                      wrist=np.concatenate([wrist, cuff, radius]),
                      forearm=np.concatenate([cuff, elbow, radius]))
