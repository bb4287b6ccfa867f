"""The runtime's runner and CLI: sources, outputs, report, jitter with and without smoothing."""

import csv
import dataclasses
import io
import json
import os
import re
import subprocess
import sys

from hand25d import sensor
from hand25d import spec
from hand25d.data import scene
from hand25d.runtime import frames as frames_lib
from hand25d.runtime import pipeline
from hand25d.runtime import recordings
from hand25d.runtime import smoothing
from hand25d.runtime import tracker
from hand25d.runtime.demo import evaluation
from hand25d.runtime.demo import report
from hand25d.runtime.demo import runner
from hand25d.runtime.demo import sequence
from export import convert
import cli_cases

import numpy as np
from PIL import Image
import pytest
import tf_keras as keras


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
  """A one-layer stand-in with the exported model's signature (keypoints + presence)."""
  keras.utils.set_random_seed(0)
  image = keras.Input((spec.INPUT_HEIGHT, spec.INPUT_WIDTH, 1), batch_size=1)
  outputs = {spec.KEYPOINTS: keras.layers.Conv2D(spec.NUM_PRIMARY_CHANNELS, 2, strides=2)(image),
             spec.PRESENCE: keras.layers.Dense(spec.NUM_SIDES, bias_initializer="ones")(
                 keras.layers.GlobalAveragePooling2D()(image))}
  path = tmp_path_factory.mktemp("model") / "tiny.tflite"
  path.write_bytes(convert.to_tflite(keras.Model(image, outputs), "float32"))
  return str(path)


def test_synthetic_source_is_continuous_clips_with_truth():
  config = sequence.SyntheticConfig(seed=3, num_clips=2, frames_per_clip=2)
  frames = list(sequence.SyntheticSource(config))
  assert len(frames) == len(sequence.SyntheticSource(config)) == 4
  assert [f.clip for f in frames] == [0, 0, 1, 1]
  assert frames[0].phase_frames.shape == (spec.NUM_PHASE_FRAMES, spec.SENSOR.height,
                                          spec.SENSOR.width)
  assert set(frames[0].truth) == set(sequence.TRUTH_KEYS + (sequence.TRUE_DEPTH,))
  again = list(sequence.SyntheticSource(config))
  np.testing.assert_array_equal(frames[3].phase_frames, again[3].phase_frames)
  with pytest.raises(ValueError, match="at least one clip"):
    sequence.SyntheticConfig(num_clips=0)
  with pytest.raises(ValueError, match="SyntheticConfig.seed must be an integer >= 0, got -1"):
    sequence.SyntheticConfig(seed=-1)


def _write_dir(tmp_path):
  """Three rendered frames with ground truth, a corrupt file and one without phase frames."""
  tmp_path.mkdir()
  for i, frame in enumerate(scene.render_sequence(7, 3)):
    keys = ("phase_frames", sequence.TRUE_DEPTH) + sequence.TRUTH_KEYS
    np.savez(tmp_path / f"{i:04d}.npz", clip=1, **{k: frame[k] for k in keys})
  (tmp_path / "0001_corrupt.npz").write_bytes(b"PK\x03\x04 not a zip")
  np.savez(tmp_path / "0002_empty.npz", something=np.zeros(3))
  return tmp_path


def test_run_on_a_directory_writes_every_output(model_path, tmp_path):
  in_dir = _write_dir(tmp_path / "in")
  out = tmp_path / "out"
  config = runner.RunConfig(
      model_path=model_path, out_dir=str(out), input=str(in_dir), num_images=2,
      gif_max_frames=3, options=pipeline.PipelineOptions(min_keypoint_confidence=0.0))
  summary = runner.run(config)
  lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
  assert [line["name"] for line in lines] == [
      "0000.npz", "0001.npz", "0001_corrupt.npz", "0002.npz", "0002_empty.npz"]
  assert [line["error_kind"] for line in lines] == [
      None, None, frames_lib.UNREADABLE, None, frames_lib.UNREADABLE]
  assert "phase_frames" in lines[4]["error"] and "0001_corrupt.npz" in lines[2]["error"]
  assert summary["frames"] == {"total": 5, "processed": 3, "early_out": 0,
                               "bad": {frames_lib.UNREADABLE: 2}}
  assert summary["latency"]["frames"] == 3 and summary["latency"]["fps"] > 0
  accuracy = summary["accuracy"]
  assert accuracy["keypoints_found"] == accuracy["keypoints_in_truth"] > 0
  assert accuracy["lifting_surface_error_mm"]["median"] < 5.0
  assert set(summary["jitter"]) == {"network_raw", "network_smoothed", "truth_mm",
                                    "lifting_raw_mm", "lifting_smoothed_mm"}
  assert json.loads((out / "summary.json").read_text()) == summary
  assert json.loads((out / "config.json").read_text())["input"] == str(in_dir)
  assert len(summary["outputs"]["images"]) == 2
  still, animation = ((round(w * report.DPI), round(h * report.DPI))
                      for w, h in (report.STILL_SIZE_IN, report.ANIMATION_SIZE_IN))
  for name in summary["outputs"]["images"]:
    image = Image.open(out / name)
    assert image.format == "PNG" and image.size == still
  gif = Image.open(out / "sequence.gif")
  assert gif.format == "GIF" and gif.n_frames == 3 and gif.size == animation
  text = (out / "report.md").read_text()
  assert "frames/s" in text and "2 unreadable" in text
  assert all(f"]({name})" in text for name in summary["outputs"]["images"] + ["sequence.gif"])


def test_cli_runs_on_synthetic_input(model_path, tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  proc = subprocess.run(
      [sys.executable, "-m", "hand25d.runtime.demo.run_main", f"--model={model_path}",
       f"--out={tmp_path}", "--clips=1", "--frames_per_clip=3", "--num_images=1",
       "--presence_threshold=0.99"], capture_output=True, text=True, check=False, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "XNNPACK" not in proc.stderr, proc.stderr  # LiteRT's INFO line, hidden by default.
  assert "3 frames" in proc.stdout
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["frames"]["total"] == 3 and summary["frames"]["early_out"] == 3
  assert (tmp_path / "report.md").exists() and (tmp_path / "sequence.gif").exists()


def test_smoothing_reduces_jitter_of_a_still_hand():
  rng = np.random.default_rng(0)
  xy = np.array([[100.0, 80.0], [120.0, 90.0]])[None].repeat(2, axis=0)  # [S, K, 2]
  z = np.full((2, 2), 0.4)
  smoother = smoothing.HandSmoother(smoothing.OneEuroConfig(), 2)
  present = np.array([True, False])
  raw, smoothed = evaluation.Tracks(), evaluation.Tracks()
  for t in range(60):
    noisy_xy, noisy_z = xy + rng.normal(0, 1.0, xy.shape), z + rng.normal(0, 0.003, z.shape)
    s_xy, s_z = smoother(noisy_xy, noisy_z, present, t / 30)
    np.testing.assert_array_equal(s_xy[1], noisy_xy[1])  # The absent hand is untouched.
    raw.add(0, np.concatenate([noisy_xy, 1e3 * noisy_z[..., None]], -1)[:1])
    smoothed.add(0, np.concatenate([s_xy, 1e3 * s_z[..., None]], -1)[:1])
  assert smoothed.jitter() < 0.3 * raw.jitter()


def test_jitter_ignores_cuts_between_clips():
  tracks = evaluation.Tracks()
  for clip, start in ((0, 0.0), (1, 500.0)):
    for t in range(5):
      tracks.add(clip, np.array([[start + 3.0 * t, 0.0]]))
  assert tracks.jitter() == pytest.approx(0.0)
  assert evaluation.Tracks().jitter() is None


def _write_png_recording(directory, frames) -> None:
  for sub in ("ir", "depth"):
    (directory / sub).mkdir(parents=True)
  lines = ["name,timestamp_s"]
  for i, frame in enumerate(frames):
    Image.fromarray(frame["amplitude"]).save(directory / "ir" / f"{i:04d}.png")
    Image.fromarray(np.round(frame["depth"] * 1e3).astype(np.uint16)).save(
        directory / "depth" / f"{i:04d}.png")
    lines.append(f"{i:04d},{7.0 + 0.1 * i}")
  (directory / "timestamps.csv").write_text("\n".join(lines) + "\n")


def test_cli_on_a_png_recording_with_a_sensor_config(model_path, tmp_path):
  frames = scene.render_sequence(5, 3)
  _write_png_recording(tmp_path / "rec", frames)
  Image.fromarray(np.zeros((240, 320), np.uint8)).save(tmp_path / "rec" / "depth" / "0001.png")
  camera = dataclasses.replace(sensor.DEFAULT_SENSOR, fx=250.0, fy=250.0)
  camera.save(str(tmp_path / "camera.json"))
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "hand25d.runtime.demo.run_main", f"--model={model_path}",
       f"--out={out}", f"--input={tmp_path / 'rec'}", f"--sensor_config={tmp_path / 'camera.json'}",
       "--sensor_cx=150", "--presence_threshold=0", "--min_keypoint_confidence=0",
       "--num_images=1"], capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "bad frames skipped: {'unreadable': 1}" in proc.stdout
  config = json.loads((out / "config.json").read_text())["options"]["sensor_config"]
  assert (config["fx"], config["fy"], config["cx"], config["cy"]) == (250.0, 250.0, 150.0, 119.5)
  lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
  assert [line["timestamp_s"] for line in lines] == [7.0, 7.1, 7.2]
  assert "8-bit greyscale" in lines[1]["error"] and "0001.png" in lines[1]["error"]
  hands = [json.loads(line) for line in (out / "hands.jsonl").read_text().splitlines()]
  with open(out / "hands.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(hands) == len(rows) == 4  # Both hands of frames 0 and 2.
  assert [r["frame"] for r in rows] == ["0", "0", "2", "2"]
  assert [h["handedness"] for h in hands] == [r["handedness"] for r in rows] == [
      "left", "right"] * 2
  tip = hands[0]["keypoints"][tracker.KEYPOINT_NAMES.index("index_tip")]
  assert float(rows[0]["index_tip_x_px"]) == tip["x_px"]
  x, z = tip["position_m"][0], tip["position_m"][2]
  assert x == pytest.approx((tip["x_px"] - 150.0) * z / 250.0, abs=1e-5)


def test_a_run_goes_on_past_bad_files(model_path, tmp_path):
  """A .npy header claiming (4, 100000, 100000), bad ground truth: those frames are unreadable."""
  frames = scene.render_sequence(7, 3)  # A hand in every frame.
  (tmp_path / "npy").mkdir()
  for i, frame in enumerate(frames):
    np.save(tmp_path / "npy" / f"{i}.npy", frame["phase_frames"])
  header = io.BytesIO()
  np.lib.format.write_array_header_1_0(
      header, {"descr": "<u2", "fortran_order": False, "shape": (4, 100000, 100000)})
  (tmp_path / "npy" / "1.npy").write_bytes(b"\x93NUMPY\x01\x00" + header.getvalue()[8:])
  (tmp_path / "npz").mkdir()
  for i, frame in enumerate(frames):
    arrays = {k: frame[k] for k in ("phase_frames",) + sequence.TRUTH_KEYS}
    if i == 1:
      arrays["keypoints_xy"] = arrays["keypoints_xy"].copy()
      side = int(np.argmax(frame["hand_present"]))
      k = int(np.argmax(frame["keypoint_visible"][side]))  # A visible keypoint of a hand.
      arrays["keypoints_xy"][side, k, 0] = np.nan
    np.savez(tmp_path / "npz" / f"{i}.npz", **arrays)
  for name, words in (("npy", "header says shape (4, 100000, 100000)"),
                      ("npz", "ground truth of 1 visible keypoints is not finite")):
    summary = runner.run(runner.RunConfig(
        model_path=model_path, out_dir=str(tmp_path / f"out_{name}"),
        input=str(tmp_path / name), num_images=0, gif_max_frames=0,
        options=pipeline.PipelineOptions(min_keypoint_confidence=0.0)))
    assert summary["frames"]["processed"] == 2 and summary["frames"]["bad"] == {
        frames_lib.UNREADABLE: 1}
    lines = (tmp_path / f"out_{name}" / "frames.jsonl").read_text().splitlines()
    assert words in json.loads(lines[1])["error"], lines[1]
  assert summary["accuracy"]["keypoints_in_truth"] > 0  # The good frames' truth is used.


def _outputs(out) -> dict[str, bytes]:
  return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_run_replaces_the_previous_runs_outputs_and_a_failed_one_writes_nothing(
    model_path, tmp_path):
  _write_png_recording(tmp_path / "a", scene.render_sequence(5, 3))
  out = tmp_path / "out"

  def run(source, **kwargs):
    return runner.run(runner.RunConfig(model_path=model_path, out_dir=str(out), input=source,
                                       gif_max_frames=0, compare_smoothing=False, **kwargs))

  first = run(str(tmp_path / "a"), num_images=3)
  # PNG frames are named ir/0000.png: their pictures lie flat in images/.
  assert first["outputs"]["images"] == [f"images/{i:05d}_ir_{i:04d}.png" for i in range(3)]
  assert sorted(p.name for p in (out / "images").iterdir()) == [
      f"{i:05d}_ir_{i:04d}.png" for i in range(3)]
  before = _outputs(out)
  # A failed run (no such recording, no model, a file at --out) writes nothing.
  with pytest.raises(recordings.RecordingError, match="neither a directory"):
    run(str(tmp_path / "b"))
  with pytest.raises(runner.RunError, match="model .*none.tflite: no such file"):
    runner.run(runner.RunConfig(model_path=str(tmp_path / "none.tflite"), out_dir=str(out),
                                input=str(tmp_path / "a")))
  assert _outputs(out) == before
  (tmp_path / "a_file").write_text("mine")
  with pytest.raises(runner.RunError, match="a_file exists and is not a directory"):
    runner.run(runner.RunConfig(model_path=model_path, out_dir=str(tmp_path / "a_file")))
  # A new run replaces the previous one's outputs: nothing of run A is left. What
  # a run does not write stays (make demo runs into the directory of its data).
  (out / "images" / "00001_ir").mkdir()  # Where runs before image_name put pictures.
  (out / "images" / "00001_ir" / "0001.png").write_bytes(b"old")
  (out / "images" / "notes.txt").write_text("mine")
  (out / "data").mkdir()
  (out / "data" / "manifest.json").write_text("{}")
  second = run("synthetic", num_images=1,
               synthetic=sequence.SyntheticConfig(num_clips=1, frames_per_clip=2))
  assert second["outputs"]["images"] == ["images/00000_clip000_frame0000.png"]
  assert sorted(p.name for p in (out / "images").iterdir()) == [
      "00000_clip000_frame0000.png", "notes.txt"]
  assert sorted(p.name for p in out.iterdir()) == [
      "config.json", "data", "frames.jsonl", "hands.csv", "hands.jsonl", "images", "report.md",
      "summary.json"]
  assert (out / "data" / "manifest.json").read_text() == "{}"
  assert json.loads((out / "config.json").read_text())["input"] == "synthetic"
  assert json.loads((out / "summary.json").read_text()) == second
  assert len((out / "frames.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("field, value, words", [
    ("num_images", -1, "RunConfig.num_images must be an integer >= 0, got -1"),
    ("gif_max_frames", -1, "RunConfig.gif_max_frames must be an integer >= 0, got -1"),
    ("fps", 0.0, "RunConfig.fps must be a positive number, got 0.0"),
    ("fps", float("nan"), "RunConfig.fps must be a positive number, got nan"),
    ("out_dir", "", "RunConfig.out_dir must be a non-empty path"),
    ("options", pipeline.PipelineOptions(sensor_config=sensor.DEFAULT_SENSOR.resized(120, 160)),
     "synthetic input is rendered for the simulated sensor"),
])
def test_run_config_refuses_a_bad_field_naming_it(field, value, words):
  config = dict(dict(model_path="m.tflite", out_dir="out"), **{field: value})
  with pytest.raises(ValueError, match=re.escape(words)):
    runner.RunConfig(**config)


@pytest.mark.slow  # Starts the binary in a child process.
def test_run_main_ends_a_user_error_in_one_line_and_writes_nothing(model_path, tmp_path):
  (tmp_path / "not_a_model.tflite").write_bytes(b"PK\x03\x04 a zip, say")
  (tmp_path / "a_file").write_text("mine")
  _write_png_recording(tmp_path / "latin1", scene.render_sequence(5, 1))
  (tmp_path / "latin1" / "timestamps.csv").write_bytes(b"name,timestamp_s\n0000,7.0 \xb5s\n")
  model = f"--model={model_path}"
  outcomes = cli_cases.run("hand25d.runtime.demo.run_main", [
      ["--out=o", "--model=nonexistent.tflite"],
      ["--out=o", "--model=not_a_model.tflite"],
      ["--out=a_file", model],
      ["--out=o", model, "--clips=0"],
      ["--out=o", model, "--num_images=-1"],
      ["--out=o", model, "--presence_threshold=2"],
      ["--out=o", model, "--input=synthetic", "--sensor_height=120"],
      ["--out=o", model, "--fps=0"],
      ["--out=o", model, "--input=latin1"],
  ], cwd=str(tmp_path))
  assert outcomes[0][:2] == ("exit", "track refused: model nonexistent.tflite: no such file")
  assert outcomes[1].kind == "exit" and outcomes[1].message.startswith(
      "track refused: not_a_model.tflite is not a TFLite model")
  assert outcomes[2][:2] == ("exit", "track refused: output directory a_file exists and is not "
                             "a directory")
  assert outcomes[3].kind == outcomes[4].kind == "flags"
  assert "--clips=0" in outcomes[3].message and "--num_images=-1" in outcomes[4].message
  assert outcomes[5][:2] == ("usage", "presence_threshold must be in [0, 1], got 2.0")
  assert outcomes[6].kind == "usage" and outcomes[6].message.startswith(
      "synthetic input is rendered for the simulated sensor")
  assert outcomes[7][:2] == ("usage", "RunConfig.fps must be a positive number, got 0.0")
  assert outcomes[8].kind == "exit" and outcomes[8].message.startswith(
      "track refused: ") and "timestamps.csv" in outcomes[8].message
  assert not (tmp_path / "o").exists()
  assert (tmp_path / "a_file").read_text() == "mine"
