r"""Runs the 2.5D runtime on a synthetic sequence or a recording (docs/runtime.md).

  .venv/bin/python -m hand25d.runtime.demo.run_main --input=synthetic --out=runs/runtime
  .venv/bin/python -m hand25d.runtime.demo.run_main --input=recording/ \
      --sensor_config=my_camera.json --out=runs/runtime

Without --model it runs the shipped model (hand25d.pretrained). A recording is
read by hand25d/runtime/recordings.py; --sensor_config is a SensorConfig JSON,
the --sensor_* flags override single fields. Writes frames.jsonl, hands.jsonl,
hands.csv, summary.json, annotated PNGs, sequence.gif and report.md into --out,
replacing a previous run's; an input, model or --out that cannot be used is
refused in one line before anything is written.
"""

# First: in a runtime-only install (no `track` extra: absl, matplotlib), one
# line saying what to install, not an ImportError.
from hand25d import extras

extras.require("track")

import os  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags

from hand25d import pretrained
from hand25d import sensor
from hand25d.runtime import inference
from hand25d.runtime import pipeline
from hand25d.runtime import recordings
from hand25d.runtime import smoothing
from hand25d.runtime.demo import runner
from hand25d.runtime.demo import sequence

_MODEL = flags.DEFINE_string("model", None,
                             "Exported .tflite model; default: the shipped trained model.")
_INPUT = flags.DEFINE_string("input", "synthetic",
                             "'synthetic', or a recording: a directory of .npz, .npy or ir/ + "
                             "depth/ 16-bit PNG frames, or a .npz sequence (docs/runtime.md).")
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_SENSOR = flags.DEFINE_string("sensor_config", None, "SensorConfig JSON of the recording's "
                              "sensor (default: the simulated one); --sensor_* override fields.")
_SENSOR_FIELDS = {
    "height": flags.DEFINE_integer("sensor_height", None, "Frame height in pixels."),
    "width": flags.DEFINE_integer("sensor_width", None, "Frame width in pixels."),
    "fx": flags.DEFINE_float("sensor_fx", None, "Focal length x in pixels."),
    "fy": flags.DEFINE_float("sensor_fy", None, "Focal length y in pixels."),
    "cx": flags.DEFINE_float("sensor_cx", None, "Principal point x in pixels."),
    "cy": flags.DEFINE_float("sensor_cy", None, "Principal point y in pixels."),
    "modulation_hz": flags.DEFINE_float("sensor_modulation_hz", None, "Modulation frequency."),
    "phase_offsets_deg": flags.DEFINE_list("sensor_phase_offsets_deg", None,
                                           "Phase offset of each phase frame, in degrees."),
    "depth_unit_m": flags.DEFINE_float("sensor_depth_unit_m", None,
                                       "Metres per unit of integer depth (0.001: mm)."),
    "amplitude_scale": flags.DEFINE_float("sensor_amplitude_scale", None,
                                          "Factor from the camera's IR counts to the network's."),
}
_FPS = flags.DEFINE_float("fps", recordings.DEFAULT_FPS,
                          "Frame rate of recorded frames without timestamps.")
_SEED = flags.DEFINE_integer("seed", sequence.SyntheticConfig.seed, "Seed of the synthetic clips.",
                             lower_bound=0)
_CLIPS = flags.DEFINE_integer("clips", sequence.SyntheticConfig.num_clips, "Synthetic clips.",
                              lower_bound=1)
_FRAMES = flags.DEFINE_integer("frames_per_clip", sequence.SyntheticConfig.frames_per_clip,
                               "Frames per synthetic clip.", lower_bound=1)
_PARALLEL = flags.DEFINE_boolean("parallel_depth", pipeline.PipelineOptions.parallel_depth,
                                 "Depth path on a worker thread beside the network.")
_BACKEND = flags.DEFINE_enum("backend", pipeline.PipelineOptions.backend,
                             list(inference.BACKENDS), "Interpreter.")
_SMOOTHING = flags.DEFINE_boolean("smoothing", True, "One Euro filter on the keypoints.")
_MIRROR = flags.DEFINE_boolean("mirror_ensemble", pipeline.PipelineOptions.mirror_ensemble,
                               "Also run the network on the mirrored frame and average the "
                               "outputs: lower error, twice the network's time.")
_PRESENCE = flags.DEFINE_float("presence_threshold", pipeline.PipelineOptions.presence_threshold,
                               "Early out when both hands' presence is below this.")
_CONFIDENCE = flags.DEFINE_float("min_keypoint_confidence",
                                 pipeline.PipelineOptions.min_keypoint_confidence,
                                 "Peak softmax probability of a visible keypoint.")
_IMAGES = flags.DEFINE_integer("num_images", runner.RunConfig.num_images, "Annotated PNGs.",
                               lower_bound=0)


def main(argv):
  del argv
  if flags.FLAGS.verbosity < 1:
    # LiteRT's INFO lines (its XNNPACK delegate's) hidden, as the TensorFlow
    # binaries hide TensorFlow's (hand25d/console.py, hand25d.litert.native_info_hidden).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  try:
    sensor_config = sequence.recording_sensor(
        _SENSOR.value, {k: f.value for k, f in _SENSOR_FIELDS.items()}, "--sensor_* flags")
  except (OSError, sensor.SensorConfigError) as e:
    raise app.UsageError(str(e)) from e
  try:  # A flag value a config refuses: usage, not a traceback.
    options = pipeline.PipelineOptions(
        parallel_depth=_PARALLEL.value, backend=_BACKEND.value,
        presence_threshold=_PRESENCE.value, min_keypoint_confidence=_CONFIDENCE.value,
        mirror_ensemble=_MIRROR.value,
        smoothing=smoothing.OneEuroConfig() if _SMOOTHING.value else None,
        sensor_config=sensor_config)
    config = runner.RunConfig(
        model_path=_MODEL.value or pretrained.path(pretrained.FLOAT32), out_dir=_OUT.value,
        input=_INPUT.value, fps=_FPS.value,
        synthetic=sequence.SyntheticConfig(seed=_SEED.value, num_clips=_CLIPS.value,
                                           frames_per_clip=_FRAMES.value),
        options=options, num_images=_IMAGES.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  try:
    summary = runner.run(config)
  except runner.REFUSALS as e:  # The message names the file and what is wrong.
    raise SystemExit(f"track refused: {e}") from e
  print(runner.summary_line(summary, _OUT.value))
  if summary["frames"]["processed"] == 0:
    raise SystemExit(f"no frame of {_INPUT.value} could be processed; frames.jsonl says why")


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
