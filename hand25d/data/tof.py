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
computes the phases' cosines and sines; numba kernels do the rest per pixel.

Amplitude and depth from the frames (`amplitude`, `depth`), the ADC range
and the sensor parameters (`TofConfig`) are the runtime's, defined in
hand25d/sensor.py and used here.
"""

import functools
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
  AVX2 machines, which calls libm. Here every machine takes the phase from
  `arctan2_f32`, which has the bits of glibc 2.36's atan2f (what AVX2
  machines wrote before), so the phase depends neither on the CPU nor on
  the C library (docs/data_format.md).
  """
  return sensor.depth(frames, camera, config, sensor_config, arctan2=arctan2_f32)


def arctan2_f32(y: np.ndarray, x: np.ndarray) -> np.ndarray:
  """float32 arctan2(y, x) with the bits of glibc 2.36's atan2f, vectorised.

  A port of glibc's sysdeps/ieee754/flt-32/e_atan2f.c and s_atanf.c (from
  fdlibm), operation for operation in float32, with the branches of the
  argument reduction turned into selects so that the loop vectorises (about
  10x faster than calling libm per element). Every special case (zeros of
  either sign, infinities, NaN with its payload) is the C code's.
  tests/data_render_test.py checks the bits against libm over every input
  the phase can have (integer I and Q within +-ADC_MAX, and I = -0) and
  over random float32 bit patterns.

  Args:
    y, x: float32 arrays of one shape (any; e.g. Q and I of [H, W] frames).

  Returns:
    float32 array of that shape: the angle in radians, in [-pi, pi].

  Raises:
    ValueError: the arrays are not float32 or their shapes differ.
  """
  if y.dtype != np.float32 or x.dtype != np.float32:
    raise ValueError(f"arctan2_f32 takes float32 arrays, got {y.dtype} and {x.dtype}")
  if y.shape != x.shape:
    raise ValueError(f"arctan2_f32 takes arrays of one shape, got {y.shape} and {x.shape}")
  fy, fx = np.ascontiguousarray(y).ravel(), np.ascontiguousarray(x).ravel()
  out = np.empty(fy.shape, np.float32)
  _atan2f(fy, fx, fy.view(np.int32), fx.view(np.int32), out)
  return out.reshape(y.shape)


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
  r = _ranges(depth, camera.radial)  # Range, m.
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


# glibc's constants (sysdeps/ieee754/flt-32), as the C code spells them: the
# decimals, rounded to float32 (aT[0]'s comment gives bits one ulp off what
# the compiler makes of its decimal).
_PI, _PI_LO = np.float32(3.1415927410e+00), np.float32(-8.7422776573e-08)
_PI_O_2, _PI_O_4 = np.float32(1.5707963705e+00), np.float32(7.8539818525e-01)
# atan(0.5), atan(1), atan(1.5), atan(inf): high and low parts.
_ATAN_HI = tuple(np.float32(v) for v in (
    4.6364760399e-01, 7.8539812565e-01, 9.8279368877e-01, 1.5707962513e+00))
_ATAN_LO = tuple(np.float32(v) for v in (
    5.0121582440e-09, 3.7748947079e-08, 3.4473217170e-08, 7.5497894159e-08))
_AT = tuple(np.float32(v) for v in (
    3.3333334327e-01, -2.0000000298e-01, 1.4285714924e-01, -1.1111110449e-01,
    9.0908870101e-02, -7.6918758452e-02, 6.6610731184e-02, -5.8335702866e-02,
    4.9768779427e-02, -3.6531571299e-02, 1.6285819933e-02))


@numba.njit(cache=True, error_model="numpy")
def _atan2f(fy, fx, hy_bits, hx_bits, out):  # pylint: disable=too-many-locals
  """arctan2_f32 of flat float32 fy, fx (and their int32 bits) into out."""
  one, two, three_halves = np.float32(1.0), np.float32(2.0), np.float32(1.5)
  zero = np.float32(0.0)
  hi0, hi1, hi2, hi3 = _ATAN_HI
  lo0, lo1, lo2, lo3 = _ATAN_LO
  at0, at1, at2, at3, at4, at5, at6, at7, at8, at9, at10 = _AT
  for k in range(fy.size):
    y, x, hy, hx = fy[k], fx[k], hy_bits[k], hx_bits[k]
    iy, ix = hy & 0x7fffffff, hx & 0x7fffffff
    neg_y, neg_x = hy < 0, hx < 0
    # __atanf(|y / x|), reduced by the same thresholds (compared as values:
    # a is >= 0 and, where used, not NaN, so they order like the C code's bits).
    a = abs(y / x)
    c0, c1 = a < np.float32(0.4375), a < np.float32(0.6875)
    c2, c3 = a < np.float32(1.1875), a < np.float32(2.4375)
    num = a if c0 else (two * a - one if c1 else (a - one if c2 else (
        a - three_halves if c3 else -one)))
    den = one if c0 else (two + a if c1 else (a + one if c2 else (
        one + three_halves * a if c3 else a)))
    hi = zero if c0 else (hi0 if c1 else (hi1 if c2 else (hi2 if c3 else hi3)))
    lo = zero if c0 else (lo0 if c1 else (lo1 if c2 else (lo2 if c3 else lo3)))
    t = num / den
    z = t * t
    w = z * z
    s1 = z * (at0 + w * (at2 + w * (at4 + w * (at6 + w * (at8 + w * at10)))))
    s2 = w * (at1 + w * (at3 + w * (at5 + w * (at7 + w * at9))))
    p = t * (s1 + s2)
    r = t - p if c0 else hi - ((p - lo) - t)
    r = a if a < np.float32(2.0**-29) else r
    r = hi3 + lo3 if a >= np.float32(2.0**25) else r
    # __ieee754_atan2f: very large or small |y / x|, then the quadrant.
    d = (iy - ix) >> 23
    r = _PI_O_2 + np.float32(0.5) * _PI_LO if d > 60 else r
    r = zero if neg_x and d < -60 else r
    r = ((r - _PI_LO) - _PI if neg_y else _PI - (r - _PI_LO)) if neg_x else (-r if neg_y else r)
    # The special cases, last taken first, so that the C code's order wins.
    # (x == 1 needs none: __atanf(y) is odd, so the path above gives it, and
    # for |y| > 2^60 its pi_o_2 + 0.5 pi_lo rounds to atanhi[3] + atanlo[3].)
    pi_o_2 = -_PI_O_2 if neg_y else _PI_O_2
    r = pi_o_2 if iy == 0x7f800000 else r
    if ix == 0x7f800000:
      if iy == 0x7f800000:
        r = (-_PI_O_4 if neg_y else _PI_O_4) if not neg_x else (
            np.float32(-3.0) * _PI_O_4 if neg_y else np.float32(3.0) * _PI_O_4)
      else:
        r = (-_PI if neg_y else _PI) if neg_x else (-zero if neg_y else zero)
    r = pi_o_2 if ix == 0 else r
    r = ((-_PI if neg_y else _PI) if neg_x else y) if iy == 0 else r
    # The C code's x + y keeps x's NaN if x is one (SSE's rule), else y's:
    # spelled out, as the compiler may swap the operands of an addition.
    r = x + x if ix > 0x7f800000 else (y + y if iy > 0x7f800000 else r)
    out[k] = r


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
def _ranges(depth, radial):
  """[H, W] float32 range: depth as float32 (1 where not finite) * radial (float32)."""
  out = np.empty(depth.shape, np.float32)
  for i in range(depth.shape[0]):
    for j in range(depth.shape[1]):
      d = depth[i, j]
      out[i, j] = (np.float32(d) if abs(d) < np.inf else np.float32(1.0)) * radial[i, j]
  return out


@numba.njit(cache=True)
def _incidence_cosine(depth, fx, fy):
  """incidence_cosine of [H, W] depth, fx and fy float32: [H, W] float32.

  z = depth as float32 (0 where not finite); gx = (z[x + 1] - z[x - 1]) *
  (0.5 / max(z, 1e-3)) * fx (edges replicated), gy likewise down the rows
  with fy; clip(1 / sqrt(1 + gx gx + gy gy), 0.1, 1). The maxima and the clip
  are selects (the values are never NaN), so that the loops vectorise.
  """
  h, w = depth.shape
  zero, one, half = np.float32(0.0), np.float32(1.0), np.float32(0.5)
  floor, low = np.float32(1e-3), np.float32(0.1)
  z = np.empty((h, w), np.float32)
  for i in range(h):
    for j in range(w):
      d = depth[i, j]
      z[i, j] = np.float32(d) if abs(d) < np.inf else zero
  out = np.empty((h, w), np.float32)
  inv, gx = np.empty(w, np.float32), np.empty(w, np.float32)
  for i in range(h):
    above, row, below = z[max(i - 1, 0)], z[i], z[min(i + 1, h - 1)]
    for j in range(w):
      inv[j] = half / (row[j] if row[j] > floor else floor)
    for j in range(1, w - 1):
      gx[j] = (row[j + 1] - row[j - 1]) * inv[j] * fx
    gx[0] = (row[min(1, w - 1)] - row[0]) * inv[0] * fx
    gx[w - 1] = (row[w - 1] - row[max(w - 2, 0)]) * inv[w - 1] * fx
    for j in range(w):
      gy = (below[j] - above[j]) * inv[j] * fy
      v = one / np.sqrt(one + gx[j] * gx[j] + gy * gy)
      v = v if v > low else low
      out[i, j] = v if v < one else one
  return out


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
