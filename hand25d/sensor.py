"""The time-of-flight sensor as the runtime sees it: numpy only.

What both the deployable runtime and the synthetic data engine need to know
about the sensor, in one place:
  * the camera: pixel rays of spec.SENSOR's pinhole intrinsics (`Camera`);
  * amplitude and depth from the four phase frames (`amplitude`, `depth`),
    with the sensor parameters they use (`TofConfig`, `ADC_MAX`);
  * the network input normalisation (`normalize_input`).
The data engine (hand25d/data/tof.py, render.py, pipeline.py) simulates the
phase frames and feeds training with these same definitions.

Amplitude is a cheap linear combination (no arctangent, no square root):
  amplitude = (|I_0 - I_180| + |I_90 - I_270|) / 2,
the L1 approximation of A (between A and sqrt(2) A). Depth uses the
arctangent, converts range to z-depth with the ray direction and rejects
low-amplitude, saturated and flying pixels (depth 0 = invalid).
"""

import dataclasses
import functools

import numpy as np

from hand25d import spec

ADC_MAX = 4095  # 12-bit ADC.
# amplitude() and depth() combine the frames as the 4-bucket scheme below.
if tuple(spec.SENSOR.phase_offsets_deg) != (0.0, 90.0, 180.0, 270.0):
  raise ValueError(f"sensor.py needs phase offsets (0, 90, 180, 270) degrees, spec.SENSOR has "
                   f"{spec.SENSOR.phase_offsets_deg}")

# Amplitude normalisation: sqrt(amplitude / AMPLITUDE_FULL_SCALE) clipped to
# [0, 1]; the square root compresses the 1/r^2 fall-off of the return.
AMPLITUDE_FULL_SCALE = 2048.0
# Depth normalisation: metres / DEPTH_FULL_SCALE_M clipped to [0, 1]; invalid = 0.
DEPTH_FULL_SCALE_M = 2.0


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


def amplitude(frames: np.ndarray) -> np.ndarray:
  """[H, W] uint16 amplitude (ADC counts) by the L1 combination of the 4 frames."""
  f = frames.astype(np.int32)
  return ((np.abs(f[0] - f[2]) + np.abs(f[1] - f[3])) // 2).astype(np.uint16)


def depth(frames: np.ndarray, camera: Camera,  # pylint: disable=redefined-outer-name
          config: TofConfig = TofConfig()) -> np.ndarray:
  """[H, W] float32 z-depth in metres from the 4 frames; 0 marks invalid pixels.

  Invalid: amplitude below config.min_amplitude, any frame saturated, or a
  flying pixel (differs from both horizontal or both vertical neighbours by
  more than config.flying_pixel_ratio of its depth, i.e. it matches neither
  side of an edge).
  """
  f = frames.astype(np.float32)
  i, q = f[0] - f[2], f[3] - f[1]
  phi = np.arctan2(q, i)
  # Wrap (-pi, pi] to [0, 2 pi); np.mod would cost 7x more than this.
  phi = np.where(phi < 0.0, phi + np.float32(2.0 * np.pi), phi)
  r = phi * spec.SPEED_OF_LIGHT_M_S / (4.0 * np.pi * spec.SENSOR.modulation_hz)
  z = (r / camera.radial).astype(np.float32)
  amp = amplitude(frames)
  valid = (amp >= config.min_amplitude) & np.all(frames < ADC_MAX, axis=0)
  z = np.where(valid, z, 0.0).astype(np.float32)
  p = np.pad(z, 1, mode="edge")
  tol = config.flying_pixel_ratio * z

  def off(n):
    return np.abs(n - z) > tol

  flying = ((off(p[1:-1, :-2]) & off(p[1:-1, 2:])) | (off(p[:-2, 1:-1]) & off(p[2:, 1:-1])))
  return np.where(flying, 0.0, z).astype(np.float32)


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
