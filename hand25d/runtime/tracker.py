"""HandTracker: the 2.5D runtime in one call, with a documented result per hand.

    from hand25d import HandTracker

    with HandTracker() as tracker:  # The shipped model, video mode, the simulated sensor.
      result = tracker.process(amplitude=ir, depth=depth_mm, timestamp_s=t)
      for hand in result.hands:
        print(hand.handedness, hand.keypoints_px, hand.positions_m)

It is `pipeline.Pipeline` with the shipped model by default
(hand25d.pretrained), the sensor's numbers from a sensor.SensorConfig, and
results as dataclasses named after MediaPipe's conventions where they mean
the same (docs/runtime.md). Like the rest of hand25d/runtime it needs numpy
and ai-edge-litert (and tflite-micro for the "tflm" backend), never TensorFlow.

Modes (as MediaPipe's Hand Landmarker's running modes IMAGE and VIDEO):
  IMAGE  every call stands alone: no smoothing; timestamps are optional.
  VIDEO  one stream: keypoints are smoothed over time by One Euro filters
         (smoothing.py) keyed by each frame's timestamp_s, which is required
         and must increase.

Keypoints are the network's 8 per hand (spec.PRIMARY_KEYPOINT_NAMES);
MEDIAPIPE_NAMES maps each of spec.KEYPOINT_NAMES to the MediaPipe
`HandLandmark` that is the same joint (the synthetic hand,
hand25d/data/hand_model.py, has MediaPipe's 21 joints), or None for
hand_center, which MediaPipe does not have.
"""

import dataclasses
import math
import os

import numpy as np

from hand25d import pretrained
from hand25d import sensor
from hand25d import spec
from hand25d.runtime import pipeline
from hand25d.runtime import recordings
from hand25d.runtime import smoothing

IMAGE = "image"
VIDEO = "video"
MODES = (IMAGE, VIDEO)

KEYPOINT_NAMES = spec.PRIMARY_KEYPOINT_NAMES
# MediaPipe Hands' landmarks, in the order of its HandLandmark enum.
MEDIAPIPE_HAND_LANDMARKS = (
    "WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
    "INDEX_FINGER_MCP", "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
    "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)
# Our keypoint -> the MediaPipe HandLandmark of the same joint (None: no such landmark).
MEDIAPIPE_NAMES = {
    "wrist_center": "WRIST",
    "hand_center": None,  # The centroid of the wrist and the four finger MCPs.
    "thumb_mcp": "THUMB_MCP",
    "thumb_ip": "THUMB_IP",
    "thumb_tip": "THUMB_TIP",
    "index_mcp": "INDEX_FINGER_MCP",
    "index_pip": "INDEX_FINGER_PIP",
    "index_tip": "INDEX_FINGER_TIP",
    "middle_mcp": "MIDDLE_FINGER_MCP",
    "middle_pip": "MIDDLE_FINGER_PIP",
    "middle_tip": "MIDDLE_FINGER_TIP",
    "ring_mcp": "RING_FINGER_MCP",
    "ring_pip": "RING_FINGER_PIP",
    "ring_tip": "RING_FINGER_TIP",
    "pinky_mcp": "PINKY_MCP",
    "pinky_pip": "PINKY_PIP",
    "pinky_tip": "PINKY_TIP",
}


_num = pipeline.json_number  # A JSON number, None for NaN.
_KEYPOINT_INDEX = {name: k for k, name in enumerate(KEYPOINT_NAMES)}
_KEYPOINT_INDEX.update({MEDIAPIPE_NAMES[name]: k for k, name in enumerate(KEYPOINT_NAMES)
                        if MEDIAPIPE_NAMES[name]})


@dataclasses.dataclass(frozen=True)
class Keypoint:
  """One keypoint of a hand.

  Attributes:
    name: spec.PRIMARY_KEYPOINT_NAMES entry.
    mediapipe_name: the MediaPipe HandLandmark of the same joint, or None.
    x_px, y_px: position in the frame's pixels (pixel centres at integers).
    x, y: the same normalised to [0, 1] by the frame's width and height, as
      MediaPipe's NormalizedLandmark: x = (x_px + 0.5) / width.
    visible: found on a present hand (it passed the confidence and
      visibility gates); position_m is lifted only then.
    confidence: peak softmax probability of its score map.
    position_m: (x, y, z) camera-space metres (x right, y down, z forward);
      NaN where not lifted.
    depth_source: how its depth was found (lifting.SOURCE_*).
  """
  name: str
  mediapipe_name: str | None
  x_px: float
  y_px: float
  x: float
  y: float
  visible: bool
  confidence: float
  position_m: tuple[float, float, float]
  depth_source: str

  def to_json(self) -> dict:
    return {"name": self.name, "mediapipe_name": self.mediapipe_name,
            "x_px": _num(self.x_px), "y_px": _num(self.y_px), "x": _num(self.x),
            "y": _num(self.y), "visible": self.visible, "confidence": _num(self.confidence),
            "position_m": [_num(v) for v in self.position_m], "depth_source": self.depth_source}


@dataclasses.dataclass(frozen=True)
class Hand:
  """One present hand. Arrays are indexed by KEYPOINT_NAMES.

  Attributes:
    handedness: "left" or "right" (spec.SIDES): the subject's hand, not the
      viewer's, as in MediaPipe's Hand Landmarker (which capitalises it).
    handedness_score: the probability of that handedness. The network has one
      output block per side, so this is the presence probability of this
      side's hand, the same number as `presence`; None without a presence output.
    presence: sigmoid of the presence output (None if the model has none).
    pose: spec.POSE_CLASSES entry if the model has a pose output, else None.
    pose_score: its softmax probability, else None.
    keypoints_px: [8, 2] float64 (x, y) in the frame's pixels.
    keypoints_normalized: [8, 2] the same divided by the frame's size, in [0, 1]
      ((x + 0.5) / width, (y + 0.5) / height).
    visible: [8] bool, keypoints found (and lifted).
    confidence: [8] peak softmax probability of each score map.
    positions_m: [8, 3] camera-space metres (x right, y down, z forward), the
      2.5D keypoints: pixel + the depth of the hand's surface there; NaN where
      not lifted.
    depth_sources: [8] how each depth was found (lifting.SOURCE_*).
  """
  handedness: str
  handedness_score: float | None
  presence: float | None
  pose: str | None
  pose_score: float | None
  keypoints_px: np.ndarray
  keypoints_normalized: np.ndarray
  visible: np.ndarray
  confidence: np.ndarray
  positions_m: np.ndarray
  depth_sources: tuple[str, ...]

  @property
  def keypoints(self) -> tuple[Keypoint, ...]:
    """The keypoints one by one, in KEYPOINT_NAMES order."""
    return tuple(self.keypoint(name) for name in KEYPOINT_NAMES)

  def keypoint(self, name: str) -> Keypoint:
    """A keypoint by our name ('thumb_tip') or MediaPipe's ('THUMB_TIP').

    Raises:
      KeyError: not one of the network's keypoints, under either name.
    """
    if name not in _KEYPOINT_INDEX:
      raise KeyError(f"{name!r} is none of the keypoints {KEYPOINT_NAMES} or their MediaPipe "
                     "names (MEDIAPIPE_NAMES)")
    k = _KEYPOINT_INDEX[name]
    return Keypoint(
        name=KEYPOINT_NAMES[k], mediapipe_name=MEDIAPIPE_NAMES[KEYPOINT_NAMES[k]],
        x_px=float(self.keypoints_px[k, 0]), y_px=float(self.keypoints_px[k, 1]),
        x=float(self.keypoints_normalized[k, 0]), y=float(self.keypoints_normalized[k, 1]),
        visible=bool(self.visible[k]), confidence=float(self.confidence[k]),
        position_m=tuple(float(v) for v in self.positions_m[k]),
        depth_source=self.depth_sources[k])

  def to_json(self) -> dict:
    return {"handedness": self.handedness, "handedness_score": _num(self.handedness_score),
            "presence": _num(self.presence), "pose": self.pose,
            "pose_score": _num(self.pose_score),
            "keypoints": [k.to_json() for k in self.keypoints]}


@dataclasses.dataclass(frozen=True)
class TrackingResult:
  """The result of one frame.

  Attributes:
    index: position in the stream (bad frames count).
    timestamp_s: the frame's time in seconds.
    hands: the present hands, left first; () for a bad frame or no hand.
    timings_ms: milliseconds per stage (pipeline.FrameResult.timings_ms:
      check, amplitude, network, decode, depth, depth_wait, lift, smooth, total).
    early_out: no hand was present, so nothing was decoded or lifted.
    error_kind: frames.BAD_FRAME_KINDS entry for a bad frame (skipped), else None.
    error: what was wrong with it.
  """
  index: int
  timestamp_s: float
  hands: tuple[Hand, ...]
  timings_ms: dict[str, float]
  early_out: bool = False
  error_kind: str | None = None
  error: str | None = None

  @property
  def ok(self) -> bool:
    return self.error_kind is None

  def hand(self, handedness: str) -> Hand | None:
    """The 'left' or 'right' hand if present."""
    if handedness not in spec.SIDES:
      raise ValueError(f"handedness must be one of {spec.SIDES}, got {handedness!r}")
    return next((h for h in self.hands if h.handedness == handedness), None)

  @classmethod
  def from_frame(cls, frame: pipeline.FrameResult, height: int, width: int
                 ) -> "TrackingResult":
    """The result of a pipeline FrameResult of frames of height x width pixels."""
    size = np.array([width, height], np.float64)
    hands = []
    for h in frame.hands:
      if not h.present:
        continue
      hands.append(Hand(
          handedness=h.side, handedness_score=h.presence, presence=h.presence, pose=h.pose,
          pose_score=h.pose_score, keypoints_px=h.keypoints_2d,
          keypoints_normalized=(h.keypoints_2d + 0.5) / size, visible=h.visible,
          confidence=h.confidence, positions_m=h.keypoints_3d, depth_sources=h.depth_sources))
    return cls(index=frame.index, timestamp_s=frame.timestamp_s, hands=tuple(hands),
               timings_ms=frame.timings_ms, early_out=frame.early_out,
               error_kind=frame.error_kind, error=frame.error)

  def to_json(self) -> dict:
    return {"frame": self.index, "timestamp_s": _num(self.timestamp_s), "ok": self.ok,
            "error_kind": self.error_kind, "error": self.error, "early_out": self.early_out,
            "hands": [h.to_json() for h in self.hands],
            "timings_ms": {k: round(v, 4) for k, v in self.timings_ms.items()}}


# Columns of one CSV row per hand per frame (`csv_rows`).
_KEYPOINT_COLUMNS = ("x_px", "y_px", "x", "y", "visible", "confidence", "x_m", "y_m", "z_m")
CSV_COLUMNS = (("frame", "timestamp_s", "handedness", "handedness_score", "presence", "pose",
                "pose_score") +
               tuple(f"{name}_{c}" for name in KEYPOINT_NAMES for c in _KEYPOINT_COLUMNS))


def csv_rows(result: TrackingResult) -> list[dict]:
  """One dict (CSV_COLUMNS -> value; '' for unknown) per hand of a result."""

  def cell(x):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
      return ""
    return round(x, 6) if isinstance(x, float) else x

  rows = []
  for hand in result.hands:
    row = {"frame": result.index, "timestamp_s": cell(result.timestamp_s),
           "handedness": hand.handedness, "handedness_score": cell(hand.handedness_score),
           "presence": cell(hand.presence), "pose": cell(hand.pose),
           "pose_score": cell(hand.pose_score)}
    for k in hand.keypoints:
      values = (k.x_px, k.y_px, k.x, k.y, int(k.visible), k.confidence) + k.position_m
      row.update({f"{k.name}_{c}": cell(v) for c, v in zip(_KEYPOINT_COLUMNS, values)})
    rows.append(row)
  return rows


class HandTracker:
  """Tracks hands in the frames of one sensor; one instance per stream.

  Use as a context manager, or call close(), to stop its depth worker; every
  process* call on a closed tracker raises RuntimeError("HandTracker is closed ...").
  """

  def __init__(self, model: str | os.PathLike | None = None, *, mode: str = VIDEO,
               sensor_config: sensor.SensorConfig | None = None,
               options: pipeline.PipelineOptions | None = None):
    """Opens the model.

    Args:
      model: the path (str or os.PathLike) of an exported .tflite file;
        default: the shipped float32 model (hand25d.pretrained.path()).
      mode: IMAGE (no smoothing) or VIDEO (One Euro smoothing keyed by
        timestamp_s; options.smoothing, or smoothing.OneEuroConfig()).
      sensor_config: the sensor (resolution, intrinsics, modulation, phase
        offsets, depth units, amplitude scale); default options.sensor_config,
        i.e. the simulated sensor.
      options: thresholds, backend, threads (pipeline.PipelineOptions).

    Raises:
      TypeError: model not a path, sensor_config not a SensorConfig, or
        options not a PipelineOptions (naming the parameter).
      ValueError: an unknown mode.
      FileNotFoundError: no such model file (or no shipped model).
      inference.ModelFileError: the file is not a TFLite model (naming it).
      inference.ModelSignatureError: a model the runtime cannot run.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
      raise TypeError(f"model must be the path of a .tflite file (str or os.PathLike) or None "
                      f"for the shipped model, got {type(model).__name__}")
    if sensor_config is not None and not isinstance(sensor_config, sensor.SensorConfig):
      raise TypeError(f"sensor_config must be a hand25d.SensorConfig (e.g. SensorConfig.load(path) "
                      f"or SensorConfig.from_dict(mapping)), got {type(sensor_config).__name__}")
    if options is not None and not isinstance(options, pipeline.PipelineOptions):
      raise TypeError(f"options must be a pipeline.PipelineOptions, got {type(options).__name__}")
    if mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    options = options or pipeline.PipelineOptions()
    options = dataclasses.replace(
        options, sensor_config=options.sensor_config if sensor_config is None else sensor_config,
        smoothing=(options.smoothing or smoothing.OneEuroConfig()) if mode == VIDEO else None)
    self.mode = mode
    self.model_path = (pretrained.path(pretrained.FLOAT32) if model is None
                       else os.fspath(model))
    self.sensor_config = options.sensor_config
    self.pipeline = pipeline.Pipeline(self.model_path, options)
    self._last_timestamp = None
    self._clip = 0  # Of the last recorded frame.
    self._closed = False

  def close(self) -> None:
    """Stops the depth worker; later process* calls raise. Closing again does nothing."""
    self._closed = True
    self.pipeline.close()

  @property
  def closed(self) -> bool:
    return self._closed

  def __enter__(self) -> "HandTracker":
    self._check_open()
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def reset(self) -> None:
    """A cut in the stream: smoothing starts afresh and timestamps may start over."""
    self.pipeline.reset()
    self._last_timestamp = None

  def process(self, *, amplitude: np.ndarray, depth: np.ndarray,
              timestamp_s: float | None = None) -> TrackingResult:
    """Tracks the hands of one amplitude (IR) image and its depth image.

    Args:
      amplitude: [H, W] amplitude or IR counts (any integer or float dtype),
        H x W the SensorConfig's resolution.
      depth: [H, W] z-depth: floats in metres, or integers in units of
        SensorConfig.depth_unit_m (e.g. uint16 millimetres); 0 = invalid.
      timestamp_s: seconds, a finite real number (int, float or numpy; not
        bool); required in VIDEO mode, increasing; optional in IMAGE mode.

    Returns:
      The TrackingResult; a bad frame (frames.BAD_FRAME_KINDS: wrong shape or
      dtype, NaN amplitude, depth in implausible units, no valid depth) comes
      back with error_kind set, and the stream goes on.

    Raises:
      TypeError: timestamp_s is not a real number.
      ValueError: timestamp_s not finite, or in VIDEO mode missing or not increasing.
      RuntimeError: the tracker is closed.
    """
    timestamp_s = self._timestamp(timestamp_s)
    return self._result(self.pipeline.process_images(amplitude, depth, timestamp_s))

  def process_phase(self, frames, timestamp_s: float | None = None) -> TrackingResult:
    """Tracks the hands of one capture's four phase frames.

    Args:
      frames: [4, H, W] ADC counts 0..4095 (or a sequence of four [H, W]
        arrays), in the order of SensorConfig.phase_offsets_deg: integers of
        at least 16 bits (uint16, int16, int32, ..., either byte order) or
        integral-valued floats (frames.check_phase_frames).
      timestamp_s: as for `process`.

    Returns and raises: as `process` (bad frames also: missing or saturated
    phase frames, 8-bit or fractional values).
    """
    timestamp_s = self._timestamp(timestamp_s)
    return self._result(self.pipeline.process(frames, timestamp_s))

  def process_recorded(self, frame: recordings.RecordedFrame) -> TrackingResult:
    """Tracks a frame read by recordings.open_recording (phase or amplitude + depth).

    An unreadable frame is reported (its error_kind and error) and skipped;
    a frame of another clip than the last one starts smoothing afresh.
    Raises as `process`.
    """
    self._check_open()
    if frame.clip != self._clip:
      self.reset()
      self._clip = frame.clip
    if frame.error is not None:
      return self._result(self.pipeline.skip(frame.error, frame.timestamp_s))
    if frame.phase_frames is not None:
      return self.process_phase(frame.phase_frames, timestamp_s=frame.timestamp_s)
    return self.process(amplitude=frame.amplitude, depth=frame.depth,
                        timestamp_s=frame.timestamp_s)

  def _check_open(self) -> None:
    if self._closed:
      raise RuntimeError("HandTracker is closed: it takes no more frames (make a new one)")

  def _timestamp(self, timestamp_s) -> float | None:
    """The checked timestamp_s as a float (None in IMAGE mode without one)."""
    self._check_open()
    if self.mode == VIDEO and timestamp_s is None:
      raise ValueError("VIDEO mode needs each frame's timestamp_s in seconds (smoothing is "
                       "keyed by real time), got None; use mode=IMAGE for unrelated images")
    timestamp_s = pipeline.check_timestamp(timestamp_s)
    if self.mode == VIDEO:
      if self._last_timestamp is not None and not timestamp_s > self._last_timestamp:
        raise ValueError(f"timestamp_s {timestamp_s} does not increase (the previous frame was "
                         f"at {self._last_timestamp}); call reset() at a cut in the stream")
      self._last_timestamp = timestamp_s
    return timestamp_s

  def _result(self, frame: pipeline.FrameResult) -> TrackingResult:
    return TrackingResult.from_frame(frame, self.sensor_config.height, self.sensor_config.width)

