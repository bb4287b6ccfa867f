"""The 2.5D runtime (docs/runtime.md): a TOF capture in, 2.5D keypoints out.

A capture is either the four phase frames of the sensor (`Pipeline.process`)
or an amplitude (IR) image with its depth image, as depth cameras and TOF
SDKs deliver them (`Pipeline.process_images`). The sensor's numbers
(resolution, intrinsics, modulation, phase offsets, depth units, amplitude
scale) come from `PipelineOptions.sensor_config` (sensor.SensorConfig).

Per frame:
  1. Check the input (`frames.check_phase_frames`,
     `frames.check_amplitude_depth`); a bad frame is reported in its
     FrameResult (`error_kind`) and skipped, and the stream goes on.
  2. Amplitude path: the amplitude image (from phase frames: the cheap L1
     combination) -> the network (`inference.TfliteModel.infer`). Depth path
     of phase frames, at the same time on a worker thread: arctangent, range
     to z, invalid and flying pixels (`sensor.depth`), then
     `frames.check_depth`. With `parallel_depth` off the depth path runs after
     decoding, on the calling thread. A given depth image is only checked.
  3. Early out: when the presence output puts both hands below
     `presence_threshold`, nothing is decoded or lifted and the depth job is
     cancelled (or, if running, not waited for).
  4. Decode: arg-max with sub-pixel refinement; a keypoint is visible if its
     peak softmax probability reaches `min_keypoint_confidence` (and the
     visibility output, if the model has one, says so) on a present hand.
  5. Lift each present hand (`lifting.hand_depths`: window median, front
     cluster against flying pixels, hand mask from depth, fallbacks) and
     back-project with the intrinsics.
  6. Optionally smooth each hand with One Euro filters
     (`smoothing.HandSmoother`, over pixels and depth, keyed by the frames'
     timestamps) and back-project.

The worker thread pays off because numpy's array operations and the LiteRT
invoke release the GIL; one persistent worker serves every frame.
"""

import concurrent.futures
import contextlib
import dataclasses
import math
import numbers
import os
import time

import numpy as np

from hand25d import sensor
from hand25d import spec
from hand25d.runtime import frames as frames_lib
from hand25d.runtime import inference
from hand25d.runtime import lifting
from hand25d.runtime import smoothing as smoothing_lib

_S, _P = spec.NUM_SIDES, spec.NUM_PRIMARY_KEYPOINTS
_PRIMARY = list(spec.PRIMARY_KEYPOINT_INDICES)


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
  """How the pipeline runs; the defaults are the deployed configuration."""
  parallel_depth: bool = True  # Depth path on a worker thread, beside the network.
  backend: str = "litert"  # inference.BACKENDS: "litert" or "tflm".
  num_threads: int = 1  # LiteRT interpreter threads.
  tflm_arena_bytes: int = 8 << 20
  refine: bool = True  # Sub-pixel refinement of the arg-max.
  # The network also on the mirror image, outputs averaged (hand25d.mirror):
  # a lower 2D error for twice the network's time.
  mirror_ensemble: bool = False
  presence_threshold: float = 0.5  # On sigmoid(presence logit).
  min_keypoint_confidence: float = 0.001  # Peak softmax probability (uniform: 1/4800).
  visibility_threshold: float = 0.5  # On sigmoid(visibility logit), if the model has it.
  smoothing: smoothing_lib.OneEuroConfig | None = None
  frame_interval_s: float = 1.0 / 30.0  # Timestamps of frames given without one.
  # The sensor: resolution, intrinsics, modulation, phase offsets, depth units,
  # amplitude scale (default: the simulated sensor, spec.SENSOR).
  sensor_config: sensor.SensorConfig = sensor.DEFAULT_SENSOR
  lift: lifting.LiftConfig = lifting.LiftConfig()
  checks: frames_lib.FrameChecks = frames_lib.FrameChecks()
  sensor_model: sensor.TofConfig = sensor.TofConfig()  # Depth's invalid-pixel thresholds.

  def __post_init__(self):
    if not isinstance(self.sensor_config, sensor.SensorConfig):
      raise TypeError(f"sensor_config must be a sensor.SensorConfig (e.g. SensorConfig.load(path) "
                      f"or SensorConfig.from_dict(mapping)), got "
                      f"{type(self.sensor_config).__name__}")
    for name in ("presence_threshold", "min_keypoint_confidence", "visibility_threshold"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
    if not self.frame_interval_s > 0:
      raise ValueError(f"frame_interval_s must be positive, got {self.frame_interval_s}")


def check_timestamp(timestamp_s) -> float | None:
  """A frame's timestamp_s as a float (None stays None).

  Raises:
    TypeError: not a real number (a bool or a string is not one).
    ValueError: NaN or infinite.
  """
  if timestamp_s is None:
    return None
  if isinstance(timestamp_s, (bool, np.bool_)) or not isinstance(timestamp_s, numbers.Real):
    raise TypeError(f"timestamp_s must be a real number of seconds, got {timestamp_s!r} "
                    f"({type(timestamp_s).__name__})")
  if not math.isfinite(timestamp_s):
    raise ValueError(f"timestamp_s must be finite, got {timestamp_s!r}")
  return float(timestamp_s)


def json_number(x) -> float | None:
  """A JSON number (6 decimals), None for None and NaN."""
  return None if x is None or not math.isfinite(x) else round(float(x), 6)


@dataclasses.dataclass(frozen=True)
class HandResult:
  """One side's output. Arrays are NaN (and visible False) where nothing was found.

  Attributes:
    side: spec.SIDES entry.
    present: the hand was found (presence gate, or a visible keypoint for a
      model without a presence output).
    presence: sigmoid of the presence logit; None without a presence output.
    pose: spec.POSE_CLASSES entry if present and the model has a pose output.
    pose_score: softmax probability of that pose class (None without pose).
    keypoints_2d: [P, 2] (x, y) sensor pixels of the primary keypoints.
    confidence: [P] peak softmax probability of each score map.
    visible: [P] bool, the keypoints that passed the gates (and are lifted).
    keypoints_3d: [P, 3] camera-space metres (x right, y down, z forward).
    depth_sources: [P] how each depth was found (lifting.SOURCE_*).
  """
  side: str
  present: bool
  presence: float | None
  pose: str | None
  keypoints_2d: np.ndarray
  confidence: np.ndarray
  visible: np.ndarray
  keypoints_3d: np.ndarray
  depth_sources: tuple[str, ...]
  pose_score: float | None = None

  def to_json(self) -> dict:
    keypoints = []
    if self.present:
      for k, name in enumerate(spec.PRIMARY_KEYPOINT_NAMES):
        (x, y), point = self.keypoints_2d[k], self.keypoints_3d[k]
        keypoints.append({
            "name": name, "x": json_number(x), "y": json_number(y),
            "confidence": json_number(self.confidence[k]), "visible": bool(self.visible[k]),
            "xyz_m": [json_number(v) for v in point], "depth_source": self.depth_sources[k]})
    return {"side": self.side, "present": self.present, "presence": json_number(self.presence),
            "pose": self.pose, "pose_score": json_number(self.pose_score), "keypoints": keypoints}


def _absent(side: int, presence: float | None) -> HandResult:
  return HandResult(spec.SIDES[side], False, presence, None, np.full((_P, 2), np.nan),
                    np.full(_P, np.nan), np.zeros(_P, bool), np.full((_P, 3), np.nan),
                    (lifting.SOURCE_NONE,) * _P)


@dataclasses.dataclass(frozen=True)
class FrameResult:
  """The output of one frame.

  Attributes:
    index: position in the stream (bad frames count).
    timestamp_s: the frame's time.
    hands: one HandResult per spec.SIDES entry; () for a bad frame.
    timings_ms: milliseconds per stage: check, amplitude, network, decode,
      depth (on the worker when parallel), depth_wait (the calling thread
      waiting for it, or computing it if the worker had not started), lift,
      smooth, total (wall time of `process`). Stages that did not run are
      absent.
    early_out: no hand present: nothing decoded (given a presence output)
      and nothing lifted.
    error_kind: frames.BAD_FRAME_KINDS entry for a skipped frame, else None.
    error: what was wrong with it.
    amplitude: [H, W] amplitude image as computed or given (not serialised).
    depth: [H, W] depth image in metres (0 = invalid) when it was computed
      (phase frames with a hand present) or given (not serialised).
  """
  index: int
  timestamp_s: float
  hands: tuple[HandResult, ...]
  timings_ms: dict[str, float]
  early_out: bool = False
  error_kind: str | None = None
  error: str | None = None
  amplitude: np.ndarray | None = dataclasses.field(default=None, repr=False)
  depth: np.ndarray | None = dataclasses.field(default=None, repr=False)

  @property
  def ok(self) -> bool:
    return self.error_kind is None

  def to_json(self) -> dict:
    return {"frame": self.index, "timestamp_s": json_number(self.timestamp_s), "ok": self.ok,
            "error_kind": self.error_kind, "error": self.error, "early_out": self.early_out,
            "hands": [h.to_json() for h in self.hands],
            "timings_ms": {k: round(v, 4) for k, v in self.timings_ms.items()}}


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str):
  start = time.perf_counter()
  try:
    yield
  finally:
    timings[stage] = 1e3 * (time.perf_counter() - start)


def _sigmoid(x: np.ndarray) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


class Pipeline:
  """Captures -> FrameResult; one instance per stream (it keeps filter state).

  Use as a context manager, or call close(), to stop the depth worker; a
  closed pipeline refuses frames (RuntimeError).
  """

  def __init__(self, model: str | os.PathLike | inference.KeypointModel,
               options: PipelineOptions = PipelineOptions()):
    """Builds the pipeline.

    Args:
      model: path (str or os.PathLike) of an exported .tflite model (see
        inference.py for the signature it must have), loaded with the
        options' backend, num_threads, tflm_arena_bytes, refine and
        mirror_ensemble; or a ready KeypointModel (which may be shared by
        pipelines that do not run at once), whose own mirror_ensemble
        (False if it has none) must be the options'.
      options: how to run, and the sensor (options.sensor_config).

    Raises:
      TypeError: model is neither a path nor a KeypointModel, or options is
        not a PipelineOptions.
      FileNotFoundError: no model file at that path.
      inference.ModelFileError: the file is not a TFLite model.
      inference.ModelSignatureError: the model has unexpected inputs or outputs.
      ValueError: a ready model runs the mirror ensemble and the options do
        not, or the other way round.
    """
    if not isinstance(options, PipelineOptions):
      raise TypeError(f"options must be a pipeline.PipelineOptions, got "
                      f"{type(options).__name__}")
    self.options = options
    cfg = options.sensor_config
    self.intrinsics = cfg.intrinsics
    if isinstance(model, (str, os.PathLike)):
      model = inference.TfliteModel.from_file(
          model, cfg.shape, backend=options.backend, num_threads=options.num_threads,
          tflm_arena_bytes=options.tflm_arena_bytes, refine=options.refine,
          mirror_ensemble=options.mirror_ensemble)
    elif not (callable(getattr(model, "infer", None)) and callable(getattr(model, "decode", None))):
      raise TypeError(f"model must be the path of a .tflite file (str or os.PathLike) or an "
                      f"inference.KeypointModel, got {type(model).__name__}")
    elif getattr(model, "mirror_ensemble", False) != options.mirror_ensemble:
      raise ValueError(f"options.mirror_ensemble is {options.mirror_ensemble} but the given "
                       f"{type(model).__name__} has mirror_ensemble="
                       f"{getattr(model, 'mirror_ensemble', False)}: build the model with the "
                       "options' setting, or pass its path")
    self.model = model
    self._camera = cfg.camera()
    self._executor = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="depth")
                      if options.parallel_depth else None)
    self._smoother = (smoothing_lib.HandSmoother(options.smoothing, _S)
                      if options.smoothing else None)
    self._next_index = 0
    self._closed = False

  def close(self) -> None:
    """Stops the depth worker; later frames are refused. Closing again does nothing."""
    self._closed = True
    if self._executor is not None:
      self._executor.shutdown(wait=True)

  @property
  def closed(self) -> bool:
    return self._closed

  def __enter__(self) -> "Pipeline":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def reset(self) -> None:
    """Forgets the smoothing state (a cut in the stream)."""
    if self._smoother is not None:
      self._smoother.reset()

  def depth_image(self, phase_frames: np.ndarray) -> np.ndarray:
    """[H, W] z-depth in metres (0 = invalid) of checked phase frames.

    Raises:
      frames.BadFrameError: (almost) no pixel has valid depth.
    """
    depth = sensor.depth(phase_frames, self._camera, self.options.sensor_model,
                         self.options.sensor_config)
    frames_lib.check_depth(depth, self.options.checks)
    return depth

  def _timed_depth(self, phase_frames: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    depth = self.depth_image(phase_frames)
    return depth, 1e3 * (time.perf_counter() - start)

  def process(self, phase_frames, timestamp_s: float | None = None) -> FrameResult:
    """Runs one frame of phase frames; bad frames come back with error_kind set, never raise.

    Args:
      phase_frames: the spec.NUM_PHASE_FRAMES phase frames as one [4, H, W]
        array of ADC counts or a sequence of [H, W] arrays (None for a frame
        that never arrived), in the order of the sensor's phase offsets and
        at its resolution (options.sensor_config).
      timestamp_s: the frame's time in seconds (a finite real number),
        increasing (for smoothing); default index * options.frame_interval_s.

    Raises:
      TypeError, ValueError: timestamp_s not a finite real number.
      ValueError: with smoothing, a timestamp that does not increase.
      RuntimeError: the pipeline is closed.
    """
    return self._frame(self._from_phase, phase_frames, timestamp_s)

  def process_images(self, amplitude, depth, timestamp_s: float | None = None) -> FrameResult:
    """Runs one frame given as amplitude (IR) and depth images; bad frames never raise.

    Args:
      amplitude: [H, W] amplitude or IR counts at the sensor's resolution
        (multiplied by options.sensor_config.amplitude_scale for the network).
      depth: [H, W] z-depth, floats in metres or integers in units of
        options.sensor_config.depth_unit_m; 0 marks invalid pixels.
      timestamp_s: as for `process`.

    Raises:
      As `process`.
    """
    return self._frame(self._from_images, (amplitude, depth), timestamp_s)

  def skip(self, error: frames_lib.BadFrameError,
           timestamp_s: float | None = None) -> FrameResult:
    """Reports a frame that never reached `process` (e.g. an unreadable file); raises as it."""
    index, timestamp_s = self._advance(timestamp_s)
    return FrameResult(index, timestamp_s, (), {}, error_kind=error.kind, error=str(error))

  def _advance(self, timestamp_s: float | None) -> tuple[int, float]:
    if self._closed:
      raise RuntimeError("Pipeline is closed: it takes no more frames (make a new one)")
    timestamp_s = check_timestamp(timestamp_s)
    index = self._next_index
    self._next_index += 1
    return index, index * self.options.frame_interval_s if timestamp_s is None else timestamp_s

  def _frame(self, run, data, timestamp_s: float | None) -> FrameResult:
    index, timestamp_s = self._advance(timestamp_s)
    timings = {}
    start = time.perf_counter()
    try:
      hands, early_out, amplitude, depth = run(data, timestamp_s, timings)
    except frames_lib.BadFrameError as e:
      timings["total"] = 1e3 * (time.perf_counter() - start)
      return FrameResult(index, timestamp_s, (), timings, error_kind=e.kind, error=str(e))
    timings["total"] = 1e3 * (time.perf_counter() - start)
    return FrameResult(index, timestamp_s, hands, timings, early_out, amplitude=amplitude,
                       depth=depth)

  def _from_phase(self, phase_frames, timestamp_s: float, timings: dict[str, float]):
    o, cfg = self.options, self.options.sensor_config
    with _timed(timings, "check"):
      if phase_frames is None:
        raise frames_lib.BadFrameError(frames_lib.MISSING_PHASE, "no phase frames")
      frames = frames_lib.check_phase_frames(phase_frames, o.checks, cfg.height, cfg.width)
    with _timed(timings, "amplitude"):
      amplitude = sensor.amplitude(frames, cfg)
    pending = self._executor.submit(self._timed_depth, frames) if self._executor else None

    def depth_now():
      """The depth when the hands need it: from the worker, or computed here."""
      if pending is None:
        with _timed(timings, "depth"):
          return self.depth_image(frames)
      with _timed(timings, "depth_wait"):
        # On a busy machine the worker may not have started yet: then the
        # calling thread computes the depth itself rather than wait for it.
        depth, timings["depth"] = (self._timed_depth(frames) if pending.cancel()
                                   else pending.result())
      return depth

    def cancel():
      if pending is not None:
        pending.cancel()  # Unless the worker has started on it already.

    return self._track(amplitude, depth_now, cancel, None, timestamp_s, timings)

  def _from_images(self, images, timestamp_s: float, timings: dict[str, float]):
    cfg = self.options.sensor_config
    with _timed(timings, "check"):
      amplitude, depth = frames_lib.check_amplitude_depth(*images, cfg.height, cfg.width,
                                                          cfg.depth_unit_m)

    def depth_now():
      with _timed(timings, "depth"):
        frames_lib.check_depth(depth, self.options.checks)
      return depth

    return self._track(amplitude, depth_now, lambda: None, depth, timestamp_s, timings)

  def _track(self, amplitude: np.ndarray, depth_now, cancel_depth, given_depth,
             timestamp_s: float, timings: dict[str, float]):
    """Network, early out, decoding, lifting and smoothing of a checked frame.

    Returns (hands, early_out, amplitude, depth); depth_now() gives the depth
    image when a hand needs it, cancel_depth() drops it otherwise.
    """
    o = self.options
    scale = o.sensor_config.amplitude_scale
    with _timed(timings, "network"):
      outputs = self.model.infer(amplitude if scale == 1.0 else
                                 amplitude.astype(np.float32) * np.float32(scale))
    presence = _sigmoid(outputs[spec.PRESENCE][0]) if spec.PRESENCE in outputs else None
    presence_values = [None] * _S if presence is None else [float(p) for p in presence]
    if presence is not None and not np.any(presence >= o.presence_threshold):
      cancel_depth()
      return self._no_hands(presence_values), True, amplitude, given_depth
    with _timed(timings, "decode"):
      xy, confidence = self.model.decode(outputs)
      visible = confidence >= o.min_keypoint_confidence
      if spec.VISIBILITY in outputs:
        visible &= _sigmoid(outputs[spec.VISIBILITY][0][:, _PRIMARY]) >= o.visibility_threshold
      present = (presence >= o.presence_threshold if presence is not None
                 else visible.any(axis=1))
      visible &= present[:, None]
      pose, pose_score = None, None
      if spec.POSE in outputs:
        logits = np.asarray(outputs[spec.POSE][0], np.float64)
        pose = np.argmax(logits, axis=-1)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        pose_score = (e / e.sum(axis=-1, keepdims=True)).max(axis=-1)
    if not present.any():  # A model without presence output found no keypoint.
      cancel_depth()
      return self._no_hands(presence_values), True, amplitude, given_depth
    depth = depth_now()
    with _timed(timings, "lift"):
      z = np.full((_S, _P), np.nan)
      sources = [(lifting.SOURCE_NONE,) * _P] * _S
      for side in np.flatnonzero(present):
        z[side], found = lifting.hand_depths(depth, xy[side], visible[side], o.lift)
        sources[side] = tuple(found)
    if self._smoother is not None:
      with _timed(timings, "smooth"):
        xy, z = self._smoother(xy, z, present, timestamp_s)
    hands = []
    for side in range(_S):
      if not present[side]:
        hands.append(_absent(side, presence_values[side]))
        continue
      hands.append(HandResult(
          side=spec.SIDES[side], present=True, presence=presence_values[side],
          pose=None if pose is None else spec.POSE_CLASSES[pose[side]],
          keypoints_2d=xy[side], confidence=confidence[side], visible=visible[side],
          keypoints_3d=lifting.back_project(xy[side], z[side], self.intrinsics),
          depth_sources=sources[side],
          pose_score=None if pose_score is None else float(pose_score[side])))
    return tuple(hands), False, amplitude, depth

  def _no_hands(self, presence: list[float | None]) -> tuple[HandResult, ...]:
    self.reset()
    return tuple(_absent(side, presence[side]) for side in range(_S))
