"""Continuous-wave time-of-flight sensor model.

From a depth map (z, metres) and per-pixel reflectivity the model forms the
four correlation ("phase") frames of a CW-TOF sensor at spec.SENSOR's
modulation frequency:

  I_k = B + A cos(phi + theta_k),  theta_k in spec.SENSOR.phase_offsets_deg,
  phi = 4 pi f r / c  (r = radial distance),
  A = contrast * S,  B = S + ambient,
  S = signal_at_1m * reflectivity * cos(incidence) / r^2   (electrons),

then adds shot noise (Gaussian with variance = electrons), read noise and ADC
quantisation with saturation. A 5-tap optical blur of the complex return mixes
signals across depth edges and so produces realistic flying pixels.

Amplitude is a cheap linear combination (no arctangent, no square root):
  amplitude = (|I_0 - I_180| + |I_90 - I_270|) / 2,
the L1 approximation of A (between A and sqrt(2) A). Depth uses the
arctangent, converts range to z-depth with the ray direction and rejects
low-amplitude, saturated and flying pixels (depth 0 = invalid).
"""

import dataclasses
import functools
import statistics

import numpy as np

from hand25d import spec
from hand25d.data import render

ADC_MAX = 4095  # 12-bit ADC.
# amplitude() and depth() combine the frames as the 4-bucket scheme below.
if tuple(spec.SENSOR.phase_offsets_deg) != (0.0, 90.0, 180.0, 270.0):
  raise ValueError(f"tof.py needs phase offsets (0, 90, 180, 270) degrees, spec.SENSOR has "
                   f"{spec.SENSOR.phase_offsets_deg}")


@dataclasses.dataclass(frozen=True)
class TofConfig:
  """Parameters of the simulated sensor (electrons unless stated)."""
  signal_at_1m: float = 400.0  # Return of a white Lambertian target at 1 m.
  contrast: float = 0.85  # Demodulation contrast.
  ambient_range: tuple[float, float] = (100.0, 1000.0)  # Per-frame ambient offset.
  read_noise: float = 6.0
  gain: float = 0.12  # ADC counts per electron.
  optical_blur: float = 0.15  # Weight of each of the 4 neighbours in the PSF.
  min_amplitude: float = 10.0  # ADC counts; below this depth is invalid.
  flying_pixel_ratio: float = 0.08  # Depth jump (relative) flagging a mixed pixel.


def incidence_cosine(depth: np.ndarray, camera: render.Camera) -> np.ndarray:
  """Approximate cos of the angle between the surface normal and the viewing ray.

  From the depth gradient in pixels, with the ray taken along the optical
  axis over the small patch: cos = 1 / sqrt(1 + (fx dz/du / z)^2 +
  (fy dz/dv / z)^2) (central differences, one-sided at the border). Clipped
  to [0.1, 1] so grazing and edge pixels keep a little signal.
  """
  z = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
  p = np.pad(z, 1, mode="edge")
  k = camera.intrinsics
  inv = np.float32(0.5) / np.maximum(z, np.float32(1e-3))
  gx = (p[1:-1, 2:] - p[1:-1, :-2]) * inv * np.float32(k.fx)
  gy = (p[2:, 1:-1] - p[:-2, 1:-1]) * inv * np.float32(k.fy)
  return np.clip(1.0 / np.sqrt(1.0 + gx * gx + gy * gy), 0.1, 1.0).astype(np.float32)


def phase_frames(depth: np.ndarray, reflectivity: np.ndarray, camera: render.Camera,
                 ambient: float, rng: np.random.Generator,
                 config: TofConfig = TofConfig()) -> np.ndarray:
  """[4, H, W] uint16 phase frames (ADC counts) of a scene.

  Args:
    depth: [H, W] z-depth in metres, inf where no surface.
    reflectivity: [H, W] reflectivity in [0, 1] at the sensor wavelength.
    camera: the sensor's camera (render.camera).
    ambient: ambient light in electrons for this frame.
    rng: noise source.
    config: sensor parameters.
  """
  hit = np.isfinite(depth)
  r = np.where(hit, depth, 1.0).astype(np.float32) * camera.radial
  cos = incidence_cosine(depth, camera)
  signal = np.where(hit, config.signal_at_1m * reflectivity * cos / r**2, 0.0).astype(np.float32)
  phi = (4.0 * np.pi * spec.SENSOR.modulation_hz / spec.SPEED_OF_LIGHT_M_S) * r
  # The return as (A cos phi, A sin phi), blurred by the optics so that
  # neighbours mix at depth edges (flying pixels).
  amp = config.contrast * signal
  re = _blur(amp * np.cos(phi), config.optical_blur)
  im = _blur(amp * np.sin(phi), config.optical_blur)
  dc = _blur(signal, config.optical_blur) + np.float32(ambient)
  offsets = np.deg2rad(np.array(spec.SENSOR.phase_offsets_deg, np.float32))
  # I_k = B + A cos(phi + theta_k) = B + re cos(theta_k) - im sin(theta_k).
  electrons = (dc + re * np.cos(offsets)[:, None, None] - im * np.sin(offsets)[:, None, None])
  electrons = np.maximum(electrons, 0.0)
  noise = standard_normal(rng, electrons.shape)
  electrons += noise * np.sqrt(electrons + np.float32(config.read_noise**2))
  return np.clip(np.round(electrons * np.float32(config.gain)), 0, ADC_MAX).astype(np.uint16)


@functools.cache
def _gaussian_quantiles() -> np.ndarray:
  """The standard normal's quantiles at the centres of 2^16 equal-probability bins."""
  nd = statistics.NormalDist()
  return np.array([nd.inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float32)


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
  """float32 standard normal noise by inverse-CDF lookup of 16-bit uniform draws.

  About 4x faster than rng.standard_normal at this size; the tails stop at
  4.3 sigma, which is immaterial for sensor noise.
  """
  n = int(np.prod(shape))
  return np.take(_gaussian_quantiles(), np.frombuffer(rng.bytes(2 * n), "<u2")).reshape(shape)


def _blur(x: np.ndarray, w: float) -> np.ndarray:
  """5-tap cross blur (centre and 4 neighbours), edges replicated."""
  p = np.pad(x, 1, mode="edge")
  return (np.float32(1 - 4 * w) * x +
          np.float32(w) * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]))


def amplitude(frames: np.ndarray) -> np.ndarray:
  """[H, W] uint16 amplitude (ADC counts) by the L1 combination of the 4 frames."""
  f = frames.astype(np.int32)
  return ((np.abs(f[0] - f[2]) + np.abs(f[1] - f[3])) // 2).astype(np.uint16)


def depth(frames: np.ndarray, camera: render.Camera,
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
