"""SensorConfig: JSON round trip, refusals naming the file, and phase decoding that uses it."""

import dataclasses
import json
import re

import numpy as np
import pytest

from hand25d import sensor
from hand25d import spec


def test_default_is_the_simulated_sensor():
  cfg = sensor.SensorConfig()
  assert cfg == sensor.DEFAULT_SENSOR
  assert cfg.shape == (spec.SENSOR.height, spec.SENSOR.width)
  assert cfg.intrinsics == spec.SENSOR.intrinsics
  assert (cfg.modulation_hz, cfg.phase_offsets_deg) == (spec.SENSOR.modulation_hz,
                                                        spec.SENSOR.phase_offsets_deg)
  assert cfg.camera() is sensor.camera(240, 320, spec.SENSOR.intrinsics)


def test_json_round_trip(tmp_path):
  cfg = sensor.SensorConfig(height=576, width=640, fx=504.2, fy=504.4, cx=321.7, cy=330.1,
                            modulation_hz=20e6, phase_offsets_deg=(0, 180, 90, 270),
                            depth_unit_m=1e-4, amplitude_scale=0.5)
  path = tmp_path / "camera.json"
  cfg.save(str(path))
  assert json.loads(path.read_text())["phase_offsets_deg"] == [0.0, 180.0, 90.0, 270.0]
  assert sensor.SensorConfig.load(str(path)) == cfg
  # A hand-written file may give some fields only.
  path.write_text('{"fx": 300, "fy": 301.5}')
  assert sensor.SensorConfig.load(str(path)) == dataclasses.replace(
      sensor.DEFAULT_SENSOR, fx=300, fy=301.5)


@pytest.mark.parametrize("text, words", [
    ('{"fx": 300, "focal": 2}', "unknown fields ['focal']"),
    ('{"fx": -1}', "fx must be positive"),
    ('{"height": 240.5}', "height must be a positive integer"),
    ('{"cx": "centre"}', "cx must be a finite number"),
    ('{"phase_offsets_deg": [0, 120, 240]}', "not 4 offsets 90 degrees apart"),
    ('{"phase_offsets_deg": [0, 90, 90, 270]}', "not 4 offsets 90 degrees apart"),
    ("[1, 2]", "expected a JSON object"),
    ("{fx: 1}", "not valid JSON"),
])
def test_bad_files_are_refused_naming_the_file(tmp_path, text, words):
  path = tmp_path / "camera.json"
  path.write_text(text)
  with pytest.raises(sensor.SensorConfigError) as e:
    sensor.SensorConfig.load(str(path))
  assert str(path) in str(e.value) and words in str(e.value)


def _phase_frames(range_m: np.ndarray, offsets_deg, modulation_hz: float,
                  amplitude: float = 400.0, offset: float = 1000.0) -> np.ndarray:
  """Noise-free phase frames I_k = B + A cos(phi + theta_k) of radial ranges (data/tof.py)."""
  phi = 4 * np.pi * modulation_hz * range_m / spec.SPEED_OF_LIGHT_M_S
  theta = np.deg2rad(np.asarray(offsets_deg, np.float64))[:, None, None]
  return np.round(offset + amplitude * np.cos(phi[None] + theta)).astype(np.uint16)


@pytest.mark.parametrize("offsets", [(0, 90, 180, 270), (0, 180, 90, 270), (270, 0, 90, 180),
                                     (45, 135, 225, 315), (200, 110, 20, 290)])
@pytest.mark.parametrize("modulation_hz", [80e6, 20e6])
def test_depth_decodes_the_sensors_offsets_and_frequency(offsets, modulation_hz):
  # The longest focal length allowed (100 x the height): rays within 0.4 degrees of the axis.
  cfg = sensor.SensorConfig(height=4, width=6, fx=400.0, fy=400.0, cx=2.5, cy=1.5,
                            modulation_hz=modulation_hz, phase_offsets_deg=offsets)
  range_m = np.linspace(0.2, 1.2, 24).reshape(4, 6)  # Rays along the axis: z = range.
  frames = _phase_frames(range_m, offsets, modulation_hz)
  z = sensor.depth(frames, cfg.camera(), sensor.TofConfig(flying_pixel_ratio=10.0), cfg)
  np.testing.assert_allclose(z, range_m, atol=0.002 * 80e6 / modulation_hz)
  # Amplitude (L1 combination): between A and sqrt(2) A whatever the frame order.
  a = sensor.amplitude(frames, cfg)
  assert (a >= 399).all() and (a <= 400 * np.sqrt(2) + 1).all()
  # Decoded as the default order instead, another order gives wrong depths.
  if cfg.bucket_order != sensor.DEFAULT_SENSOR.bucket_order:
    wrong = sensor.depth(frames, cfg.camera(), sensor.TofConfig(flying_pixel_ratio=10.0),
                         dataclasses.replace(cfg, phase_offsets_deg=(0, 90, 180, 270)))
    assert np.abs(wrong - range_m).max() > 0.05


@pytest.mark.parametrize("field, value, words", [
    ("fx", 1e-300, "fx must be between 3.2 and 32000 px"),
    ("fy", 1e-300, "fy must be between 2.4 and 24000 px"),
    ("fx", 3.1, "0.01 to 100 times the width, 320 px"),
    ("fy", 1e6, "a field of view between 0.57 and 177.7 degrees"),
    ("cx", 1e300, "cx must be within 10 times the width (320 px) of the image centre"),
    ("cy", -2281.0, "between -2280.5 and 2519.5 px"),
])
def test_intrinsics_outside_physical_bounds_are_refused(field, value, words):
  with pytest.raises(sensor.SensorConfigError, match=re.escape(words)) as e:
    dataclasses.replace(sensor.DEFAULT_SENSOR, **{field: value})
  assert f"got {value!r}" in str(e.value)
  # Named with the file, too.
  with pytest.raises(sensor.SensorConfigError, match="^camera.json: .*" + re.escape(words)):
    sensor.SensorConfig.from_dict({field: value}, source="camera.json")


def test_intrinsics_at_the_bounds_are_accepted():
  for fx, fy, cx, cy in [(3.2, 2.4, -3040.5, -2280.5), (32000, 24000, 3359.5, 2519.5)]:
    cfg = dataclasses.replace(sensor.DEFAULT_SENSOR, fx=fx, fy=fy, cx=cx, cy=cy)
    rays = cfg.camera().rays
    assert np.isfinite(rays).all() and np.abs(rays).max() < 1e4
  assert sensor.SensorConfig().intrinsics == spec.SENSOR.intrinsics  # Default unchanged.


def test_resized_scales_the_intrinsics_with_pixel_centres_aligned():
  cfg = sensor.SensorConfig(height=576, width=640, fx=500.0, fy=500.0, cx=319.5, cy=287.5)
  half = cfg.resized(288, 320)
  assert (half.height, half.width, half.fx, half.fy) == (288, 320, 250.0, 250.0)
  assert (half.cx, half.cy) == (159.5, 143.5)  # The image centre stays the centre.
  assert half.resized(576, 640) == cfg
