r"""How many keypoint arg-maxes rounding the score maps alone to fp16 moves (not a test).

  .venv/bin/python benchmarks/fp16_output_ties.py --data=runs/reference/data_120x160 \
      [--tflite=hand25d/pretrained/hand25d_float32.tflite] [--frames=300] \
      [--json=benchmarks/results/fp16_output_ties.json]

Runs the float32 TFLite model (default: the shipped one) on the first test
frames, rounds its keypoint score maps to fp16 and counts the keypoints whose
arg-max (first maximum, row-major, as agreement.compare takes it) moves, and
the maps whose highest fp16 value occurs in two or more cells. This is the
error an fp16 SHAVE program would add by storing its outputs in fp16, on top
of the fp16 rounding of the layers before them (docs/embedded.md, "Outputs in
fp32"; planner.fp32_stored stores them in fp32).
"""

# First: TensorFlow's kernels as the binaries run them (oneDNN), quietly.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import itertools
import os

from absl import app
from absl import flags
import numpy as np

from hand25d import atomic
from hand25d import litert
from hand25d import pretrained
from hand25d import spec
from hand25d.data import pipeline

_DATA = flags.DEFINE_string("data", None, "Data set with a test split.", required=True)
_TFLITE = flags.DEFINE_string("tflite", None, "float32 .tflite (default: the shipped model).")
_FRAMES = flags.DEFINE_integer("frames", 300, "Test frames (the first ones).", lower_bound=1)
_JSON = flags.DEFINE_string("json", None, "Also write the figures as JSON here.")


def main(argv):
  del argv
  path = _TFLITE.value or os.path.relpath(pretrained.path(pretrained.FLOAT32))
  with open(path, "rb") as f:
    model = litert.LiteRtModel(f.read())
  (detail,) = model.inputs
  modes = [mode for mode in spec.INPUT_MODES if mode in detail["name"]]
  if len(modes) != 1:
    raise app.UsageError(f"{path}: input {detail['name']!r} names none (or several) of the "
                         f"input modes {spec.INPUT_MODES}: which image of the data set?")
  _, height, width, _ = detail["shape"]
  dataset = pipeline.make_dataset(_DATA.value, "test", 1, input_mode=modes[0],
                                  input_height=int(height), input_width=int(width))
  frames = keypoints = kept = tied = 0
  for features, _ in itertools.islice(dataset, _FRAMES.value):
    model.set_inputs([features["image"].numpy()])
    model.interpreter.invoke()
    (maps,) = [o for o in model.output_arrays()
               if o.ndim == 4 and o.shape[-1] == spec.NUM_PRIMARY_CHANNELS]
    scores = maps[0].reshape(-1, maps.shape[-1])
    rounded = scores.astype(np.float16).astype(np.float32)
    frames += 1
    keypoints += scores.shape[1]
    kept += int((scores.argmax(0) == rounded.argmax(0)).sum())
    tied += int(((rounded == rounded.max(0)).sum(0) > 1).sum())
  figures = {"model": path, "data": _DATA.value, "frames": frames, "keypoints": keypoints,
             "argmax_kept": kept, "argmax_kept_fraction": kept / keypoints,
             "maps_tied_in_fp16": tied, "maps_tied_fraction": tied / keypoints}
  print(f"{frames} test frames, {keypoints} keypoint score maps of {path}:\n"
        f"  rounded to fp16, the arg-max stays on {kept} ({100 * kept / keypoints:.1f}%)\n"
        f"  maps whose highest fp16 value is in two or more cells: {tied} "
        f"({100 * tied / keypoints:.1f}%)")
  if _JSON.value:
    atomic.write_json(_JSON.value, figures)


if __name__ == "__main__":
  app.run(main)
