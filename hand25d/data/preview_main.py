"""Writes a PNG grid of frames (amplitude with named keypoints, depth, segmentation).

  python -m hand25d.data.preview_main --out=docs/data_preview.png --seed=0 --num_frames=6
  python -m hand25d.data.preview_main --out=preview.png --data_dir=DATA --split=val
  python -m hand25d.data.preview_main --out=batch.png --data_dir=DATA --augmented
"""

from absl import app
from absl import flags

from hand25d import atomic
from hand25d.data import preview

_OUT = flags.DEFINE_string("out", None, "Output PNG path.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data set to preview; default: render frames.")
_SPLIT = flags.DEFINE_string("split", "train", "Split of --data_dir.")
_SEED = flags.DEFINE_integer("seed", 0, "First seed of rendered frames (without --data_dir).")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 6, "Frames in the grid.")
_COLUMNS = flags.DEFINE_integer("columns", 2, "Frames per row.")
_AUGMENTED = flags.DEFINE_bool(
    "augmented", False, "Draw a training batch of --data_dir as the network sees it "
    "(augmented, network resolution) with its targets over it; --seed seeds the batch.")


def main(argv):
  del argv
  if _AUGMENTED.value:
    if not _DATA_DIR.value:
      raise app.UsageError("--augmented needs --data_dir")
    atomic.write_bytes(_OUT.value, preview.augmented_batch_png(
        _DATA_DIR.value, _SPLIT.value, _NUM_FRAMES.value, _SEED.value, max(_COLUMNS.value, 1)))
    return
  frames = (preview.stored_frames(_DATA_DIR.value, _SPLIT.value, _NUM_FRAMES.value)
            if _DATA_DIR.value else preview.rendered_frames(_SEED.value, _NUM_FRAMES.value))
  atomic.write_bytes(_OUT.value, preview.render_png(frames, _COLUMNS.value))


if __name__ == "__main__":
  app.run(main)
