"""HandTracker: no TensorFlow, the docs' examples, results, sensors, modes and bad input."""

import dataclasses
import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import hand25d
from hand25d import pretrained
from hand25d import sensor
from hand25d import spec
from hand25d.data import hand_model
from hand25d.data import scene
from hand25d.runtime import frames as frames_lib
from hand25d.runtime import inference
from hand25d.runtime import lifting
from hand25d.runtime import pipeline
from hand25d.runtime import recordings
from hand25d.runtime import tracker as tracker_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every hand counts as present and every keypoint as visible: all stages run.
EVERYTHING = pipeline.PipelineOptions(presence_threshold=0.0, min_keypoint_confidence=0.0)
_NOT_LOADED = """
import sys
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in ("tensorflow", "tf_keras", "keras", "export")
                or m.startswith(("hand25d.data", "hand25d.model", "hand25d.training",
                                 "hand25d.runtime.demo")))
print("LOADED", loaded)
"""


@pytest.fixture(scope="module")
def clip():
  """Three rendered frames with both hands' ground truth."""
  return scene.render_sequence(7, 3)


def _run_fresh(code: str, cwd) -> str:
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
  result = subprocess.run([sys.executable, "-c", code + _NOT_LOADED], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "LOADED []" in result.stdout, result.stdout
  return result.stdout


def test_tracker_runs_in_a_fresh_process_without_tensorflow(tmp_path):
  code = """
import numpy as np
from hand25d import HandTracker, SensorConfig
from hand25d.runtime import pipeline
rng = np.random.default_rng(0)
h, w = SensorConfig().shape
options = pipeline.PipelineOptions(presence_threshold=0.0, min_keypoint_confidence=0.0)
with HandTracker(mode="video", options=options) as t:
  r1 = t.process(amplitude=rng.integers(0, 3000, (h, w)), depth=np.full((h, w), 400, np.uint16),
                 timestamp_s=0.0)
  r2 = t.process_phase(rng.integers(100, 3000, (4, h, w)).astype(np.uint16), timestamp_s=0.04)
assert r1.ok and r2.ok, (r1.error, r2.error)
assert len(r1.hands) == 2 and r1.hands[0].positions_m.shape == (8, 3)
print("Z", round(float(np.nanmedian(r1.hands[0].positions_m[:, 2])), 3))
"""
  out = _run_fresh(code, tmp_path)
  assert "Z 0.4" in out, out  # Flat depth of 400 mm, lifted.


def _write_example_inputs(directory, clip) -> None:
  """What the docs' examples read: a SensorConfig, a PNG recording, phase frames."""
  sensor.DEFAULT_SENSOR.save(str(directory / "my_camera.json"))
  for sub in ("ir", "depth"):
    (directory / "recording" / sub).mkdir(parents=True)
  lines = ["name,timestamp_s"]
  for i, frame in enumerate(clip):
    depth_mm = np.round(frame["depth"] * 1000).astype(np.uint16)
    Image.fromarray(frame["amplitude"]).save(directory / "recording" / "ir" / f"{i:06d}.png")
    Image.fromarray(depth_mm).save(directory / "recording" / "depth" / f"{i:06d}.png")
    lines.append(f"{i:06d},{100.0 + 0.05 * i}")
  (directory / "recording" / "timestamps.csv").write_text("\n".join(lines) + "\n")
  np.save(directory / "capture.npy", clip[0]["phase_frames"])


def test_the_docs_examples_run_without_tensorflow(tmp_path, clip):
  with open(os.path.join(ROOT, "docs", "runtime.md")) as f:
    blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
  assert len(blocks) == 2, "docs/runtime.md: the examples this test runs"
  _write_example_inputs(tmp_path, clip)
  out = _run_fresh("\n".join(blocks), tmp_path)
  # The PNG recording's timestamps, a hand in each frame, metres of a hand.
  for i in range(len(clip)):
    assert re.search(rf"^{100.0 + 0.05 * i:.3f} s: (left|right) hand \([01]\.\d\d\), index "
                     r"tip at \(\d+, \d+\) px, z = 0\.\d{3} m", out, re.M), out
  assert re.search(r"^(left|right) 0\.\d+ \[\[0\.\d+, 0\.\d+\]", out, re.M), out


def test_public_api_is_lazy():
  assert hand25d.HandTracker is tracker_lib.HandTracker
  assert hand25d.SensorConfig is sensor.SensorConfig
  assert {"HandTracker", "SensorConfig"} <= set(dir(hand25d))
  with pytest.raises(AttributeError, match="no attribute 'Tracker'"):
    hand25d.Tracker  # pylint: disable=pointless-statement


def test_mediapipe_names_are_the_same_joints_of_the_hand_model():
  assert set(tracker_lib.MEDIAPIPE_NAMES) == set(spec.KEYPOINT_NAMES)
  for ours, theirs in tracker_lib.MEDIAPIPE_NAMES.items():
    if ours == "hand_center":
      assert theirs is None
      continue
    joint = "wrist" if ours == "wrist_center" else ours
    # hand_model has MediaPipe's 21 joints in MediaPipe's order.
    assert tracker_lib.MEDIAPIPE_HAND_LANDMARKS.index(theirs) == hand_model.JOINT_INDEX[joint]


def _pair(frame, sensor_config=sensor.DEFAULT_SENSOR):
  """Amplitude and depth (metres) of a frame's phase frames, as the pipeline computes them."""
  phase = frame["phase_frames"]
  return (sensor.amplitude(phase, sensor_config),
          sensor.depth(phase, sensor_config.camera(), sensor.TofConfig(), sensor_config))


def test_results_of_phase_and_of_amplitude_depth_input_agree(clip):
  with tracker_lib.HandTracker(mode="image", options=EVERYTHING) as t:
    for frame in clip:
      from_phase = t.process_phase(frame["phase_frames"])
      amplitude, depth = _pair(frame)
      from_images = t.process(amplitude=amplitude, depth=depth)
      depth_mm = t.process(amplitude=amplitude, depth=np.round(depth * 1e3).astype(np.uint16))
      assert from_phase.ok and from_images.ok and depth_mm.ok
      for a, b, c in zip(from_phase.hands, from_images.hands, depth_mm.hands, strict=True):
        np.testing.assert_array_equal(a.keypoints_px, b.keypoints_px)
        np.testing.assert_array_equal(a.positions_m, b.positions_m)
        np.testing.assert_allclose(a.positions_m, c.positions_m, atol=1e-3)  # mm rounding
  hand = from_phase.hands[0]
  assert [h.handedness for h in from_phase.hands] == list(spec.SIDES)
  assert hand.handedness_score == hand.presence and 0 < hand.presence < 1
  assert hand.pose is None and hand.pose_score is None  # The shipped model has no pose output.
  np.testing.assert_allclose(hand.keypoints_normalized * [320, 240] - 0.5, hand.keypoints_px)
  tip = hand.keypoint("INDEX_FINGER_TIP")
  assert tip == hand.keypoint("index_tip") == hand.keypoints[
      tracker_lib.KEYPOINT_NAMES.index("index_tip")]
  assert (tip.x_px, tip.y_px) == tuple(hand.keypoints_px[6]) and tip.mediapipe_name == (
      "INDEX_FINGER_TIP")
  with pytest.raises(KeyError, match="RING_FINGER_TIP"):
    hand.keypoint("RING_FINGER_TIP")
  row = tracker_lib.csv_rows(from_phase)[0]
  assert list(row) == list(tracker_lib.CSV_COLUMNS) and row["index_tip_x_px"] == round(tip.x_px, 6)
  assert from_phase.hand("right") is from_phase.hands[1]


def test_other_intrinsics_give_their_metres(clip):
  frame = clip[0]
  amplitude, depth = _pair(frame)
  custom = dataclasses.replace(sensor.DEFAULT_SENSOR, fx=400.0, fy=300.0, cx=170.0, cy=100.0)
  results = {}
  for cfg in (sensor.DEFAULT_SENSOR, custom):
    with tracker_lib.HandTracker(mode="image", sensor_config=cfg, options=EVERYTHING) as t:
      results[cfg] = t.process(amplitude=amplitude, depth=depth)
  for default, other in zip(results[sensor.DEFAULT_SENSOR].hands, results[custom].hands):
    np.testing.assert_array_equal(default.keypoints_px, other.keypoints_px)
    x, y, z = other.positions_m.T
    np.testing.assert_array_equal(z, default.positions_m[:, 2])
    u, v = other.keypoints_px.T
    np.testing.assert_allclose(x, (u - 170.0) * z / 400.0)
    np.testing.assert_allclose(y, (v - 100.0) * z / 300.0)
    assert not np.allclose(x, default.positions_m[:, 0])


def test_frames_at_another_resolution_are_resized_with_scaled_intrinsics(clip):
  frame = clip[0]
  amplitude, depth = _pair(frame)
  big = sensor.DEFAULT_SENSOR.resized(480, 640)
  assert (big.fx, big.cx) == (400.0, 319.5)
  with tracker_lib.HandTracker(mode="image", options=EVERYTHING) as t:
    small = t.process(amplitude=amplitude, depth=depth)
  with tracker_lib.HandTracker(mode="image", sensor_config=big, options=EVERYTHING) as t:
    # Each pixel becomes 2x2: the network sees the same input.
    result = t.process(amplitude=np.kron(amplitude, np.ones((2, 2), np.uint16)),
                       depth=np.kron(depth, np.ones((2, 2), np.float32)))
    odd = t.process(amplitude=np.zeros((240, 320)), depth=depth)
  assert odd.error_kind == frames_lib.WRONG_SHAPE and "(480, 640)" in odd.error
  for a, b in zip(small.hands, result.hands):
    np.testing.assert_allclose(b.keypoints_px, 2 * (a.keypoints_px + 0.5) - 0.5, atol=1e-3)
    np.testing.assert_allclose(b.keypoints_normalized, a.keypoints_normalized, atol=1e-5)
    # Same rays; the depth windows (in pixels) cover a quarter of the area, so the
    # depths differ a little (most at the hand's edges).
    np.testing.assert_allclose(b.positions_m[:, :2] / b.positions_m[:, 2:],
                               a.positions_m[:, :2] / a.positions_m[:, 2:], atol=1e-5)
    dz = np.abs(b.positions_m[:, 2] - a.positions_m[:, 2])
    assert np.median(dz) < 0.005 and dz.max() < 0.03, dz
  # Not a multiple of the network input: area-resized, keypoints inside the frame.
  cfg = sensor.DEFAULT_SENSOR.resized(288, 352)
  with tracker_lib.HandTracker(mode="image", sensor_config=cfg, options=EVERYTHING) as t:
    rows, cols = (np.arange(n) * m // n for n, m in ((288, 240), (352, 320)))
    result = t.process(amplitude=amplitude[rows][:, cols], depth=depth[rows][:, cols])
  assert result.ok and all(((h.keypoints_normalized >= 0) & (h.keypoints_normalized <= 1)).all()
                           for h in result.hands)


def test_amplitude_scale_maps_ir_counts_to_the_network_range(clip):
  amplitude, depth = _pair(clip[0])
  with tracker_lib.HandTracker(mode="image", options=EVERYTHING) as t:
    reference = t.process(amplitude=amplitude, depth=depth)
  scaled = dataclasses.replace(sensor.DEFAULT_SENSOR, amplitude_scale=0.25)
  with tracker_lib.HandTracker(mode="image", sensor_config=scaled, options=EVERYTHING) as t:
    result = t.process(amplitude=amplitude.astype(np.float32) * 4, depth=depth)
  for a, b in zip(reference.hands, result.hands):
    np.testing.assert_allclose(b.keypoints_px, a.keypoints_px, atol=1e-3)


def test_video_mode_smooths_by_timestamp_and_needs_increasing_ones(clip):
  frames = [f["phase_frames"] for f in clip[:2]]
  with tracker_lib.HandTracker(mode="image", options=EVERYTHING) as t:
    raw = [t.process_phase(f) for f in frames]
  smoothed = {}
  for dt in (1 / 30, 1.0):
    with tracker_lib.HandTracker(mode="video", options=EVERYTHING) as t:
      smoothed[dt] = [t.process_phase(f, timestamp_s=10.0 + i * dt) for i, f in enumerate(frames)]
  # The first frame passes through; later ones move towards the new frame faster when
  # more time has passed (One Euro's cut-off is in Hz).
  np.testing.assert_array_equal(smoothed[1 / 30][0].hands[0].keypoints_px,
                                raw[0].hands[0].keypoints_px)
  error = {dt: np.abs(s[1].hands[0].keypoints_px - raw[1].hands[0].keypoints_px).mean()
           for dt, s in smoothed.items()}
  assert 0 < error[1.0] < error[1 / 30]
  with tracker_lib.HandTracker(mode="video") as t:
    with pytest.raises(ValueError, match="VIDEO mode needs each frame's timestamp_s"):
      t.process_phase(frames[0])
    t.process_phase(frames[0], timestamp_s=1.0)
    with pytest.raises(ValueError, match="timestamp_s 1.0 does not increase"):
      t.process_phase(frames[1], timestamp_s=1.0)
    t.reset()
    assert t.process_phase(frames[1], timestamp_s=0.5).ok
    # Recorded frames: a new clip starts afresh (its timestamps may start over).
    first = recordings.RecordedFrame("a", 0.2, phase_frames=frames[0], clip=1)
    again = recordings.RecordedFrame("b", 0.1, phase_frames=frames[1], clip=2)
    assert t.process_recorded(first).ok and t.process_recorded(again).ok
    with pytest.raises(ValueError, match="does not increase"):
      t.process_recorded(dataclasses.replace(again, name="c"))
    unreadable = t.process_recorded(recordings.RecordedFrame(
        "d.npy", 0.3, clip=2, error=frames_lib.BadFrameError(frames_lib.UNREADABLE, "d.npy: x")))
    assert unreadable.error_kind == frames_lib.UNREADABLE and "d.npy" in unreadable.error
  with pytest.raises(ValueError, match="mode must be one of"):
    tracker_lib.HandTracker(mode="stream")


def test_bad_frames_are_reported_and_the_next_one_tracked(clip):
  amplitude, depth = _pair(clip[0])
  nan = amplitude.astype(np.float32)
  nan[3, 3] = np.nan
  bad = [
      (dict(amplitude=amplitude, depth=depth * 1e3), frames_lib.WRONG_UNITS, "beyond 10 m"),
      (dict(amplitude=amplitude, depth=depth / 100), frames_lib.WRONG_UNITS,
       "nearer than 0.1 m"),
      (dict(amplitude=amplitude[:, :100], depth=depth), frames_lib.WRONG_SHAPE, "amplitude"),
      (dict(amplitude=nan, depth=depth), frames_lib.NON_FINITE, "1 NaN"),
      (dict(amplitude=amplitude, depth=-depth), frames_lib.WRONG_DTYPE, "negative"),
      (dict(amplitude=amplitude, depth=np.zeros_like(depth)), frames_lib.NO_VALID_DEPTH, ""),
  ]
  with tracker_lib.HandTracker(mode="video", options=EVERYTHING) as t:
    for i, (inputs, kind, words) in enumerate(bad):
      result = t.process(**inputs, timestamp_s=2.0 * i)
      assert result.error_kind == kind and words in result.error and result.hands == ()
      assert t.process(amplitude=amplitude, depth=depth, timestamp_s=2.0 * i + 1).ok


def test_a_model_file_that_is_not_tflite_is_named(tmp_path):
  path = tmp_path / "weights.h5"
  path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
  with pytest.raises(inference.ModelFileError, match=r"weights\.h5 is not a TFLite model"):
    tracker_lib.HandTracker(str(path))
  with pytest.raises(FileNotFoundError, match="missing.tflite"):
    tracker_lib.HandTracker(str(tmp_path / "missing.tflite"))
  # A .tflite header on bytes LiteRT cannot read: named too.
  path = tmp_path / "cut.tflite"
  path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(16))
  with pytest.raises(inference.ModelFileError, match=r"cut\.tflite: LiteRT cannot load it"):
    tracker_lib.HandTracker(str(path))


def test_lifting_refuses_a_nan_keypoint_marked_valid():
  depth = np.full((spec.SENSOR.height, spec.SENSOR.width), 0.4, np.float32)
  xy = np.array([[100.0, 80.0], [np.nan, 90.0], [np.nan, np.nan]])
  with pytest.raises(ValueError, match=r"keypoints \[1\] are marked valid but have non-finite"):
    lifting.lift(depth, xy, np.array([True, True, False]))
  points, _ = lifting.lift(depth, xy, np.array([True, False, False]))
  assert points[0, 2] == pytest.approx(0.4) and np.isnan(points[1:]).all()


def test_paths_may_be_pathlike_and_wrong_arguments_are_named(tmp_path, clip):
  model = pathlib.Path(pretrained.path(pretrained.FLOAT32))
  with tracker_lib.HandTracker(model, mode="image", options=EVERYTHING) as t:
    assert t.model_path == str(model)
    assert t.process_phase(clip[0]["phase_frames"]).ok
  with pipeline.Pipeline(model, EVERYTHING) as p:
    assert p.process(clip[0]["phase_frames"]).ok
  with pytest.raises(FileNotFoundError, match="missing.tflite"):
    tracker_lib.HandTracker(tmp_path / "missing.tflite")
  (tmp_path / "weights.h5").write_bytes(bytes(64))
  with pytest.raises(inference.ModelFileError, match=r"weights\.h5 is not a TFLite model"):
    tracker_lib.HandTracker(tmp_path / "weights.h5")
  sensor.DEFAULT_SENSOR.save(tmp_path / "camera.json")
  assert sensor.SensorConfig.load(tmp_path / "camera.json") == sensor.DEFAULT_SENSOR
  wrong = [
      (dict(model=3), "model must be the path of a .tflite file .*got int"),
      (dict(sensor_config=sensor.DEFAULT_SENSOR.to_dict()),
       r"sensor_config must be a hand25d.SensorConfig .*SensorConfig.from_dict.*got dict"),
      (dict(options={"backend": "tflm"}), "options must be a pipeline.PipelineOptions, got dict"),
  ]
  for kwargs, words in wrong:
    with pytest.raises(TypeError, match=words):
      tracker_lib.HandTracker(**kwargs)
  with pytest.raises(TypeError, match="sensor_config must be a sensor.SensorConfig .*got dict"):
    pipeline.PipelineOptions(sensor_config={"fx": 300.0})
  with pytest.raises(TypeError, match="model must be the path .* or an inference.KeypointModel"):
    pipeline.Pipeline(b"\x1c\x00\x00\x00TFL3")


@pytest.mark.parametrize("parallel_depth", [True, False])
def test_a_closed_tracker_refuses_every_call(clip, parallel_depth):
  options = dataclasses.replace(EVERYTHING, parallel_depth=parallel_depth)
  phase = clip[0]["phase_frames"]
  amplitude, depth = _pair(clip[0])
  with tracker_lib.HandTracker(mode="video", options=options) as t:
    assert t.process_phase(phase, timestamp_s=0.0).ok and not t.closed
  assert t.closed
  t.close()  # Again: nothing happens.
  calls = [
      lambda: t.process(amplitude=amplitude, depth=depth, timestamp_s=1.0),
      lambda: t.process_phase(phase, timestamp_s=1.0),
      lambda: t.process_phase(phase),  # No timestamp in video mode: still "closed".
      lambda: t.process_recorded(recordings.RecordedFrame("a", 1.0, phase_frames=phase)),
      lambda: t.process_recorded(recordings.RecordedFrame(
          "b", 1.0, error=frames_lib.BadFrameError(frames_lib.UNREADABLE, "b: x"))),
      t.__enter__,
  ]
  for call in calls:
    with pytest.raises(RuntimeError, match="^HandTracker is closed"):
      call()
  p = pipeline.Pipeline(t.pipeline.model, options)
  p.close()
  for call in (lambda: p.process(phase), lambda: p.process_images(amplitude, depth),
               lambda: p.skip(frames_lib.BadFrameError(frames_lib.UNREADABLE, "x"))):
    with pytest.raises(RuntimeError, match="^Pipeline is closed"):
      call()


def test_timestamps_must_be_finite_real_numbers(clip):
  phase = clip[0]["phase_frames"]
  wrong = [("0.1", TypeError, "timestamp_s must be a real number of seconds, got '0.1'"),
           (True, TypeError, "got True"), (np.bool_(True), TypeError, "got np.True_"),
           ([1.0], TypeError, r"got \[1.0\]"), (math.nan, ValueError, "must be finite, got nan"),
           (-math.inf, ValueError, "must be finite, got -inf")]
  for mode in tracker_lib.MODES:
    with tracker_lib.HandTracker(mode=mode) as t:
      for value, error, words in wrong:
        with pytest.raises(error, match=words):
          t.process_phase(phase, timestamp_s=value)
        with pytest.raises(error, match=words):
          t.process(amplitude=phase[0], depth=phase[1], timestamp_s=value)
      # Real numbers of any kind, stored as float; the refusals left no trace.
      for i, value in enumerate((1, np.float32(1.5), np.int64(2), 2.25)):
        result = t.process_phase(phase, timestamp_s=value)
        assert result.timestamp_s == float(value) and type(result.timestamp_s) is float
        assert result.to_json()["timestamp_s"] == float(value) and result.index == i
  with pipeline.Pipeline(pretrained.path(pretrained.FLOAT32)) as p:
    with pytest.raises(TypeError, match="timestamp_s must be a real number of seconds, got 'x'"):
      p.process(phase, timestamp_s="x")
