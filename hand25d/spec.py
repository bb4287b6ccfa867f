"""The hand25d data model: the single source of truth for names, counts and layouts.

Every other module takes keypoint names, class lists, channel layouts, sensor
geometry and output names from here; nothing else hard-codes "16" or "17".
See docs/spec.md.

Conventions:
  * Images are H x W (rows x columns); pixel (x, y) means column x, row y, with
    pixel centres at integer coordinates.
  * Keypoint arrays are laid out [side, keypoint, ...] with side 0 = left,
    1 = right.
  * The network's primary output has NUM_PRIMARY_CHANNELS score maps:
    the 8 primary keypoints of the left hand, then those of the right hand.
"""

import dataclasses
import math

import numpy as np

from hand25d import paper

# --- Keypoints ---------------------------------------------------------------

KEYPOINT_NAMES = (
    "wrist_center",
    "hand_center",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_mcp",
    "index_pip",
    "index_tip",
    "middle_mcp",
    "middle_pip",
    "middle_tip",
    "ring_mcp",
    "ring_pip",
    "ring_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_tip",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# The 8 keypoints the deployed network predicts per hand, in output order.
PRIMARY_KEYPOINT_NAMES = (
    "wrist_center",
    "hand_center",
    "thumb_mcp",
    "thumb_tip",
    "index_mcp",
    "index_pip",
    "index_tip",
    "middle_mcp",
)
NUM_PRIMARY_KEYPOINTS = len(PRIMARY_KEYPOINT_NAMES)
# Index into KEYPOINT_NAMES of each primary keypoint, in primary order.
PRIMARY_KEYPOINT_INDICES = tuple(KEYPOINT_INDEX[n] for n in PRIMARY_KEYPOINT_NAMES)

FINGERTIP_NAMES = ("thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip")
FINGERTIP_INDICES = tuple(KEYPOINT_INDEX[n] for n in FINGERTIP_NAMES)
# Fingertip keypoint loss terms count this many times (paper §4).
FINGERTIP_LOSS_WEIGHT = paper.FINGERTIP_WEIGHT

# Kinematic parent of each labelled keypoint (-1: root), for drawing skeletons.
KEYPOINT_PARENTS = (
    -1,  # wrist_center
    0,  # hand_center
    0,  # thumb_mcp
    2,  # thumb_ip
    3,  # thumb_tip
    1,  # index_mcp
    5,  # index_pip
    6,  # index_tip
    1,  # middle_mcp
    8,  # middle_pip
    9,  # middle_tip
    1,  # ring_mcp
    11,  # ring_pip
    12,  # ring_tip
    1,  # pinky_mcp
    14,  # pinky_pip
    15,  # pinky_tip
)

# --- Hands -------------------------------------------------------------------

SIDES = ("left", "right")
NUM_SIDES = len(SIDES)
LEFT, RIGHT = 0, 1

# Primary output: channel = side * NUM_PRIMARY_KEYPOINTS + primary index.
NUM_PRIMARY_CHANNELS = NUM_SIDES * NUM_PRIMARY_KEYPOINTS
# Auxiliary output: channel = side * NUM_KEYPOINTS + keypoint index.
NUM_AUX_CHANNELS = NUM_SIDES * NUM_KEYPOINTS


def primary_channel(side: str, keypoint: str) -> int:
  """Returns the primary output channel of `keypoint` on hand `side`.

  Raises:
    ValueError: if the side is unknown or the keypoint is not primary.
  """
  if side not in SIDES:
    raise ValueError(f"unknown side {side!r}; expected one of {SIDES}")
  if keypoint not in PRIMARY_KEYPOINT_NAMES:
    raise ValueError(
        f"{keypoint!r} is not a primary keypoint; primary keypoints are "
        f"{PRIMARY_KEYPOINT_NAMES}")
  return SIDES.index(side) * NUM_PRIMARY_KEYPOINTS + PRIMARY_KEYPOINT_NAMES.index(keypoint)


def channel_names(primary: bool = True) -> tuple[str, ...]:
  """Names of the output channels, e.g. 'left/thumb_tip', in channel order."""
  names = PRIMARY_KEYPOINT_NAMES if primary else KEYPOINT_NAMES
  return tuple(f"{side}/{name}" for side in SIDES for name in names)


def _loss_weights(names: tuple[str, ...]) -> np.ndarray:
  per_hand = [FINGERTIP_LOSS_WEIGHT if n in FINGERTIP_NAMES else 1.0 for n in names]
  return np.array(per_hand * NUM_SIDES, np.float32)


# Per-channel keypoint loss weights with fingertips doubled (paper §4).
PRIMARY_CHANNEL_LOSS_WEIGHTS = _loss_weights(PRIMARY_KEYPOINT_NAMES)
AUX_CHANNEL_LOSS_WEIGHTS = _loss_weights(KEYPOINT_NAMES)

# Horizontal flip: a left hand becomes a right hand. Channel permutations that
# swap the two hands' blocks (the keypoint order within a hand is unchanged).
PRIMARY_FLIP_PERMUTATION = tuple(
    (c + NUM_PRIMARY_KEYPOINTS) % NUM_PRIMARY_CHANNELS for c in range(NUM_PRIMARY_CHANNELS))
AUX_FLIP_PERMUTATION = tuple(
    (c + NUM_KEYPOINTS) % NUM_AUX_CHANNELS for c in range(NUM_AUX_CHANNELS))

# --- Discrete pose -----------------------------------------------------------

POSE_CLASSES = (
    "ok",
    "open_hand",
    "pinch",
    "c_pose",
    "fist",
    "l_pose",
    "point",
    "thumbs_up",
    "other",
)
NUM_POSE_CLASSES = len(POSE_CLASSES)
POSE_INDEX = {name: i for i, name in enumerate(POSE_CLASSES)}

# --- Orientation -------------------------------------------------------------

# Roll of the hand about the forearm axis, binned into 8 bins of 45 degrees.
# Bin 0 is centred on roll 0 (palm facing the camera): it covers [-22.5, 22.5).
NUM_ORIENTATION_BINS = 8
ORIENTATION_BIN_DEGREES = 360.0 / NUM_ORIENTATION_BINS
# Soft label mass on (previous bin, true bin, next bin); sums to 1.
ORIENTATION_SOFT_MASS = (0.25, 0.5, 0.25)


def orientation_bin(roll_degrees: float) -> int:
  """Orientation bin of a roll angle in degrees (any real value; wraps)."""
  if not math.isfinite(roll_degrees):
    raise ValueError(f"roll must be finite, got {roll_degrees}")
  return int(math.floor(roll_degrees / ORIENTATION_BIN_DEGREES + 0.5)) % NUM_ORIENTATION_BINS


def _soft_orientation_table() -> np.ndarray:
  table = np.zeros((NUM_ORIENTATION_BINS, NUM_ORIENTATION_BINS), np.float32)
  for b in range(NUM_ORIENTATION_BINS):
    for offset, mass in zip((-1, 0, 1), ORIENTATION_SOFT_MASS):
      table[b, (b + offset) % NUM_ORIENTATION_BINS] += mass
  return table


# Row b is the soft label of true bin b (gather it in tf.data with tf.gather).
ORIENTATION_SOFT_LABELS = _soft_orientation_table()


def soft_orientation_label(bin_index: int) -> np.ndarray:
  """Soft orientation label (NUM_ORIENTATION_BINS,) of a true bin."""
  if not 0 <= bin_index < NUM_ORIENTATION_BINS:
    raise ValueError(
        f"orientation bin {bin_index} out of range [0, {NUM_ORIENTATION_BINS})")
  return ORIENTATION_SOFT_LABELS[bin_index].copy()


# --- Segmentation ------------------------------------------------------------

SEGMENTATION_CLASSES = ("background", "left_hand", "right_hand")
NUM_SEGMENTATION_CLASSES = len(SEGMENTATION_CLASSES)
BACKGROUND = 0
# Segmentation class of each side's hand pixels.
SIDE_SEGMENTATION_CLASS = (1, 2)
# Horizontal flip: the class each class becomes (the two hands' swap).
SEGMENTATION_FLIP_PERMUTATION = tuple(
    SIDE_SEGMENTATION_CLASS[::-1][SIDE_SEGMENTATION_CLASS.index(c)]
    if c in SIDE_SEGMENTATION_CLASS else c for c in range(NUM_SEGMENTATION_CLASSES))

# --- Sensor ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Intrinsics:
  """Pinhole camera intrinsics in pixels (x right, y down, z forward)."""
  fx: float
  fy: float
  cx: float
  cy: float

  def matrix(self) -> np.ndarray:
    return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
                    np.float64)

  def scaled(self, sx: float, sy: float) -> "Intrinsics":
    """Intrinsics of the image resized by (sx, sy) with pixel-centre alignment."""
    return Intrinsics(fx=self.fx * sx, fy=self.fy * sy,
                      cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5)


@dataclasses.dataclass(frozen=True)
class Sensor:
  """The simulated egocentric continuous-wave time-of-flight sensor."""
  height: int
  width: int
  intrinsics: Intrinsics
  min_depth_m: float  # Working range of the hands.
  max_depth_m: float
  modulation_hz: float  # Continuous-wave modulation frequency.
  phase_offsets_deg: tuple[float, ...]  # The four phase frames.

  @property
  def unambiguous_range_m(self) -> float:
    return SPEED_OF_LIGHT_M_S / (2.0 * self.modulation_hz)


SPEED_OF_LIGHT_M_S = 299_792_458.0

SENSOR = Sensor(
    height=240,
    width=320,
    # 77 x 62 degree field of view.
    intrinsics=Intrinsics(fx=200.0, fy=200.0, cx=159.5, cy=119.5),
    min_depth_m=0.15,
    max_depth_m=0.9,
    modulation_hz=80e6,  # 1.87 m unambiguous range, beyond the working range.
    phase_offsets_deg=(0.0, 90.0, 180.0, 270.0),
)
NUM_PHASE_FRAMES = len(SENSOR.phase_offsets_deg)

# --- Network input and outputs -----------------------------------------------

INPUT_HEIGHT = 120
INPUT_WIDTH = 160
INPUT_CHANNELS = 1
INPUT_MODES = ("amplitude", "depth")

# Resolution of the primary score maps relative to the input (1/2).
OUTPUT_STRIDE = 2
# Deep supervision heads: after Tier-3, the first and the second up-sampling.
DEEP_SUPERVISION_STRIDES = (8, 4, 2)
# Resolution of the segmentation output relative to the input.
SEGMENTATION_STRIDE = 2
# Resolution of the hand-mask output (a coarse segmentation on the encoder's
# features, for decoding; hand25d/decoding.py) relative to the input.
HAND_MASK_STRIDE = 8

# Names of the model outputs (a dict); all are logits.
KEYPOINTS = "keypoints"  # [B, H/2, W/2, NUM_PRIMARY_CHANNELS]
AUX_KEYPOINTS = "aux_keypoints"  # [B, H/2, W/2, NUM_AUX_CHANNELS]
VISIBILITY = "visibility"  # [B, NUM_SIDES, NUM_KEYPOINTS]
PRESENCE = "presence"  # [B, NUM_SIDES]
ORIENTATION = "orientation"  # [B, NUM_SIDES, NUM_ORIENTATION_BINS]
POSE = "pose"  # [B, NUM_SIDES, NUM_POSE_CLASSES]
SEGMENTATION = "segmentation"  # [B, H/2, W/2, NUM_SEGMENTATION_CLASSES]
HAND_MASK = "hand_mask"  # [B, H/8, W/8, NUM_SEGMENTATION_CLASSES]


def deep_supervision_output(stride: int) -> str:
  """Name of the deep-supervision keypoint output at `stride`, e.g. 'ds_keypoints_s8'."""
  if stride not in DEEP_SUPERVISION_STRIDES:
    raise ValueError(f"no deep supervision at stride {stride}; strides are "
                     f"{DEEP_SUPERVISION_STRIDES}")
  return f"ds_keypoints_s{stride}"


def output_shape(stride: int, channels: int,
                 height: int = INPUT_HEIGHT, width: int = INPUT_WIDTH) -> tuple[int, int, int]:
  """[H, W, C] of a dense output at `stride` for an input of height x width."""
  if height % stride or width % stride:
    raise ValueError(f"input {height}x{width} is not divisible by stride {stride}")
  return (height // stride, width // stride, channels)
