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
signals across depth edges and so produces realistic flying pixels. numpy
computes the ranges and their phases' cosines; numba kernels do the rest per
pixel.

Amplitude and depth from the frames (`amplitude`, `depth`), the ADC range
and the sensor parameters (`TofConfig`) are the runtime's, defined in
hand25d/sensor.py and used here.
"""

import functools
import math
import statistics

import numba
import numpy as np

from hand25d import sensor
from hand25d import spec
from hand25d.data import render

ADC_MAX = sensor.ADC_MAX
TofConfig = sensor.TofConfig
amplitude = sensor.amplitude


def depth(frames: np.ndarray, camera: render.Camera, config: TofConfig = TofConfig(),
          sensor_config: sensor.SensorConfig = sensor.DEFAULT_SENSOR) -> np.ndarray:
  """sensor.depth, with a phase whose bits are the same on every x86 CPU with AVX2.

  numpy's float32 arctan2 runs an AVX-512 loop on AVX-512 machines, which
  rounds the last bit of about 40% of phases differently from its loop on
  AVX2 machines, which calls libm. Here every machine calls libm (glibc's
  atan2f), so a data set's bytes do not depend on the machine that renders
  it (docs/data_format.md), and match what AVX2 machines wrote before.
  """
  return sensor.depth(frames, camera, config, sensor_config, arctan2=_libm_arctan2)


def incidence_cosine(depth: np.ndarray, camera: render.Camera) -> np.ndarray:
  """Approximate cos of the angle between the surface normal and the viewing ray.

  From the depth gradient in pixels, with the ray taken along the optical
  axis over the small patch: cos = 1 / sqrt(1 + (fx dz/du / z)^2 +
  (fy dz/dv / z)^2) (central differences, one-sided at the border). Clipped
  to [0.1, 1] so grazing and edge pixels keep a little signal.

  Args:
    depth: [H, W] z-depth in metres, inf where no surface (taken as 0).
    camera: the sensor's camera.

  Returns:
    [H, W] float32.
  """
  k = camera.intrinsics
  return _incidence_cosine(depth, np.float32(k.fx), np.float32(k.fy))


def phase_frames(depth: np.ndarray, reflectivity: np.ndarray, camera: render.Camera,
                 ambient: float, rng: np.random.Generator,
                 config: TofConfig = TofConfig()) -> np.ndarray:
  """[4, H, W] uint16 phase frames (ADC counts) of a scene.

  Args:
    depth: [H, W] z-depth in metres, inf where no surface.
    reflectivity: [H, W] float32 reflectivity in [0, 1] at the sensor wavelength.
    camera: the sensor's camera (render.camera).
    ambient: ambient light in electrons for this frame.
    rng: noise source.
    config: sensor parameters.
  """
  r = np.where(np.isfinite(depth), depth, 1.0).astype(np.float32) * camera.radial  # Range, m.
  phi = (4.0 * np.pi * spec.SENSOR.modulation_hz / spec.SPEED_OF_LIGHT_M_S) * r
  returns = _returns(depth, reflectivity.astype(np.float32, copy=False), r, np.cos(phi),
                     np.sin(phi), incidence_cosine(depth, camera),
                     np.float32(config.signal_at_1m), np.float32(config.contrast))
  offsets = np.deg2rad(np.array(spec.SENSOR.phase_offsets_deg, np.float32))
  # Standard normal noise by inverse-CDF look-up of 16-bit uniform draws (4x
  # faster than rng.standard_normal; the tails stop at 4.3 sigma, immaterial
  # for sensor noise).
  noise_codes = np.frombuffer(rng.bytes(2 * len(offsets) * depth.size), "<u2")
  return _frames(returns, np.float32(1 - 4 * config.optical_blur),
                 np.float32(config.optical_blur), np.float32(ambient), np.cos(offsets),
                 np.sin(offsets), noise_codes, _gaussian_quantiles(),
                 np.float32(config.read_noise**2), np.float32(config.gain), np.float32(ADC_MAX))


@numba.njit(cache=True)
def _libm_arctan2(q, i):
  """float32 arctan2(q, i) of two float32 arrays of one shape, by libm's atan2f."""
  out = np.empty(q.shape, np.float32)
  flat_q, flat_i, flat_out = q.ravel(), i.ravel(), out.ravel()
  for k in range(flat_q.size):
    flat_out[k] = math.atan2(flat_q[k], flat_i[k])
  return out


@functools.cache
def _gaussian_quantiles() -> np.ndarray:
  """The standard normal's quantiles at the centres of 2^16 equal-probability bins."""
  nd = statistics.NormalDist()
  return np.array([nd.inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float32)


# The kernels below compile with numba. Their float32 arithmetic is numpy's,
# operation for operation and in the same order (numba fuses no multiply-adds
# and every constant comes in as a float32), so the frames have the bits the
# numpy expressions in their docstrings would give.


@numba.njit(cache=True)
def _incidence_cosine(depth, fx, fy):
  """incidence_cosine of [H, W] depth, fx and fy float32: [H, W] float32.

  z = depth as float32 (0 where not finite); gx = (z[x + 1] - z[x - 1]) *
  (0.5 / max(z, 1e-3)) * fx (edges replicated), gy likewise down the rows
  with fy; clip(1 / sqrt(1 + gx gx + gy gy), 0.1, 1).
  """
  h, w = depth.shape
  z = np.empty((h, w), np.float32)
  for i in range(h):
    for j in range(w):
      z[i, j] = np.float32(depth[i, j]) if np.isfinite(depth[i, j]) else np.float32(0.0)
  one, half, floor, low = np.float32(1.0), np.float32(0.5), np.float32(1e-3), np.float32(0.1)
  out = np.empty((h, w), np.float32)
  dx = np.empty(w, np.float32)
  for i in range(h):
    above, row, below = z[max(i - 1, 0)], z[i], z[min(i + 1, h - 1)]
    _central_difference(row, dx)
    for j in range(w):
      inv = half / max(row[j], floor)
      gx = dx[j] * inv * fx
      gy = (below[j] - above[j]) * inv * fy
      out[i, j] = min(max(one / np.sqrt(one + gx * gx + gy * gy), low), one)
  return out


@numba.njit(cache=True)
def _central_difference(row, out):
  """out[x] = row[x + 1] - row[x - 1] for a [W] row, edges replicated."""
  w = row.shape[0]
  for j in range(1, w - 1):
    out[j] = row[j + 1] - row[j - 1]
  out[0] = row[min(1, w - 1)] - row[0]
  out[w - 1] = row[w - 1] - row[max(w - 2, 0)]


@numba.njit(cache=True)
def _returns(depth, reflectivity, r, cos_phi, sin_phi, incidence, signal_at_1m, contrast):
  """[3, H, W] float32 (A cos phi, A sin phi, S) before the optical blur.

  S = signal_at_1m * reflectivity * incidence / r^2 where depth is finite
  (else 0), A = contrast * S; r, phi and the cosines are [H, W] float32.
  """
  h, w = depth.shape
  out = np.empty((3, h, w), np.float32)
  for i in range(h):
    for j in range(w):
      signal = np.float32(0.0)
      if np.isfinite(depth[i, j]):
        signal = signal_at_1m * reflectivity[i, j] * incidence[i, j] / (r[i, j] * r[i, j])
      amp = contrast * signal
      out[0, i, j] = amp * cos_phi[i, j]
      out[1, i, j] = amp * sin_phi[i, j]
      out[2, i, j] = signal
  return out


@numba.njit(cache=True)
def _frames(returns, centre, weight, ambient, cos_k, sin_k, noise_codes, quantiles,
            read_noise_sq, gain, adc_max):
  """[K, H, W] uint16 phase frames from the returns (_returns) of the K = len(cos_k) offsets.

  The optical blur of each return: centre * x + weight * (up + down + left +
  right) (edges replicated); re, im and dc = blurred S + ambient. Then
  I_k = B + A cos(phi + theta_k) = B + re cos(theta_k) - im sin(theta_k) in
  electrons, clipped at 0; shot and read noise sqrt(I_k + read_noise_sq)
  times the standard normal quantiles[noise_codes[k, y, x]]; then
  rint(I_k * gain) clipped to [0, adc_max] ADC counts.
  """
  _, h, w = returns.shape
  frames = np.empty((cos_k.shape[0], h, w), np.uint16)
  zero = np.float32(0.0)
  blurred = np.empty((3, w), np.float32)  # re, im, dc of one row.
  noise = np.empty(w, np.float32)
  for i in range(h):
    for c in range(3):
      _blur_row(returns[c], i, centre, weight, blurred[c])
    re, im, dc = blurred[0], blurred[1], blurred[2]
    for j in range(w):
      dc[j] += ambient
    for k in range(cos_k.shape[0]):
      codes = noise_codes[(k * h + i) * w:(k * h + i + 1) * w]
      for j in range(w):  # The table look-up on its own: the loop below vectorises.
        noise[j] = quantiles[codes[j]]
      for j in range(w):
        electrons = max(dc[j] + re[j] * cos_k[k] - im[j] * sin_k[k], zero)
        electrons += np.sqrt(electrons + read_noise_sq) * noise[j]
        frames[k, i, j] = np.uint16(min(max(np.rint(electrons * gain), zero), adc_max))
  return frames


@numba.njit(cache=True)
def _blur_row(x, i, centre, weight, out):
  """Row i of the 5-tap cross blur of [H, W] x, edges replicated, into out [W]."""
  h, w = x.shape
  above, row, below = x[max(i - 1, 0)], x[i], x[min(i + 1, h - 1)]
  for j in range(1, w - 1):
    out[j] = centre * row[j] + weight * (above[j] + below[j] + row[j - 1] + row[j + 1])
  for j in (0, w - 1):
    out[j] = centre * row[j] + weight * (above[j] + below[j] + row[max(j - 1, 0)] +
                                         row[min(j + 1, w - 1)])
