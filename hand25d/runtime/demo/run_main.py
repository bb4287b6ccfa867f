r"""Runs the 2.5D runtime on a synthetic sequence or a directory of recorded frames.

  .venv/bin/python -m hand25d.runtime.demo.run_main --input=synthetic --out=runs/runtime
  .venv/bin/python -m hand25d.runtime.demo.run_main --model=model.tflite --out=runs/runtime

Without --model it runs the trained model shipped with hand25d
(hand25d.pretrained, docs/pretrained.md).

Writes frames.jsonl, summary.json, annotated PNGs, sequence.gif and report.md
into --out (see docs/runtime.md).
"""

from absl import app
from absl import flags

from hand25d import pretrained
from hand25d.runtime import inference
from hand25d.runtime import pipeline
from hand25d.runtime import smoothing
from hand25d.runtime.demo import runner
from hand25d.runtime.demo import sequence

_MODEL = flags.DEFINE_string("model", None,
                             "Exported .tflite model; default: the shipped trained model.")
_INPUT = flags.DEFINE_string("input", "synthetic",
                             "'synthetic' or a directory of .npz frames (docs/runtime.md).")
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_SEED = flags.DEFINE_integer("seed", sequence.SyntheticConfig.seed, "Seed of the synthetic clips.")
_CLIPS = flags.DEFINE_integer("clips", sequence.SyntheticConfig.num_clips, "Synthetic clips.")
_FRAMES = flags.DEFINE_integer("frames_per_clip", sequence.SyntheticConfig.frames_per_clip,
                               "Frames per synthetic clip.")
_PARALLEL = flags.DEFINE_boolean("parallel_depth", pipeline.PipelineOptions.parallel_depth,
                                 "Depth path on a worker thread beside the network.")
_BACKEND = flags.DEFINE_enum("backend", pipeline.PipelineOptions.backend,
                             list(inference.BACKENDS), "Interpreter.")
_SMOOTHING = flags.DEFINE_boolean("smoothing", True, "One Euro filter on the keypoints.")
_PRESENCE = flags.DEFINE_float("presence_threshold", pipeline.PipelineOptions.presence_threshold,
                               "Early out when both hands' presence is below this.")
_CONFIDENCE = flags.DEFINE_float("min_keypoint_confidence",
                                 pipeline.PipelineOptions.min_keypoint_confidence,
                                 "Peak softmax probability of a visible keypoint.")
_IMAGES = flags.DEFINE_integer("num_images", runner.RunConfig.num_images, "Annotated PNGs.")


def main(argv):
  del argv
  options = pipeline.PipelineOptions(
      parallel_depth=_PARALLEL.value, backend=_BACKEND.value,
      presence_threshold=_PRESENCE.value, min_keypoint_confidence=_CONFIDENCE.value,
      smoothing=smoothing.OneEuroConfig() if _SMOOTHING.value else None)
  config = runner.RunConfig(
      model_path=_MODEL.value or pretrained.path(pretrained.FLOAT32), out_dir=_OUT.value, input=_INPUT.value,
      synthetic=sequence.SyntheticConfig(seed=_SEED.value, num_clips=_CLIPS.value,
                                         frames_per_clip=_FRAMES.value),
      options=options, num_images=_IMAGES.value)
  summary = runner.run(config)
  lat = summary["latency"]
  print(f"{summary['frames']['total']} frames, {lat.get('fps', 0):.0f} frames/s, "
        f"p50 {lat.get('p50_ms', 0):.2f} ms; report: {_OUT.value}/report.md")


if __name__ == "__main__":
  app.run(main)
