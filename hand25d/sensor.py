"""The time-of-flight sensor as the runtime sees it: numpy only.

What both the deployable runtime and the synthetic data engine need to know
about the sensor, in one place:
  * the camera: pixel rays of pinhole intrinsics (`Camera`);
  * a real sensor's numbers (`SensorConfig`: resolution, intrinsics,
    modulation frequency, phase offsets, depth units, amplitude scale; the
    default is the simulated sensor, spec.SENSOR), loadable from JSON;
  * amplitude and depth from the four phase frames (`amplitude`, `depth`),
    with the sensor parameters they use (`TofConfig`, `ADC_MAX`);
  * the network input normalisation (`normalize_input`).
The data engine (hand25d/data/tof.py, render.py, pipeline.py) simulates the
phase frames and feeds training with these same definitions.

Amplitude is a cheap linear combination (no arctangent, no square root):
  amplitude = (|I_0 - I_180| + |I_90 - I_270|) / 2,
the L1 approximation of A (between A and sqrt(2) A). Depth uses the
arctangent, converts range to z-depth with the ray direction and rejects
low-amplitude, saturated and flying pixels (depth 0 = invalid). Both take
the frames in the order of the sensor's phase offsets (`SensorConfig`): four
offsets 90 degrees apart, in any order and with any common offset.
"""

import dataclasses
import functools
import json
import math
import os
from typing import Callable

import numpy as np

from hand25d import atomic
from hand25d import spec

ADC_MAX = 4095  # 12-bit ADC.

# Amplitude normalisation: sqrt(amplitude / AMPLITUDE_FULL_SCALE) clipped to
# [0, 1]; the square root compresses the 1/r^2 fall-off of the return.
AMPLITUDE_FULL_SCALE = 2048.0
# Depth normalisation: metres / DEPTH_FULL_SCALE_M clipped to [0, 1]; invalid = 0.
DEPTH_FULL_SCALE_M = 2.0

# Bounds of physically meaningful pinhole intrinsics, generous enough for any
# real lens: a focal length between FOCAL_RANGE[0] and FOCAL_RANGE[1] times the
# image size along its axis (fx and width, fy and height: a field of view
# between 2 atan(50) = 177.7 and 2 atan(0.005) = 0.57 degrees), and a principal
# point at most MAX_PRINCIPAL_OFFSET image sizes from the image centre (a crop
# of a larger sensor moves it off centre). Beyond these the rays and the
# back-projected metres are meaningless, or overflow.
FOCAL_RANGE = (0.01, 100.0)
MAX_PRINCIPAL_OFFSET = 10.0


def _fov_deg(focal_per_size: float) -> float:
  """The field of view in degrees of a focal length of focal_per_size image sizes."""
  return 2.0 * math.degrees(math.atan(0.5 / focal_per_size))


@dataclasses.dataclass(frozen=True)
class TofConfig:
  """Parameters of the sensor (electrons unless stated).

  `depth` uses min_amplitude and flying_pixel_ratio; the rest are the
  simulated sensor's (hand25d/data/tof.py).
  """
  signal_at_1m: float = 400.0  # Return of a white Lambertian target at 1 m.
  contrast: float = 0.85  # Demodulation contrast.
  ambient_range: tuple[float, float] = (100.0, 1000.0)  # Per-frame ambient offset.
  read_noise: float = 6.0
  gain: float = 0.12  # ADC counts per electron.
  optical_blur: float = 0.15  # Weight of each of the 4 neighbours in the PSF.
  min_amplitude: float = 10.0  # ADC counts; below this depth is invalid.
  flying_pixel_ratio: float = 0.08  # Depth jump (relative) flagging a mixed pixel.


class SensorConfigError(ValueError):
  """A SensorConfig value (or JSON file) that cannot describe a sensor; names the field and file."""


@functools.lru_cache(maxsize=32)  # Asked twice per frame (amplitude, depth).
def _bucket_order(offsets_deg: tuple[float, ...]) -> tuple[tuple[int, ...], float]:
  """Frame order giving offsets (t0, t0 + 90, t0 + 180, t0 + 270) degrees, and t0 in degrees.

  Raises:
    SensorConfigError: not four offsets 90 degrees apart.
  """
  wrapped = [float(o) % 360.0 for o in offsets_deg]
  if len(wrapped) == spec.NUM_PHASE_FRAMES:
    t0 = min(wrapped)
    steps = [(o - t0) / 90.0 for o in wrapped]
    order = tuple(sorted(range(len(steps)), key=steps.__getitem__))
    if all(abs(steps[k] - j) < 1e-6 for j, k in enumerate(order)):
      return order, t0
  raise SensorConfigError(
      f"phase_offsets_deg {tuple(offsets_deg)} are not {spec.NUM_PHASE_FRAMES} offsets 90 "
      "degrees apart (e.g. 0, 90, 180, 270 in any order): amplitude and depth use the "
      "4-bucket scheme")


@dataclasses.dataclass(frozen=True)
class SensorConfig:
  """The numbers of the sensor whose frames the runtime gets (default: spec.SENSOR).

  Load one for a real camera from JSON (`load`, `from_dict`); `save` writes
  one. Frames must have this resolution; the runtime resizes the amplitude to
  the network's input and maps the keypoints back to these pixels, so the
  intrinsics are those of the frames as they arrive.

  Attributes:
    height, width: frame size in pixels.
    fx, fy, cx, cy: pinhole intrinsics in pixels at this resolution (pixel
      centres at integer coordinates, x right, y down); fx within FOCAL_RANGE
      times the width, fy times the height, and (cx, cy) within
      MAX_PRINCIPAL_OFFSET widths and heights of the image centre.
    modulation_hz: continuous-wave modulation frequency (phase frames only).
    phase_offsets_deg: the phase offset of each of the four phase frames, in
      the order they arrive: 90 degrees apart, in any order, with any common
      offset (e.g. (0, 180, 90, 270) or (45, 135, 225, 315)).
    depth_unit_m: metres per unit of integer depth images (0.001: millimetres,
      as Azure Kinect and Orbbec SDKs write them). Float depth is in metres.
    amplitude_scale: multiplies the amplitude (or IR image, in counts) before
      the network's input normalisation (`normalize_input`), so that a
      camera's IR counts span the range the network was trained on (the
      simulated sensor's ADC counts: 1.0).
  """
  height: int = spec.SENSOR.height
  width: int = spec.SENSOR.width
  fx: float = spec.SENSOR.intrinsics.fx
  fy: float = spec.SENSOR.intrinsics.fy
  cx: float = spec.SENSOR.intrinsics.cx
  cy: float = spec.SENSOR.intrinsics.cy
  modulation_hz: float = spec.SENSOR.modulation_hz
  phase_offsets_deg: tuple[float, ...] = spec.SENSOR.phase_offsets_deg
  depth_unit_m: float = 0.001
  amplitude_scale: float = 1.0

  def __post_init__(self):
    for name in ("height", "width"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SensorConfigError(f"{name} must be a positive integer, got {value!r}")
    for name in ("fx", "fy", "cx", "cy", "modulation_hz", "depth_unit_m", "amplitude_scale"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
          math.isfinite(value)):
        raise SensorConfigError(f"{name} must be a finite number, got {value!r}")
      if name not in ("cx", "cy") and not value > 0:
        raise SensorConfigError(f"{name} must be positive, got {value!r}")
    for focal, centre, size_name in (("fx", "cx", "width"), ("fy", "cy", "height")):
      size = getattr(self, size_name)
      lo, hi = FOCAL_RANGE[0] * size, FOCAL_RANGE[1] * size
      value = getattr(self, focal)
      if not lo <= value <= hi:
        raise SensorConfigError(
            f"{focal} must be between {lo:g} and {hi:g} px ({FOCAL_RANGE[0]:g} to "
            f"{FOCAL_RANGE[1]:g} times the {size_name}, {size} px: a field of view between "
            f"{_fov_deg(FOCAL_RANGE[1]):.2f} and {_fov_deg(FOCAL_RANGE[0]):.1f} degrees), got "
            f"{value!r}")
      offset = MAX_PRINCIPAL_OFFSET * size
      value = getattr(self, centre)
      if not abs(value - (size - 1) / 2) <= offset:
        raise SensorConfigError(
            f"{centre} must be within {MAX_PRINCIPAL_OFFSET:g} times the {size_name} ({size} px) "
            f"of the image centre, i.e. between {(size - 1) / 2 - offset:g} and "
            f"{(size - 1) / 2 + offset:g} px, got {value!r}")
    offsets = self.phase_offsets_deg
    if isinstance(offsets, (str, bytes)) or not hasattr(offsets, "__len__"):
      raise SensorConfigError(f"phase_offsets_deg must be a sequence, got {offsets!r}")
    try:
      offsets = tuple(float(o) for o in offsets)
    except (TypeError, ValueError) as e:
      raise SensorConfigError(f"phase_offsets_deg must be numbers, got {offsets!r}") from e
    object.__setattr__(self, "phase_offsets_deg", offsets)
    _bucket_order(self.phase_offsets_deg)

  @property
  def shape(self) -> tuple[int, int]:
    """(height, width)."""
    return (self.height, self.width)

  @property
  def intrinsics(self) -> spec.Intrinsics:
    return spec.Intrinsics(fx=float(self.fx), fy=float(self.fy), cx=float(self.cx),
                           cy=float(self.cy))

  @property
  def bucket_order(self) -> tuple[tuple[int, ...], float]:
    """The frame order of the 4-bucket scheme and its common offset in degrees."""
    return _bucket_order(self.phase_offsets_deg)

  def camera(self) -> "Camera":
    """The (cached, shared) Camera of this resolution and intrinsics."""
    return camera(self.height, self.width, self.intrinsics)

  def resized(self, height: int, width: int) -> "SensorConfig":
    """The same sensor with frames resized to height x width (intrinsics scaled to match)."""
    k = self.intrinsics.scaled(width / self.width, height / self.height)
    return dataclasses.replace(self, height=height, width=width, fx=k.fx, fy=k.fy, cx=k.cx,
                               cy=k.cy)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d["phase_offsets_deg"] = list(self.phase_offsets_deg)
    return d

  @classmethod
  def from_dict(cls, data, source: str = "sensor config") -> "SensorConfig":
    """A SensorConfig from a mapping of field names; missing fields keep their defaults.

    Raises:
      SensorConfigError: not a mapping, an unknown field or a bad value,
        naming `source` (e.g. the file).
    """
    if not isinstance(data, dict):
      raise SensorConfigError(f"{source}: expected a JSON object of SensorConfig fields, got "
                              f"{type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
      raise SensorConfigError(f"{source}: unknown fields {unknown}; SensorConfig has "
                              f"{sorted(known)}")
    try:
      return cls(**data)
    except SensorConfigError as e:
      raise SensorConfigError(f"{source}: {e}") from e

  @classmethod
  def load(cls, path: str | os.PathLike) -> "SensorConfig":
    """Reads a JSON file written by `save` (or by hand: any subset of the fields).

    Raises:
      FileNotFoundError: no such file.
      SensorConfigError: not JSON, or not a valid SensorConfig (naming the file).
    """
    with open(path, encoding="utf-8") as f:
      text = f.read()
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise SensorConfigError(f"{path}: not valid JSON: {e}") from e
    return cls.from_dict(data, source=os.fspath(path))

  def save(self, path: str | os.PathLike) -> None:
    """Writes the config as JSON (atomically)."""
    atomic.write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


DEFAULT_SENSOR = SensorConfig()


@dataclasses.dataclass
class Camera:
  """A pinhole camera: image size and intrinsics, with cached per-pixel rays.

  Rays leave the camera at the origin through each pixel centre with
  direction ((x - cx) / fx, (y - cy) / fy, 1).

  Attributes (computed):
    rays: [H, W, 3] float64 pixel ray directions with z = 1.
    ray_sq: [H, W] float64 |ray|^2.
    radial: [H, W] float32 |ray|: radial distance = z-depth * radial.
  """
  height: int
  width: int
  intrinsics: spec.Intrinsics

  def __post_init__(self):
    k = self.intrinsics
    xs = (np.arange(self.width) - k.cx) / k.fx
    ys = (np.arange(self.height) - k.cy) / k.fy
    self.rays = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], 1.0), axis=-1)
    self.ray_sq = xs[None, :]**2 + ys[:, None]**2 + 1.0
    self.radial = np.sqrt(self.ray_sq).astype(np.float32)

  def project(self, points: np.ndarray) -> np.ndarray:
    """[..., 3] camera points -> [..., 2] pixel (x, y)."""
    k = self.intrinsics
    z = np.maximum(points[..., 2], 1e-6)
    return np.stack([points[..., 0] / z * k.fx + k.cx, points[..., 1] / z * k.fy + k.cy], -1)


@functools.lru_cache(maxsize=8)
def camera(height: int, width: int, intrinsics: spec.Intrinsics) -> Camera:
  """A shared (cached) Camera; treat its arrays as read-only."""
  return Camera(height, width, intrinsics)


def _in_bucket_order(frames: np.ndarray, sensor_config: SensorConfig) -> np.ndarray:
  """The frames reordered to offsets (t0, t0 + 90, t0 + 180, t0 + 270); no copy if in order."""
  order, _ = sensor_config.bucket_order
  return frames if order == tuple(range(len(order))) else frames[list(order)]


def amplitude(frames: np.ndarray, sensor_config: SensorConfig = DEFAULT_SENSOR) -> np.ndarray:
  """[H, W] uint16 amplitude (ADC counts) by the L1 combination of the 4 frames.

  Args:
    frames: [4, H, W] phase frames in the order of sensor_config.phase_offsets_deg.
    sensor_config: the sensor (only its phase offsets are used).
  """
  f = _in_bucket_order(frames, sensor_config)
  i, q = np.subtract(f[0], f[2], dtype=np.int32), np.subtract(f[1], f[3], dtype=np.int32)
  np.abs(i, out=i)
  np.abs(q, out=q)
  i += q
  i //= 2
  return i.astype(np.uint16)


def depth(frames: np.ndarray, camera: Camera,  # pylint: disable=redefined-outer-name
          config: TofConfig = TofConfig(),
          sensor_config: SensorConfig = DEFAULT_SENSOR,
          arctan2: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.arctan2) -> np.ndarray:
  """[H, W] float32 z-depth in metres from the 4 frames; 0 marks invalid pixels.

  The phase of the return, from the frames in the order of
  sensor_config.phase_offsets_deg (less their common offset), gives the range
  at sensor_config.modulation_hz; the camera's rays turn range into z.
  Invalid: amplitude below config.min_amplitude, any frame saturated, or a
  flying pixel (differs from both horizontal or both vertical neighbours by
  more than config.flying_pixel_ratio of its depth, i.e. it matches neither
  side of an edge).

  `arctan2(q, i)` gives the phase of float32 [H, W] arrays as float32 [H, W].
  numpy's loop rounds its last bit differently on each SIMD level; the data
  engine passes one whose bits do not depend on the CPU (data/tof.py).
  """
  ordered = _in_bucket_order(frames, sensor_config)
  # uint16 -> float32 is exact, and so are these differences.
  i = np.subtract(ordered[0], ordered[2], dtype=np.float32)
  q = np.subtract(ordered[3], ordered[1], dtype=np.float32)
  valid = (amplitude(ordered) >= config.min_amplitude) & (frames.max(axis=0) < ADC_MAX)
  # Invalid pixels get z = 0 below whatever their phase. A zero I (+-0) is
  # one of libm's cheapest atan2f (numpy's loop calls libm on AVX2 machines);
  # Q stays, as Q = -0 would give z = -0 there.
  i *= valid
  phi = arctan2(q, i)
  _, t0_deg = sensor_config.bucket_order
  if t0_deg:  # The frames measured phi + t0, t0 in [0, 90) degrees.
    phi = phi - np.float32(np.deg2rad(t0_deg))
  # Wrap (-pi, pi] (less t0) to [0, 2 pi); np.mod would cost 7x more than this.
  phi = np.where(phi < 0.0, phi + np.float32(2.0 * np.pi), phi)
  r = phi * spec.SPEED_OF_LIGHT_M_S / (4.0 * np.pi * sensor_config.modulation_hz)
  # z is >= 0 and finite (Q is never -0, so phi is never -0; for any sensor whose
  # range scale is a normal float32), so multiplying by a mask zeroes (+0) or
  # keeps it: 7x faster than assigning through a boolean index.
  z = r / camera.radial
  z *= valid
  # A flying pixel is off (by more than tol) from both neighbours along x or
  # along y; a border pixel's missing neighbour is itself, so never off.
  tol = config.flying_pixel_ratio * z
  dx, dy = np.abs(np.diff(z, axis=1)), np.abs(np.diff(z, axis=0))  # [H, W - 1], [H - 1, W].
  flying = np.zeros(z.shape, bool)
  flying[:, 1:-1] = (dx[:, :-1] > tol[:, 1:-1]) & (dx[:, 1:] > tol[:, 1:-1])
  flying[1:-1, :] |= (dy[:-1, :] > tol[1:-1, :]) & (dy[1:, :] > tol[1:-1, :])
  z *= ~flying
  return z


def normalize_input(image: np.ndarray, mode: str) -> np.ndarray:
  """The network input from a raw image (numpy; data/pipeline.py has the tensor form).

  Args:
    image: amplitude in ADC counts (mode 'amplitude') or z-depth in metres
      with 0 = invalid (mode 'depth'), any shape.
    mode: one of spec.INPUT_MODES.

  Returns:
    float32 in [0, 1]: sqrt(amplitude / AMPLITUDE_FULL_SCALE) or
    depth / DEPTH_FULL_SCALE_M, clipped.

  Raises:
    ValueError: an unknown mode.
  """
  check_input_mode(mode)
  x = image.astype(np.float32)
  x = np.sqrt(np.clip(x / AMPLITUDE_FULL_SCALE, 0.0, 1.0)) if mode == "amplitude" else np.clip(
      x / DEPTH_FULL_SCALE_M, 0.0, 1.0)
  return x.astype(np.float32)


def check_input_mode(mode: str) -> None:
  """Raises ValueError unless `mode` is one of spec.INPUT_MODES."""
  if mode not in spec.INPUT_MODES:
    raise ValueError(f"input mode {mode!r} is not one of {spec.INPUT_MODES}")
