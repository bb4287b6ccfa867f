"""Writes a PNG grid of frames (amplitude with named keypoints, depth, segmentation).

  python -m hand25d.data.preview_main --out=docs/data_preview.png --seed=0 --num_frames=6
  python -m hand25d.data.preview_main --out=preview.png --data=DATA --split=val
  python -m hand25d.data.preview_main --out=batch.png --data=DATA --augmented
"""

# First: hides TensorFlow's start-up lines unless --verbosity >= 1.
from hand25d import console  # noqa: F401  pylint: disable=unused-import

import os

from absl import app
from absl import flags

from hand25d import atomic
from hand25d.data import preview

_OUT = flags.DEFINE_string("out", None, "Output PNG path.", required=True)
_DATA = flags.DEFINE_string("data", None, "Data set to preview; default: render frames.")
flags.DEFINE_alias("data_dir", "data")  # The old name, for one release.
_SPLIT = flags.DEFINE_enum("split", "train", list(preview.SPLITS), "Split of --data.")
_SEED = flags.DEFINE_integer("seed", 0, "First seed of rendered frames (without --data).",
                             lower_bound=0)
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 6, "Frames in the grid.", lower_bound=1)
_COLUMNS = flags.DEFINE_integer(
    "columns", None, "Frames per row (default: 1, with --augmented 4).", lower_bound=1)
_AUGMENTED = flags.DEFINE_bool(
    "augmented", False, "Draw a training batch of --data as the network sees it "
    "(augmented, network resolution) with its targets over it; --seed seeds the batch.")
flags.register_validator("out", lambda path: not os.path.isdir(path),
                         "--out is a directory; give the path of the PNG to write")


def _png() -> bytes:
  if _AUGMENTED.value:
    return preview.augmented_batch_png(_DATA.value, _SPLIT.value, _NUM_FRAMES.value, _SEED.value,
                                       _COLUMNS.value or 4)
  frames = (preview.stored_frames(_DATA.value, _SPLIT.value, _NUM_FRAMES.value)
            if _DATA.value else preview.rendered_frames(_SEED.value, _NUM_FRAMES.value))
  return preview.render_png(frames, _COLUMNS.value or 1)


def main(argv):
  del argv
  if _AUGMENTED.value and not _DATA.value:
    raise app.UsageError("--augmented needs --data")
  try:
    png = _png()
  except preview.PreviewError as e:  # No such data set, an empty split, a bad shard: says which.
    raise SystemExit(f"preview refused: {e}") from e
  try:
    atomic.write_bytes(_OUT.value, png)
  except OSError as e:
    raise SystemExit(f"preview refused: cannot write {_OUT.value}: {e.strerror or e}") from e


def run():
  """The console script's entry point (pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
