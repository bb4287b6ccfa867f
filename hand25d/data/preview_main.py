"""Writes a PNG grid of frames (amplitude with named keypoints, depth, segmentation).

  python -m hand25d.data.preview_main --out=docs/data_preview.png --seed=0 --num_frames=6
  python -m hand25d.data.preview_main --out=preview.png --data=DATA --split=val
  python -m hand25d.data.preview_main --out=batch.png --data=DATA --augmented
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

from absl import app
from absl import flags

from hand25d import atomic
from hand25d.data import preview

_OUT = flags.DEFINE_string("out", None, "Output PNG path.", required=True)
_DATA = flags.DEFINE_string("data", None, "Data set to preview; default: render frames.")
flags.DEFINE_alias("data_dir", "data")  # The old name, for one release.
_SPLIT = flags.DEFINE_string("split", "train", "Split of --data.")
_SEED = flags.DEFINE_integer("seed", 0, "First seed of rendered frames (without --data).")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 6, "Frames in the grid.")
_COLUMNS = flags.DEFINE_integer(
    "columns", None, "Frames per row (default: 1, with --augmented 4).")
_AUGMENTED = flags.DEFINE_bool(
    "augmented", False, "Draw a training batch of --data as the network sees it "
    "(augmented, network resolution) with its targets over it; --seed seeds the batch.")


def main(argv):
  del argv
  if _AUGMENTED.value:
    if not _DATA.value:
      raise app.UsageError("--augmented needs --data")
    atomic.write_bytes(_OUT.value, preview.augmented_batch_png(
        _DATA.value, _SPLIT.value, _NUM_FRAMES.value, _SEED.value, max(_COLUMNS.value or 4, 1)))
    return
  frames = (preview.stored_frames(_DATA.value, _SPLIT.value, _NUM_FRAMES.value)
            if _DATA.value else preview.rendered_frames(_SEED.value, _NUM_FRAMES.value))
  atomic.write_bytes(_OUT.value, preview.render_png(frames, max(_COLUMNS.value or 1, 1)))


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
