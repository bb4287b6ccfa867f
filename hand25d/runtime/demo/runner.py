"""Runs the 2.5D runtime over a source of frames and writes everything a user looks at.

`run(config)` writes into config.out_dir:
  config.json     the RunConfig of the run
  frames.jsonl    one FrameResult.to_json() per frame (+ name, clip)
  hands.jsonl     one tracker.Hand.to_json() per present hand per frame (+ frame,
                  name, timestamp_s)
  hands.csv       the same, one row per hand per frame (tracker.CSV_COLUMNS)
  summary.json    frames, latency (fps, percentiles, stages), accuracy and
                  jitter against ground truth when the input has it
  images/*.png    annotated frames (keypoints over amplitude and depth), named
                  <frame index>_<frame name>.png (`image_name`)
  sequence.gif    the run as an animation
  report.md       the figures and pictures in one page

The input and the model are opened first: if either cannot be, nothing is
written (`run` raises one of REFUSALS, naming the file and what is wrong).
Then the outputs of a previous run in out_dir (the files above and the PNGs
of images/) are removed, so that out_dir never holds two runs' files;
anything else there is left as it is (`make demo` runs into the directory
that holds its data set, checkpoints and exports). A run ends with one line
(`summary_line`).

To measure jitter with and without smoothing, a second pipeline, identical
but for the smoothing (on if the run's is off and vice versa, depth
sequential), processes every frame beside the first; only its tracks are
kept. The true 2D keypoints are also lifted with each frame's depth, and
smoothed with a smoothing.HandSmoother, to show the lifting on its own.
"""

import collections
import csv
import dataclasses
import io
import json
import math
import os
import re

import numpy as np

from hand25d import atomic
from hand25d import spec
from hand25d.runtime import frames as frames_lib
from hand25d.runtime import inference
from hand25d.runtime import lifting
from hand25d.runtime import pipeline
from hand25d.runtime import recordings
from hand25d.runtime import smoothing
from hand25d.runtime import tracker
from hand25d.runtime.demo import evaluation
from hand25d.runtime.demo import report
from hand25d.runtime.demo import sequence


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """One run of the runtime.

  Attributes:
    model_path: exported .tflite model (see inference.py for its signature).
    out_dir: where the outputs go (created).
    input: "synthetic" or a recording (recordings.py: a directory of .npz,
      .npy or 16-bit PNG frames, or a .npz sequence).
    synthetic: the clips rendered for "synthetic".
    options: how the pipeline runs, and the sensor (options.sensor_config).
    fps: frame rate of recorded frames without timestamps.
    num_images: annotated PNGs, spread evenly over the run.
    gif_max_frames: the GIF shows every k-th frame so that it has at most this many.
    compare_smoothing: run the second pipeline for jitter with and without smoothing.
  """
  model_path: str
  out_dir: str
  input: str = "synthetic"
  synthetic: sequence.SyntheticConfig = sequence.SyntheticConfig()
  options: pipeline.PipelineOptions = pipeline.PipelineOptions()
  fps: float = recordings.DEFAULT_FPS
  num_images: int = 4
  gif_max_frames: int = 60
  compare_smoothing: bool = True

  def __post_init__(self):
    for name in ("model_path", "out_dir", "input"):
      if not isinstance(getattr(self, name), str) or not getattr(self, name):
        raise ValueError(f"RunConfig.{name} must be a non-empty path, got "
                         f"{getattr(self, name)!r}")
    for name in ("num_images", "gif_max_frames"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"RunConfig.{name} must be an integer >= 0, got {value!r}")
    if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
      raise ValueError(f"RunConfig.fps must be a positive number, got {self.fps!r}")
    sequence.check_sensor(self.input, self.options.sensor_config)


class RunError(ValueError):
  """A run cannot start: no model file, or out_dir is not a directory (says which and why)."""


# What `run` refuses before writing anything, with a message that names the
# file and what is wrong with it.
REFUSALS = (recordings.RecordingError, RunError, inference.ModelFileError,
            inference.ModelSignatureError)


# What a run writes into out_dir besides images/ (module docstring), and so replaces there.
OUTPUT_FILES = ("config.json", "frames.jsonl", "hands.jsonl", "hands.csv", "summary.json",
                "sequence.gif", "report.md")
IMAGES_DIR = "images"


def image_name(index: int, frame_name: str) -> str:
  """images/<index>_<frame name without extension>.png, one flat directory.

  A frame name may hold a subdirectory (ir/0000.png of a PNG recording) or a
  sequence index (seq.npz[3]): characters other than letters, digits, '.',
  '_' and '-' become '_'.
  """
  stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.splitext(frame_name)[0])
  return f"{IMAGES_DIR}/{index:05d}_{stem}.png"


def _check_out_dir(out: str) -> None:
  if os.path.exists(out) and not os.path.isdir(out):
    raise RunError(f"output directory {out} exists and is not a directory")


def _clear_previous_run(out: str) -> None:
  """Removes a previous run's outputs from out (leaving anything else) and makes out/images/.

  Of images/, the PNGs go (and the subdirectories they leave empty: runs
  before `image_name` wrote images/<index>_ir/<name>.png for PNG recordings).
  """
  _check_out_dir(out)
  for name in OUTPUT_FILES:
    if os.path.isfile(os.path.join(out, name)):
      os.remove(os.path.join(out, name))
  images = os.path.join(out, IMAGES_DIR)
  for root, dirs, files in os.walk(images, topdown=False):
    for name in files:
      if name.endswith(".png"):
        os.remove(os.path.join(root, name))
    for name in dirs:
      if not os.listdir(os.path.join(root, name)):
        os.rmdir(os.path.join(root, name))
  try:
    os.makedirs(images, exist_ok=True)
  except OSError as e:
    raise RunError(f"cannot create output directory {out}: {e.strerror or e}") from e


def _open_pipeline(model_path: str, options: pipeline.PipelineOptions) -> pipeline.Pipeline:
  """pipeline.Pipeline(model_path, options); RunError if there is no model file there."""
  if not os.path.isfile(model_path):
    raise RunError(f"model {model_path}: " + ("is a directory, not a .tflite file"
                                              if os.path.isdir(model_path) else "no such file"))
  return pipeline.Pipeline(model_path, options)


class _Jitter:
  """The tracks of one run for the jitter table."""

  def __init__(self, smoothing_config: smoothing.OneEuroConfig, intrinsics: spec.Intrinsics):
    self.tracks = collections.defaultdict(evaluation.Tracks)
    self._smoother = smoothing.HandSmoother(smoothing_config, spec.NUM_SIDES)
    self._intrinsics = intrinsics

  def reset(self) -> None:
    self._smoother.reset()

  def add_network(self, name: str, clip: int, result: pipeline.FrameResult) -> None:
    xy, xyz = evaluation.result_keypoints(result)
    self.tracks[f"{name}_px"].add(clip, xy)
    self.tracks[f"{name}_mm"].add(clip, 1e3 * xyz)

  def add_truth(self, clip: int, truth: dict, lifted: np.ndarray, timestamp_s: float) -> None:
    xy, xyz, visible = evaluation.truth_keypoints(truth, self._intrinsics)
    self.tracks["truth_mm"].add(clip, np.where(visible[..., None], 1e3 * xyz, np.nan))
    self.tracks["lifting_raw_mm"].add(clip, 1e3 * lifted)
    xy_s, z_s = self._smoother(xy, lifted[..., 2], visible.any(axis=1), timestamp_s)
    smoothed = np.stack([lifting.back_project(xy_s[s], z_s[s], self._intrinsics)
                         for s in range(spec.NUM_SIDES)])
    self.tracks["lifting_smoothed_mm"].add(clip, 1e3 * smoothed)

  def summary(self, smoothed_name: str, raw_name: str) -> dict:
    t = self.tracks
    out = {key: {"px": t[f"{name}_px"].jitter(), "mm": t[f"{name}_mm"].jitter()}
           for key, name in (("network_smoothed", smoothed_name), ("network_raw", raw_name))}
    if "truth_mm" in t:
      out.update({k: t[k].jitter() for k in ("truth_mm", "lifting_raw_mm", "lifting_smoothed_mm")})
    return out


def run(config: RunConfig) -> dict:
  """Runs the pipeline over the input and writes the outputs; returns the summary.

  Raises:
    recordings.RecordingError: the input recording cannot be read.
    RunError: no model file at config.model_path, or out_dir is not a
      directory (or cannot be made).
    inference.ModelFileError, inference.ModelSignatureError: the model is
      not a TFLite model, or not one the runtime can run.
  Nothing is written into out_dir when one of these is raised.
  """
  out = config.out_dir
  options = config.options
  cfg = options.sensor_config
  source = sequence.open_source(config.input, config.synthetic, cfg, config.fps)
  n = len(source)
  _check_out_dir(out)
  image_at = set(np.linspace(0, n - 1, config.num_images).round().astype(int).tolist()
                 if config.num_images else [])
  gif_every = max(1, math.ceil(n / config.gif_max_frames)) if config.gif_max_frames else 0
  smoothing_config = options.smoothing or smoothing.OneEuroConfig()
  other_options = dataclasses.replace(
      options, parallel_depth=False, smoothing=None if options.smoothing else smoothing_config)
  lines, hand_lines, rows = [], [], []
  timings, bad, images, pictures, times = [], collections.Counter(), [], [], []
  early_outs = 0
  accuracy = evaluation.Accuracy(cfg.intrinsics)
  jitter = _Jitter(smoothing_config, cfg.intrinsics)
  main = _open_pipeline(config.model_path, options)
  other = None
  clip = None
  try:
    other = (pipeline.Pipeline(main.model, other_options) if config.compare_smoothing else None)
    _clear_previous_run(out)
    atomic.write_json(os.path.join(out, "config.json"), dataclasses.asdict(config))
    for i, frame in enumerate(source):
      if frame.clip != clip:  # A cut: the filters start afresh.
        clip = frame.clip
        for stateful in (main, other, jitter):
          if stateful is not None:
            stateful.reset()
      result = _process(main, frame)
      lines.append(json.dumps(dict(result.to_json(), name=frame.name, clip=frame.clip)))
      tracked = tracker.TrackingResult.from_frame(result, cfg.height, cfg.width)
      hand_lines += [json.dumps(dict(frame=tracked.index, name=frame.name,
                                     timestamp_s=tracked.to_json()["timestamp_s"],
                                     **hand.to_json())) for hand in tracked.hands]
      rows += tracker.csv_rows(tracked)
      times.append(result.timestamp_s)
      if result.ok:
        timings.append(result.timings_ms)
        early_outs += result.early_out
      else:
        bad[result.error_kind] += 1
      jitter.add_network("main", clip, result)
      if other is not None:
        jitter.add_network("other", clip, _process(other, frame))
      if frame.truth is not None and result.ok:
        lifted = _lift_truth(main, frame, result, config)
        if lifted is not None:
          accuracy.add(result, frame.truth, lifted)
          jitter.add_truth(clip, frame.truth, lifted, result.timestamp_s)
      if i in image_at:
        images.append(image_name(i, frame.name))
        report.write_png(os.path.join(out, images[-1]), report.draw(result, frame.truth))
      if gif_every and i % gif_every == 0:
        pictures.append(report.draw(result, frame.truth, animation=True))
  finally:
    main.close()
    if other is not None:
      other.close()
  atomic.write_text(os.path.join(out, "frames.jsonl"), "\n".join(lines) + "\n")
  atomic.write_text(os.path.join(out, "hands.jsonl"), "".join(line + "\n" for line in hand_lines))
  table = io.StringIO()
  writer = csv.DictWriter(table, tracker.CSV_COLUMNS, lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  atomic.write_text(os.path.join(out, "hands.csv"), table.getvalue())
  gif = None
  if pictures:
    gif = "sequence.gif"
    report.write_gif(os.path.join(out, gif), pictures,
                     fps=1.0 / (_frame_interval(times, options.frame_interval_s) * gif_every))
  smoothed, raw = ("main", "other") if options.smoothing else ("other", "main")
  summary = {
      "model": config.model_path, "input": config.input,
      "parallel_depth": options.parallel_depth, "backend": options.backend,
      "mirror_ensemble": options.mirror_ensemble,
      "frames": {"total": n, "processed": len(timings), "early_out": early_outs,
                 "bad": dict(bad)},
      "latency": evaluation.latency(timings),
      "accuracy": accuracy.summary() if accuracy.frames else None,
      "jitter": jitter.summary(smoothed, raw) if other is not None else None,
      "outputs": {"frames": "frames.jsonl", "hands": "hands.jsonl", "hands_csv": "hands.csv",
                  "images": images, "gif": gif, "report": "report.md"},
  }
  atomic.write_json(os.path.join(out, "summary.json"), summary)
  atomic.write_text(os.path.join(out, "report.md"), report.markdown(summary, out, images, gif))
  return summary


def summary_line(summary: dict, out_dir: str) -> str:
  """The line a run ends with: frames, speed, where its report is, bad frames skipped."""
  lat, frames = summary["latency"], summary["frames"]
  return (f"{frames['total']} frames, {lat.get('fps', 0):.0f} frames/s, "
          f"p50 {lat.get('p50_ms', 0):.2f} ms; report: {out_dir}/report.md" +
          (f"; bad frames skipped: {frames['bad']} (frames.jsonl says why)" if frames["bad"]
           else ""))


def _process(p: pipeline.Pipeline, frame: recordings.RecordedFrame) -> pipeline.FrameResult:
  """Runs a frame of the source through a pipeline (phase, or amplitude and depth)."""
  if frame.error is not None:
    return p.skip(frame.error, frame.timestamp_s)
  if frame.phase_frames is not None:
    return p.process(frame.phase_frames, frame.timestamp_s)
  return p.process_images(frame.amplitude, frame.depth, frame.timestamp_s)


def _frame_interval(times: list[float], default: float) -> float:
  """The median interval between consecutive frames' timestamps (default if none is positive)."""
  steps = np.diff(np.asarray(times, np.float64))
  steps = steps[steps > 0]
  return float(np.median(steps)) if steps.size else default


def _lift_truth(p: pipeline.Pipeline, frame: recordings.RecordedFrame,
                result: pipeline.FrameResult, config: RunConfig) -> np.ndarray | None:
  """The true 2D keypoints lifted with the frame's depth (computed if the run skipped it)."""
  o = config.options
  depth = result.depth
  if depth is None:
    try:
      depth = p.depth_image(frames_lib.check_phase_frames(
          frame.phase_frames, o.checks, o.sensor_config.height, o.sensor_config.width))
    except frames_lib.BadFrameError:
      return None
  return evaluation.lift_truth(depth, frame.truth, o.sensor_config.intrinsics, o.lift)
